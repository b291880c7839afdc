package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
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
	dsn := testDSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "warden_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := postgres.Open(ctx, u.String(), opts)
	if err != nil {
		dropSchema(dsn, schema)
		t.Fatalf("Open: %v", err)
	}
	return s, schema
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, postgres.Options{}) })
}
