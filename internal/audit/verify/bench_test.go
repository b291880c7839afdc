package verify_test

import (
	"context"
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit/verify"
	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
)

var benchEvents = flag.Int("verify.events", 1_000_000, "events in BenchmarkVerify1M's trail")

// BenchmarkVerify1M verifies a real trail of -verify.events events (one
// million by default; the target is under 60 s). Building the
// trail through the production pipeline takes minutes, so it is built
// once, and the benchmark body runs once (b.Loop).
//
//	go test -run '^$' -bench Verify1M -benchtime 1x ./internal/audit/verify/
func BenchmarkVerify1M(b *testing.B) {
	tr := verifytest.New(b, b.TempDir())
	start := time.Now()
	for left := *benchEvents; left > 0; left -= 100_000 {
		tr.Append(b, min(left, 100_000))
	}
	b.Logf("built a trail of %d events in %s", len(tr.IDs), time.Since(start).Round(time.Second))
	vt := trailOf(tr, b.TempDir())
	for b.Loop() {
		rep, err := verify.Verify(context.Background(), vt)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.InPlace != uint64(*benchEvents) {
			b.Fatalf("report %+v", rep)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/verify")
}

// BenchmarkInclusionProof builds inclusion proofs for random events from
// the log's tiles, as a server answering proof requests would (target:
// under 1 ms at p50), and reports the p50 and p99.
//
//	go test -run '^$' -bench InclusionProof ./internal/audit/verify/
func BenchmarkInclusionProof(b *testing.B) {
	tr := verifytest.New(b, b.TempDir())
	tr.Append(b, 100_000)
	ctx := context.Background()
	lr := verify.DirLog(tr.LogDir())
	size := uint64(100_000)
	var took []time.Duration
	for b.Loop() {
		i := rand.Uint64N(size)
		t0 := time.Now()
		if _, err := verify.InclusionProof(ctx, lr, size, i); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}
