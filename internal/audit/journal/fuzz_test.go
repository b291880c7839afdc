package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds Open arbitrary file contents. Property: Open never panics;
// it fails with ErrCorrupt, or it succeeds and the file it leaves is exactly
// the frames of the entries Read returns, which a second Open reads back
// identically.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add(frame([]byte("one")))
	f.Add(append(frame([]byte("one")), frame([]byte("two"))[:6]...))
	f.Add(append(frame([]byte("one")), make([]byte, 16)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, fileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := Open(dir)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want nil or ErrCorrupt", err)
			}
			return
		}
		entries := readAll(t, j, 0)
		j.Close()
		if uint64(len(entries)) != j.Len() {
			t.Fatalf("Read %d entries, Len %d", len(entries), j.Len())
		}
		var want []byte
		for _, e := range entries {
			want = append(want, frame(e)...)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, want) {
			t.Fatalf("file after Open is not the frames of its entries")
		}
		if !bytes.HasPrefix(data, after) {
			t.Fatalf("Open changed bytes instead of truncating")
		}
		j2, err := Open(dir)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer j2.Close()
		again := readAll(t, j2, 0)
		if len(again) != len(entries) {
			t.Fatalf("second Open: %d entries, want %d", len(again), len(entries))
		}
		for i := range again {
			if !bytes.Equal(again[i], entries[i]) {
				t.Fatalf("entry %d differs on second Open", i)
			}
		}
	})
}
