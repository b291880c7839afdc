package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

// testDSN returns the database the tests may use, from
// WARDEN_TEST_POSTGRES, or skips the test.
func testDSN(t testing.TB) string {
	dsn := os.Getenv("WARDEN_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("WARDEN_TEST_POSTGRES is not set")
	}
	return dsn
}

// schemas lists the schemas that outlive their test (the benchmarks'),
// which TestMain drops.
var schemas struct {
	sync.Mutex
	names []string
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, name := range schemas.names {
		if err := dropSchema(os.Getenv("WARDEN_TEST_POSTGRES"), name); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

func dropSchema(dsn, schema string) error {
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return fmt.Errorf("dropping schema %s: %w", schema, err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
		return fmt.Errorf("dropping schema %s: %w", schema, err)
	}
	return nil
}

// openTemp opens a store in a new schema of the test database, dropped
// when the test ends.
func openTemp(t testing.TB, opts postgres.Options) store.Store {
	t.Helper()
	s, schema := open(t, opts)
	t.Cleanup(func() {
		if err := dropSchema(testDSN(t), schema); err != nil {
			t.Error(err)
		}
	})
	return s
}

// openShared opens a store in a new schema dropped when the tests end.
func openShared(t testing.TB, opts postgres.Options) store.Store {
	s, schema := open(t, opts)
	schemas.Lock()
	schemas.names = append(schemas.names, schema)
	schemas.Unlock()
	return s
}

func open(t testing.TB, opts postgres.Options) (store.Store, string) {
	t.Helper()
	schema, dsn := newSchema(t)
	s, err := postgres.Open(context.Background(), dsn, opts)
	if err != nil {
		dropSchema(testDSN(t), schema)
		t.Fatalf("Open: %v", err)
	}
	return s, schema
}

// newSchema creates an empty schema in the test database and returns its
// name and a DSN whose search_path selects it.
func newSchema(t testing.TB) (schema, dsn string) {
	t.Helper()
	base := testDSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to %s: %v", base, err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	schema = "warden_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return schema, u.String()
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, postgres.Options{}) })
}

// TestReadCache runs the read cache's tests with the other store on the
// same schema, as a replica has it.
func TestReadCache(t *testing.T) {
	schema, dsn := newSchema(t)
	t.Cleanup(func() {
		if err := dropSchema(testDSN(t), schema); err != nil {
			t.Error(err)
		}
	})
	a, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	storetest.RunReadCache(t, a, b)
}

// TestConformanceReadCache runs the conformance suite with the read cache
// on (keeping everything).
func TestConformanceReadCache(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite already ran without the cache")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTemp(t, postgres.Options{}).(*sqlstore.Store)
		s.CacheReads(1<<20, func([]byte) bool { return true })
		return s
	})
}

// TestUnavailable checks that a database that does not answer is
// ErrUnavailable, and that a bad URL is refused without echoing it.
func TestUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://warden@127.0.0.1:1/warden?sslmode=disable&connect_timeout=2", postgres.Options{})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open of a closed port: %v, want ErrUnavailable", err)
	}
	_, err = postgres.Open(ctx, "postgres://warden:secret@[::1/x", postgres.Options{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open of a malformed URL: %v", err)
	}
}

// TestClosed checks that a closed store reports ErrUnavailable.
func TestClosed(t *testing.T) {
	s := openTemp(t, postgres.Options{})
	s.Close()
	ctx := context.Background()
	if _, err := s.Read(ctx, "Basic", "x"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Read after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Tx(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Tx after Close: %v, want ErrUnavailable", err)
	}
}

// TestConcurrentOpen opens one new schema from several goroutines at
// once, as replicas starting together do: one migrates, the others find
// the schema ready.
func TestConcurrentOpen(t *testing.T) {
	schema, dsn := newSchema(t)
	t.Cleanup(func() {
		if err := dropSchema(testDSN(t), schema); err != nil {
			t.Error(err)
		}
	})
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), dsn, postgres.Options{MaxConns: 2})
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
}

// TestDateWalks checks date sorts with the date walk forced.
func TestDateWalks(t *testing.T) {
	storetest.RunDateWalks(t, openTemp(t, postgres.Options{}).(*sqlstore.Store))
}

func TestPatientMigrations(t *testing.T) {
	schema, dsn := newSchema(t)
	t.Cleanup(func() {
		if err := dropSchema(testDSN(t), schema); err != nil {
			t.Error(err)
		}
	})
	storetest.RunPatientMigrations(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, stmt string) [][]string {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		rows, err := c.Query(ctx, stmt, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		defer rows.Close()
		var out [][]string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			row := make([]string, len(vals))
			for i, v := range vals {
				row[i] = fmt.Sprint(v)
			}
			out = append(out, row)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		return out
	})
}
