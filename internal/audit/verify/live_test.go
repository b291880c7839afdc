package verify_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/audit/verify"
	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
)

// TestVerifyWhileRunning: Verify beside a server appending and sequencing
// finds nothing — entries not yet sequenced or checkpointed are pending,
// never inserted or deleted — and leaves the journal as it was.
func TestVerifyWhileRunning(t *testing.T) {
	ctx := context.Background()
	tr := verifytest.New(t, t.TempDir())
	tr.Append(t, 50)
	state := t.TempDir()
	r := tr.Start(t)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		stop = make(chan struct{})
	)
	next.Store(50)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := r.Record(ctx, int(next.Add(1))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	runs := 0
	for time.Now().Before(deadline) {
		rep, err := verify.Verify(ctx, trailOf(tr, state))
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("live trail: %v", rep.Findings)
		}
		runs++
	}
	close(stop)
	wg.Wait()
	r.Stop(t)
	rep := mustVerify(t, trailOf(tr, state))
	if !rep.OK() || rep.Pending != 0 || rep.InPlace != uint64(len(tr.IDs)) {
		t.Fatalf("after stopping: %+v", rep)
	}
	t.Logf("%d verifications while running; %d events in the end", runs, len(tr.IDs))
}

// TestVerifyJournalGone: a missing journal leaves every logged event
// deleted; a damaged frame (checksum not fixed) is an error naming
// journal.ErrCorrupt, not a silent stop.
func TestVerifyJournalGone(t *testing.T) {
	tr := cleanTrail(t)
	path := filepath.Join(tr.JournalDir(), "journal.log")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[20] ^= 1
	b = append(b, b[:100]...) // more data after, so it is no torn tail
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Verify(context.Background(), trailOf(tr, "")); !errors.Is(err, journal.ErrCorrupt) {
		t.Fatalf("damaged journal: %v, want ErrCorrupt", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, trailOf(tr, ""))
	if len(rep.Findings) != events {
		t.Fatalf("%d findings, want %d deleted events", len(rep.Findings), events)
	}
	for _, f := range rep.Findings {
		if f.Kind != verify.KindDeleted || !f.HasIndex {
			t.Fatalf("finding %v, want a deleted event", f)
		}
	}
}
