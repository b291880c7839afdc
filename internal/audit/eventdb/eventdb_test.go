package eventdb_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// event is a minimal stored AuditEvent: an outcome token and a patient.
func event(i int, patient string) store.Write {
	at := t0.Add(time.Duration(i) * time.Second)
	body := fmt.Sprintf(`{"resourceType":"AuditEvent","id":"ev-%d","outcome":"%d"}`, i, i%2*4)
	w := store.Write{
		Resource: store.Resource{Type: "AuditEvent", ID: fmt.Sprintf("ev-%d", i), Version: 1, LastUpdated: at, JSON: []byte(body)},
		Entries: []searchparam.Entry{
			{Param: "outcome", Type: searchparam.Token, Code: fmt.Sprint(i % 2 * 4)},
			{Param: "date", Type: searchparam.Date, Lo: at.UnixMicro(), Hi: at.UnixMicro() + 1},
		},
	}
	if patient != "" {
		w.Entries = append(w.Entries, searchparam.Entry{Param: "patient", Type: searchparam.Reference, RefType: "Patient", RefID: patient})
		w.Patients = []string{patient, patient}
	}
	return w
}

// putMany stores the events w(0) … w(n-1) in batches of 500, the cursor
// after each, as the indexer does.
func putMany(t testing.TB, d *eventdb.DB, n int, w func(i int) store.Write) {
	t.Helper()
	ws := make([]store.Write, 0, 500)
	for i := range n {
		ws = append(ws, w(i))
		if len(ws) == cap(ws) || i == n-1 {
			if err := d.Put(context.Background(), ws, uint64(i+1)); err != nil {
				t.Fatal(err)
			}
			ws = ws[:0]
		}
	}
}

func open(t *testing.T, dir string) *eventdb.DB {
	t.Helper()
	d, err := eventdb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func parse(t testing.TB, q string) *search.Query {
	t.Helper()
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	sq, err := search.Parse(reg, "AuditEvent", v, search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return sq
}

func ids(rs []store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// The index stores the journal's canonical events, query strings
// included, and serves them edited: a query never leaves it, by read,
// search or history. Events an earlier version stored already edited are
// served as they are.
func TestServesEventsWithoutTheirQueries(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	const query = "cGF0aWVudD1zZWNyZXQ=" // base64 of a search's query string
	raw := `{"entity":[{"query":"` + query + `","what":{"reference":"Patient/p1"}},{"query":"` + query + `"}],"id":"q","outcome":"0","resourceType":"AuditEvent"}`
	edited := `{"entity":[{"what":{"reference":"Patient/p1"}},{}],"id":"old","meta":{"lastUpdated":"2026-11-28T10:00:00.000Z","versionId":"1"},"outcome":"0","resourceType":"AuditEvent"}`
	w := func(id, body string) store.Write {
		return store.Write{
			Resource: store.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: t0, JSON: []byte(body)},
			Entries:  []searchparam.Entry{{Param: "outcome", Type: searchparam.Token, Code: "0"}},
		}
	}
	if err := d.Put(ctx, []store.Write{w("q", raw), w("old", edited)}, 2); err != nil {
		t.Fatal(err)
	}
	wantQ := `{"entity":[{"what":{"reference":"Patient/p1"}},{}],"id":"q","meta":{"lastUpdated":"2026-11-28T10:00:00.000Z","versionId":"1"},"outcome":"0","resourceType":"AuditEvent"}`
	for id, want := range map[string]string{"q": wantQ, "old": edited} {
		r, err := d.Read(ctx, "AuditEvent", id)
		if err != nil || string(r.JSON) != want {
			t.Errorf("read %s: %s, %v; want %s", id, r.JSON, err, want)
		}
	}
	res, err := d.Search(ctx, parse(t, "outcome=0"), store.PageRequest{})
	if err != nil || len(res.Matches) != 2 {
		t.Fatalf("search: %v, %v", res, err)
	}
	h, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: 10})
	if err != nil || len(h.Versions) != 2 {
		t.Fatalf("history: %v, %v", h, err)
	}
	for _, r := range append(res.Matches, h.Versions...) {
		if strings.Contains(string(r.JSON), query) || !strings.Contains(string(r.JSON), `"versionId":"1"`) {
			t.Errorf("served %s", r.JSON)
		}
	}
}

func TestPutIsIdempotentAndSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := eventdb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.Cursor(ctx); err != nil || c != 0 {
		t.Fatalf("fresh cursor %d, %v", c, err)
	}
	if err := d.Put(ctx, []store.Write{event(0, "p1"), event(1, "")}, 2); err != nil {
		t.Fatal(err)
	}
	// Indexing is at least once: the same events again, one changed,
	// keep the first copy and are not listed twice.
	again := event(1, "")
	again.Resource.JSON = []byte(`{"resourceType":"AuditEvent","id":"ev-1","changed":true}`)
	if err := d.Put(ctx, []store.Write{event(0, "p1"), again, event(2, "p1")}, 3); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = open(t, dir)
	if c, err := d.Cursor(ctx); err != nil || c != 3 {
		t.Fatalf("cursor after reopen %d, %v; want 3", c, err)
	}
	r, err := d.Read(ctx, "AuditEvent", "ev-1")
	if err != nil {
		t.Fatal(err)
	}
	want, err := index.Searchable(event(1, "").Resource.JSON, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.JSON) != string(want) || r.Version != 1 || !r.LastUpdated.Equal(t0.Add(time.Second)) {
		t.Errorf("read back %+v", r)
	}
	r, err = d.Read(ctx, "AuditEvent", "ev-0")
	if err != nil || len(r.Patients) != 1 || r.Patients[0] != "p1" {
		t.Errorf("compartments of ev-0: %v, %v", r, err)
	}
	for _, tc := range []struct{ typ, id string }{{"AuditEvent", "ev-9"}, {"Patient", "ev-0"}, {"AuditEvent", ""}} {
		if _, err := d.Read(ctx, tc.typ, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Read(%s/%s) = %v, want ErrNotFound", tc.typ, tc.id, err)
		}
	}
	// An event stored after reopening sorts after the ones before it.
	if err := d.Put(ctx, []store.Write{event(3, "p1")}, 4); err != nil {
		t.Fatal(err)
	}
	res, err := d.Search(ctx, parse(t, "patient=p1"), store.PageRequest{WantTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(res.Matches)); got != "[ev-0 ev-2 ev-3]" || res.Total != 3 {
		t.Errorf("patient=p1: %s (total %d)", got, res.Total)
	}
}

func TestPutRefusesOtherResources(t *testing.T) {
	d := open(t, t.TempDir())
	for _, w := range []store.Write{
		{Resource: store.Resource{Type: "Patient", ID: "x", Version: 1}},
		{Resource: store.Resource{Type: "AuditEvent", ID: "x", Version: 2}},
		{Resource: store.Resource{Type: "AuditEvent", ID: "", Version: 1}},
		{Resource: store.Resource{Type: "AuditEvent", ID: "x", Version: 1, Deleted: true}},
	} {
		if err := d.Put(context.Background(), []store.Write{event(0, ""), w}, 1); err == nil {
			t.Errorf("Put accepted %+v", w.Resource)
		}
	}
	// Nothing of a refused batch was stored.
	if _, err := d.Read(context.Background(), "AuditEvent", "ev-0"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused batch left ev-0: %v", err)
	}
	if c, _ := d.Cursor(context.Background()); c != 0 {
		t.Errorf("a refused batch moved the cursor to %d", c)
	}
}

