package dpop_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/dpop/dpoptest"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// The shared-store cache keeps the same contract as the in-memory one.
func TestStoreReplayCache(t *testing.T) {
	dpoptest.TestReplayCache(t, func(t *testing.T) dpop.ReplayCache {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return dpop.NewStoreReplayCache(db)
	})
}
