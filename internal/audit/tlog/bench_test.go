package tlog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// BenchmarkAppend measures durable appends (Append returned = fsync'd and
// integrated) of 32-byte commitment-sized leaves from many concurrent
// writers. The target is >= 10,000 entries/s on 2 cores. Each writer
// waits for its Append, so a batch never holds more than writers entries:
// with batch=256 and 64 writers every batch waits the full max age, which is
// why the batch size should track the real concurrency.
func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		writers, batch int
		age            time.Duration
	}{
		{64, 256, DefaultBatchMaxAge},
		{64, 64, DefaultBatchMaxAge},
		{64, 256, 5 * time.Millisecond},
		{256, 256, DefaultBatchMaxAge},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("writers=%d/batch=%d/age=%v", c.writers, c.batch, c.age), func(b *testing.B) {
			writers := c.writers
			s, _, _ := testKeys(b)
			o := testOptions(b.TempDir(), s)
			o.BatchMaxSize = c.batch
			o.BatchMaxAge = c.age
			o.CheckpointInterval = DefaultCheckpointInterval
			l, err := Open(b.Context(), o)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close(b.Context())
			var next atomic.Int64
			var failed atomic.Value
			var wg sync.WaitGroup
			var mu sync.Mutex
			latencies := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Go(func() {
					var mine []time.Duration
					defer func() {
						mu.Lock()
						latencies = append(latencies, mine...)
						mu.Unlock()
					}()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						t0 := time.Now()
						if _, err := l.Append(b.Context(), testLeaf(fmt.Sprint("bench", w), uint64(i))); err != nil {
							failed.Store(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkInclusionProof measures building an inclusion proof from the
// stored tiles for a random leaf of a 10,000-leaf log (target < 1 ms p50).
func BenchmarkInclusionProof(b *testing.B) {
	s, _, vkey := testKeys(b)
	l := openTestLog(b, b.TempDir(), s)
	const n = 10_000
	appendN(b, l, "proof", n)
	_, cp := waitCheckpoint(b, l, vkey, n)
	rng := rand.New(rand.NewPCG(1, 2))
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		idx := rng.Uint64N(cp.Size)
		t0 := time.Now()
		if _, err := l.InclusionProof(b.Context(), idx, cp.Size); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds()), "p50-µs")
}

// BenchmarkVerify measures Verify over 100,000 in-memory leaves and reports
// the linear extrapolation to 1,000,000 (target < 60 s).
func BenchmarkVerify(b *testing.B) {
	const n = 100_000
	leaves := make([][]byte, n)
	for i := range leaves {
		leaves[i] = testLeaf("verify-bench", uint64(i))
	}
	s, _, vkey := testKeys(b)
	cpText := log.Checkpoint{Origin: testOrigin, Size: n, Hash: rootOfLeaves(b, leaves)}.Marshal()
	cp, err := note.Sign(&note.Note{Text: string(cpText)}, s)
	if err != nil {
		b.Fatal(err)
	}
	src := leafSource(leaves)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Verify(b.Context(), vkey, cp, src); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*10, "s/1M-leaves")
}

// BenchmarkVerifyFromBundles measures Verify over 20,000 leaves read back
// from the log's entry bundles through Log.Leaves (disk included), and
// reports the extrapolation to 1,000,000.
func BenchmarkVerifyFromBundles(b *testing.B) {
	const n = 20_000
	s, _, vkey := testKeys(b)
	l := openTestLog(b, b.TempDir(), s)
	appendN(b, l, "verify-bundles", n)
	cp, _ := waitCheckpoint(b, l, vkey, n)
	b.ResetTimer()
	for b.Loop() {
		src, err := l.Leaves(b.Context(), n)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(b.Context(), vkey, cp, src); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*(1_000_000/n), "s/1M-leaves")
}