func TestSearchPagesBothWays(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	var ws []store.Write
	for i := range 7 {
		ws = append(ws, event(i, ""))
	}
	if err := d.Put(ctx, ws, 7); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, want string }{
		{"_count=3", "[ev-0 ev-1 ev-2] [ev-3 ev-4 ev-5] [ev-6]"},
		{"_count=3&_sort=-date", "[ev-6 ev-5 ev-4] [ev-3 ev-2 ev-1] [ev-0]"},
		{"_count=2&outcome=4&_sort=-_lastUpdated", "[ev-5 ev-3] [ev-1]"},
	} {
		q := parse(t, tc.q)
		var pages []string
		var prevs []string
		cursor := ""
		for {
			res, err := d.Search(ctx, q, store.PageRequest{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, fmt.Sprint(ids(res.Matches)))
			prevs = append(prevs, res.Prev)
			if res.Next == "" {
				break
			}
			cursor = res.Next
		}
		if got := fmt.Sprint(pages); got != "["+tc.want+"]" {
			t.Errorf("%s: pages %s, want %s", tc.q, got, tc.want)
		}
		// From the last page, Prev leads back to the one before it.
		if len(pages) > 1 {
			res, err := d.Search(ctx, q, store.PageRequest{Cursor: prevs[len(prevs)-1]})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(ids(res.Matches)); got != pages[len(pages)-2] {
				t.Errorf("%s: back from the last page: %s, want %s", tc.q, got, pages[len(pages)-2])
			}
		}
	}
	// A cursor of an ascending search is refused by a descending one,
	// and garbage is refused.
	res, err := d.Search(ctx, parse(t, "_count=2"), store.PageRequest{})
	if err != nil || res.Next == "" {
		t.Fatal(res, err)
	}
	for _, c := range []string{res.Next[:len(res.Next)-1], "Eaf" + "zz", "x" + res.Next[1:]} {
		if _, err := d.Search(ctx, parse(t, "_count=2"), store.PageRequest{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
	if _, err := d.Search(ctx, parse(t, "_count=2&_sort=-date"), store.PageRequest{Cursor: res.Next}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("an ascending cursor on a descending search: %v", err)
	}
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	var ws []store.Write
	for i := range 5 {
		ws = append(ws, event(i, ""))
	}
	if err := d.Put(ctx, ws, 5); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		p, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: 2, After: after, Since: t0.Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 4 {
			t.Errorf("total %d, want 4 (since the second event)", p.Total)
		}
		got = append(got, ids(p.Versions)...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if fmt.Sprint(got) != "[ev-4 ev-3 ev-2 ev-1]" {
		t.Errorf("type history %v", got)
	}
	p, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", ID: "ev-2", Count: 10})
	if err != nil || p.Total != 1 || len(p.Versions) != 1 || p.Versions[0].ID != "ev-2" {
		t.Errorf("instance history %+v, %v", p, err)
	}
	if _, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", ID: "nope", Count: 10}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("history of an unknown event: %v", err)
	}
	if _, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: 1, After: "zz"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("bad history cursor: %v", err)
	}
}

// fhirStore is the FHIR store under Route: it records what reached it.
type fhirStore struct {
	store.Store
	reached []string
}

func (f *fhirStore) Read(_ context.Context, typ, id string) (*store.Resource, error) {
	f.reached = append(f.reached, "read "+typ)
	return &store.Resource{Type: typ, ID: id, Version: 1}, nil
}

func (f *fhirStore) Search(_ context.Context, q *search.Query, _ store.PageRequest) (*store.SearchResult, error) {
	f.reached = append(f.reached, "search "+q.Type)
	return &store.SearchResult{Total: -1}, nil
}

func TestRoute(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	if err := d.Put(ctx, []store.Write{event(0, "p1")}, 1); err != nil {
		t.Fatal(err)
	}
	f := &fhirStore{}
	st := eventdb.Route(f, d)
	if r, err := st.Read(ctx, "AuditEvent", "ev-0"); err != nil || r.ID != "ev-0" {
		t.Fatalf("routed read: %v, %v", r, err)
	}
	if _, err := st.VRead(ctx, "AuditEvent", "ev-0", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("version 2 of an event: %v", err)
	}
	if r, err := st.VRead(ctx, "AuditEvent", "ev-0", 1); err != nil || r.ID != "ev-0" {
		t.Errorf("version 1: %v, %v", r, err)
	}
	if _, err := st.Read(ctx, "Patient", "p1"); err != nil {
		t.Fatal(err)
	}
	res, err := st.Search(ctx, parse(t, "patient=p1"), store.PageRequest{})
	if err != nil || len(res.Matches) != 1 {
		t.Fatalf("routed search: %v, %v", res, err)
	}
	if fmt.Sprint(f.reached) != "[read Patient]" {
		t.Errorf("the FHIR store saw %v", f.reached)
	}
	reg, _ := searchparam.R4()
	for _, q := range []string{"_revinclude=AuditEvent:patient", "_has:AuditEvent:patient:outcome=4"} {
		v, _ := url.ParseQuery(q)
		sq, err := search.Parse(reg, "Patient", v, search.Options{})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		_, err = st.Search(ctx, sq, store.PageRequest{})
		var se *search.Error
		if !errors.Is(err, eventdb.ErrUnsupported) || !errors.As(err, &se) {
			t.Errorf("Patient?%s: %v, want ErrUnsupported as a search.Error", q, err)
		}
	}
	if fmt.Sprint(f.reached) != "[read Patient]" {
		t.Errorf("refused searches reached the FHIR store: %v", f.reached)
	}
}

func TestCountWholeTrail(t *testing.T) {
	ctx := context.Background()
	d := open(t, t.TempDir())
	var ws []store.Write
	for i := range 5 {
		ws = append(ws, event(i, ""))
	}
	// A repeated event is one event.
	ws = append(ws, event(2, ""))
	if err := d.Put(ctx, ws, 6); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, []store.Write{event(3, ""), event(5, "")}, 8); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"_summary=count", "_count=0"} {
		res, err := d.Search(ctx, parse(t, q), store.PageRequest{OnlyCount: q == "_summary=count", WantTotal: true})
		if err != nil || res.Total != 6 || len(res.Matches) != 0 {
			t.Errorf("%s: total %d, %d matches, %v; want 6, 0", q, res.Total, len(res.Matches), err)
		}
	}
	res, err := d.Search(ctx, parse(t, "_count=100"), store.PageRequest{WantTotal: true})
	if err != nil || res.Total != 6 || len(res.Matches) != 6 {
		t.Errorf("all events: total %d, %d matches, %v", res.Total, len(res.Matches), err)
	}
}

