package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func scanAll(t *testing.T, dir string) [][]byte {
	t.Helper()
	var got [][]byte
	n, err := Scan(dir, func(seq uint64, entry []byte) error {
		if seq != uint64(len(got)) {
			t.Fatalf("seq %d, want %d", seq, len(got))
		}
		got = append(got, bytes.Clone(entry))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(got)) {
		t.Fatalf("Scan returned %d, visited %d", n, len(got))
	}
	return got
}

// TestScanReadOnly: Scan sees every complete entry, stops before a torn
// tail without truncating it, and never changes the file.
func TestScanReadOnly(t *testing.T) {
	for name, tail := range map[string][]byte{
		"none":           nil,
		"partial header": {0x10, 0x00, 0x00},
		"partial frame":  frame([]byte("being written"))[:12],
		"zero filled":    make([]byte, 64),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeN(t, dir, 300)
			path := filepath.Join(dir, fileName)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tail); err != nil {
				t.Fatal(err)
			}
			f.Close()
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := scanAll(t, dir)
			if len(got) != 300 {
				t.Fatalf("scanned %d entries, want 300", len(got))
			}
			for i, e := range got {
				if !bytes.Equal(e, entryN(i)) {
					t.Fatalf("entry %d = %q, want %q", i, e, entryN(i))
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatal("Scan changed the journal file")
			}
		})
	}
}

// TestScanWhileOpen: Scan reads a journal a live Journal is appending to.
func TestScanWhileOpen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	defer j.Close()
	for i := range 50 {
		appendT(t, j, entryN(i))
	}
	if got := scanAll(t, dir); len(got) != 50 {
		t.Fatalf("scanned %d entries, want 50", len(got))
	}
	appendT(t, j, entryN(50))
	if got := scanAll(t, dir); len(got) != 51 {
		t.Fatalf("scanned %d entries after one more append, want 51", len(got))
	}
}

// TestScanCorrupt: damage before the tail is ErrCorrupt, as for Open;
// a missing journal and an error from fn are reported.
func TestScanCorrupt(t *testing.T) {
	dir := t.TempDir()
	writeN(t, dir, 10)
	path := filepath.Join(dir, fileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[headerSize+2] ^= 0xff // first payload byte flipped, CRC left as is
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(dir, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Scan of a damaged journal: %v, want ErrCorrupt", err)
	}
	if _, err := Scan(t.TempDir(), func(uint64, []byte) error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Scan of a missing journal: %v, want ErrNotExist", err)
	}
	stop := errors.New("stop")
	dir2 := t.TempDir()
	writeN(t, dir2, 3)
	if _, err := Scan(dir2, func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Scan returned %v, want fn's error", err)
	}
}

// A Follower in another "process" sees what the journal made durable,
// scanning only the new frames, and reads from any sequence number.
func TestFollower(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	defer j.Close()
	f := NewFollower(dir)
	if f.Len() != 0 {
		t.Fatalf("empty journal: Len %d", f.Len())
	}
	total := 0
	for _, batch := range []int{1, 1500, 700, 2} {
		for range batch {
			appendT(t, j, entryN(total))
			total++
		}
		if got := f.Len(); got != uint64(total) {
			t.Fatalf("Len = %d, want %d", got, total)
		}
		for _, from := range []uint64{0, 1, 1023, 1024, 1025, uint64(total - 1)} {
			if from >= uint64(total) {
				continue
			}
			var got []uint64
			err := f.Read(from, func(seq uint64, e []byte) error {
				if !bytes.Equal(e, entryN(int(seq))) {
					t.Fatalf("entry %d differs", seq)
				}
				got = append(got, seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != total-int(from) || got[0] != from {
				t.Fatalf("Read(%d) gave %d entries from %v", from, len(got), got[:min(1, len(got))])
			}
		}
	}
}
