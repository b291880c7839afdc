package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

func openTemp(t testing.TB, opts sqlite.Options) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "warden.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, sqlite.Options{}) })
}

// TestConformanceNoGroupCommit runs the suite with every Tx committed on
// its own and synchronous=NORMAL.
func TestConformanceNoGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite already ran with the defaults")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTemp(t, sqlite.Options{MaxBatch: 1, Synchronous: "normal", ReadConns: 1})
	})
}

func basic(id string, version int64) store.Write {
	return store.Write{Resource: store.Resource{Type: "Basic", ID: id, Version: version, LastUpdated: time.Now(), JSON: []byte(`{"resourceType":"Basic","id":"` + id + `"}`)}}
}

// TestGroupCommit makes calls queue behind a slow transaction so that the
// writer runs them as one batch, and checks that each call's outcome is
// its own: failures, conflicts and panics roll back only their writes.
func TestGroupCommit(t *testing.T) {
	s := openTemp(t, sqlite.Options{})
	defer s.Close()
	ctx := context.Background()
	if err := s.Tx(ctx, func(tx store.Tx) error { return tx.Put(ctx, basic("existing", 1)) }); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := s.Tx(ctx, func(tx store.Tx) error {
			close(started)
			<-release
			return tx.Put(ctx, basic("slow", 1))
		})
		if err != nil {
			t.Errorf("slow: %v", err)
		}
	}()
	<-started
	type outcome struct {
		id   string
		err  error
		kept bool
	}
	results := make(chan outcome, 40)
	boom := errors.New("boom")
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("g%d", i)
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
				}()
				err = s.Tx(ctx, func(tx store.Tx) error {
					if err := tx.Put(ctx, basic(id, 1)); err != nil {
						return err
					}
					switch i % 4 {
					case 1:
						return boom
					case 2:
						// A conflict the function ignores: the
						// transaction goes on.
						tx.Put(ctx, basic("existing", 1))
					case 3:
						if i%8 == 3 {
							panic("in a batch")
						}
					}
					return nil
				})
			}()
			results <- outcome{id: id, err: err, kept: i%4 == 0 || i%4 == 2 || (i%4 == 3 && i%8 != 3)}
		}()
	}
	// Let the callers queue up behind the slow transaction.
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		_, rerr := s.Read(ctx, "Basic", r.id)
		switch {
		case r.kept && (r.err != nil || rerr != nil):
			t.Errorf("%s: Tx %v, Read %v; want kept", r.id, r.err, rerr)
		case !r.kept && (r.err == nil || !errors.Is(rerr, store.ErrNotFound)):
			t.Errorf("%s: Tx %v, Read %v; want rolled back", r.id, r.err, rerr)
		}
	}
	if _, err := s.Read(ctx, "Basic", "slow"); err != nil {
		t.Errorf("slow: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := openTemp(t, sqlite.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := s.Read(ctx, "Basic", "x"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Read after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Tx(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Tx after Close: %v, want ErrUnavailable", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := sqlite.Open(ctx, filepath.Join(dir, "x.db"), sqlite.Options{Synchronous: "off"}); err == nil {
		t.Error("Open accepted synchronous=off")
	}
	if _, err := sqlite.Open(ctx, "", sqlite.Options{}); err == nil {
		t.Error("Open accepted an empty path")
	}
	if _, err := sqlite.Open(ctx, filepath.Join(dir, "missing", "dir", "x.db"), sqlite.Options{}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open in a missing directory: %v, want ErrUnavailable", err)
	}

	// Data and schema survive a reopen; a schema from a newer program is
	// refused.
	path := filepath.Join(dir, "odd ?#% name.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tx(ctx, func(tx store.Tx) error { return tx.Put(ctx, basic("a", 1)) }); err != nil {
		t.Fatal(err)
	}
	// The files hold patient data: only their owner may read them.
	for _, f := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(f); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
	s.Close()
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, "Basic", "a"); err != nil {
		t.Errorf("Read after reopening: %v", err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "odd %3F%23%25 name.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE schema_version SET version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := sqlite.Open(ctx, path, sqlite.Options{}); err == nil {
		t.Error("Open accepted a schema newer than the program")
	}
}

// TestReadCache runs the read cache's tests with the other store on the
// same file as a second process would have it.
func TestReadCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warden.db")
	a, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	storetest.RunReadCache(t, a, b)
}

// TestConformanceReadCache runs the conformance suite with the read cache
// on (keeping everything).
func TestConformanceReadCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTemp(t, sqlite.Options{}).(*sqlstore.Store)
		s.CacheReads(1<<20, func([]byte) bool { return true })
		return s
	})
}

// TestDateWalks checks date sorts with the date walk forced.
func TestDateWalks(t *testing.T) {
	storetest.RunDateWalks(t, openTemp(t, sqlite.Options{}).(*sqlstore.Store))
}

func TestPatientMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warden.db")
	storetest.RunPatientMigrations(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, stmt string) [][]string {
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		return rawRows(t, db, stmt)
	})
}

// rawRows runs stmt on db and returns its rows as text.
func rawRows(t *testing.T, db *sql.DB, stmt string) [][]string {
	t.Helper()
	rows, err := db.Query(stmt)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
