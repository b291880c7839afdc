package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLog is a transparency log in memory that fails on demand.
type fakeLog struct {
	mu     sync.Mutex
	leaves [][]byte
	fail   int // the next fail appends fail
}

var errLogDown = errors.New("log down")

func (l *fakeLog) Append(ctx context.Context, leaf []byte) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail > 0 {
		l.fail--
		return 0, errLogDown
	}
	l.leaves = append(l.leaves, bytes.Clone(leaf))
	return uint64(len(l.leaves) - 1), nil
}

// storedEvent is what fakeStore keeps of one Put.
type storedEvent struct {
	canonical []byte
	nonce     [32]byte
	index     uint64
	patients  []string
	t         time.Time
}

// fakeStore is an event store in memory that fails on demand.
type fakeStore struct {
	mu     sync.Mutex
	events map[string]storedEvent
	puts   int
	fail   int  // the next fail Puts fail
	down   bool // every Put fails
}

var errStoreDown = errors.New("store down")

func newFakeStore() *fakeStore { return &fakeStore{events: map[string]storedEvent{}} }

func (s *fakeStore) Put(ctx context.Context, id string, canonical []byte, nonce [32]byte, index uint64, patients []string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.down {
		return errStoreDown
	}
	if s.fail > 0 {
		s.fail--
		return errStoreDown
	}
	if old, ok := s.events[id]; ok && (!bytes.Equal(old.canonical, canonical) || old.index != index) {
		return fmt.Errorf("id reused with other content")
	}
	s.events[id] = storedEvent{bytes.Clone(canonical), nonce, index, slices.Clone(patients), t}
	return nil
}

func (s *fakeStore) get(id string) (storedEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	return e, ok
}

