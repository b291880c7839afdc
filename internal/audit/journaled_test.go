package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
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

func (j *memJournal) Scan(from uint64, fn func(uint64, []byte) error) error { return j.Read(from, fn) }

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

func (l *flakyLog) AppendBatch(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	l.mu.Lock()
	broken := l.broken
	l.mu.Unlock()
	if broken {
		return nil, errors.New("log down")
	}
	return l.Log.AppendBatch(ctx, leaves)
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

// Append writes each event into a recycled buffer: under concurrent
// Appends, every journal entry must still be exactly its own event —
// id of its receipt, canonical bytes AppendCanonical gives for its
// record, a leaf that opens to them, its own patients — including events
// too large for the buffers to be kept.
func TestJournaledAppendEntries(t *testing.T) {
	ctx := context.Background()
	j := &memJournal{}
	st := tempStore(t)
	const base = "https://warden.test/fhir"
	p, err := audit.NewJournaledPipeline(j, nopLog{}, st, base)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) audit.Record {
		r := audit.Record{RequestID: fmt.Sprintf("r%d", i), Time: time.Unix(1700000000, int64(i)).UTC(), Surface: audit.SurfaceFHIR,
			Action: "search-type", Method: "GET", Path: "/fhir/Observation", Status: 200, ClientID: fmt.Sprintf("app-%d", i)}
		n := 1 + i%7
		if i%50 == 0 {
			n = 2000 // an event of well over 64 KiB
		}
		for k := range n {
			r.Patients = append(r.Patients, fmt.Sprintf("p%d-%d", i, k))
			r.Resources = append(r.Resources, fmt.Sprintf("Observation/o%d-%d", i, k))
		}
		return r
	}
	const events = 400
	ids := make([]string, events)
	var wg sync.WaitGroup
	for i := range events {
		wg.Go(func() {
			rc, err := p.Append(ctx, rec(i))
			if err != nil {
				t.Errorf("append %d: %v", i, err)
			}
			ids[i] = rc.EventID
		})
	}
	wg.Wait()
	byID := map[string]int{}
	for i, id := range ids {
		byID[id] = i
	}
	if len(byID) != events {
		t.Fatalf("%d distinct event ids for %d events", len(byID), events)
	}
	err = j.Read(0, func(seq uint64, raw []byte) error {
		e, err := audit.DecodeJournalEntry(raw)
		if err != nil {
			return err
		}
		i, ok := byID[e.ID]
		if !ok {
			return fmt.Errorf("entry %d: id %q was never handed out", seq, e.ID)
		}
		r := rec(i)
		want, err := audit.AppendCanonical(nil, r, base, e.ID)
		if err != nil {
			return err
		}
		if string(e.Canonical) != string(want) {
			t.Errorf("entry %d: canonical event is not the one of its record", seq)
		}
		if !audit.Open(e.Leaf, e.Nonce, e.Canonical) {
			t.Errorf("entry %d: leaf does not open to its event", seq)
		}
		if !e.Time.Equal(r.Time) || len(e.Patients) != len(r.Patients) || e.Patients[0] != r.Patients[0] {
			t.Errorf("entry %d: time or patients are not its record's", seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if j.Len() != events {
		t.Fatalf("%d entries for %d events", j.Len(), events)
	}
}

// nopLog is a log that is never asked for anything (Run is not started).
type nopLog struct{}

func (nopLog) AppendBatch(context.Context, [][]byte) ([]uint64, error) {
	return nil, errors.New("nopLog: not expected to be called")
}

// countingLog is a log whose leaves get consecutive indexes from start;
// it records the size of every AppendBatch.
type countingLog struct {
	mu      sync.Mutex
	next    uint64
	batches []int
}

func (l *countingLog) AppendBatch(_ context.Context, leaves [][]byte) ([]uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]uint64, len(leaves))
	for i := range leaves {
		out[i] = l.next
		l.next++
	}
	l.batches = append(l.batches, len(leaves))
	return out, nil
}

// Under load, the sequencer appends whole entry bundles: once it knows
// where the log ends (after its first round) it closes the open bundle
// with a batch of its own, then appends whole bundles, and leaves less
// than a bundle for the next tick, which appends it even though partial
// (every event reaches the log within an interval). Nothing is skipped
// or appended twice, and the recorded indexes are the log's.
func TestSequencerFillsBundles(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	j := &memJournal{}
	lg := &countingLog{next: 100} // a log that does not start on a bundle boundary
	p, err := audit.NewJournaledPipeline(j, lg, st, "https://warden.test/fhir")
	if err != nil {
		t.Fatal(err)
	}
	const events = 2100
	for i := range events {
		r := audit.Record{RequestID: fmt.Sprintf("r%d", i), Time: time.Now(), Surface: audit.SurfaceFHIR, Action: "read",
			Method: "GET", Path: "/fhir/Patient/p1", Status: 200, ClientID: "app"}
		if _, err := p.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	sequenceAll(t, p, events)
	lg.mu.Lock()
	batches := slices.Clone(lg.batches)
	lg.mu.Unlock()
	// 1,024 read at once (where the log ends is not known yet:
	// 100..1123), 156 to close the bundle at 1280, three whole bundles (to
	// 2048), and the 152 left at the next tick.
	if want := []int{1024, 156, 768, 152}; !slices.Equal(batches, want) {
		t.Errorf("batches %v, want %v", batches, want)
	}
	idx, err := p.LeafIndexes(ctx)
	if err != nil || len(idx) != events {
		t.Fatalf("leaf indexes: %d, %v", len(idx), err)
	}
	for i, x := range idx {
		if x != 100+uint64(i) {
			t.Fatalf("journal entry %d recorded at log index %d, want %d", i, x, 100+i)
		}
	}
}

// sequenceAll runs p's sequencer (every 50 ms) until events are
// sequenced, then stops it.
func sequenceAll(t *testing.T, p *audit.JournaledPipeline, events uint64) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 50*time.Millisecond) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := p.Sequenced(ctx); n < events; n, _ = p.Sequenced(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sequenced", n, events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Append refuses a record it cannot describe, and journals nothing of it.
func TestJournaledAppendRefuses(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	j := &memJournal{}
	p, err := audit.NewJournaledPipeline(j, nopLog{}, st, "https://warden.test/fhir")
	if err != nil {
		t.Fatal(err)
	}
	good := audit.Record{RequestID: "r1", Time: time.Now(), Surface: audit.SurfaceFHIR, Action: "read", Method: "GET",
		Path: "/fhir/Patient/p1", Status: 200, ClientID: "app", Patients: []string{"p1"}}
	for name, spoil := range map[string]func(*audit.Record){
		"zero time":       func(r *audit.Record) { r.Time = time.Time{} },
		"unknown surface": func(r *audit.Record) { r.Surface = "ftp" },
		"bad patient id":  func(r *audit.Record) { r.Patients = []string{"p1", "p/2"} },
		"bad resource":    func(r *audit.Record) { r.Resources = []string{"Patient?name=x"} },
		"no request id":   func(r *audit.Record) { r.RequestID = "" },
	} {
		r := good
		spoil(&r)
		if _, err := p.Append(ctx, r); !errors.Is(err, audit.ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidRecord", name, err)
		}
	}
	if j.Len() != 0 {
		t.Fatalf("refused records left %d journal entries", j.Len())
	}
	if _, err := p.Append(ctx, good); err != nil || j.Len() != 1 {
		t.Fatalf("the good record: %v, %d entries", err, j.Len())
	}
}

// Event ids sort by their request's time (so the searchable copy's index
// of them grows at its end) and are otherwise random: two events of one
// millisecond get different ids.
func TestEventIDsSortByTime(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	p, err := audit.NewJournaledPipeline(&memJournal{}, nopLog{}, st, "https://warden.test/fhir")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 4, 30, 0, 0, time.UTC)
	var ids []string
	for i, d := range []time.Duration{0, 0, time.Millisecond, time.Second, time.Hour} {
		r := audit.Record{RequestID: fmt.Sprintf("r%d", i), Time: at.Add(d), Surface: audit.SurfaceFHIR, Action: "read", Method: "GET",
			Path: "/fhir/Patient/p1", Status: 200, ClientID: "app", Patients: []string{"p1"}}
		rc, err := p.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(rc.EventID) != 32 {
			t.Fatalf("event id %q: want 128 bits in hex", rc.EventID)
		}
		ids = append(ids, rc.EventID)
	}
	if ids[0] == ids[1] || ids[0][12:] == ids[1][12:] {
		t.Fatalf("two events of one millisecond: ids %s and %s", ids[0], ids[1])
	}
	for i := 2; i < len(ids); i++ {
		if ids[i] <= ids[i-1] || ids[i] <= ids[0] {
			t.Fatalf("event %d (later) has id %s, not after %s", i, ids[i], ids[i-1])
		}
	}
}

// tempStore is a SQLite store in the test's temporary directory, closed
// when the test ends.
func tempStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The sequencer reads only the entries it appends in a round, so the next
// round's read goes on where this one stopped: over the journal file
// itself, a burst is read about once, not again from the sparse index's
// mark before each round's start (TestSequencerFillsBundles's rounds,
// which cut reads short to fill bundles, read it about twice before).
func TestSequencerReadsJournalOnce(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	dir := t.TempDir()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	lg := &countingLog{next: 100}
	p, err := audit.NewJournaledPipeline(j, lg, st, "https://warden.test/fhir")
	if err != nil {
		t.Fatal(err)
	}
	const events = 2100
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < events; i += 8 {
				r := audit.Record{RequestID: fmt.Sprintf("r%d", i), Time: time.Now(), Surface: audit.SurfaceFHIR, Action: "read",
					Method: "GET", Path: "/fhir/Patient/p1", Status: 200, ClientID: "app"}
				if _, err := p.Append(ctx, r); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	sequenceAll(t, p, events)
	lg.mu.Lock()
	rounds := len(lg.batches)
	lg.mu.Unlock()
	fi, err := os.Stat(journal.File(dir))
	if err != nil {
		t.Fatal(err)
	}
	if read, size := j.ReadBytes(), uint64(fi.Size()); read > size+size/10 {
		t.Fatalf("%d rounds read %d bytes of a %d-byte journal", rounds, read, size)
	}
}