// Across index buckets (16,384 events each), searches and sorts see every
// event once, in order, however the events' times interleave with the
// order they were stored in.
func TestSearchAcrossBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 18,000 events")
	}
	ctx := context.Background()
	d := open(t, t.TempDir())
	const n = 18_000 // two buckets
	var ws []store.Write
	for i := range n {
		// Stored in order i, dated so that every 3 events run backwards.
		w := event(i/3*3+2-i%3, fmt.Sprintf("p%d", i%7))
		w.Resource.ID = fmt.Sprintf("ev-%d", i)
		ws = append(ws, w)
		if len(ws) == 256 || i == n-1 {
			if err := d.Put(ctx, ws, uint64(i+1)); err != nil {
				t.Fatal(err)
			}
			ws = ws[:0]
		}
	}
	// Every page, following Next: each event once, in order.
	check := func(q string, wantTotal int, order func(a, b time.Time) bool) {
		t.Helper()
		sq := parse(t, q+"&_count=10000")
		seen := map[string]bool{}
		var prev time.Time
		cursor := ""
		for {
			res, err := d.Search(ctx, sq, store.PageRequest{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range res.Matches {
				if seen[m.ID] {
					t.Fatalf("%s: %s twice", q, m.ID)
				}
				if len(seen) > 0 && !order(prev, m.LastUpdated) {
					t.Fatalf("%s: %s out of order (%v then %v)", q, m.ID, prev, m.LastUpdated)
				}
				seen[m.ID], prev = true, m.LastUpdated
			}
			if res.Next == "" {
				break
			}
			cursor = res.Next
		}
		if len(seen) != wantTotal {
			t.Errorf("%s: %d events, want %d", q, len(seen), wantTotal)
		}
	}
	newest := func(a, b time.Time) bool { return !a.Before(b) }
	oldest := func(a, b time.Time) bool { return !b.Before(a) }
	check("_sort=-date", n, newest)
	check("_sort=_lastUpdated&outcome=4&patient=p3", 1286, oldest)
	res, err := d.Search(ctx, parse(t, "_summary=count"), store.PageRequest{OnlyCount: true})
	if err != nil || res.Total != n {
		t.Errorf("count %d, %v; want %d", res.Total, err, n)
	}

	// In the order stored (no _sort), a page reads the buckets from its
	// cursor on: forward to the end, then back to the start.
	for _, q := range []struct {
		q    string
		want func(i int) bool
	}{
		{"_count=4000", func(int) bool { return true }},
		{"_count=700&patient=p3", func(i int) bool { return i%7 == 3 }},
	} {
		var want []string
		for i := range n {
			if q.want(i) {
				want = append(want, fmt.Sprintf("ev-%d", i))
			}
		}
		sq := parse(t, q.q)
		var got, back []string
		var prev []string
		cursor := ""
		for {
			res, err := d.Search(ctx, sq, store.PageRequest{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(res.Matches)...)
			prev = append(prev, res.Prev)
			if res.Next == "" {
				break
			}
			cursor = res.Next
		}
		for c := prev[len(prev)-1]; c != ""; {
			res, err := d.Search(ctx, sq, store.PageRequest{Cursor: c})
			if err != nil {
				t.Fatal(err)
			}
			back = append(ids(res.Matches), back...)
			c = res.Prev
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s forward: %d events, want %d in order", q.q, len(got), len(want))
		}
		lastPage := len(want) - len(want)%sq.Count
		if len(want)%sq.Count == 0 {
			lastPage = len(want) - sq.Count
		}
		if !slices.Equal(back, want[:lastPage]) {
			t.Errorf("%s back from the last page: %d events, want the %d before it in order", q.q, len(back), lastPage)
		}
	}
}

// A closed index (the server shutting down) answers every operation with
// store.ErrUnavailable, which the API turns into 503, never a panic.
func TestClosedIsUnavailable(t *testing.T) {
	ctx := context.Background()
	d, err := eventdb.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, []store.Write{event(0, "p1")}, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	_, errRead := d.Read(ctx, "AuditEvent", "ev-0")
	_, errSearch := d.Search(ctx, parse(t, "patient=p1"), store.PageRequest{})
	_, errHistory := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: 1})
	_, errCursor := d.Cursor(ctx)
	errPut := d.Put(ctx, []store.Write{event(1, "")}, 2)
	for name, err := range map[string]error{"read": errRead, "search": errSearch, "history": errHistory, "cursor": errCursor, "put": errPut} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want store.ErrUnavailable", name, err)
		}
	}
}