func newTestPipeline(t *testing.T, log Log, store EventStore, dir string) *Pipeline {
	t.Helper()
	p, err := NewPipeline(log, store, PipelineOptions{Base: testBase, SpoolDir: dir, RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkStored asserts that the event of rec is stored with the leaf the
// log holds at its index, and that it is the AuditEvent of r.
func checkStored(t *testing.T, log *fakeLog, store *fakeStore, rec Receipt, r Record) {
	t.Helper()
	e, ok := store.get(rec.EventID)
	if !ok {
		t.Fatalf("event %s not stored", rec.EventID)
	}
	if e.index != rec.Index || int(rec.Index) >= len(log.leaves) {
		t.Fatalf("stored index %d, receipt %d, log size %d", e.index, rec.Index, len(log.leaves))
	}
	if !Open(log.leaves[rec.Index], e.nonce, e.canonical) {
		t.Fatal("stored event does not open the leaf at its index")
	}
	var ev map[string]any
	if err := json.Unmarshal(e.canonical, &ev); err != nil {
		t.Fatal(err)
	}
	if ev["id"] != rec.EventID || ev["resourceType"] != "AuditEvent" {
		t.Errorf("stored event id %v, receipt %s", ev["id"], rec.EventID)
	}
	want, _ := patientIDs(r.Patients)
	if !slices.Equal(e.patients, want) || !e.t.Equal(r.Time.Add(r.Duration)) {
		t.Errorf("stored patients %v time %v", e.patients, e.t)
	}
	checkValid(t, ev)
}

func TestPipelineAppend(t *testing.T) {
	log, store := &fakeLog{}, newFakeStore()
	p := newTestPipeline(t, log, store, t.TempDir())
	for _, name := range []string{"read", "search many patients", "backend client without user"} {
		r := records()[name]
		rec, err := p.Append(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		checkStored(t, log, store, rec, r)
	}
	if p.Spooled() != 0 {
		t.Errorf("%d spooled after success", p.Spooled())
	}
}

func TestPipelineInvalidRecord(t *testing.T) {
	log, store := &fakeLog{}, newFakeStore()
	p := newTestPipeline(t, log, store, t.TempDir())
	r := records()["read"]
	r.Surface = "nope"
	if _, err := p.Append(context.Background(), r); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("err = %v", err)
	}
	if len(log.leaves) != 0 || store.puts != 0 {
		t.Error("an invalid record reached the log or the store")
	}
}

// TestPipelineLogFails: nothing is stored when the log refuses.
func TestPipelineLogFails(t *testing.T) {
	log, store := &fakeLog{fail: 1}, newFakeStore()
	p := newTestPipeline(t, log, store, t.TempDir())
	rec, err := p.Append(context.Background(), records()["read"])
	if !errors.Is(err, ErrLog) || !errors.Is(err, errLogDown) || rec != (Receipt{}) {
		t.Fatalf("Append = %+v, %v; want ErrLog", rec, err)
	}
	if store.puts != 0 || p.Spooled() != 0 {
		t.Error("event stored or spooled although the log refused it")
	}
}

// TestPipelineStoreRetries: transient store failures are retried.
func TestPipelineStoreRetries(t *testing.T) {
	log, store := &fakeLog{}, newFakeStore()
	store.fail = 2
	p := newTestPipeline(t, log, store, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a client that hung up must not stop the event being stored
	r := records()["read"]
	rec, err := p.Append(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if store.puts != 3 {
		t.Errorf("%d puts, want 3", store.puts)
	}
	checkStored(t, log, store, rec, r)
}

// TestPipelineSpoolAndRecover: the log accepted, the store is down: the
// event is spooled, the error reported, and a restarted pipeline stores it.
func TestPipelineSpoolAndRecover(t *testing.T) {
	dir := t.TempDir()
	log, store := &fakeLog{}, newFakeStore()
	store.down = true
	p := newTestPipeline(t, log, store, dir)
	r := records()["break the glass"]
	rec, err := p.Append(context.Background(), r)
	if !errors.Is(err, ErrStore) || errors.Is(err, ErrSpool) {
		t.Fatalf("err = %v; want ErrStore only", err)
	}
	if store.puts != 3 || len(log.leaves) != 1 || rec.Index != 0 || rec.EventID == "" {
		t.Fatalf("puts %d, leaves %d, receipt %+v", store.puts, len(log.leaves), rec)
	}
	if p.Spooled() != 1 {
		t.Fatalf("%d spooled", p.Spooled())
	}
	r2 := records()["read"]
	rec2, err := p.Append(context.Background(), r2)
	if !errors.Is(err, ErrStore) {
		t.Fatal(err)
	}

	// Recovery while the store is still down keeps everything.
	if n, err := p.Recover(context.Background()); !errors.Is(err, ErrStore) || n != 0 || p.Spooled() != 2 {
		t.Fatalf("Recover = %d, %v, spooled %d", n, err, p.Spooled())
	}

	// Restart with the store back.
	store.down = false
	p2 := newTestPipeline(t, log, store, dir)
	if p2.Spooled() != 2 {
		t.Fatalf("restarted pipeline sees %d spooled", p2.Spooled())
	}
	n, err := p2.Recover(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	checkStored(t, log, store, rec, r)
	checkStored(t, log, store, rec2, r2)
	if p2.Spooled() != 0 {
		t.Errorf("%d left in the spool", p2.Spooled())
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("spool directory not empty: %v", files)
	}
	if n, err := p2.Recover(context.Background()); n != 0 || err != nil {
		t.Errorf("second Recover = %d, %v", n, err)
	}
}

func TestPipelineSpoolFull(t *testing.T) {
	log, store := &fakeLog{}, newFakeStore()
	store.down = true
	p, err := NewPipeline(log, store, PipelineOptions{SpoolDir: t.TempDir(), StoreAttempts: 1, MaxSpooled: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(context.Background(), records()["read"]); !errors.Is(err, ErrStore) || errors.Is(err, ErrSpool) {
		t.Fatalf("first: %v", err)
	}
	_, err = p.Append(context.Background(), records()["read"])
	if !errors.Is(err, ErrStore) || !errors.Is(err, ErrSpool) || !errors.Is(err, errStoreDown) {
		t.Fatalf("second: %v; want ErrStore and ErrSpool", err)
	}
	if p.Spooled() != 1 {
		t.Errorf("%d spooled", p.Spooled())
	}
}

// TestRecoverRefusesTamperedSpool: a spool file that no longer opens its
// commitment, is corrupt or is renamed is not stored.
func TestRecoverRefusesTamperedSpool(t *testing.T) {
	tamper := map[string]func(t *testing.T, path string){
		"edited event": func(t *testing.T, path string) {
			var e spooled
			body, _ := os.ReadFile(path)
			json.Unmarshal(body, &e)
			if !bytes.Contains(e.Canonical, []byte("Patient/p1")) {
				t.Fatal("spooled event lacks the patient to edit")
			}
			e.Canonical = bytes.Replace(e.Canonical, []byte("Patient/p1"), []byte("Patient/p2"), 1)
			body, _ = json.Marshal(e)
			os.WriteFile(path, body, 0o600)
		},
		"other index": func(t *testing.T, path string) {
			var e spooled
			body, _ := os.ReadFile(path)
			json.Unmarshal(body, &e)
			e.Index = 7
			body, _ = json.Marshal(e)
			os.WriteFile(path, body, 0o600)
		},
		"corrupt file": func(t *testing.T, path string) { os.WriteFile(path, []byte("{"), 0o600) },
		"renamed": func(t *testing.T, path string) {
			os.Rename(path, filepath.Join(filepath.Dir(path), "00000000000000000009-x"+spoolExt))
		},
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			log, store := &fakeLog{}, newFakeStore()
			store.down = true
			p := newTestPipeline(t, log, store, dir)
			if _, err := p.Append(context.Background(), records()["read"]); !errors.Is(err, ErrStore) {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*"+spoolExt))
			if len(files) != 1 {
				t.Fatalf("spool files: %v", files)
			}
			f(t, files[0])
			// A second, intact event is recovered all the same.
			good, err := p.Append(context.Background(), records()["search many patients"])
			if !errors.Is(err, ErrStore) {
				t.Fatal(err)
			}
			store.down = false
			p2 := newTestPipeline(t, log, store, dir)
			n, err := p2.Recover(context.Background())
			if !errors.Is(err, ErrSpool) || n != 1 || len(store.events) != 1 {
				t.Fatalf("Recover = %d, %v, stored %d; want ErrSpool and only the intact event", n, err, len(store.events))
			}
			checkStored(t, log, store, good, records()["search many patients"])
			if rej, _ := filepath.Glob(filepath.Join(dir, "*"+spoolRejected)); len(rej) != 1 || p2.Spooled() != 0 {
				t.Errorf("rejected files %v, spooled %d", rej, p2.Spooled())
			}
			if n, err := p2.Recover(context.Background()); n != 0 || err != nil {
				t.Errorf("second Recover = %d, %v: a rejected file was replayed", n, err)
			}
		})
	}
}

func TestSpoolRemovesInterruptedWrites(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "00000000000000000001-abc"+spoolTmp)
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newTestPipeline(t, &fakeLog{}, newFakeStore(), dir)
	if p.Spooled() != 0 {
		t.Errorf("half-written file counted")
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-written file left: %v", err)
	}
}

func TestNewPipelineRefuses(t *testing.T) {
	if _, err := NewPipeline(&fakeLog{}, newFakeStore(), PipelineOptions{}); !errors.Is(err, ErrSpool) {
		t.Errorf("no spool dir: %v", err)
	}
	if _, err := NewPipeline(nil, newFakeStore(), PipelineOptions{SpoolDir: t.TempDir()}); err == nil {
		t.Error("nil log accepted")
	}
	if _, err := NewPipeline(&fakeLog{}, nil, PipelineOptions{SpoolDir: t.TempDir()}); err == nil {
		t.Error("nil store accepted")
	}
}

// TestNothingLeaksToTheLog: what reaches the log is 32-byte leaves and
// nothing else; no input string of any record appears in them, nor in the
// errors the pipeline returns.
func TestNothingLeaksToTheLog(t *testing.T) {
	log, store := &fakeLog{}, newFakeStore()
	p := newTestPipeline(t, log, store, t.TempDir())
	var inputs []string
	for _, r := range records() {
		r.Patients = append(r.Patients, "leak-patient-7a")
		r.Query = url.Values{"name": {"leak-query-Smith"}}
		r.Subject = "leak-subject-bob"
		r.PeerAddr = netip.MustParseAddr("203.0.113.77")
		if _, err := p.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, r.RequestID, r.ClientID, r.Path, r.DenyRule, r.TokenID, r.BreakGlassReason)
		inputs = append(inputs, r.Patients...)
	}
	inputs = append(inputs, "leak-patient-7a", "leak-query-Smith", "leak-subject-bob", "203.0.113.77",
		string(netip.MustParseAddr("203.0.113.77").AsSlice()))
	all := bytes.Join(log.leaves, nil)
	for _, leaf := range log.leaves {
		if len(leaf) != LeafSize {
			t.Fatalf("a %d-byte leaf reached the log", len(leaf))
		}
	}
	for _, s := range inputs {
		if len(s) >= 4 && bytes.Contains(all, []byte(s)) {
			t.Errorf("input %q found in the log", s)
		}
	}
	// The stored events, not the log, carry them.
	var local []byte
	for _, e := range store.events {
		local = append(local, e.canonical...)
	}
	for _, s := range []string{"leak-patient-7a", "leak-subject-bob", "203.0.113.77"} {
		if !bytes.Contains(local, []byte(s)) {
			t.Errorf("%q missing from the stored events", s)
		}
	}

	// Errors quote no input either.
	log.fail = 1
	r := records()["read"]
	_, errLog := p.Append(context.Background(), r)
	store.down = true
	_, errStore := p.Append(context.Background(), r)
	for _, err := range []error{errLog, errStore} {
		for _, s := range []string{"p1", "alice", "prac-1", "tok-123", "192.0.2.7", "growth-chart"} {
			if err == nil || strings.Contains(err.Error(), s) {
				t.Errorf("error %v quotes %q", err, s)
			}
		}
	}
}

func TestPipelineConcurrent(t *testing.T) {
	log, store := &fakeLog{}, newFakeStore()
	p := newTestPipeline(t, log, store, t.TempDir())
	var wg sync.WaitGroup
	recs := make(chan Receipt, 200)
	for range 20 {
		wg.Go(func() {
			for range 10 {
				rec, err := p.Append(context.Background(), records()["read"])
				if err != nil {
					t.Error(err)
					return
				}
				recs <- rec
			}
		})
	}
	wg.Wait()
	close(recs)
	indexes := map[uint64]bool{}
	for rec := range recs {
		if indexes[rec.Index] {
			t.Fatalf("index %d twice", rec.Index)
		}
		indexes[rec.Index] = true
		checkStored(t, log, store, rec, records()["read"])
	}
	if len(indexes) != 200 {
		t.Errorf("%d receipts", len(indexes))
	}
}

var _ Sink = (*Pipeline)(nil)
