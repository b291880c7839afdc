package index_test

import (
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

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

const base = "https://warden.example/fhir"

// database is a store that also keeps records, as both backends do.
type database interface {
	store.Store
	store.Records
}

// backends are the stores the tests run on: SQLite always, PostgreSQL
// when WARDEN_TEST_POSTGRES names a database.
func backends(t testing.TB) map[string]func(testing.TB) database {
	b := map[string]func(testing.TB) database{
		"sqlite": func(t testing.TB) database {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "warden.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	if os.Getenv("WARDEN_TEST_POSTGRES") != "" {
		b["postgres"] = openPostgres
	}
	return b
}

// openPostgres opens a store in a fresh schema, dropped after the test.
func openPostgres(t testing.TB) database {
	s, err := postgres.Open(context.Background(), storetest.PostgresURL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nopLog is a transparency log that accepts everything (the indexer
// never looks at it; the pipeline needs one to journal events).
type nopLog struct{}

func (nopLog) AppendBatch(_ context.Context, leaves [][]byte) ([]uint64, error) {
	return make([]uint64, len(leaves)), nil
}

// trail journals records through the real JournaledPipeline and returns
// the journal and each record's event id.
func trail(t testing.TB, db store.Records, records []audit.Record) (*journal.Journal, []string) {
	t.Helper()
	return trailIn(t, filepath.Join(t.TempDir(), "journal"), db, records)
}

// trailIn is trail with the journal in dir.
func trailIn(t testing.TB, dir string, db store.Records, records []audit.Record) (*journal.Journal, []string) {
	t.Helper()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	p, err := audit.NewJournaledPipeline(j, nopLog{}, db, base)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(records))
	for i, r := range records {
		rc, err := p.Append(context.Background(), r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		ids[i] = rc.EventID
	}
	return j, ids
}

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// variedRecords returns n records over the three surfaces, with users,
// backend clients, patients, resources, denials and server failures.
func variedRecords(n int) []audit.Record {
	actions := []string{"read", "search-type", "update", "create", "delete", "vread"}
	out := make([]audit.Record, n)
	for i := range out {
		r := audit.Record{
			RequestID: fmt.Sprintf("req-%d", i),
			Time:      t0.Add(time.Duration(i) * time.Minute),
			Duration:  time.Duration(i%7) * time.Millisecond,
			Surface:   audit.SurfaceFHIR,
			Action:    actions[i%len(actions)],
			Method:    "GET",
			Path:      "/fhir/Observation",
			Status:    200,
			ClientID:  fmt.Sprintf("app-%d", i%3),
			PeerAddr:  netip.MustParseAddr("192.0.2.7"),
			TokenID:   fmt.Sprintf("jti-%d", i),
		}
		if i%2 == 0 {
			r.Subject = fmt.Sprintf("user-%d", i%4)
			r.FHIRUser = fmt.Sprintf("Practitioner/%d", i%4)
		}
		if i%3 != 2 {
			r.Patients = []string{fmt.Sprintf("p%d", i%5)}
			if i%10 == 0 {
				r.Patients = append(r.Patients, "Patient/p9")
			}
			r.Resources = []string{fmt.Sprintf("Observation/o%d", i%6)}
		}
		if i%4 == 1 {
			r.Query = url.Values{"code": {"1234-5"}, "patient": {"p1"}}
		}
		switch i % 9 {
		case 4:
			r.Status, r.DenyRule = 403, "scope"
		case 8:
			r.Status = 503
		}
		if i%11 == 5 {
			r.Surface, r.Action, r.Path, r.FHIRUser, r.Patients, r.Resources = audit.SurfaceAuth, "token", "/auth/token", "", nil, nil
		}
		if i%17 == 3 {
			r.FHIRUser = base + "/Practitioner/77" // an absolute fhirUser of this server
		}
		if i%13 == 6 {
			r.Surface, r.Action, r.Path, r.Patients, r.Resources = audit.SurfaceAdmin, "client-add", "/admin/clients", nil, nil
		}
		out[i] = r
	}
	return out
}

func TestIndexAndSearch(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) { testIndexAndSearch(t, open(t)) })
	}
}

func testIndexAndSearch(t *testing.T, db database) {
	ctx := context.Background()
	records := variedRecords(120)
	j, ids := trail(t, db, records)
	x, err := index.New(j, db, db, index.Options{Batch: 32, Base: base})
	if err != nil {
		t.Fatal(err)
	}
	n, err := x.CatchUp(ctx)
	if err != nil || n != len(records) {
		t.Fatalf("CatchUp = %d, %v; want %d", n, err, len(records))
	}
	if c, _ := x.Cursor(ctx); c != uint64(len(records)) {
		t.Fatalf("cursor %d, want %d", c, len(records))
	}

	// Every stored resource is the journaled event plus meta.
	queries := 0
	for i, id := range ids {
		res, err := db.Read(ctx, "AuditEvent", id)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want, err := audit.Build(records[i], base)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(res.JSON, &got); err != nil {
			t.Fatal(err)
		}
		meta := got["meta"].(map[string]any)
		if meta["versionId"] != "1" || res.Version != 1 {
			t.Fatalf("event %d: version %v/%d", i, meta["versionId"], res.Version)
		}
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(got, "meta")
		}
		want["id"] = id
		hadQuery := strings.Contains(string(mustJSON(t, want)), `"query":`)
		index.StripQueries(want) // the searchable copy keeps no query strings
		wantJSON, _ := json.Marshal(want)
		gotJSON, _ := json.Marshal(got)
		if string(wantJSON) != string(gotJSON) {
			t.Fatalf("event %d stored as\n%s\nwant\n%s", i, gotJSON, wantJSON)
		}
		if hadQuery && strings.Contains(string(res.JSON), `"query":`) {
			t.Fatalf("event %d: the searchable copy kept the query string", i)
		}
		queries += map[bool]int{true: 1}[hadQuery]
	}
	if queries == 0 {
		t.Fatal("no indexed event had a query string: the stripping is not tested")
	}

	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	// expect computes the matching event ids from the records alone.
	expect := func(match func(r audit.Record) bool) []string {
		var out []string
		for i, r := range records {
			if match(r) {
				out = append(out, ids[i])
			}
		}
		slices.Sort(out)
		return out
	}
	hasPatient := func(r audit.Record, id string) bool {
		return slices.Contains(r.Patients, id) || slices.Contains(r.Patients, "Patient/"+id)
	}
	outcome := func(r audit.Record) string {
		switch {
		case r.Status >= 500:
			return audit.OutcomeSerious
		case r.Status >= 400:
			return audit.OutcomeMinor
		}
		return audit.OutcomeSuccess
	}
	from, to := t0.Add(30*time.Minute), t0.Add(60*time.Minute)
	cases := []struct {
		name   string
		params url.Values
		want   []string
	}{
		{"patient", url.Values{"patient": {"Patient/p1"}}, expect(func(r audit.Record) bool { return hasPatient(r, "p1") })},
		{"second patient of an event", url.Values{"patient": {"p9"}}, expect(func(r audit.Record) bool { return hasPatient(r, "p9") })},
		{"agent who", url.Values{"agent": {"Practitioner/2"}}, expect(func(r audit.Record) bool { return r.FHIRUser == "Practitioner/2" })},
		{"agent who recorded as an absolute URL of this server", url.Values{"agent": {"Practitioner/77"}}, expect(func(r audit.Record) bool { return r.FHIRUser == base+"/Practitioner/77" })},
		{"date range", url.Values{"date": {"ge" + from.Format(time.RFC3339), "lt" + to.Format(time.RFC3339)}}, expect(func(r audit.Record) bool {
			rec := r.Time.Add(r.Duration)
			return !rec.Before(from) && rec.Before(to)
		})},
		{"outcome minor", url.Values{"outcome": {"4"}}, expect(func(r audit.Record) bool { return outcome(r) == audit.OutcomeMinor })},
		{"outcome serious", url.Values{"outcome": {"8"}}, expect(func(r audit.Record) bool { return outcome(r) == audit.OutcomeSerious })},
		{"entity", url.Values{"entity": {"Observation/o3"}}, expect(func(r audit.Record) bool { return slices.Contains(r.Resources, "Observation/o3") })},
		{"patient and outcome", url.Values{"patient": {"p2"}, "outcome": {"0"}}, expect(func(r audit.Record) bool {
			return hasPatient(r, "p2") && outcome(r) == audit.OutcomeSuccess
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.want) == 0 {
				t.Fatal("the case selects no event: it tests nothing")
			}
			q, err := search.Parse(reg, "AuditEvent", c.params, search.Options{MaxCount: 1000, DefaultCount: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if got := searchIDs(t, db, q); !slices.Equal(got, c.want) {
				t.Fatalf("got %d events %v\nwant %d %v", len(got), got, len(c.want), c.want)
			}
		})
	}
	t.Run("patient compartment", func(t *testing.T) {
		q, err := search.Parse(reg, "AuditEvent", url.Values{}, search.Options{MaxCount: 1000, DefaultCount: 1000})
		if err != nil {
			t.Fatal(err)
		}
		q.Compartment = &search.Compartment{Type: "Patient", ID: "p3"}
		want := expect(func(r audit.Record) bool { return hasPatient(r, "p3") })
		if got := searchIDs(t, db, q); len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

func searchIDs(t *testing.T, db store.Store, q *search.Query) []string {
	t.Helper()
	var out []string
	page := store.PageRequest{}
	for {
		res, err := db.Search(context.Background(), q, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Matches {
			out = append(out, m.ID)
		}
		if res.Next == "" {
			break
		}
		page.Cursor = res.Next
	}
	slices.Sort(out)
	return out
}

// TestCrashRepeat: a crash after a batch was stored but before the cursor
// was persisted makes the indexer store the batch again: that must
// neither fail nor make a second version or a duplicate.
func TestCrashRepeat(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)
			records := variedRecords(50)
			j, ids := trail(t, db, records)
			x, err := index.New(j, db, db, index.Options{Batch: 16})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := x.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			// The crash: the cursor goes back to before the last two batches.
			if err := db.PutRecord(ctx, store.Record{Kind: index.KindCursor, Key: "next", Value: []byte("20")}); err != nil {
				t.Fatal(err)
			}
			n, err := x.CatchUp(ctx)
			if err != nil || n != 30 {
				t.Fatalf("CatchUp after the crash = %d, %v; want 30, nil", n, err)
			}
			// And from scratch (the cursor record lost).
			if _, err := db.DeleteRecord(ctx, index.KindCursor, "next"); err != nil {
				t.Fatal(err)
			}
			if _, err := x.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				h, err := db.History(ctx, store.HistoryQuery{Type: "AuditEvent", ID: id, Count: 10})
				if err != nil {
					t.Fatal(err)
				}
				if h.Total != 1 {
					t.Fatalf("event %s has %d versions", id, h.Total)
				}
			}
			h, err := db.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: 0})
			if err != nil || h.Total != len(records) {
				t.Fatalf("type history total %d, %v; want %d", h.Total, err, len(records))
			}
		})
	}
}

