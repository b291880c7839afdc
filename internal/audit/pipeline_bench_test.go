package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// BenchmarkJournaledPipelineDurable is the audit pipeline as the server
// runs it, on disk: each Append builds the event and returns once it is
// fsync'd in the real journal; the sequencer appends the commitments to
// the real Tessera log in the background. It reports sustained events/s
// (the issue asks for at least 10,000) with N concurrent appenders, and,
// once everything is sequenced, how long that took after the last Append.
//
//	go test -run XXX -bench JournaledPipelineDurable -benchtime 50000x ./internal/audit/
func BenchmarkJournaledPipelineDurable(b *testing.B) {
	for _, appenders := range []int{32, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			skey, _, err := tlog.NewKey("warden.bench/audit")
			if err != nil {
				b.Fatal(err)
			}
			signer, _ := note.NewSigner(skey)
			lg, err := tlog.Open(ctx, tlog.Options{Dir: filepath.Join(dir, "log"), Origin: signer.Name(), Signer: signer,
				BatchMaxSize: 256, BatchMaxAge: 50 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer lg.Close(ctx)
			jr, err := journal.Open(filepath.Join(dir, "journal"))
			if err != nil {
				b.Fatal(err)
			}
			defer jr.Close()
			st, err := sqlite.Open(ctx, filepath.Join(dir, "w.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			p, err := audit.NewJournaledPipeline(jr, lg, st, "https://warden.bench/fhir")
			if err != nil {
				b.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			go p.Run(runCtx, 200*time.Millisecond)

			rec := audit.Record{RequestID: "bench-request-0001", Time: time.Now(), Duration: time.Millisecond, Surface: audit.SurfaceFHIR,
				Action: "search-type", Method: "GET", Path: "/fhir/Observation", Status: 200, ClientID: "bench-app",
				Subject: "user-1", FHIRUser: "Practitioner/pr1", TokenID: "jti-1", Patients: []string{"p1", "p2"},
				Resources: []string{"Observation/o1", "Observation/o2", "Observation/o3"}}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						r := rec
						r.Time = time.Now()
						if _, err := p.Append(ctx, r); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				n, err := p.Sequenced(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n >= uint64(b.N) {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("only %d of %d events sequenced after 60 s", n, b.N)
				}
			}
			b.ReportMetric(time.Since(start).Seconds()-elapsed.Seconds(), "s-to-log-after-last")
		})
	}
}
