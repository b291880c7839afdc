package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// The store's audit records belong to one trail: the instance that
// claimed them starts again and again; a second data directory on the
// same database is refused, and so is the first one once its audit
// directory was replaced, with what to do; a damaged trail id is refused.
func TestClaimTrail(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "warden.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := t.TempDir(), t.TempDir()
	for range 2 {
		if err := claimTrail(ctx, db, a); err != nil {
			t.Fatalf("the owner, starting: %v", err)
		}
	}
	err = claimTrail(ctx, db, b)
	if !errors.Is(err, errOtherTrail) || !strings.Contains(err.Error(), "one audited instance per database") {
		t.Fatalf("a second trail on the same database: %v", err)
	}
	if err := os.Remove(filepath.Join(a, trailIDFile)); err != nil {
		t.Fatal(err)
	}
	if err := claimTrail(ctx, db, a); !errors.Is(err, errOtherTrail) {
		t.Errorf("the owner's audit directory replaced: %v", err)
	}
	if err := os.WriteFile(filepath.Join(b, trailIDFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := claimTrail(ctx, db, b); err == nil || errors.Is(err, errOtherTrail) {
		t.Errorf("a damaged trail id: %v", err)
	}
	// Another database: its own owner.
	other, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "warden.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := claimTrail(ctx, other, a); err != nil {
		t.Errorf("a new trail on its own database: %v", err)
	}
}