func TestDiskBytes(t *testing.T) {
	d, err := eventdb.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var ws []store.Write
	for i := range 100 {
		ws = append(ws, event(i, "p1"))
	}
	if err := d.Put(context.Background(), ws, 100); err != nil {
		t.Fatal(err)
	}
	if n := d.DiskBytes(); n == 0 {
		t.Error("DiskBytes is 0 with 100 events stored")
	}
	d.Close()
	if n := d.DiskBytes(); n != 0 {
		t.Errorf("DiskBytes after Close: %d", n)
	}
}

// A date-sorted page reads only the buckets whose date bounds reach it,
// and must still find an event stored long before or after its time.
func TestDatePagesAcrossBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 17,000 events")
	}
	ctx := context.Background()
	d := open(t, t.TempDir())
	const n = 17_000
	putMany(t, d, n, func(i int) store.Write {
		// Stored in time order, but for two: the first stored is the
		// newest, the last stored the oldest.
		at := i + 10
		switch i {
		case 0:
			at = n + 100
		case n - 1:
			at = 0
		}
		w := event(at, "")
		w.Resource.ID = fmt.Sprintf("ev-%d", i)
		return w
	})
	for _, tc := range []struct{ q, first, second string }{
		{"_sort=-date&_count=3", "[ev-0 ev-16998 ev-16997]", "[ev-16996 ev-16995 ev-16994]"},
		{"_sort=date&_count=3", "[ev-16999 ev-1 ev-2]", "[ev-3 ev-4 ev-5]"},
		{"_sort=-date&_count=2&outcome=0", "[ev-0 ev-16998]", "[ev-16996 ev-16994]"},
		{"_sort=-_lastUpdated&_count=3", "[ev-0 ev-16998 ev-16997]", "[ev-16996 ev-16995 ev-16994]"},
		{"_sort=_lastUpdated&_count=3", "[ev-16999 ev-1 ev-2]", "[ev-3 ev-4 ev-5]"},
	} {
		sq := parse(t, tc.q)
		res, err := d.Search(ctx, sq, store.PageRequest{WantTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(res.Matches)); got != tc.first {
			t.Errorf("%s: first page %s, want %s", tc.q, got, tc.first)
		}
		res, err = d.Search(ctx, sq, store.PageRequest{Cursor: res.Next})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(res.Matches)); got != tc.second {
			t.Errorf("%s: second page %s, want %s", tc.q, got, tc.second)
		}
		// And back: the first page again, whose events are in both
		// buckets.
		if res, err = d.Search(ctx, sq, store.PageRequest{Cursor: res.Prev}); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(res.Matches)); got != tc.first || res.Prev != "" {
			t.Errorf("%s: back to the first page %s (previous %q), want %s", tc.q, got, res.Prev, tc.first)
		}
	}
}

