//go:build linux

package journal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFlush compares ways to make one group commit (2,400 bytes, six
// read events) durable on this machine's file system, reporting the CPU
// time (user + system) and wall time of each: appending with fsync, which
// the journal does, against overwriting a preallocated, zero-filled file
// with fdatasync, which needs no metadata change per commit.
//
//	go test ./internal/audit/journal -run '^$' -bench Flush -benchtime 2000x
func BenchmarkFlush(b *testing.B) {
	rec := make([]byte, 2400)
	for i := range rec {
		rec[i] = byte(i)
	}
	const region = 16 << 20
	cases := []struct {
		name string
		open func(dir string) *os.File
		op   func(f *os.File, i int) error
	}{
		{"append+fsync", func(dir string) *os.File {
			f, err := os.OpenFile(filepath.Join(dir, "j"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}, func(f *os.File, _ int) error {
			if _, err := f.Write(rec); err != nil {
				return err
			}
			return f.Sync()
		}},
		{"preallocated+fdatasync", func(dir string) *os.File {
			f, err := os.OpenFile(filepath.Join(dir, "j"), os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			zero := make([]byte, 1<<20)
			for range region >> 20 {
				if _, err := f.Write(zero); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			return f
		}, func(f *os.File, i int) error {
			if _, err := f.WriteAt(rec, int64(i*len(rec))%(region-int64(len(rec)))); err != nil {
				return err
			}
			return syscall.Fdatasync(int(f.Fd()))
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			f := c.open(b.TempDir())
			defer f.Close()
			c0 := cpuTime()
			t0 := time.Now()
			b.ResetTimer()
			for i := range b.N {
				if err := c.op(f, i); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/1e3, "cpu-µs/op")
			b.ReportMetric(float64(time.Since(t0))/float64(b.N)/1e3, "wall-µs/op")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
