package journal

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppend measures durable appends of ~3 KB entries with 1, 32 and
// 256 concurrent appenders, reporting entries/s and the p50 and p99 latency
// of one Append.
func BenchmarkAppend(b *testing.B) {
	entry := make([]byte, 3000)
	for i := range entry {
		entry[i] = byte(i)
	}
	for _, appenders := range []int{1, 32, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			j, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			ctx := context.Background()
			var mu sync.Mutex
			var lat []time.Duration
			run := func(next func() bool) {
				var mine []time.Duration
				for next() {
					t0 := time.Now()
					if _, err := j.Append(ctx, entry); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}
			b.SetBytes(int64(len(entry)))
			b.ResetTimer()
			start := time.Now()
			if appenders == 1 {
				i := 0
				run(func() bool { i++; return i <= b.N })
			} else {
				b.SetParallelism(max(1, appenders/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) { run(pb.Next) })
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "entries/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