// memJournal is a journal in memory, for entries the pipeline would
// never write.
type memJournal [][]byte

func (j memJournal) Read(from uint64, fn func(uint64, []byte) error) error {
	for i := from; i < uint64(len(j)); i++ {
		if err := fn(i, j[i]); err != nil {
			return err
		}
	}
	return nil
}
func (j memJournal) Len() uint64 { return uint64(len(j)) }

// TestBadEntries: the indexer stops at an entry it cannot store, without
// moving its cursor past it, rather than silently skip an event.
func TestBadEntries(t *testing.T) {
	good, err := audit.AppendCanonical(nil, variedRecords(1)[0], base, "e1")
	if err != nil {
		t.Fatal(err)
	}
	entry := func(id string, canonical []byte) []byte {
		b, err := audit.JournalEntry{ID: id, Leaf: make([]byte, audit.LeafSize), Time: t0, Canonical: canonical}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name  string
		entry []byte
		want  error
	}{
		{"truncated entry", []byte("short"), audit.ErrBadEntry},
		{"event not JSON", entry("e1", []byte("{not json")), index.ErrBadEvent},
		{"id differs from the entry's", entry("e2", good), index.ErrBadEvent},
		{"not an AuditEvent", entry("e1", []byte(`{"id":"e1","resourceType":"Patient"}`)), index.ErrBadEvent},
		{"empty id", entry("", []byte(`{"resourceType":"AuditEvent"}`)), index.ErrBadEvent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db := backends(t)["sqlite"](t)
			x, err := index.New(memJournal{entry("e1", good), c.entry}, db, db, index.Options{Batch: 1})
			if err != nil {
				t.Fatal(err)
			}
			n, err := x.CatchUp(ctx)
			if !errors.Is(err, c.want) || n != 1 {
				t.Fatalf("CatchUp = %d, %v; want 1, %v", n, err, c.want)
			}
			if cur, _ := x.Cursor(ctx); cur != 1 {
				t.Fatalf("cursor moved to %d past the bad entry", cur)
			}
		})
	}
}

