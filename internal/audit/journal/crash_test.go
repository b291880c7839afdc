package journal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashDirEnv, when set, turns the test binary into the crash child: it
// appends to the journal in that directory until killed.
const crashDirEnv = "WARDEN_JOURNAL_CRASH_CHILD_DIR"

// crashEntry is the entry goroutine g appends as its i-th; its size varies
// so that frames straddle pages and batches.
func crashEntry(g, i int) []byte {
	head := fmt.Appendf(nil, "g%d-i%d|", g, i)
	return append(head, bytes.Repeat([]byte{byte('A' + (g+i)%26)}, (i*131+g*17)%5000)...)
}

// TestCrashChild is the child half of TestCrash; it does nothing unless
// re-executed by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as TestCrash's child")
	}
	j, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				seq, err := j.Append(context.Background(), crashEntry(g, i))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				// Printed only after Append returned: an acknowledgement.
				mu.Lock()
				fmt.Fprintf(out, "%d %d %d\n", seq, g, i)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrash kills a process appending to the journal with SIGKILL and
// checks that every entry it acknowledged is there, byte for byte.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary")
	}
	dir := t.TempDir()
	var prev uint64
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		type ack struct{ g, i int }
		acked := map[uint64]ack{}
		sc := bufio.NewScanner(stdout)
		killAt := time.Now().Add(time.Duration(150+100*round) * time.Millisecond)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				continue // a line cut by the kill
			}
			seq, _ := strconv.ParseUint(f[0], 10, 64)
			g, _ := strconv.Atoi(f[1])
			i, _ := strconv.Atoi(f[2])
			acked[seq] = ack{g, i}
			if time.Now().After(killAt) && cmd.Process != nil {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		if len(acked) == 0 {
			t.Fatalf("round %d: child acknowledged nothing", round)
		}

		j, err := Open(dir)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		got := map[uint64][]byte{}
		if err := j.Read(prev, func(seq uint64, e []byte) error { got[seq] = e; return nil }); err != nil {
			t.Fatal(err)
		}
		for seq, a := range acked {
			if !bytes.Equal(got[seq], crashEntry(a.g, a.i)) {
				t.Fatalf("round %d: acknowledged seq %d (g%d i%d) missing or changed after SIGKILL", round, seq, a.g, a.i)
			}
		}
		t.Logf("round %d: %d acknowledged, %d in journal", round, len(acked), j.Len()-prev)
		prev = j.Len()
		j.Close()
	}
}
