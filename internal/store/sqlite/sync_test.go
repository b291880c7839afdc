package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

func TestSyncFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.db")
	if err := sqlite.SyncFiles(path); err == nil {
		t.Error("SyncFiles of a missing database succeeded")
	}
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecord(context.Background(), store.Record{Kind: "k", Key: "a", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.SyncFiles(path); err != nil {
		t.Fatalf("SyncFiles: %v", err)
	}
	st, err = sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r, err := st.GetRecord(context.Background(), "k", "a"); err != nil || string(r.Value) != "v" {
		t.Errorf("after SyncFiles: %v, %v", r, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Error(err)
	}
}
