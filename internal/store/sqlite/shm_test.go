//go:build unix

package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// TestCommitStamp: the stamp stays while nothing is committed (reads
// included), and changes with every commit, this backend's or another
// process's, and with a checkpoint that restarts the log.
func TestCommitStamp(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	a, err := openMigrated(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	other, err := openMigrated(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if a.watch == nil {
		t.Fatal("the -shm file was not mapped")
	}
	stamp := func(what string) sqlstore.CommitStamp {
		t.Helper()
		s, ok := a.CommitStamp()
		if !ok {
			t.Fatalf("%s: no stamp", what)
		}
		return s
	}
	exec := func(b *backend, sql string) {
		t.Helper()
		if err := b.Update(ctx, func(q sqlstore.Querier) error { _, err := q.Exec(ctx, sql); return err }); err != nil {
			t.Fatal(err)
		}
	}
	exec(a, `CREATE TABLE scratch (x INTEGER)`)
	s0 := stamp("start")
	if err := a.View(ctx, true, func(q sqlstore.Querier) error {
		rows, err := q.Query(ctx, `SELECT count(*) FROM resources`)
		if err != nil {
			return err
		}
		rows.Close()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if stamp("after a read") != s0 {
		t.Fatal("a read changed the stamp")
	}
	seen := map[sqlstore.CommitStamp]string{s0: "start"}
	step := func(what string, commit func()) {
		t.Helper()
		commit()
		s := stamp(what)
		if prev, ok := seen[s]; ok {
			t.Fatalf("the stamp after %s is the one after %s", what, prev)
		}
		seen[s] = what
	}
	step("a commit of this backend", func() {
		exec(a, `INSERT INTO schema_version (version) SELECT -1 WHERE 0`)
		exec(a, `INSERT INTO scratch VALUES (1)`)
	})
	step("another commit of this backend", func() { exec(a, `INSERT INTO scratch VALUES (1)`) })
	step("a commit of another backend", func() { exec(other, `INSERT INTO scratch VALUES (1)`) })
	step("a truncating checkpoint and a commit", func() {
		c, err := openConn(dsn(path, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if _, err := c.Exec(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
		exec(other, `INSERT INTO scratch VALUES (1)`)
	})
	for range 50 {
		step("one of many commits", func() { exec(other, `INSERT INTO scratch VALUES (1)`) })
	}

	a.Close()
	if _, ok := a.CommitStamp(); ok {
		t.Error("a closed backend still reads stamps")
	}
}
