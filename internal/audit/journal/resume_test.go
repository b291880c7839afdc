package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

var errBatchFull = errors.New("batch full")

// scanBatch reads up to max entries from from with ScanFrames, stopping
// (as the indexer and the sequencer do) at the first entry it does not
// take, and checks each against want and its frame against the file.
func scanBatch(t *testing.T, j *Journal, f *os.File, from uint64, max int, want func(int) []byte) uint64 {
	t.Helper()
	next := from
	err := j.ScanFrames(from, func(seq uint64, off int64, e []byte) error {
		if int(next-from) == max {
			return errBatchFull
		}
		if seq != next {
			return fmt.Errorf("seq %d, want %d", seq, next)
		}
		if !bytes.Equal(e, want(int(seq))) {
			return fmt.Errorf("entry %d = %.40q…, want %.40q…", seq, e, want(int(seq)))
		}
		got, err := ReadFrame(f, off)
		if err != nil || !bytes.Equal(got, e) {
			return fmt.Errorf("entry %d: its frame at %d reads %.40q, %v", seq, off, got, err)
		}
		next++
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		t.Fatalf("ScanFrames(%d): %v", from, err)
	}
	return next
}

func fileSize(t *testing.T, name string) uint64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Size())
}

// TestReadsResume: a reader that takes the journal in batches, each from
// where the last stopped, reads the file about once, however small its
// batches; entries appended after it reached the end are read on from
// there. Without the parked readers each batch began again at the sparse
// index's entry before it and read a buffer ahead: the 7-entry batches
// here read the file ~300 times over.
func TestReadsResume(t *testing.T) {
	dir := t.TempDir()
	const n = 3*indexEvery + 17
	writeN(t, dir, n)
	j := openT(t, dir)
	f := openFileT(t, dir)
	size := fileSize(t, File(dir))

	var next uint64
	for batches := 0; next < n; batches++ {
		if batches > n {
			t.Fatal("no progress")
		}
		next = scanBatch(t, j, f, next, 7, entryN)
	}
	if read := j.ReadBytes(); read > size+readBuffer {
		t.Fatalf("batches of 7 read %d bytes of a %d-byte journal", read, size)
	}

	// At the end, more entries come; the reader parked at the end reads
	// only them.
	before := j.ReadBytes()
	for i := n; i < n+50; i++ {
		appendT(t, j, entryN(i))
	}
	added := fileSize(t, File(dir)) - size
	if next = scanBatch(t, j, f, next, 1000, entryN); next != n+50 {
		t.Fatalf("resumed scan stopped at %d, want %d", next, n+50)
	}
	if read := j.ReadBytes() - before; read != added {
		t.Fatalf("the resumed scan read %d bytes for %d appended", read, added)
	}
}

// TestReadsResumeInterleaved: readers at different places (the indexer,
// the sequencer, a verification) each resume where they stopped, not
// where another did, and a read from a place none stopped at is still
// right. The journal is several read buffers long, written directly.
func TestReadsResumeInterleaved(t *testing.T) {
	dir := t.TempDir()
	const n = 20000
	var file []byte
	for i := range n {
		file = append(file, frame(entryN(i))...)
	}
	if err := os.WriteFile(File(dir), file, 0o600); err != nil {
		t.Fatal(err)
	}
	j := openT(t, dir)
	f := openFileT(t, dir)
	size := uint64(len(file))
	if size < 4*readBuffer {
		t.Fatalf("journal of %d bytes: too small for the test", size)
	}

	cursors := []uint64{0, 100, indexEvery + 5}
	odd := 0
	for round, done := 0, false; !done; round++ {
		done = true
		for i := range cursors {
			if cursors[i] < n {
				cursors[i] = scanBatch(t, j, f, cursors[i], 11+i, entryN)
				done = false
			}
		}
		// Now and then a read from elsewhere, between the cursors'.
		if !done && round%50 == 0 {
			odd++
			from := (cursors[0]*7 + 37) % n
			if got := scanBatch(t, j, f, from, 3, entryN); got != min(from+3, n) {
				t.Fatalf("a 3-entry read from %d stopped at %d", from, got)
			}
		}
	}
	// Each cursor reads its share of the file about once; a read that
	// starts afresh reads a buffer ahead.
	if read, most := j.ReadBytes(), 3*size+uint64(3+odd)*readBuffer; read > most {
		t.Fatalf("three cursors and %d other reads read %d bytes of a %d-byte journal, want at most %d", odd, read, size, most)
	}
}

