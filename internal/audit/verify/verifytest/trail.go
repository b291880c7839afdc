// Package verifytest builds real audit trails for tests of verification:
// a journal, a Tessera log and leaf-index records in a data directory laid
// out as a Warden server keeps it, written through the production
// audit.JournaledPipeline. It is imported only by _test.go files and must
// never be used by the server.
package verifytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// Origin is the log origin (and key name) of every test trail.
const Origin = "warden.test/audit"

// Trail is an audit trail in DataDir: DataDir/audit/journal,
// DataDir/audit/log, DataDir/audit/log.vkey and the store DataDir/warden.db.
type Trail struct {
	DataDir    string
	SKey, VKey string
	Store      interface {
		store.Records
		Close() error
	}
	IDs []string // event ids in journal order
}

// New creates an empty trail in dataDir with a fresh log key; the store is
// closed when the test ends.
func New(t testing.TB, dataDir string) *Trail {
	t.Helper()
	skey, vkey, err := tlog.NewKey(Origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "audit"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "audit", "log.vkey"), []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "warden.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Trail{DataDir: dataDir, SKey: skey, VKey: vkey, Store: st}
}

// JournalDir is the journal's directory.
func (tr *Trail) JournalDir() string { return filepath.Join(tr.DataDir, "audit", "journal") }

// LogDir is the transparency log's directory.
func (tr *Trail) LogDir() string { return filepath.Join(tr.DataDir, "audit", "log") }

// Signer is the log's checkpoint signer.
func (tr *Trail) Signer(t testing.TB) note.Signer {
	t.Helper()
	s, err := note.NewSigner(tr.SKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Running is a trail's pipeline at work, as in a running server: a
// JournaledPipeline over the trail's journal, log and store, sequencing.
type Running struct {
	tr   *Trail
	j    *journal.Journal
	lg   *tlog.Log
	p    *audit.JournaledPipeline
	stop context.CancelFunc
	done chan error
}

// Start opens the trail's journal and log and starts sequencing.
func (tr *Trail) Start(t testing.TB) *Running {
	t.Helper()
	ctx := context.Background()
	lg, err := tlog.Open(ctx, tlog.Options{Dir: tr.LogDir(), Origin: Origin, Signer: tr.Signer(t),
		BatchMaxSize: 512, BatchMaxAge: 10 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(tr.JournalDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := audit.NewJournaledPipeline(j, lg, tr.Store, "https://warden.test/fhir")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	r := &Running{tr: tr, j: j, lg: lg, p: p, stop: stop, done: make(chan error, 1)}
	go func() { r.done <- p.Run(runCtx, 20*time.Millisecond) }()
	return r
}

// Record appends event k (its fields derive from k) and returns once it
// is journaled.
func (r *Running) Record(ctx context.Context, k int) error {
	_, err := r.p.Append(ctx, audit.Record{RequestID: fmt.Sprintf("r%d", k), Time: time.Unix(1_760_000_000+int64(k), 0),
		Surface: audit.SurfaceFHIR, Action: "read", Method: "GET", Path: fmt.Sprintf("/fhir/Patient/p%d", k%97),
		Status: 200, ClientID: "app", Patients: []string{fmt.Sprintf("p%d", k%97)}, Resources: []string{fmt.Sprintf("Patient/p%d", k%97)}})
	return err
}

// Stop waits until every journaled event is sequenced, closes the log
// (publishing a checkpoint that covers them) and the journal, and
// refreshes the trail's IDs.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for {
		got, err := r.p.Sequenced(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got == r.j.Len() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.stop()
	<-r.done
	if err := r.lg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.j.Close(); err != nil {
		t.Fatal(err)
	}
	tr := r.tr
	tr.IDs = tr.IDs[:0]
	_, err := journal.Scan(tr.JournalDir(), func(_ uint64, raw []byte) error {
		e, err := audit.DecodeJournalEntry(raw)
		if err != nil {
			return err
		}
		tr.IDs = append(tr.IDs, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Append records n events from up to 256 concurrent requests and returns
// once all are sequenced into the log and a checkpoint covers them.
func (tr *Trail) Append(t testing.TB, n int) {
	t.Helper()
	r := tr.Start(t)
	start := len(tr.IDs)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	work := make(chan int)
	for range min(n, 256) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := r.Record(context.Background(), start+i); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	r.Stop(t)
}

// LeafIndexes is the pipeline's own reading of the leaf-index records.
func (r *Running) LeafIndexes(ctx context.Context) ([]uint64, error) { return r.p.LeafIndexes(ctx) }
