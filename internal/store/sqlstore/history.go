package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/wardenfhir/warden/internal/store"
)

// history lists versions for instance, type or system history (FHIR R4
// §3.1.0.11), newest first: instance history by version, the others by
// last_updated then pk, both descending. Pages continue from a keyset
// cursor, so versions written while a client pages through appear only
// on pages it has not reached.
func history(ctx context.Context, q Querier, hq store.HistoryQuery) (*store.HistoryPage, error) {
	instance := hq.Type != "" && hq.ID != ""
	if hq.ID != "" && hq.Type == "" {
		return nil, fmt.Errorf("sqlstore: instance history without a type")
	}
	var where []string
	var args []any
	if hq.Type != "" {
		where = append(where, "r.type = ?")
		args = append(args, hq.Type)
	} else if hq.Except != "" {
		where = append(where, "r.type <> ?")
		args = append(args, hq.Except)
	}
	if instance {
		where = append(where, "r.id = ?")
		args = append(args, hq.ID)
	}
	if !hq.Since.IsZero() {
		where = append(where, "r.last_updated >= ?")
		args = append(args, hq.Since.UnixMicro())
	}
	filter := ""
	if len(where) > 0 {
		filter = " WHERE " + strings.Join(where, " AND ")
	}

	page := &store.HistoryPage{}
	if instance {
		// Instance history of a resource that never existed is a 404
		// (FHIR R4 §3.1.0.11); one with no version since _since is not.
		rows, err := q.Query(ctx, `SELECT COUNT(*) FROM resources r WHERE r.type = ? AND r.id = ?`, hq.Type, hq.ID)
		if err != nil {
			return nil, err
		}
		var all int64
		if err := scanOne(rows, &all); err != nil {
			return nil, err
		}
		if all == 0 {
			return nil, fmt.Errorf("%w: %s/%s", store.ErrNotFound, hq.Type, hq.ID)
		}
	}
	rows, err := q.Query(ctx, `SELECT COUNT(*) FROM resources r`+filter, args...)
	if err != nil {
		return nil, err
	}
	var total int64
	if err := scanOne(rows, &total); err != nil {
		return nil, err
	}
	page.Total = int(total)
	if hq.Count < 1 || total == 0 {
		return page, nil
	}

	kind, order := cursorHistory, " ORDER BY r.last_updated DESC, r.pk DESC"
	if instance {
		kind, order = cursorInstance, " ORDER BY r.version DESC"
	}
	if hq.After != "" {
		c, err := decodeCursor(hq.After, kind)
		if err != nil {
			return nil, err
		}
		if instance {
			where = append(where, "r.version < ?")
			args = append(args, c.Ver)
		} else {
			where = append(where, "(r.last_updated < ? OR (r.last_updated = ? AND r.pk < ?))")
			args = append(args, c.Time, c.Time, c.PK)
		}
	}
	filter = ""
	if len(where) > 0 {
		filter = " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, int64(hq.Count)+1)
	rows, err = q.Query(ctx, `SELECT `+resourceColumns+` FROM resources r`+filter+order+` LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	list, err := scanResources(rows)
	if err != nil {
		return nil, err
	}
	after := func(r *row) string {
		c := cursor{Kind: kind}
		if instance {
			c.Ver = r.Version
		} else {
			c.Time, c.PK = r.LastUpdated.UnixMicro(), r.pk
		}
		return c.encode()
	}
	if len(list) > hq.Count {
		list = list[:hq.Count]
		page.Next = after(&list[len(list)-1])
	}
	page.Versions = make([]store.Resource, len(list))
	for i := range list {
		page.Versions[i] = list[i].Resource
		if hq.EachCursor {
			page.After = append(page.After, after(&list[i]))
		}
	}
	return page, nil
}

// scanOne reads the single row of a statement into dest and closes rows.
func scanOne(rows Rows, dest ...any) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return fmt.Errorf("sqlstore: statement returned no row")
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Err()
}