// TestReadsResumeLargeFrames: a frame larger than the reader's buffer is
// copied out rather than read in place, so a read stopped at one cannot
// be parked there; the next read still finds it, and reads on.
func TestReadsResumeLargeFrames(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	entry := func(i int) []byte {
		size := 100 + i
		if i%3 == 1 {
			size = readBuffer + 1000*i
		}
		return bytes.Repeat([]byte{byte('a' + i%26)}, size)
	}
	const n = 12
	for i := range n {
		appendT(t, j, entry(i))
	}
	f := openFileT(t, dir)
	for _, batch := range []int{1, 2, 5} {
		var next uint64
		for next < n {
			next = scanBatch(t, j, f, next, batch, entry)
		}
	}
	// Read keeps its entries: they stay right after the read moved on.
	got := readAll(t, j, 0)
	for i, e := range got {
		if !bytes.Equal(e, entry(i)) {
			t.Fatalf("Read kept entry %d as %.40q…", i, e)
		}
	}
}

// TestReadsResumeAfterClose: a closed journal refuses reads, parked or
// not.
func TestReadsResumeAfterClose(t *testing.T) {
	dir := t.TempDir()
	writeN(t, dir, 20)
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := openFileT(t, dir)
	if next := scanBatch(t, j, f, 0, 5, entryN); next != 5 {
		t.Fatalf("stopped at %d", next)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Scan(5, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scan after Close: %v, want ErrClosed", err)
	}
	if _, err := j.Append(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

// TestReadsRandom runs random appends (some entries larger than a read's
// buffer) and reads (the cursors' next batches, and reads from anywhere,
// stopped after random counts) and checks every entry a read gives
// against what was appended, with its frame offset: parked readers are
// only ever taken up at exactly their place.
func TestReadsRandom(t *testing.T) {
	for seed := range int64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			dir := t.TempDir()
			j := openT(t, dir)
			f := openFileT(t, dir)
			var want [][]byte
			entry := func(i int) []byte { return want[i] }
			cursors := make([]uint64, 3)
			for op := range 200 {
				switch k := rng.IntN(10); {
				case k < 3 || len(want) == 0:
					for range 1 + rng.IntN(20) {
						size := 1 + rng.IntN(3000)
						if rng.IntN(60) == 0 {
							size = readBuffer + rng.IntN(4096)
						}
						e := bytes.Repeat([]byte{byte(op)}, size)
						copy(e, fmt.Sprintf("%d:%d:", op, len(want)))
						if seq := appendT(t, j, e); seq != uint64(len(want)) {
							t.Fatalf("seq %d, want %d", seq, len(want))
						}
						want = append(want, e)
					}
				case k < 8:
					c := rng.IntN(len(cursors))
					cursors[c] = scanBatch(t, j, f, cursors[c], 1+rng.IntN(50), entry)
				default:
					from := uint64(rng.IntN(len(want) + 1))
					max := 1 + rng.IntN(20)
					if got := scanBatch(t, j, f, from, max, entry); got != min(from+uint64(max), uint64(len(want))) {
						t.Fatalf("a read of %d from %d stopped at %d (%d entries)", max, from, got, len(want))
					}
				}
			}
			// Read keeps its own copies, whatever the readers parked.
			for i, e := range readAll(t, j, 0) {
				if !bytes.Equal(e, want[i]) {
					t.Fatalf("Read: entry %d differs", i)
				}
			}
		})
	}
}
