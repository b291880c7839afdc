package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openT(t testing.TB, dir string) *Journal {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// openFileT opens the journal file in dir for reading, closed at the
// test's end.
func openFileT(t testing.TB, dir string) *os.File {
	t.Helper()
	f, err := os.Open(File(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func appendT(t testing.TB, j *Journal, entry []byte) uint64 {
	t.Helper()
	seq, err := j.Append(context.Background(), entry)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

func readAll(t testing.TB, j *Journal, from uint64) [][]byte {
	t.Helper()
	var out [][]byte
	next := from
	err := j.Read(from, func(seq uint64, e []byte) error {
		if seq != next {
			return fmt.Errorf("got seq %d, want %d", seq, next)
		}
		next++
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out
}

func entryN(i int) []byte {
	return fmt.Appendf(nil, "entry-%d-%s", i, bytes.Repeat([]byte{byte('a' + i%26)}, i%97))
}

func frame(payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, castagnoli))
	return append(b, payload...)
}

func writeN(t *testing.T, dir string, n int) {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if seq := appendT(t, j, entryN(i)); seq != uint64(i) {
			t.Fatalf("seq %d, want %d", seq, i)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkEntries(t *testing.T, j *Journal, n int) {
	t.Helper()
	if got := j.Len(); got != uint64(n) {
		t.Fatalf("Len = %d, want %d", got, n)
	}
	got := readAll(t, j, 0)
	if len(got) != n {
		t.Fatalf("read %d entries, want %d", len(got), n)
	}
	for i, e := range got {
		if !bytes.Equal(e, entryN(i)) {
			t.Fatalf("entry %d = %q, want %q", i, e, entryN(i))
		}
	}
}

// TestOpenTornTail: every way a crash can cut the last write short is
// truncated away, earlier entries stay, and the sequence continues.
func TestOpenTornTail(t *testing.T) {
	tails := map[string][]byte{
		"partial header":       {0x10, 0x00, 0x00},
		"header only":          frame([]byte("lost entry"))[:headerSize],
		"partial payload":      frame([]byte("lost entry"))[:headerSize+4],
		"one byte short":       func() []byte { f := frame([]byte("lost entry")); return f[:len(f)-1] }(),
		"zero-filled":          make([]byte, 4096),
		"zero header":          make([]byte, headerSize),
		"good then torn":       append(frame([]byte("unacked but whole")), frame([]byte("lost"))[:5]...),
		"huge length to eof":   binary.LittleEndian.AppendUint32(nil, maxEntry),
		"length past eof only": append(binary.LittleEndian.AppendUint32(nil, 1000), 1, 2, 3, 4, 5, 6),
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeN(t, dir, 5)
			path := filepath.Join(dir, fileName)
			before, _ := os.ReadFile(path)
			if err := os.WriteFile(path, append(before, tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			j := openT(t, dir)
			n := 5
			if name == "good then torn" {
				n = 6 // a whole frame from the torn batch is kept: it is valid
			}
			if j.Len() != uint64(n) {
				t.Fatalf("Len = %d, want %d", j.Len(), n)
			}
			got := readAll(t, j, 0)
			for i := range 5 {
				if !bytes.Equal(got[i], entryN(i)) {
					t.Fatalf("entry %d changed", i)
				}
			}
			if seq := appendT(t, j, []byte("next")); seq != uint64(n) {
				t.Fatalf("next seq = %d, want %d", seq, n)
			}
			j.Close()
			j2 := openT(t, dir)
			if got := readAll(t, j2, uint64(n)); len(got) != 1 || string(got[0]) != "next" {
				t.Fatalf("after reopen: %q", got)
			}
		})
	}
}

// TestOpenCorrupt: damage that may hide acknowledged entries is refused,
// never truncated.
func TestOpenCorrupt(t *testing.T) {
	// Offsets of the frames of writeN(10).
	var offs []int
	off := 0
	for i := range 10 {
		offs = append(offs, off)
		off += len(frame(entryN(i)))
	}
	cases := map[string]func(b []byte) []byte{
		"payload bit flip in the middle": func(b []byte) []byte { b[offs[4]+headerSize+2] ^= 1; return b },
		"crc flip in the middle":         func(b []byte) []byte { b[offs[4]+4] ^= 0x80; return b },
		"crc flip in the last entry":     func(b []byte) []byte { b[offs[9]+5] ^= 1; return b },
		"payload flip in the first":      func(b []byte) []byte { b[headerSize] ^= 1; return b },
		"length zeroed in the middle":    func(b []byte) []byte { copy(b[offs[3]:], []byte{0, 0, 0, 0}); return b },
		"length too big in the middle":   func(b []byte) []byte { b[offs[3]+3] = 0xff; return b },
		"garbage tail":                   func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0, 0, 0, 1) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeN(t, dir, 10)
			path := filepath.Join(dir, fileName)
			b, _ := os.ReadFile(path)
			damaged := damage(b)
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			j, err := Open(dir)
			if !errors.Is(err, ErrCorrupt) {
				if j != nil {
					j.Close()
				}
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, damaged) {
				t.Fatalf("Open modified a corrupt file")
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	j := openT(t, t.TempDir())
	if _, err := j.Append(context.Background(), make([]byte, maxEntry+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := j.Append(context.Background(), nil); err == nil {
		t.Fatal("empty entry accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Append(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	if j.Len() != 0 {
		t.Fatalf("Len = %d after rejected appends", j.Len())
	}
	// The largest entry is fine.
	big := bytes.Repeat([]byte{7}, maxEntry)
	if seq := appendT(t, j, big); seq != 0 {
		t.Fatalf("seq %d", seq)
	}
	if got := readAll(t, j, 0); len(got) != 1 || !bytes.Equal(got[0], big) {
		t.Fatal("max-size entry not read back")
	}
}

func TestClosed(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	appendT(t, j, []byte("a"))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(context.Background(), []byte("b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := j.Read(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := j.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCloseWhileAppending: appends racing Close either succeed durably or
// get ErrClosed; none hangs, none is lost.
func TestCloseWhileAppending(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				e := fmt.Sprintf("g%d-%d", g, i)
				seq, err := j.Append(context.Background(), []byte(e))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[seq] = e
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	j2 := openT(t, dir)
	got := readAll(t, j2, 0)
	for seq, e := range acked {
		if seq >= uint64(len(got)) || string(got[seq]) != e {
			t.Fatalf("acknowledged seq %d (%q) missing after reopen", seq, e)
		}
	}
}

// TestWriteFailure: when the file fails underneath, every waiter gets an
// error, later appends are refused, nothing unacknowledged becomes
// readable, and reopening recovers.
func TestWriteFailure(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeSome := func(n int) {
		for i := range n {
			appendT(t, j, entryN(i))
		}
	}
	writeSome(3)
	j.f.Close() // the fd goes away under the writer

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			_, err := j.Append(context.Background(), []byte("doomed"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("an append on a failed file was acknowledged")
		}
	}
	if _, err := j.Append(context.Background(), []byte("later")); err == nil {
		t.Fatal("append after failure accepted")
	}
	if j.Len() != 3 {
		t.Fatalf("Len = %d, want 3", j.Len())
	}
	if got := readAll(t, j, 0); len(got) != 3 {
		t.Fatalf("Read sees %d entries after failure, want 3", len(got))
	}
	j.Close()

	j2 := openT(t, dir)
	checkEntries(t, j2, 3)
	if seq := appendT(t, j2, []byte("recovered")); seq != 3 {
		t.Fatalf("seq after recovery = %d", seq)
	}
}

// TestReadOnlyDir: a journal that cannot be created is an error, not a panic.
func TestReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if _, err := Open(dir); err == nil {
		t.Fatal("Open in a read-only directory succeeded")
	}
}

func TestConcurrentAppend(t *testing.T) {
	const goroutines, per = 64, 500
	dir := t.TempDir()
	j := openT(t, dir)
	seqs := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				seq, err := j.Append(context.Background(), fmt.Appendf(nil, "g%d-i%d", g, i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs[g] = append(seqs[g], seq)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	const total = goroutines * per
	want := make([]string, total)
	seen := make([]bool, total)
	for g, ss := range seqs {
		for i, s := range ss {
			if s >= total || seen[s] {
				t.Fatalf("seq %d out of range or duplicated", s)
			}
			seen[s] = true
			want[s] = fmt.Sprintf("g%d-i%d", g, i)
			if i > 0 && s <= ss[i-1] {
				t.Fatalf("goroutine %d: seqs not increasing", g)
			}
		}
	}
	if j.Len() != total {
		t.Fatalf("Len = %d", j.Len())
	}
	// Group commit: the 64 appenders shared fsyncs, and every commit
	// held at least one entry.
	if c := j.Commits(); c == 0 || c >= total {
		t.Fatalf("Commits = %d for %d entries appended by %d goroutines", c, total, goroutines)
	}
	check := func(j *Journal) {
		got := readAll(t, j, 0)
		if len(got) != total {
			t.Fatalf("read %d, want %d", len(got), total)
		}
		for s, e := range got {
			if string(e) != want[s] {
				t.Fatalf("seq %d = %q, want %q", s, e, want[s])
			}
		}
		// Reading from the middle uses the sparse index.
		for _, from := range []uint64{1, 1023, 1024, 1025, 20000, total - 1, total} {
			if got := readAll(t, j, from); len(got) != int(total-from) || (len(got) > 0 && string(got[0]) != want[from]) {
				t.Fatalf("Read(%d) wrong", from)
			}
		}
	}
	check(j)
	j.Close()
	check(openT(t, dir))
}

// TestReadWhileAppending: a reader never sees an entry before its Append
// could have returned, and what it sees is always a gapless prefix.
func TestReadWhileAppending(t *testing.T) {
	j := openT(t, t.TempDir())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[uint64]bool{}
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e := entryN(g*100000 + i)
				seq, err := j.Append(context.Background(), e)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[seq] = true
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		durable := j.Len()
		var n uint64
		err := j.Read(0, func(seq uint64, e []byte) error {
			if seq != n {
				return fmt.Errorf("gap: seq %d, want %d", seq, n)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Read stops at what was durable when it began, which is at least
		// what Len said just before, and never more than Len just after.
		if n < durable || n > j.Len() {
			t.Fatalf("Read saw %d entries, Len before %d after %d", n, durable, j.Len())
		}
	}
	close(stop)
	wg.Wait()
	if got := uint64(len(readAll(t, j, 0))); got != j.Len() || got != uint64(len(acked)) {
		t.Fatalf("read %d, Len %d, acked %d", got, j.Len(), len(acked))
	}
}

// TestReadSeesOnlyDurable: bytes past the durable length — written but
// not acknowledged — are invisible to Read.
func TestReadSeesOnlyDurable(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	appendT(t, j, []byte("durable"))
	// Simulate a batch written but not yet fsync'd: bytes beyond durOff.
	if _, err := j.f.WriteAt(frame([]byte("in flight")), j.durOff); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, j, 0); len(got) != 1 || j.Len() != 1 {
		t.Fatalf("Read saw %d entries beyond the durable prefix", len(got))
	}
}

func TestCreatesWithModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "journal")
	j := openT(t, dir)
	appendT(t, j, []byte("x"))
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, fileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&^want != 0 {
			t.Errorf("%s mode %v, want at most %v", path, fi.Mode().Perm(), want)
		}
	}
}

// TestRecovering: after a write failure, appends are refused until the
// journal reopens, nothing acknowledged is lost, and appends resume with
// the next sequence number without a restart.
// recoveringWith3 is a Recovering journal (retrying every 50 ms) in a
// new directory, holding entryN(0..2).
func recoveringWith3(t *testing.T) *Recovering {
	t.Helper()
	r, err := OpenRecovering(t.TempDir(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for i := range 3 {
		if _, err := r.Append(context.Background(), entryN(i)); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// appendRecovered appends entry to r until r has recovered from a
// failure, and returns its sequence number.
func appendRecovered(t *testing.T, r *Recovering, entry []byte) uint64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		seq, err := r.Append(context.Background(), entry)
		if err == nil {
			return seq
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal did not recover: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRecovering(t *testing.T) {
	r := recoveringWith3(t)
	r.current().f.Close() // the file fails under the writer
	if _, err := r.Append(context.Background(), []byte("doomed")); err == nil {
		t.Fatal("an append on a failed file was acknowledged")
	}
	seq := appendRecovered(t, r, []byte("after"))
	if seq != 3 {
		t.Fatalf("first sequence number after recovery = %d, want 3", seq)
	}
	if r.Len() != 4 {
		t.Fatalf("Len = %d, want 4", r.Len())
	}
	// One at a time, each append is its own commit, counted across the
	// reopen: the three before the failure and the one after (the
	// failed batches are not commits).
	if c := r.Commits(); c != 4 {
		t.Fatalf("Commits = %d, want 4", c)
	}
	var got [][]byte
	if err := r.Read(0, func(_ uint64, e []byte) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !bytes.Equal(got[i], entryN(i)) {
			t.Fatalf("entry %d changed", i)
		}
	}
	if string(got[3]) != "after" {
		t.Fatalf("entry 3 = %q", got[3])
	}
}

// TestScan: Scan sees what Read sees, from any starting point (across the
// sparse index), in one reused buffer; a damaged entry stops it with
// ErrCorrupt as it stops Read.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	const n = 2*indexEvery + 17
	writeN(t, dir, n)
	j := openT(t, dir)
	for _, from := range []uint64{0, 1, indexEvery - 1, indexEvery, n - 1, n, n + 5} {
		next := from
		err := j.Scan(from, func(seq uint64, e []byte) error {
			if seq != next {
				return fmt.Errorf("seq %d, want %d", seq, next)
			}
			if !bytes.Equal(e, entryN(int(seq))) {
				return fmt.Errorf("entry %d = %q", seq, e)
			}
			next++
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%d): %v", from, err)
		}
		if want := max(uint64(n), from); next != want {
			t.Fatalf("Scan(%d) stopped at %d, want %d", from, next, want)
		}
	}
	// A scan allocates nothing per entry: entries are read in the
	// reader's buffer (or one scratch buffer, for frames larger than it).
	if a := testing.AllocsPerRun(3, func() {
		if err := j.Scan(0, func(uint64, []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}); a > 20 {
		t.Fatalf("Scan(0) of %d entries made %v allocations", n, a)
	}
	// Flip a payload byte of entry 5 underneath the open journal: Scan,
	// like Read, refuses it.
	name := filepath.Join(dir, fileName)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for range 5 {
		off += headerSize + int(binary.LittleEndian.Uint32(b[off:]))
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{b[off+headerSize] ^ 0xff}, int64(off+headerSize)); err != nil {
		t.Fatal(err)
	}
	for name, read := range map[string]func(uint64, func(uint64, []byte) error) error{"Scan": j.Scan, "Read": j.Read} {
		if err := read(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s over a damaged entry: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// ScanFrames gives each entry's frame offset, where ReadFrame finds the
// same entry again, from any starting point (across the sparse index's
// marks) and through Recovering. ReadFrame refuses any offset that is not
// where a frame begins, and offsets past the end.
func TestScanFrames(t *testing.T) {
	dir := t.TempDir()
	const n = 2*indexEvery + 17
	writeN(t, dir, n)
	j := openT(t, dir)
	f := openFileT(t, dir)
	offsets := map[uint64]int64{}
	for _, from := range []uint64{0, 5, indexEvery, indexEvery + 3, n - 1, n} {
		next := from
		err := j.ScanFrames(from, func(seq uint64, off int64, e []byte) error {
			if seq != next {
				return fmt.Errorf("seq %d, want %d", seq, next)
			}
			next++
			if was, ok := offsets[seq]; ok && was != off {
				return fmt.Errorf("entry %d at %d, and at %d from another start", seq, off, was)
			}
			offsets[seq] = off
			got, err := ReadFrame(f, off)
			if err != nil {
				return fmt.Errorf("ReadFrame(%d) of entry %d: %w", off, seq, err)
			}
			if !bytes.Equal(got, e) || !bytes.Equal(e, entryN(int(seq))) {
				return fmt.Errorf("entry %d: ReadFrame %q, ScanFrames %q", seq, got, e)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ScanFrames(%d): %v", from, err)
		}
		if want := max(uint64(n), from); next != want {
			t.Fatalf("ScanFrames(%d) stopped at %d, want %d", from, next, want)
		}
	}
	size, _ := f.Seek(0, io.SeekEnd)
	starts := map[int64]bool{}
	for _, off := range offsets {
		starts[off] = true
	}
	for off := int64(0); off < 4000; off++ {
		if starts[off] {
			continue
		}
		if e, err := ReadFrame(f, off); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("ReadFrame(%d), not a frame: %q, %v; want ErrCorrupt", off, e, err)
		}
	}
	for _, off := range []int64{size, size - 1, size + 100} {
		if _, err := ReadFrame(f, off); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ReadFrame(%d), at or past the end (%d): %v; want ErrCorrupt", off, size, err)
		}
	}
	j.Close()
	r, err := OpenRecovering(dir, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.ScanFrames(indexEvery, func(seq uint64, off int64, _ []byte) error {
		if off != offsets[seq] {
			return fmt.Errorf("Recovering: entry %d at %d, want %d", seq, off, offsets[seq])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