// TestRun: the background loop indexes what the journal receives while
// it runs.
func TestRun(t *testing.T) {
	db := backends(t)["sqlite"](t)
	records := variedRecords(30)
	j, ids := trail(t, db, records)
	x, err := index.New(j, db, db, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx, 10*time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := db.Read(context.Background(), "AuditEvent", ids[len(ids)-1]); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not index the events")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if err := x.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}

// Run keeps to its rate; CatchUp (before an AuditEvent read) does not.
func TestRunRate(t *testing.T) {
	db := backends(t)["sqlite"](t)
	j, ids := trail(t, db, variedRecords(60))
	x, err := index.New(j, db, db, index.Options{Rate: 50, Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx, 100*time.Millisecond) }()
	time.Sleep(250 * time.Millisecond) // about three rounds of at most 5 events
	cancel()
	<-done
	if n := x.Indexed(); n == 0 || n > 20 {
		t.Fatalf("Run at 50 events/s indexed %d events in 250 ms", n)
	}
	if _, err := x.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if x.Indexed() != uint64(len(ids)) {
		t.Fatalf("CatchUp left %d of %d indexed", x.Indexed(), len(ids))
	}
}

// Load above the rate does not pile up without end: with more than
// MaxBacklog events waiting, Run indexes at full speed down to half the
// bound, then keeps to its rate again. A restarted indexer measures the
// backlog from the persisted cursor, not from zero.
func TestRunMaxBacklog(t *testing.T) {
	db := backends(t)["sqlite"](t)
	j, ids := trail(t, db, variedRecords(300))
	// In the background, transactions stay at two batches however far
	// behind: requests' writes must not wait behind larger ones.
	counted := &txSizes{Store: db}
	defer func() {
		if !slices.Contains(counted.sizes, 16) {
			t.Errorf("Run far behind wrote transactions of %v events, none of two batches", counted.sizes)
		}
		for _, n := range counted.sizes {
			if n > 16 {
				t.Errorf("Run wrote a transaction of %d events, more than two batches of 8", n)
			}
		}
	}()
	run := func(settle func(*index.Indexer) bool) uint64 {
		t.Helper()
		x, err := index.New(j, counted, db, index.Options{Rate: 10, Batch: 8, MaxBacklog: 100})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- x.Run(ctx, time.Second) }()
		for deadline := time.Now().Add(5 * time.Second); !settle(x) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		if err := x.Err(); err != nil {
			t.Fatal(err)
		}
		return x.Indexed()
	}
	// 300 waiting, bound 100: the first round indexes 250 of them at once
	// (the rate alone would allow 8), and the next round is a second away.
	if n := run(func(x *index.Indexer) bool { return x.Indexed() >= 250 && x.Backlog() == 50 }); n != 250 {
		t.Fatalf("over the backlog bound, the first round indexed up to %d, want 250 (half the bound left)", n)
	}
	// 50 waiting: within the bound, a restarted indexer keeps to its rate.
	n := run(func(x *index.Indexer) bool { return x.Indexed() > 250 && x.Backlog() == 42 })
	if n != 258 {
		t.Fatalf("within the backlog bound, a restarted indexer's first round reached %d, want 258 (one batch)", n)
	}
	if uint64(len(ids)) != 300 {
		t.Fatalf("trail has %d events", len(ids))
	}
}

// txSizes is a store counting the writes of each transaction.
type txSizes struct {
	store.Store
	mu    sync.Mutex
	sizes []int
}

type countingTx struct {
	store.Tx
	n *int
}

func (c countingTx) Put(ctx context.Context, w store.Write) error { *c.n++; return c.Tx.Put(ctx, w) }

func (s *txSizes) Tx(ctx context.Context, fn func(store.Tx) error) error {
	n := 0
	err := s.Store.Tx(ctx, func(tx store.Tx) error { return fn(countingTx{tx, &n}) })
	s.mu.Lock()
	s.sizes = append(s.sizes, n)
	s.mu.Unlock()
	return err
}

// Far behind, the indexer writes larger transactions (cheaper per event);
// the last stretch, and a small backlog, in transactions of Batch.
func TestCatchUpBatches(t *testing.T) {
	db := backends(t)["sqlite"](t)
	j, _ := trail(t, db, variedRecords(300))
	counted := &txSizes{Store: db}
	x, err := index.New(j, counted, db, index.Options{Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := x.CatchUp(context.Background()); err != nil || n != 300 {
		t.Fatalf("CatchUp = %d, %v", n, err)
	}
	// 300 waiting, more than 16 batches of 8: 32 at a time while more
	// than 128 wait (six of them, to 108 left), then 8 at a time.
	want := []int{32, 32, 32, 32, 32, 32, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4}
	if !slices.Equal(counted.sizes, want) {
		t.Fatalf("transactions of %v events, want %v", counted.sizes, want)
	}
}

// A rate of many batches per interval is kept by one batch at a time at
// even steps: after a quarter of the interval about a quarter of the
// interval's events are indexed, not all of them (one burst) nor none.
func TestRunRateSpread(t *testing.T) {
	db := backends(t)["sqlite"](t)
	j, ids := trail(t, db, variedRecords(400))
	// 400 events/s with batches of 20, in rounds of one second: one
	// batch every 50 ms.
	x, err := index.New(j, db, db, index.Options{Rate: 400, Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- x.Run(ctx, time.Second) }()
	time.Sleep(260 * time.Millisecond)
	cancel()
	<-done
	elapsed := time.Since(start)
	n := x.Indexed()
	if limit := uint64(400*elapsed.Seconds()) + 20; n == 0 || n > limit || n%20 != 0 {
		t.Fatalf("after %v at 400 events/s in batches of 20: %d indexed, want whole batches, at least one and at most %d", elapsed, n, limit)
	}
	if _, err := x.CatchUp(context.Background()); err != nil || x.Indexed() != uint64(len(ids)) {
		t.Fatalf("CatchUp: %d of %d indexed, %v", x.Indexed(), len(ids), err)
	}
}

// BenchmarkIndex measures events indexed per second into a fresh store
// (new), and over events already stored (re-index, after a crash).
func BenchmarkIndex(b *testing.B) {
	records := variedRecords(2000)
	jdir := filepath.Join(b.TempDir(), "journal")
	j, _ := trailIn(b, jdir, backends(b)["sqlite"](b), records)
	run := func(b *testing.B, open func(testing.TB) database, fresh bool) {
		db := open(b)
		if !fresh {
			x, err := index.New(j, db, db, index.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := x.CatchUp(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		for range b.N {
			b.StopTimer()
			if fresh {
				db = open(b)
			}
			if _, err := db.DeleteRecord(context.Background(), index.KindCursor, "next"); err != nil {
				b.Fatal(err)
			}
			x, err := index.New(j, db, db, index.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if n, err := x.CatchUp(context.Background()); err != nil || n != len(records) {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(len(records)*b.N)/b.Elapsed().Seconds(), "events/s")
	}
	for name, open := range backends(b) {
		b.Run(name+"/new", func(b *testing.B) { run(b, open, true) })
		b.Run(name+"/re-index", func(b *testing.B) { run(b, open, false) })
	}
	// The trail's own store, written as Run and CatchUp write it: keeping
	// where the journal holds each event (as the server does), or copies.
	for _, journaled := range []bool{true, false} {
		name := "eventdb/new"
		if !journaled {
			name = "eventdb-copies/new"
		}
		b.Run(name, func(b *testing.B) { benchmarkEventdb(b, j, jdir, len(records), journaled) })
	}
}

func benchmarkEventdb(b *testing.B, j *journal.Journal, jdir string, n int, journaled bool) {
	for range b.N {
		b.StopTimer()
		db, err := eventdb.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if journaled {
			if err := db.UseJournal(journal.File(jdir)); err != nil {
				b.Fatal(err)
			}
		}
		x, err := index.NewSink(j, db, index.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if got, err := x.CatchUp(context.Background()); err != nil || got != n {
			b.Fatal(got, err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
