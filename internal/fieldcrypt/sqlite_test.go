package fieldcrypt

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// TestOnSQLiteRecords runs the key lifecycle on a real store's records:
// seal, rotate, reopen the database (a restart), reseal, shred.
func TestOnSQLiteRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kek := KeyringKEK{Keyring: testKeyring(t)}
	k, err := New(db, kek, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c1 := mustSeal(t, k, "ETH", "p1", obsAD, "methadone")
	c2 := mustSeal(t, k, "ETH", "p2", obsAD, "buprenorphine")
	if _, err := k.Rotate(ctx, "ETH", ""); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k, _ = New(db, kek, Options{})
	mustOpen(t, k, "ETH", "p1", obsAD, c1, "methadone")
	moved, changed, err := k.Reseal(ctx, c1, obsAD)
	if err != nil || !changed {
		t.Fatalf("Reseal = %v, %v", changed, err)
	}
	mustOpen(t, k, "ETH", "p1", obsAD, moved, "methadone")
	if _, err := k.ShredPatient(ctx, "ETH", "", "p1"); err != nil {
		t.Fatal(err)
	}
	k2, _ := New(db, kek, Options{})
	if _, err := k2.Open(ctx, "ETH", "p1", obsAD, moved); !errors.Is(err, ErrShredded) {
		t.Errorf("after shred: %v", err)
	}
	mustOpen(t, k2, "ETH", "p2", obsAD, c2, "buprenorphine")
	st, err := k2.Status(ctx)
	if err != nil || len(st) != 1 || len(st[0].Keys) != 2 {
		t.Errorf("Status = %+v, %v", st, err)
	}
}
