package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// fsyncHelper fsyncs the journal file in a child process, so that the
// server's Go runtime never waits on the disk in a system call.
//
// Why: a goroutine blocked in a system call for more than ~20 µs has its
// processor taken back by the runtime's monitor thread (sysmon), which
// wakes another thread to run the other goroutines; when the call
// returns, the goroutine must find a processor again. While such calls
// keep coming — an fsync of ~250 µs for every group commit, about a
// thousand a second under the read load — the monitor never backs off
// from waking every 20 µs. The helper blocks in the fsync instead; the
// writer goroutine sends it one byte on a pipe and waits for the answer
// in the runtime's network poller, which parks it like any goroutine
// waiting on a socket. Measured here (docs/PERFORMANCE.md, session 19):
// ~7 µs less CPU per audited read, helper included, +4 % audited reads.
//
// The helper is this same executable (/proc/self/exe) started with
// argv[0] helperArg0 and helperEnv set, which FsyncHelperMain, called
// first by the program's main, recognises. It holds the journal file as
// its descriptor 3, reads one request byte at a time from its standard
// input, fsyncs, and writes back one byte: 0, or the errno of the failed
// fsync. It makes its system calls with RawSyscall, outside the Go
// scheduler: a process that does nothing else can block there. It exits
// when its standard input reaches end of file, that is when the journal
// closes it or the server dies.
//
// An fsync in another process makes the same file durable: it is the
// same open file (descriptor 3 shares the journal's file description),
// and fsync flushes the file's dirty pages whoever wrote them. If the
// helper dies or cannot answer, sync fails and the journal fails closed
// like on any failed fsync (Recovering reopens it, with a new helper).
type fsyncHelper struct {
	cmd  *exec.Cmd
	req  *os.File // the helper's standard input
	resp *os.File // its standard output
	buf  [1]byte
}

const (
	helperArg0 = "warden-journal-fsync"
	helperEnv  = "WARDEN_JOURNAL_FSYNC_HELPER"
)

// errNoHelper is a program that did not call FsyncHelperMain.
var errNoHelper = errors.New("journal: the program does not serve an fsync helper")

// helperServed is set by FsyncHelperMain: this program serves as the
// helper when started as one, so its journals may start helpers.
var helperServed atomic.Bool

// FsyncHelperMain must be the first thing a program's main (or a test
// package's TestMain) does for the journals it opens to fsync in a
// helper process. Started as the helper, the program serves (until its
// journal closes) and FsyncHelperMain returns the exit code and true;
// else it returns false, and journals opened from then on start
// helpers. A program that never calls it (another package's tests)
// fsyncs in process: re-executed, it would not serve.
func FsyncHelperMain() (code int, helper bool) {
	if isHelper(os.Args, os.Getenv) {
		return serveFsync(), true
	}
	helperServed.Store(true)
	return 0, false
}

// isHelper reports whether a process with these arguments and
// environment was started as the helper: by startHelper, which sets both
// argv[0] and the variable, and no arguments. Neither mark alone will do,
// so that a stray environment variable cannot turn a server into one.
func isHelper(args []string, getenv func(string) string) bool {
	return len(args) == 1 && args[0] == helperArg0 && getenv(helperEnv) == "1"
}

// serveFsync is the helper's loop; it returns when the journal closes
// the request pipe.
func serveFsync() int {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(-1) // the loop allocates nothing
	// The pipes block (os/exec hands them over so); made sure of, since a
	// read that did not block would end the loop.
	if syscall.SetNonblock(0, false) != nil || syscall.SetNonblock(1, false) != nil {
		return 1
	}
	var req, resp [1]byte
	for {
		if n, errno := rawRetry(syscall.SYS_READ, 0, unsafe.Pointer(&req[0]), 1); n != 1 || errno != 0 {
			return 0 // end of file: the journal is closed or the server gone
		}
		_, errno := rawRetry(syscall.SYS_FSYNC, 3, nil, 0)
		resp[0] = byte(errno)
		if errno > 255 {
			resp[0] = byte(syscall.EIO)
		}
		if n, errno := rawRetry(syscall.SYS_WRITE, 1, unsafe.Pointer(&resp[0]), 1); n != 1 || errno != 0 {
			return 1
		}
	}
}

// rawRetry makes a system call with RawSyscall, again after EINTR (the
// runtime's preemption signal interrupts a blocked read).
func rawRetry(trap uintptr, fd uintptr, p unsafe.Pointer, n uintptr) (uintptr, syscall.Errno) {
	for {
		r, _, errno := syscall.RawSyscall(trap, fd, uintptr(p), n)
		if errno != syscall.EINTR {
			return r, errno
		}
	}
}

// startHelper starts a helper for f and checks that it answers.
func startHelper(f *os.File) (syncer, error) {
	if !helperServed.Load() {
		return nil, errNoHelper
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{helperArg0},
		Env:        []string{helperEnv + "=1"},
		Stdin:      reqR,
		Stdout:     respW,
		ExtraFiles: []*os.File{f},
	}
	err = cmd.Start()
	// The helper holds its own ends; ours close, so that its death is
	// end of file here and ours is there.
	reqR.Close()
	respW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		return nil, err
	}
	h := &fsyncHelper{cmd: cmd, req: reqW, resp: respR}
	if err := h.sync(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *fsyncHelper) sync() error {
	h.buf[0] = 1
	if _, err := h.req.Write(h.buf[:]); err != nil {
		return fmt.Errorf("journal: fsync helper: %w", err)
	}
	if _, err := io.ReadFull(h.resp, h.buf[:]); err != nil {
		return fmt.Errorf("journal: fsync helper: %w", err)
	}
	if h.buf[0] != 0 {
		return fmt.Errorf("journal: fsync: %w", syscall.Errno(h.buf[0]))
	}
	return nil
}

// close ends the helper (end of file on its input) and waits for it.
func (h *fsyncHelper) close() error {
	err := h.req.Close()
	h.resp.Close()
	if werr := h.cmd.Wait(); werr != nil && !errors.As(werr, new(*exec.ExitError)) {
		err = errors.Join(err, werr)
	}
	return err
}

func (h *fsyncHelper) mode() string { return SyncHelper }
