package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// memJournal is a journal in memory (the real one is
// internal/audit/journal, tested on its own).
type memJournal struct {
	mu      sync.Mutex
	entries [][]byte
}

func (j *memJournal) Append(_ context.Context, e []byte) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, append([]byte(nil), e...))
	return uint64(len(j.entries) - 1), nil
}

func (j *memJournal) Read(from uint64, fn func(uint64, []byte) error) error {
	j.mu.Lock()
	list := j.entries
	j.mu.Unlock()
	for i := from; i < uint64(len(list)); i++ {
		if err := fn(i, list[i]); err != nil {
			return err
		}
	}
	return nil
}

func (j *memJournal) Len() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return uint64(len(j.entries))
}

// flakyLog fails while broken is set.
type flakyLog struct {
	audit.Log
	mu     sync.Mutex
	broken bool
}

func (l *flakyLog) Append(ctx context.Context, leaf []byte) (uint64, error) {
	l.mu.Lock()
	broken := l.broken
	l.mu.Unlock()
	if broken {
		return 0, errors.New("log down")
	}
	return l.Log.Append(ctx, leaf)
}

func TestJournaledPipeline(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	skey, _, err := tlog.NewKey("warden.test/audit")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := tlog.Open(ctx, tlog.Options{Dir: filepath.Join(dir, "log"), Origin: signer.Name(), Signer: signer, BatchMaxSize: 64, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(ctx)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j := &memJournal{}
	flaky := &flakyLog{Log: lg, broken: true}
	p, err := audit.NewJournaledPipeline(j, flaky, st, "https://warden.test/fhir")
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) audit.Record {
		return audit.Record{RequestID: fmt.Sprintf("r%d", i), Time: time.Now(), Surface: audit.SurfaceFHIR, Action: "read",
			Method: "GET", Path: "/fhir/Patient/p1", Status: 200, ClientID: "app", Patients: []string{"p1"}, Resources: []string{"Patient/p1"}}
	}
	// The log is down: Append still returns once journaled, and
	// sequencing waits without losing anything.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Append(ctx, rec(i)); err != nil {
				t.Errorf("append: %v", err)
			}
		}()
	}
	wg.Wait()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx, 20*time.Millisecond) }()
	time.Sleep(100 * time.Millisecond)
	if n, _ := p.Sequenced(ctx); n != 0 {
		t.Fatalf("%d entries sequenced while the log was down", n)
	}
	if err := p.Err(); err == nil {
		t.Error("a failing log was not reported")
	}
	flaky.mu.Lock()
	flaky.broken = false
	flaky.mu.Unlock()
	for i := 50; i < 100; i++ {
		if _, err := p.Append(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, _ := p.Sequenced(ctx); n == 100 {
			break
		}
		if time.Now().After(deadline) {
			n, _ := p.Sequenced(ctx)
			t.Fatalf("only %d of 100 sequenced", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a round after the last one that sequenced
	if err := p.Err(); err != nil {
		t.Errorf("the log recovered but Err still reports %v", err)
	}
	stop()
	<-done
	// Every journal entry's commitment is in the log at its recorded index,
	// and opens to its event.
	idx, err := p.LeafIndexes(ctx)
	if err != nil || len(idx) != 100 {
		t.Fatalf("leaf indexes: %d, %v", len(idx), err)
	}
	seen := map[uint64]bool{}
	err = j.Read(0, func(seq uint64, raw []byte) error {
		e, err := audit.DecodeJournalEntry(raw)
		if err != nil {
			return err
		}
		if seen[idx[seq]] {
			t.Errorf("index %d recorded twice", idx[seq])
		}
		seen[idx[seq]] = true
		leaf, err := lg.Leaf(ctx, idx[seq])
		if err != nil {
			return err
		}
		if string(leaf) != string(e.Leaf) || !audit.Open(leaf, e.Nonce, e.Canonical) {
			t.Errorf("entry %d: the log's leaf %d does not commit to its event", seq, idx[seq])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestJournalEntryEncoding(t *testing.T) {
	var nonce [32]byte
	nonce[3] = 9
	leaf := make([]byte, audit.LeafSize)
	leaf[0] = 1
	e := audit.JournalEntry{ID: "ev1", Leaf: leaf, Nonce: nonce, Patients: []string{"p1", "p-2"}, Time: time.Unix(1700000000, 123).UTC(), Canonical: []byte(`{"resourceType":"AuditEvent"}`)}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.DecodeJournalEntry(b)
	if err != nil || got.ID != e.ID || string(got.Leaf) != string(leaf) || got.Nonce != nonce || !got.Time.Equal(e.Time) ||
		len(got.Patients) != 2 || got.Patients[1] != "p-2" || string(got.Canonical) != string(e.Canonical) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	// Every truncation of the header is refused, never a panic.
	for n := range 80 {
		if n >= len(b)-len(e.Canonical) {
			break
		}
		if _, err := audit.DecodeJournalEntry(b[:n]); !errors.Is(err, audit.ErrBadEntry) {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
	if _, err := (audit.JournalEntry{Leaf: []byte{1}}).Encode(); !errors.Is(err, audit.ErrBadEntry) {
		t.Errorf("short leaf: %v", err)
	}
}
