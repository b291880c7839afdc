package journal

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// helperOf is j's fsync helper; the test fails if j fsyncs in process.
func helperOf(t *testing.T, j *Journal) *fsyncHelper {
	t.Helper()
	h, ok := j.disk.(*fsyncHelper)
	if !ok || j.SyncMode() != SyncHelper {
		t.Fatalf("journal fsyncs %s, want a helper process", j.SyncMode())
	}
	return h
}

// TestHelperSyncs: on Linux a journal fsyncs in a helper process, one
// fsync per group commit, and the helper exits when the journal closes.
func TestHelperSyncs(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := helperOf(t, j)
	for i := range 20 {
		appendT(t, j, entryN(i))
	}
	if c := j.Commits(); c != 20 {
		t.Fatalf("Commits = %d, want 20 (one at a time)", c)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if h.cmd.ProcessState == nil || !h.cmd.ProcessState.Exited() || h.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("helper after Close: %v", h.cmd.ProcessState)
	}
	checkEntries(t, openT(t, dir), 20)
}

// TestInProcessSyncs: with the helper off (or unavailable) the journal
// fsyncs itself, with the same guarantees.
func TestInProcessSyncs(t *testing.T) {
	helperOff = true
	t.Cleanup(func() { helperOff = false })
	dir := t.TempDir()
	j := openT(t, dir)
	if j.SyncMode() != SyncInProcess {
		t.Fatalf("SyncMode = %s", j.SyncMode())
	}
	for i := range 5 {
		appendT(t, j, entryN(i))
	}
	j.Close()
	checkEntries(t, openT(t, dir), 5)
}

// TestHelperKilled: a helper that dies leaves no append acknowledged
// until the journal is reopened (fail closed, as on a failed fsync);
// Recovering reopens it with a new helper, and nothing acknowledged is
// lost.
func TestHelperKilled(t *testing.T) {
	r := recoveringWith3(t)
	old := helperOf(t, r.current())
	if err := old.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Append(context.Background(), []byte("doomed")); err == nil {
		t.Fatal("an append was acknowledged with the fsync helper dead")
	}
	seq := appendRecovered(t, r, []byte("after"))
	if h := helperOf(t, r.current()); h == old {
		t.Fatal("the journal recovered with the dead helper")
	}
	// "doomed" was written before its fsync failed: it may or may not be
	// in the file, and either is right (it was never acknowledged).
	var got [][]byte
	if err := r.Read(0, func(_ uint64, e []byte) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if uint64(len(got)) != seq+1 || string(got[seq]) != "after" {
		t.Fatalf("after recovery: %q (seq %d)", got, seq)
	}
	for i := range 3 {
		if string(got[i]) != string(entryN(i)) {
			t.Fatalf("entry %d changed", i)
		}
	}
}

// TestHelperReportsFsyncError: the errno of a failed fsync in the helper
// comes back as the journal's error. (A pipe cannot be fsynced: EINVAL.)
func TestHelperReportsFsyncError(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	_, err = startHelper(pw)
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("helper on a pipe: %v, want EINVAL", err)
	}
}

// TestHelperOnlyWithItsMarks: the helper's loop runs only in a process
// started as the helper, with its argv[0], its environment variable and
// nothing else on the command line.
func TestHelperOnlyWithItsMarks(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == helperEnv {
				return v
			}
			return ""
		}
	}
	cases := []struct {
		args []string
		env  string
		want bool
	}{
		{[]string{helperArg0}, "1", true},
		{[]string{"warden"}, "1", false},
		{[]string{helperArg0}, "", false},
		{[]string{helperArg0}, "true", false},
		{[]string{helperArg0, "serve"}, "1", false},
		{nil, "1", false},
	}
	for _, c := range cases {
		if got := isHelper(c.args, env(c.env)); got != c.want {
			t.Errorf("isHelper(%q, %s=%q) = %v, want %v", c.args, helperEnv, c.env, got, c.want)
		}
	}
}

// TestNoHelperWithoutMain: a program that does not serve the helper (it
// never called FsyncHelperMain: another package's tests, which
// re-executed would run their tests rather than serve) fsyncs in
// process.
func TestNoHelperWithoutMain(t *testing.T) {
	helperServed.Store(false)
	t.Cleanup(func() { helperServed.Store(true) })
	j := openT(t, t.TempDir())
	if j.SyncMode() != SyncInProcess {
		t.Fatalf("SyncMode = %s without FsyncHelperMain", j.SyncMode())
	}
	appendT(t, j, []byte("x"))
}
