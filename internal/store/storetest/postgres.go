package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresURL returns the URL of a fresh, empty schema in the test
// database named by WARDEN_TEST_POSTGRES (./scripts/test sets it), dropped
// when the test ends; it skips the test when the variable is not set.
func PostgresURL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("WARDEN_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("WARDEN_TEST_POSTGRES not set (./scripts/test sets it)")
	}
	u, drop, err := PostgresSchema(dsn)
	if err != nil {
		t.Fatalf("creating a test schema: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("dropping the test schema: %v", err)
		}
	})
	return u
}

// PostgresSchema creates a fresh, empty schema in the database at dsn and
// returns a URL selecting it and a func that drops it.
func PostgresSchema(dsn string) (string, func() error, error) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "warden_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	drop := func() error {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		return err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}
