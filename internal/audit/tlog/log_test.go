package tlog

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "warden.test/audit"

// testKeys returns a fresh signer for testOrigin and its verifier key.
func testKeys(t testing.TB) (note.Signer, string, string) {
	t.Helper()
	skey, vkey, err := NewKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, skey, vkey
}

func testOptions(dir string, s note.Signer) Options {
	return Options{Dir: dir, Origin: s.Name(), Signer: s, BatchMaxAge: 10 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond}
}

func openTestLog(t testing.TB, dir string, s note.Signer) *Log {
	t.Helper()
	l, err := Open(t.Context(), testOptions(dir, s))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// testLeaf is a unique 32-byte leaf, shaped like an audit commitment.
func testLeaf(tag string, i uint64) []byte {
	h := sha256.New()
	h.Write([]byte(tag))
	_ = binary.Write(h, binary.BigEndian, i)
	return h.Sum(nil)
}

// appendN appends n leaves concurrently and returns them by index.
func appendN(t testing.TB, l *Log, tag string, n int) map[uint64][]byte {
	t.Helper()
	var mu sync.Mutex
	got := make(map[uint64][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			leaf := testLeaf(tag, uint64(i))
			idx, err := l.Append(t.Context(), leaf)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if _, dup := got[idx]; dup {
				errs <- fmt.Errorf("index %d handed out twice", idx)
			}
			got[idx] = leaf
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	return got
}

// waitCheckpoint polls until the published checkpoint covers at least size.
func waitCheckpoint(t testing.TB, l *Log, vkey string, size uint64) ([]byte, *log.Checkpoint) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		raw, err := l.Checkpoint(t.Context())
		if err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
		cp, _, err := openCheckpoint(vkey, raw)
		if err != nil {
			t.Fatalf("published checkpoint does not verify: %v", err)
		}
		if cp.Size >= size {
			return raw, cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size >= %d after 15s (latest %d)", size, cp.Size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	s, _, _ := testKeys(t)
	other, err := note.NewSigner(mustKey(t, "other.example/audit"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := []struct {
		name string
		edit func(*Options)
	}{
		{"no dir", func(o *Options) { o.Dir = "" }},
		{"no signer", func(o *Options) { o.Signer = nil }},
		{"no origin", func(o *Options) { o.Origin = "" }},
		{"signer named for another origin", func(o *Options) { o.Signer = other }},
		{"checkpoint interval below POSIX minimum", func(o *Options) { o.CheckpointInterval = 50 * time.Millisecond }},
		{"negative batch size", func(o *Options) { o.BatchMaxSize = -1 }},
		{"negative batch age", func(o *Options) { o.BatchMaxAge = -time.Millisecond }},
		{"malformed witness policy", func(o *Options) { o.Witnesses = []byte("quorum nonsense\n") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions(dir, s)
			c.edit(&o)
			l, err := Open(t.Context(), o)
			if err == nil {
				_ = l.Close(context.Background())
				t.Fatal("Open accepted bad options")
			}
			if !errors.Is(err, ErrBadOptions) {
				t.Fatalf("err = %v, want ErrBadOptions", err)
			}
		})
	}
}

func mustKey(t testing.TB, origin string) string {
	t.Helper()
	skey, _, err := NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

func TestNewKeyRejectsBadName(t *testing.T) {
	for _, name := range []string{"", "has space", "has+plus"} {
		if _, _, err := NewKey(name); !errors.Is(err, ErrBadOptions) {
			t.Errorf("NewKey(%q) err = %v, want ErrBadOptions", name, err)
		}
	}
}

func TestAppendRejects(t *testing.T) {
	s, _, _ := testKeys(t)
	l := openTestLog(t, t.TempDir(), s)
	if _, err := l.Append(t.Context(), nil); !errors.Is(err, ErrEmptyLeaf) {
		t.Errorf("empty leaf: err = %v, want ErrEmptyLeaf", err)
	}
	if _, err := l.Append(t.Context(), make([]byte, 1<<16)); !errors.Is(err, ErrLeafTooLong) {
		t.Errorf("64 KiB leaf: err = %v, want ErrLeafTooLong", err)
	}
	if _, err := l.Leaf(t.Context(), 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Leaf(0) of empty log: err = %v, want ErrOutOfRange", err)
	}
	if _, err := l.InclusionProof(t.Context(), 0, 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("InclusionProof beyond tree: err = %v, want ErrOutOfRange", err)
	}
	if _, err := l.InclusionProof(t.Context(), 3, 3); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("InclusionProof index == size: err = %v, want ErrOutOfRange", err)
	}
	if _, err := l.ConsistencyProof(t.Context(), 2, 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("ConsistencyProof older > newer: err = %v, want ErrOutOfRange", err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
	if _, err := l.Checkpoint(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Checkpoint after Close: err = %v, want ErrClosed", err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestAppendCancelledContext(t *testing.T) {
	s, _, _ := testKeys(t)
	l := openTestLog(t, t.TempDir(), s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Append(ctx, []byte("leaf")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// An entry whose Append returned is readable, in place, after Close and
// reopen, and the reopened log verifies against its checkpoint.
func TestAppendDurableAcrossReopen(t *testing.T) {
	s, _, vkey := testKeys(t)
	dir := t.TempDir()
	l, err := Open(t.Context(), testOptions(dir, s))
	if err != nil {
		t.Fatal(err)
	}
	const n = 300 // crosses the 256-entry bundle boundary
	want := appendN(t, l, "reopen", n)
	if len(want) != n {
		t.Fatalf("got %d indices, want %d", len(want), n)
	}
	for i := range uint64(n) {
		if _, ok := want[i]; !ok {
			t.Fatalf("indices are not dense: %d missing", i)
		}
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	l = openTestLog(t, dir, s)
	size, err := l.Size(t.Context())
	if err != nil || size != n {
		t.Fatalf("Size after reopen = %d, %v; want %d", size, err, n)
	}
	for i, leaf := range want {
		got, err := l.Leaf(t.Context(), i)
		if err != nil {
			t.Fatalf("Leaf(%d): %v", i, err)
		}
		if string(got) != string(leaf) {
			t.Fatalf("Leaf(%d) changed across reopen", i)
		}
	}
	// Close waited for a checkpoint covering every index.
	cp, _ := waitCheckpoint(t, l, vkey, n)
	rep, err := Verify(t.Context(), vkey, cp, func(i uint64) ([]byte, error) { return l.Leaf(t.Context(), i) })
	if err != nil || rep.Fault != FaultNone || rep.Size != n {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	src, err := l.Leaves(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(n) {
		got, err := src(i)
		if err != nil || string(got) != string(want[i]) {
			t.Fatalf("Leaves source at %d = %x, %v", i, got, err)
		}
	}
	if _, err := src(n); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Leaves source beyond size: err = %v, want ErrOutOfRange", err)
	}
	if _, err := l.Leaves(t.Context(), n+1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Leaves beyond integrated size: err = %v, want ErrOutOfRange", err)
	}
	// The log keeps growing after reopen.
	more := appendN(t, l, "after-reopen", 10)
	for i := range more {
		if i < n {
			t.Fatalf("index %d reused after reopen", i)
		}
	}
}

const crashChildEnv = "TLOG_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestAppendSurvivesSIGKILL: it
// appends forever and prints "index leafhex" for every Append that returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child process of TestAppendSurvivesSIGKILL")
	}
	s, err := note.NewSigner(os.Getenv("TLOG_CRASH_CHILD_SKEY"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), testOptions(dir, s))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				leaf := testLeaf("crash-"+strconv.Itoa(w), i)
				idx, err := l.Append(context.Background(), leaf)
				if err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %x\n", idx, leaf)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// Every entry whose Append returned before a SIGKILL is in the log after
// restart, and the restarted log's checkpoint is consistent with the last
// one published before the kill.
func TestAppendSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns and kills a child process")
	}
	s, skey, vkey := testKeys(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "TLOG_CRASH_CHILD_SKEY="+skey)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(acked) < 2000 {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		idx, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		acked[idx] = f[1]
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Lines already written before the kill were acknowledged too.
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 {
			if idx, err := strconv.ParseUint(f[0], 10, 64); err == nil {
				acked[idx] = f[1]
			}
		}
	}
	_ = cmd.Wait()
	if len(acked) < 2000 {
		t.Fatalf("child acknowledged only %d appends", len(acked))
	}
	before, err := os.ReadFile(dir + "/checkpoint")
	if err != nil {
		t.Fatalf("no checkpoint published before the kill: %v", err)
	}
	l := openTestLog(t, dir, s)
	for idx, leafHex := range acked {
		got, err := l.Leaf(t.Context(), idx)
		if err != nil {
			t.Fatalf("acknowledged leaf %d lost: %v", idx, err)
		}
		if hex.EncodeToString(got) != leafHex {
			t.Fatalf("acknowledged leaf %d changed", idx)
		}
	}
	size, err := l.Size(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	after, _ := waitCheckpoint(t, l, vkey, size)
	old, _, err := openCheckpoint(vkey, before)
	if err != nil {
		t.Fatal(err)
	}
	newer, _, err := openCheckpoint(vkey, after)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.ConsistencyProof(t.Context(), old.Size, newer.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(vkey, before, after, p); err != nil {
		t.Fatalf("checkpoint after restart inconsistent with the one before the kill: %v", err)
	}
	if _, err := Verify(t.Context(), vkey, after, func(i uint64) ([]byte, error) { return l.Leaf(t.Context(), i) }); err != nil {
		t.Fatalf("log does not verify after SIGKILL: %v", err)
	}
	t.Logf("%d acknowledged appends survived SIGKILL; tree size %d", len(acked), size)
}

// AppendBatch keeps the order of its leaves, hands out dense indexes
// that each read back as their own leaf (across a bundle boundary and
// after Append calls), and refuses a bad batch before adding any of it.
func TestAppendBatch(t *testing.T) {
	s, _, vkey := testKeys(t)
	l := openTestLog(t, t.TempDir(), s)
	first := appendN(t, l, "single", 3)
	leaves := make([][]byte, 300)
	for i := range leaves {
		leaves[i] = testLeaf("batch", uint64(i))
	}
	indexes, err := l.AppendBatch(t.Context(), leaves)
	if err != nil {
		t.Fatal(err)
	}
	if len(indexes) != len(leaves) {
		t.Fatalf("%d indexes for %d leaves", len(indexes), len(leaves))
	}
	for i, idx := range indexes {
		if idx != uint64(len(first)+i) {
			t.Fatalf("leaf %d of the batch got index %d, want %d (in order, after the 3 single appends)", i, idx, len(first)+i)
		}
		got, err := l.Leaf(t.Context(), idx)
		if err != nil || string(got) != string(leaves[i]) {
			t.Fatalf("Leaf(%d) = %x, %v; want leaf %d of the batch", idx, got, err, i)
		}
	}
	cp, _ := waitCheckpoint(t, l, vkey, uint64(len(first)+len(leaves)))
	if rep, err := Verify(t.Context(), vkey, cp, func(i uint64) ([]byte, error) { return l.Leaf(t.Context(), i) }); err != nil || rep.Fault != FaultNone {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	size, _ := l.Size(t.Context())
	for _, c := range []struct {
		name  string
		batch [][]byte
		want  error
	}{
		{"empty leaf", [][]byte{testLeaf("x", 1), nil}, ErrEmptyLeaf},
		{"64 KiB leaf", [][]byte{testLeaf("x", 2), make([]byte, 1<<16)}, ErrLeafTooLong},
	} {
		if _, err := l.AppendBatch(t.Context(), c.batch); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if after, _ := l.Size(t.Context()); after != size {
		t.Errorf("refused batches grew the log from %d to %d", size, after)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.AppendBatch(ctx, [][]byte{testLeaf("cancelled", 0)}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendBatch(t.Context(), [][]byte{testLeaf("closed", 0)}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
}
