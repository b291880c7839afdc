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
func (s *Store) put(ctx context.Context, q Querier, w store.Write) error {
	res := &w.Resource
	if res.Type == "" || res.ID == "" {
		return errors.New("sqlstore: Put without a resource type and id")
	}
	if res.Version < 1 {
		return fmt.Errorf("%w: %s/%s version %d", store.ErrConflict, res.Type, res.ID, res.Version)
	}
	return writeVersion(ctx, q, res, buildIndex(&w))
}

// current is what the write path reads of a resource's current row.
type current struct {
	pk, version, lastUpdated, idx int64
	deleted                       bool
	json                          []byte
}

// writeVersion is the statement sequence of put.
func writeVersion(ctx context.Context, q Querier, res *store.Resource, ix *indexRows) error {
	var js any
	if !res.Deleted {
		js = res.JSON
	}
	rows, err := q.Query(ctx, `SELECT pk, version, last_updated, idx, deleted, json FROM resources WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1`, res.Type, res.ID)
	if err != nil {
		return err
	}
	var cur *current
	for rows.Next() {
		cur = &current{}
		if err := rows.Scan(&cur.pk, &cur.version, &cur.lastUpdated, &cur.idx, &cur.deleted, &cur.json); err != nil {
			rows.Close()
			return err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	lu := res.LastUpdated.UnixMicro()
	var pk int64
	if cur == nil {
		if res.Version != 1 {
			return fmt.Errorf("%w: %s/%s does not exist, version %d", store.ErrConflict, res.Type, res.ID, res.Version)
		}
		rows, err := q.Query(ctx, `INSERT INTO resources (type, id, version, last_updated, deleted, is_current, idx, json) VALUES (?, ?, ?, ?, ?, TRUE, ?, ?) RETURNING pk`,
			res.Type, res.ID, res.Version, lu, res.Deleted, ix.mask, js)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := rows.Scan(&pk); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	} else {
		if res.Version != cur.version+1 {
			return fmt.Errorf("%w: %s/%s is at version %d, not %d", store.ErrConflict, res.Type, res.ID, cur.version, res.Version-1)
		}
		pk = cur.pk
		n, err := q.Exec(ctx, `UPDATE resources SET version = ?, last_updated = ?, deleted = ?, idx = ?, json = ? WHERE pk = ? AND version = ?`,
			res.Version, lu, res.Deleted, ix.mask, js, pk, cur.version)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%w: %s/%s changed concurrently", store.ErrConflict, res.Type, res.ID)
		}
		var old any
		if !cur.deleted {
			old = cur.json
		}
		if _, err := q.Exec(ctx, `INSERT INTO resources (type, id, version, last_updated, deleted, is_current, idx, json) VALUES (?, ?, ?, ?, ?, FALSE, 0, ?)`,
			res.Type, res.ID, cur.version, cur.lastUpdated, cur.deleted, old); err != nil {
			return err
		}
		if err := deleteIndex(ctx, q, pk, cur.idx); err != nil {
			return err
		}
	}
	return insertIndex(ctx, q, pk, ix)
}
