package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

var _ store.Records = (*Store)(nil)

// live is the condition a records row must meet to exist: never expiring,
// or expiring after the time bound to the placeholder.
const live = `(expires = 0 OR expires > ?)`

// sweepEvery is how often a write also removes expired records.
const sweepEvery = time.Minute

// expiresOf converts Record.Expires to the column value.
func expiresOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if m := t.UnixMicro(); m > 0 {
		return m
	}
	return 1 // before 1970: long expired, but not "never"
}

func checkRecord(r store.Record) error {
	if r.Kind == "" || r.Key == "" {
		return fmt.Errorf("sqlstore: a record needs a kind and a key")
	}
	return nil
}

// PutRecord implements store.Records.
func (s *Store) PutRecord(ctx context.Context, r store.Record) error {
	if err := checkRecord(r); err != nil {
		return err
	}
	err := s.b.Update(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, `INSERT INTO records (kind, key, grp, value, expires) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (kind, key) DO UPDATE SET grp = excluded.grp, value = excluded.value, expires = excluded.expires`,
			r.Kind, r.Key, r.Group, nonNil(r.Value), expiresOf(r.Expires))
		if err != nil {
			return err
		}
		return s.sweep(ctx, q)
	})
	return s.wrap(err)
}

// InsertRecord implements store.Records. A conflicting row that has
// expired is replaced: the upsert's WHERE lets the update through only
// then, and reports no row otherwise.
func (s *Store) InsertRecord(ctx context.Context, r store.Record) error {
	if err := checkRecord(r); err != nil {
		return err
	}
	err := s.b.Update(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `INSERT INTO records (kind, key, grp, value, expires) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (kind, key) DO UPDATE SET grp = excluded.grp, value = excluded.value, expires = excluded.expires
			WHERE records.expires <> 0 AND records.expires <= ?`,
			r.Kind, r.Key, r.Group, nonNil(r.Value), expiresOf(r.Expires), s.now().UnixMicro())
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("sqlstore: record %s exists: %w", r.Kind, store.ErrConflict)
		}
		return s.sweep(ctx, q)
	})
	return s.wrap(err)
}

// SwapRecord implements store.Records.
func (s *Store) SwapRecord(ctx context.Context, r store.Record, old []byte) error {
	if err := checkRecord(r); err != nil {
		return err
	}
	err := s.b.Update(ctx, func(q Querier) error {
		now := s.now().UnixMicro()
		cur, err := getRecord(ctx, q, r.Kind, r.Key, now)
		if err != nil {
			return err
		}
		if !bytes.Equal(cur.Value, old) {
			return fmt.Errorf("sqlstore: record %s changed: %w", r.Kind, store.ErrConflict)
		}
		n, err := q.Exec(ctx, `UPDATE records SET grp = ?, value = ?, expires = ? WHERE kind = ? AND key = ? AND value = ? AND `+live,
			r.Group, nonNil(r.Value), expiresOf(r.Expires), r.Kind, r.Key, nonNil(old), now)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("sqlstore: record %s changed: %w", r.Kind, store.ErrConflict)
		}
		return nil
	})
	return s.wrap(err)
}

// GetRecord implements store.Records.
func (s *Store) GetRecord(ctx context.Context, kind, key string) (*store.Record, error) {
	var r *store.Record
	err := s.b.View(ctx, false, func(q Querier) error {
		var err error
		r, err = getRecord(ctx, q, kind, key, s.now().UnixMicro())
		return err
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return r, nil
}

func getRecord(ctx context.Context, q Querier, kind, key string, now int64) (*store.Record, error) {
	rows, err := q.Query(ctx, `SELECT grp, value, expires FROM records WHERE kind = ? AND key = ? AND `+live, kind, key, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("sqlstore: record %s: %w", kind, store.ErrNotFound)
	}
	r := &store.Record{Kind: kind, Key: key}
	var exp int64
	if err := rows.Scan(&r.Group, &r.Value, &exp); err != nil {
		return nil, err
	}
	if exp != 0 {
		r.Expires = timeOf(exp)
	}
	return r, rows.Err()
}

// DeleteRecord implements store.Records.
func (s *Store) DeleteRecord(ctx context.Context, kind, key string) (bool, error) {
	var n int64
	err := s.b.Update(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM records WHERE kind = ? AND key = ? AND `+live, kind, key, s.now().UnixMicro())
		return err
	})
	if err != nil {
		return false, s.wrap(err)
	}
	return n > 0, nil
}

// DeleteGroup implements store.Records.
func (s *Store) DeleteGroup(ctx context.Context, kind, group string) (int, error) {
	if group == "" {
		return 0, nil
	}
	var n int64
	err := s.b.Update(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM records WHERE kind = ? AND grp = ? AND grp <> '' AND `+live, kind, group, s.now().UnixMicro())
		return err
	})
	if err != nil {
		return 0, s.wrap(err)
	}
	return int(n), nil
}

// ListRecords implements store.Records.
func (s *Store) ListRecords(ctx context.Context, kind string) ([]store.Record, error) {
	var out []store.Record
	err := s.b.View(ctx, false, func(q Querier) error {
		rows, err := q.Query(ctx, `SELECT key, grp, value, expires FROM records WHERE kind = ? AND `+live+` ORDER BY key`, kind, s.now().UnixMicro())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r := store.Record{Kind: kind}
			var exp int64
			if err := rows.Scan(&r.Key, &r.Group, &r.Value, &exp); err != nil {
				return err
			}
			if exp != 0 {
				r.Expires = timeOf(exp)
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// sweep removes expired records, at most once per sweepEvery, inside a
// write that is happening anyway.
func (s *Store) sweep(ctx context.Context, q Querier) error {
	now := s.now()
	last := s.lastSweep.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !s.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return nil
	}
	_, err := q.Exec(ctx, `DELETE FROM records WHERE expires <> 0 AND expires <= ?`, now.UnixMicro())
	return err
}

// nonNil keeps a nil value from becoming SQL NULL in a NOT NULL column.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