// TestPagesBackAcrossBuckets: with events stored in time order, so that
// the buckets' bounds do not overlap, a page back by date or by
// _lastUpdated, either way, is the page before, also where the rows
// before the cursor lie in both buckets.
func TestPagesBackAcrossBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 17,000 events")
	}
	ctx := context.Background()
	d := open(t, t.TempDir())
	putMany(t, d, 17_000, func(i int) store.Write { return event(i, "") })
	span := func(from, to int) string { // ev-from … ev-to, inclusive, either way
		var out []string
		for i := from; ; {
			out = append(out, fmt.Sprintf("ev-%d", i))
			if i == to {
				return fmt.Sprint(out)
			}
			if from < to {
				i++
			} else {
				i--
			}
		}
	}
	for _, tc := range []struct {
		q     string
		pages int // forward, then one back
		want  string
	}{
		{"_sort=date&_count=100", 166, span(16500, 16599)},         // the cursor in the second bucket
		{"_sort=date&_count=100", 164, span(16300, 16399)},         // rows in both
		{"_sort=-_lastUpdated&_count=100", 30, span(14099, 14000)}, // the cursor in the first bucket
		{"_sort=-date&_count=100", 7, span(16399, 16300)},          // rows in both
		{"_sort=_lastUpdated&_count=100", 166, span(16500, 16599)}, // as by date
	} {
		sq := parse(t, tc.q)
		res, err := d.Search(ctx, sq, store.PageRequest{})
		for i := 0; i < tc.pages && err == nil; i++ {
			res, err = d.Search(ctx, sq, store.PageRequest{Cursor: res.Next})
		}
		if err != nil {
			t.Fatal(err)
		}
		if res, err = d.Search(ctx, sq, store.PageRequest{Cursor: res.Prev}); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(res.Matches)); got != tc.want {
			t.Errorf("%s, %d pages on and one back: %.60s…, want %.60s…", tc.q, tc.pages, got, tc.want)
		}
	}
}
