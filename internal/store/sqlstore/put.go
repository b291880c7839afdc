package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/wardenfhir/warden/internal/store"
)

// put records w.Resource as the next version of its resource (see
// store.Tx.Put), moving the version it replaces to a history row and
// replacing the index rows of the resource. A failed statement spoils
// the transaction (see Store.Tx), so a Put is all or nothing.
func (s *Store) put(ctx context.Context, t *tx, q Querier, w store.Write) error {
	res := &w.Resource
	if res.Type == "" || res.ID == "" {
		return errors.New("sqlstore: Put without a resource type and id")
	}
	if res.Version < 1 {
		return fmt.Errorf("%w: %s/%s version %d", store.ErrConflict, res.Type, res.ID, res.Version)
	}
	ix := buildIndex(&w)
	pk, err := writeVersion(ctx, q, s.d, res, ix)
	if err != nil {
		return err
	}
	t.pending.add(pk, ix)
	return nil
}

// current is what the write path reads of a resource's current row.
type current struct {
	pk, version, lastUpdated, idx int64
	deleted                       bool
	json                          []byte
}

// writeVersion writes the resources rows of put and removes the index rows
// of the version it replaces. It returns the pk, under which the caller
// writes the index rows of ix.
func writeVersion(ctx context.Context, q Querier, d Dialect, res *store.Resource, ix *indexRows) (int64, error) {
	var js any
	if !res.Deleted {
		js = res.JSON
	}
	lu := res.LastUpdated.UnixMicro()
	if res.Version == 1 {
		// A create: the unique (type, id, version) index decides, in one
		// statement that a concurrent create of the same id waits for.
		pk, ok, err := insertFirst(ctx, q, d, []any{res.Type, res.ID, res.Version, lu, res.Deleted, ix.mask, js})
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("%w: %s/%s exists, version 1 is not the next", store.ErrConflict, res.Type, res.ID)
		}
		return pk, nil
	}
	rows, err := q.Query(ctx, `SELECT pk, version, last_updated, idx, deleted, json FROM resources WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1`, res.Type, res.ID)
	if err != nil {
		return 0, err
	}
	var cur *current
	for rows.Next() {
		cur = &current{}
		if err := rows.Scan(&cur.pk, &cur.version, &cur.lastUpdated, &cur.idx, &cur.deleted, &cur.json); err != nil {
			rows.Close()
			return 0, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	switch {
	case cur == nil:
		return 0, fmt.Errorf("%w: %s/%s does not exist, version %d", store.ErrConflict, res.Type, res.ID, res.Version)
	case res.Version != cur.version+1:
		return 0, fmt.Errorf("%w: %s/%s is at version %d, not %d", store.ErrConflict, res.Type, res.ID, cur.version, res.Version-1)
	}
	// Compare and swap: the row changes only if it still holds the
	// version read above.
	n, err := q.Exec(ctx, `UPDATE resources SET version = ?, last_updated = ?, deleted = ?, idx = ?, json = ? WHERE pk = ? AND version = ?`,
		res.Version, lu, res.Deleted, ix.mask, js, cur.pk, cur.version)
	if err != nil {
		return 0, err
	}
	if n != 1 {
		return 0, fmt.Errorf("%w: %s/%s changed concurrently", store.ErrConflict, res.Type, res.ID)
	}
	var old any
	if !cur.deleted {
		old = cur.json
	}
	if _, err := q.Exec(ctx, `INSERT INTO resources (type, id, version, last_updated, deleted, is_current, idx, json) VALUES (?, ?, ?, ?, ?, FALSE, 0, ?)`,
		res.Type, res.ID, cur.version, cur.lastUpdated, cur.deleted, old); err != nil {
		return 0, err
	}
	if err := deleteIndex(ctx, q, cur.pk, cur.idx); err != nil {
		return 0, err
	}
	return cur.pk, nil
}

// insertFirst inserts the current row of a new resource (args: type, id,
// version, last_updated, deleted, idx, json) unless a row of that type,
// id and version exists; ok reports whether it did.
func insertFirst(ctx context.Context, q Querier, d Dialect, args []any) (pk int64, ok bool, err error) {
	const insert = `INSERT INTO resources (type, id, version, last_updated, deleted, is_current, idx, json) VALUES (?, ?, ?, ?, ?, TRUE, ?, ?) ON CONFLICT (type, id, version) DO NOTHING`
	last := d.LastInsertPK()
	if last == "" {
		rows, err := q.Query(ctx, insert+" RETURNING pk", args...)
		if err != nil {
			return 0, false, err
		}
		defer rows.Close()
		if rows.Next() {
			if err := rows.Scan(&pk); err != nil {
				return 0, false, err
			}
			ok = true
		}
		return pk, ok, rows.Err()
	}
	if ins, ok := inserterOf(q); ok {
		n, pk, err := ins.ExecInsert(ctx, insert, args...)
		if err != nil || n == 0 {
			return 0, false, err
		}
		return pk, true, nil
	}
	n, err := q.Exec(ctx, insert, args...)
	if err != nil || n == 0 {
		return 0, false, err
	}
	rows, err := q.Query(ctx, last)
	if err != nil {
		return 0, false, err
	}
	if err := scanOne(rows, &pk); err != nil {
		return 0, false, err
	}
	return pk, true, nil
}
