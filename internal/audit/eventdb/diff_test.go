package eventdb_test

// The differential test: the same audit trail stored in the FHIR store
// (internal/store/sqlstore on SQLite, the reference) and in an eventdb
// must answer every AuditEvent search alike — the same ids in the same
// order, the same totals, the same pages — and read back the same events.
//
//	go test -race ./internal/audit/eventdb -run TestDiff
//	go test ./internal/audit/eventdb -run TestDiff -eventdb.seed=7     (another trail and sample)
//	go test ./internal/audit/eventdb -run 'TestDiff/random/017'        (one random search)

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// The differential test's flags: another trail (seed) or a longer one
// (events; -eventdb.events=17000 spans two of eventdb's index buckets of
// 16,384 events, in a minute or so without -race).
var (
	diffSeed   = flag.Uint64("eventdb.seed", 1, "seed of the differential test's audit trail and random queries")
	diffEvents = flag.Int("eventdb.events", trailLen, "number of events in the differential test's audit trail")
)

const (
	// diffBase is the server's FHIR base URL, as the indexer is given it.
	diffBase = "https://warden.example/fhir"
	// trailLen is how many events the differential trail holds by
	// default.
	trailLen = 200
	// randomQueries is how many random queries are compared.
	randomQueries = 120
	// putBatch is the indexer's batch (index.DefaultBatch).
	putBatch = 64
)

// trailStart is the time of the trail's first event.
var trailStart = time.Date(2026, 11, 20, 23, 30, 0, 0, time.UTC)

// lastUpdatedLayout is meta.lastUpdated as the indexer writes it.
const lastUpdatedLayout = "2006-01-02T15:04:05.000Z07:00"

// auditTrail is a generated audit trail in the form the indexer stores:
// records[i] became writes[i], the AuditEvent with id ids[i].
type auditTrail struct {
	records []audit.Record
	writes  []store.Write
	ids     []string
}

// seedRecords returns n varied records with strictly increasing times,
// each at least a millisecond after the one before: the three surfaces,
// many actions and statuses, backend clients and users (fhirUser as a
// relative reference, an absolute URL of this server or of another, or
// not a reference at all), 0 to 2 patients, resources, IPv4 and IPv6
// peers, query strings, token ids. Durations (recorded = time +
// duration) are sometimes longer than the gap to the next event, as
// under concurrent load, so that recorded order is not arrival order.
func seedRecords(rng *rand.Rand, n int) []audit.Record {
	fhirActions := []string{"read", "read", "vread", "search-type", "search-type", "search-system", "create", "update", "patch", "delete", "history-instance", "history-type", "capabilities", "operation", "transaction"}
	authActions := []string{"authorize", "token", "token", "introspect", "revoke", "login", "logout", "discovery"}
	adminActions := []string{"client-add", "client-remove", "key-rotate", "user-list", "consent-set", "audit-verify"}
	statuses := []int{200, 200, 200, 200, 201, 204, 400, 401, 403, 403, 404, 409, 500, 503}
	peers := []string{"192.0.2.7", "192.0.2.70", "198.51.100.23", "2001:db8::1", "2001:db8::17", "2001:db8:1::abcd", "::ffff:203.0.113.9", ""}
	users := []struct{ subject, fhirUser string }{
		{"", ""}, // a backend client
		{"", ""},
		{"", ""},
		{"user-1", "Practitioner/1"},
		{"user-2", "Practitioner/2"},
		{"user-2b", "Practitioner/2"},
		{"user-3", "PractitionerRole/3"},
		{"user-2r", "PractitionerRole/2"}, // the same id as Practitioner/2
		{"alice", "Patient/p1"},           // a patient user: agent.who is a Patient
		{"bob", "RelatedPerson/r1"},
		{"user-77", diffBase + "/Practitioner/77"}, // an absolute fhirUser of this server
		{"user-9", "https://other.example/fhir/Practitioner/9"}, // of another server
		{"carol", "mailto:carol@example.org"},                   // not a reference: who.identifier, altId
		{"dave", ""},                                            // a subject alone: who.identifier
	}
	patient := func() string {
		id := fmt.Sprintf("p%d", rng.IntN(8))
		if rng.IntN(3) == 0 {
			return "Patient/" + id
		}
		return id
	}
	resource := func() string {
		switch rng.IntN(5) {
		case 0:
			return fmt.Sprintf("Observation/o%d", rng.IntN(12))
		case 1:
			return fmt.Sprintf("Observation/p%d", rng.IntN(8)) // a Patient's id, of another type
		case 2:
			return fmt.Sprintf("Patient/p%d", rng.IntN(8))
		case 3:
			return fmt.Sprintf("Encounter/e%d/_history/%d", rng.IntN(5), 1+rng.IntN(3))
		}
		return fmt.Sprintf("Consent/c%d", rng.IntN(3))
	}
	out := make([]audit.Record, n)
	at := trailStart // whole milliseconds; a record's time may add less than one
	for i := range out {
		jitter := time.Duration(0)
		if rng.IntN(5) == 0 {
			jitter = time.Duration(1+rng.IntN(999)) * time.Microsecond
		}
		r := audit.Record{
			RequestID: fmt.Sprintf("req-%d", i),
			Time:      at.Add(jitter),
			Surface:   audit.SurfaceFHIR,
			Method:    "GET",
			Status:    statuses[rng.IntN(len(statuses))],
			ClientID:  fmt.Sprintf("app-%d", rng.IntN(5)),
			PeerAddr:  netip.Addr{},
		}
		// The next time: at least 1 ms later, 2 ms when this one has a
		// fraction of a millisecond, so that the two stay 1 ms apart.
		var gap time.Duration
		switch k := rng.IntN(10); {
		case k < 2:
			gap = time.Millisecond
		case k < 4:
			gap = time.Duration(2+rng.IntN(8)) * time.Millisecond
		case k < 7:
			gap = time.Duration(rng.IntN(60))*time.Second + time.Millisecond
		case k < 9:
			gap = time.Duration(rng.IntN(30))*time.Minute + time.Millisecond
		default:
			gap = time.Duration(rng.IntN(12))*time.Hour + time.Millisecond
		}
		if jitter > 0 {
			gap += time.Millisecond
		}
		at = at.Add(gap)
		switch k := rng.IntN(10); {
		case k < 3:
		case k < 8:
			r.Duration = time.Duration(1+rng.IntN(5)) * time.Millisecond
		default:
			r.Duration = time.Duration(100+rng.IntN(2900)) * time.Millisecond
		}
		if p := peers[rng.IntN(len(peers))]; p != "" {
			r.PeerAddr = netip.MustParseAddr(p)
		}
		switch k := rng.IntN(10); {
		case k < 7:
			r.TokenID = fmt.Sprintf("jti-%d", i%40)
		case k < 8:
			r.TokenID = fmt.Sprintf("jti/with space-%d", i%3) // escaped in agent.policy
		}
		u := users[rng.IntN(len(users))]
		r.Subject, r.FHIRUser = u.subject, u.fhirUser
		if rng.IntN(20) == 0 {
			r.OnBehalfOf = []string{"Patient/p3", "RelatedPerson/r2"}[rng.IntN(2)]
		}
		if rng.IntN(8) == 0 {
			r.PurposeOfUse = []string{"TREAT"}
		}
		if rng.IntN(30) == 0 {
			r.BreakGlassReason = "emergency"
		}
		if rng.IntN(10) == 0 {
			r.CertThumbprint = "x5t-" + fmt.Sprint(rng.IntN(3))
		}
		switch k := rng.IntN(20); {
		case k < 14: // the FHIR API
			r.Action = fhirActions[rng.IntN(len(fhirActions))]
			r.Path = "/fhir/Observation"
			for range rng.IntN(3) { // 0, 1 or 2 patients
				r.Patients = append(r.Patients, patient())
			}
			for range rng.IntN(4) {
				r.Resources = append(r.Resources, resource())
			}
			if strings.HasPrefix(r.Action, "search") && rng.IntN(2) == 0 {
				r.Query = url.Values{"code": {"1234-5"}, "patient": {"p1"}}
			}
		case k < 18: // the authorization server
			r.Surface, r.Action, r.Method = audit.SurfaceAuth, authActions[rng.IntN(len(authActions))], "POST"
			r.Path = "/auth/" + r.Action
			if r.Action == "discovery" {
				r.ClientID, r.Method = "", "GET"
			}
			if rng.IntN(2) == 0 {
				r.Query = url.Values{"client_id": {r.ClientID}, "code": {"secret-code"}}
			}
		default: // the admin API
			r.Surface, r.Action, r.Method = audit.SurfaceAdmin, adminActions[rng.IntN(len(adminActions))], "POST"
			r.Path = "/admin/" + r.Action
			if r.Action == "consent-set" {
				r.Patients = []string{patient()}
			}
		}
		if r.Status == 403 {
			r.DenyRule = []string{"scope", "consent", "label"}[rng.IntN(3)]
		}
		if rng.IntN(40) == 0 {
			r.Outcome = audit.OutcomeMajor
		}
		out[i] = r
	}
	return out
}

// storedWrite is the store write the indexer makes of record r journaled
// as event id (internal/audit/index, (*Indexer).write): the canonical
// event plus meta.versionId and meta.lastUpdated, without query strings,
// with its index entries (references to this server made relative) and
// Patient compartment.
func storedWrite(reg *searchparam.Registry, r audit.Record, id string) (store.Write, error) {
	built, err := audit.Build(r, diffBase)
	if err != nil {
		return store.Write{}, err
	}
	built["id"] = id
	canonical, err := audit.Canonical(built)
	if err != nil {
		return store.Write{}, err
	}
	var ev map[string]any
	if err := json.Unmarshal(canonical, &ev); err != nil {
		return store.Write{}, err
	}
	at := r.Time.UTC().Truncate(time.Millisecond)
	meta, _ := ev["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"] = "1"
	meta["lastUpdated"] = at.Format(lastUpdatedLayout)
	ev["meta"] = meta
	index.StripQueries(ev)
	body, err := audit.Canonical(ev)
	if err != nil {
		return store.Write{}, err
	}
	relativizeRefs(ev, diffBase+"/")
	entries := reg.Extract("AuditEvent", ev)
	return store.Write{
		Resource: store.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: at, JSON: body},
		Entries:  entries,
		Patients: reg.PatientCompartment("AuditEvent", entries),
	}, nil
}

// relativizeRefs rewrites every "reference" under base into Type/id, as
// the indexer does before extracting index entries.
func relativizeRefs(v any, base string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "reference" {
				if rel, ok := strings.CutPrefix(s, base); ok && strings.Count(rel, "/") == 1 {
					v[k] = rel
				}
				continue
			}
			relativizeRefs(e, base)
		}
	case []any:
		for _, e := range v {
			relativizeRefs(e, base)
		}
	}
}

// disorder makes records a journal as concurrent requests write it:
// a record is journaled when its request ends, so a later one may
// have arrived first (neighbours' times swapped), and requests arrive
// within the same millisecond (a time moved into its predecessor's).
func disorder(rng *rand.Rand, records []audit.Record) {
	for i := 0; i+1 < len(records); i++ {
		switch rng.IntN(6) {
		case 0:
			records[i].Time, records[i+1].Time = records[i+1].Time, records[i].Time
			i++
		case 1:
			records[i+1].Time = records[i].Time.Truncate(time.Millisecond).Add(time.Duration(rng.IntN(1000)) * time.Microsecond)
		}
	}
}

// seedTrail generates a trail of n events from seed (in disorder: see
// disorder). Event ids do not
// sort in time order, so that an order by id shows.
func seedTrail(t testing.TB, seed uint64, n int, disordered bool) *auditTrail {
	t.Helper()
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	tr := &auditTrail{records: seedRecords(rng, n)}
	if disordered {
		disorder(rng, tr.records)
	}
	for i, r := range tr.records {
		id := fmt.Sprintf("%02x-%d", rng.IntN(256), i)
		w, err := storedWrite(reg, r, id)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		tr.ids = append(tr.ids, id)
		tr.writes = append(tr.writes, w)
	}
	return tr
}

// loadTrail stores tr in a new SQLite FHIR store (one transaction per
// batch, as the indexer's store sink does) and in a new eventdb (one Put
// per batch).
func loadTrail(t testing.TB, tr *auditTrail) (store.Store, *eventdb.DB) {
	t.Helper()
	ctx := context.Background()
	fhir, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "warden.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fhir.Close() })
	d, err := eventdb.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for from := 0; from < len(tr.writes); from += putBatch {
		batch := tr.writes[from:min(from+putBatch, len(tr.writes))]
		if err := fhir.Tx(ctx, func(tx store.Tx) error {
			for _, w := range batch {
				if err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := d.Put(ctx, batch, uint64(from+len(batch))); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := d.Cursor(ctx); err != nil || c != uint64(len(tr.writes)) {
		t.Fatalf("eventdb cursor %d, %v; want %d", c, err, len(tr.writes))
	}
	return fhir, d
}

// searcher is what both stores answer.
type searcher interface {
	Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error)
}

// diffQuery is one search: a query string (parameters in the order
// written, values not URL-encoded) and, for a compartment search, the
// Patient whose compartment it searches.
type diffQuery struct {
	raw     string
	patient string
	// wantTotal asks for the total (PageRequest.WantTotal).
	wantTotal bool
}

func (dq diffQuery) String() string {
	s := "AuditEvent?" + dq.raw
	if dq.patient != "" {
		s = "Patient/" + dq.patient + "/" + s
	}
	if dq.wantTotal {
		s += " (total)"
	}
	return s
}

// values splits a query string into parameters without URL-decoding, so
// that values read as written ('|', ':', '%', '+').
func (dq diffQuery) values() url.Values {
	v := url.Values{}
	if dq.raw == "" {
		return v
	}
	for p := range strings.SplitSeq(dq.raw, "&") {
		k, val, _ := strings.Cut(p, "=")
		v[k] = append(v[k], val)
	}
	return v
}

// parse parses dq as the FHIR API does.
func (dq diffQuery) parse(reg *searchparam.Registry) (*search.Query, error) {
	q, err := search.Parse(reg, "AuditEvent", dq.values(), search.Options{})
	if err != nil {
		return nil, err
	}
	if dq.patient != "" {
		q.Compartment = &search.Compartment{Type: "Patient", ID: dq.patient}
	}
	return q, nil
}

// matchIDs returns the ids of rs.
func matchIDs(rs []store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// answer is what one store answered to one search.
type answer struct {
	ids   []string
	total int
	more  bool // a next page was offered
}

func ask(ctx context.Context, s searcher, q *search.Query, page store.PageRequest) (answer, error) {
	res, err := s.Search(ctx, q, page)
	if err != nil {
		return answer{}, err
	}
	return answer{ids: matchIDs(res.Matches), total: res.Total, more: res.Next != ""}, nil
}

// walk pages through q with pages of size, forward with Next from the
// first page and (back) backward with Prev from the last one, and
// returns the pages of each walk in result order. A cursor that leads to
// an empty page is an error: the FHIR store offers a next (previous)
// page only when there is one.
func walk(ctx context.Context, s searcher, q *search.Query, size int, back bool) (forward, backward [][]string, err error) {
	qq := *q
	qq.Count = size
	var page store.PageRequest
	prev := ""
	for n := 1; ; n++ {
		if n > 1000 {
			return nil, nil, errors.New("paging does not end")
		}
		res, err := s.Search(ctx, &qq, page)
		if err != nil {
			return nil, nil, fmt.Errorf("page %d: %w", n, err)
		}
		if len(res.Matches) == 0 && n > 1 {
			return nil, nil, fmt.Errorf("page %d, offered as next, is empty", n)
		}
		forward = append(forward, matchIDs(res.Matches))
		prev = res.Prev
		if res.Next == "" {
			break
		}
		page.Cursor = res.Next
	}
	if !back || len(forward) < 2 {
		return forward, forward, nil
	}
	if prev == "" {
		return nil, nil, fmt.Errorf("page %d of %d offers no previous page", len(forward), len(forward))
	}
	// From the last page, Prev leads back through the others to the first.
	backward = append(backward, forward[len(forward)-1])
	for n := 1; prev != ""; n++ {
		if n > 1000 {
			return nil, nil, errors.New("paging back does not end")
		}
		res, err := s.Search(ctx, &qq, store.PageRequest{Cursor: prev})
		if err != nil {
			return nil, nil, fmt.Errorf("page back %d: %w", n, err)
		}
		if len(res.Matches) == 0 {
			return nil, nil, fmt.Errorf("page back %d, offered as previous, is empty", n)
		}
		backward = append(backward, matchIDs(res.Matches))
		prev = res.Prev
	}
	slices.Reverse(backward)
	return forward, backward, nil
}

// differ compares the answers of the FHIR store (the reference) and
// eventdb to dq: the page asked for, all matches on one page with the
// total, and eventdb's pages of pageSize (0: not paged; back: also paged
// backwards) with its one-page answer. It returns how many events match.
func differ(t *testing.T, fx *diffFixture, dq diffQuery, pageSize int, back bool) (matched int) {
	t.Helper()
	ctx := context.Background()
	fhir, d := fx.fhir, fx.d
	q, err := dq.parse(fx.reg)
	if err != nil {
		t.Fatalf("%s: %v", dq, err)
	}
	report := func(what string, want, got any) {
		t.Helper()
		t.Errorf("%s: %s differ\nsql:     %v\neventdb: %v", dq, what, want, got)
	}

	// The page asked for.
	page := store.PageRequest{WantTotal: dq.wantTotal || q.Total == "accurate", OnlyCount: q.Summary == search.SummaryCount}
	want, err := ask(ctx, fhir, q, page)
	if err != nil {
		t.Fatalf("%s: the FHIR store: %v", dq, err)
	}
	got, err := ask(ctx, d, q, page)
	if err != nil {
		t.Errorf("%s: eventdb: %v\nsql: %v (total %d)", dq, err, want.ids, want.total)
		return len(want.ids)
	}
	if !slices.Equal(want.ids, got.ids) {
		report("matches (count "+fmt.Sprint(q.Count)+")", want.ids, got.ids)
	}
	if want.total != got.total {
		report("totals", want.total, got.total)
	}
	if want.more != got.more {
		report("next page offered", want.more, got.more)
	}

	// Every match, on one page (unless the page asked for was all of
	// them, with the total).
	if q.Count <= 0 || page.OnlyCount || want.more || !page.WantTotal {
		all := *q
		all.Count = len(fx.tr.ids) + 1
		want, err = ask(ctx, fhir, &all, store.PageRequest{WantTotal: true})
		if err != nil {
			t.Fatalf("%s: the FHIR store: %v", dq, err)
		}
		got, err = ask(ctx, d, &all, store.PageRequest{WantTotal: true})
		if err != nil {
			t.Errorf("%s: eventdb (all matches): %v", dq, err)
			return len(want.ids)
		}
		if !slices.Equal(want.ids, got.ids) {
			report("all matches", want.ids, got.ids)
		}
		if want.total != got.total {
			report("totals of all matches", want.total, got.total)
		}
	}
	if want.total != len(want.ids) {
		t.Fatalf("%s: the FHIR store counts %d of %d matches", dq, want.total, len(want.ids))
	}
	if pageSize <= 0 {
		return len(want.ids)
	}

	// Paged through, forward and (back) backward: eventdb's pages make
	// its one-page answer. (The FHIR store's paging is its conformance
	// suite's to test.)
	pageSize = max(pageSize, (len(want.ids)+3)/4) // four pages at most
	fwd, bwd, err := walk(ctx, d, q, pageSize, back)
	if err != nil {
		t.Errorf("%s: eventdb, pages of %d: %v", dq, pageSize, err)
		return len(want.ids)
	}
	if ids := slices.Concat(fwd...); !slices.Equal(ids, got.ids) {
		t.Errorf("%s: eventdb: pages of %d and its one-page answer differ\none page: %v\npages:    %v", dq, pageSize, got.ids, fwd)
	}
	if !slices.EqualFunc(fwd, bwd, slices.Equal) {
		t.Errorf("%s: eventdb: pages of %d forward and walked back from the last differ\nforward:  %v\nbackward: %v", dq, pageSize, fwd, bwd)
	}
	return len(want.ids)
}

// trailValues are the search values that occur in a trail, by parameter.
type trailValues struct {
	tr        *auditTrail
	byParam   map[string][]string // clauses, "name[:modifier]=value", by parameter code
	patients  []string
	recorded  []time.Time // each event's recorded instant (the date parameter)
	instants  []string    // recorded as written in the event
	published []string    // meta.lastUpdated as written
}

// collectValues renders, for each parameter, query clauses that match
// events of tr: each token as code, system|code, |code, system| and
// :text; each string as a prefix, :exact and :contains; each reference
// as Type/id, id, :Type=id, URL, :identifier.
func collectValues(t testing.TB, tr *auditTrail) *trailValues {
	t.Helper()
	tv := &trailValues{tr: tr, byParam: map[string][]string{}}
	add := func(param, clause string) {
		if !slices.Contains(tv.byParam[param], clause) {
			tv.byParam[param] = append(tv.byParam[param], clause)
		}
	}
	patients := map[string]bool{}
	for _, w := range tr.writes {
		for _, p := range w.Patients {
			patients[p] = true
		}
		var ev struct {
			Recorded string
			Meta     struct{ LastUpdated string }
		}
		if err := json.Unmarshal(w.Resource.JSON, &ev); err != nil {
			t.Fatal(err)
		}
		rec, err := time.Parse(time.RFC3339Nano, ev.Recorded)
		if err != nil {
			t.Fatal(err)
		}
		tv.recorded = append(tv.recorded, rec)
		tv.instants = append(tv.instants, ev.Recorded)
		tv.published = append(tv.published, ev.Meta.LastUpdated)
		for _, e := range w.Entries {
			p := e.Param
			switch e.Type {
			case searchparam.Token:
				if p == "_id" {
					continue
				}
				add(p, p+"="+escapeValue(e.Code))
				add(p, p+"="+escapeValue(e.System)+"|"+escapeValue(e.Code))
				if e.System != "" {
					add(p, p+"="+escapeValue(e.System)+"|")
				} else {
					add(p, p+"=|"+escapeValue(e.Code))
				}
				add(p, p+":not="+escapeValue(e.Code))
				if word, _, _ := strings.Cut(e.Text, " "); word != "" {
					add(p, p+":text="+escapeValue(word))
				}
			case searchparam.String:
				add(p, p+"="+escapeValue(e.Exact[:min(len(e.Exact), 4)]))
				add(p, p+":exact="+escapeValue(e.Exact))
				if len(e.Exact) > 3 {
					add(p, p+":contains="+escapeValue(e.Exact[1:len(e.Exact)-1]))
				}
			case searchparam.Reference:
				switch {
				case e.URL != "":
					add(p, p+"="+escapeValue(e.URL))
				case e.RefID != "":
					add(p, p+"="+e.RefType+"/"+e.RefID)
					add(p, p+"="+e.RefID)
					add(p, p+":"+e.RefType+"="+e.RefID)
				}
				if e.Code != "" {
					add(p, p+":identifier="+escapeValue(e.Code))
					if e.System != "" {
						add(p, p+":identifier="+escapeValue(e.System)+"|"+escapeValue(e.Code))
					}
				}
			case searchparam.URI:
				add(p, p+"="+escapeValue(e.Exact))
			}
		}
	}
	for p := range patients {
		tv.patients = append(tv.patients, p)
	}
	slices.Sort(tv.patients)
	return tv
}

// escapeValue escapes FHIR search's special characters (R4 §3.1.1.1.2).
func escapeValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `|`, `\|`, `$`, `\$`)
	return r.Replace(s)
}

// dateForms are date search values around t: the full instant as
// recorded, to the second, minute, day, month and year (not to the hour:
// a dateTime has minutes, and the parser refuses yyyy-mm-ddThh).
func dateForms(t time.Time, written string) []string {
	t = t.UTC()
	return []string{
		written,
		t.Format("2006-01-02T15:04:05Z"),
		t.Format("2006-01-02T15:04Z"),
		t.Format("2006-01-02"),
		t.Format("2006-01"),
		t.Format("2006"),
	}
}

// namedCase is a search of the fixed table and how many events it
// should match on the default trail: some (neither flag), none
// (wantEmpty) or any number (anyCount).
type namedCase struct {
	q         diffQuery
	wantEmpty bool
	anyCount  bool
}

// namedCases are the fixed differential cases: every AuditEvent search
// parameter and modifier, date prefixes and precisions, ORs, ANDs,
// compartments, sorting, counts and totals, and searches matching
// nothing (wantEmpty).
func namedCases(tv *trailValues) []namedCase {
	type c = namedCase
	var out []c
	add := func(raw string) { out = append(out, c{q: diffQuery{raw: raw}}) }
	none := func(raw string) { out = append(out, c{q: diffQuery{raw: raw}, wantEmpty: true}) }
	// either is a case that may or may not match.
	either := func(raw string) { out = append(out, c{q: diffQuery{raw: raw}, anyCount: true}) }
	tr := tv.tr
	mid := len(tr.ids) / 2
	rec := tv.instants[mid]
	recT := tv.recorded[mid]
	lu := tv.published[mid]
	// Two resources one event names (for an AND of entity).
	var twoEntities []string
	for _, w := range tr.writes {
		var refs []string
		for _, e := range w.Entries {
			if e.Param == "entity" && e.RefID != "" && e.URL == "" {
				refs = append(refs, e.RefType+"/"+e.RefID)
			}
		}
		if len(refs) >= 2 && refs[0] != refs[1] {
			twoEntities = refs[:2]
			break
		}
	}

	// Default order, sorting, counts.
	add("")
	add("_count=5")
	add("_count=1000")
	add("_sort=date")
	add("_sort=-date")
	add("_sort=_lastUpdated")
	add("_sort=-_lastUpdated")
	add("_sort=date,_lastUpdated")
	add("_sort=-date,-_lastUpdated")
	add("_sort=date,-_lastUpdated")
	add("_sort=-_lastUpdated,date")
	add("_sort=-date&_count=7")
	add("_count=0")
	add("_summary=count")
	add("_summary=count&outcome=4")
	add("_total=accurate&_count=3")
	out = append(out, c{q: diffQuery{raw: "_count=4", wantTotal: true}})
	out = append(out, c{q: diffQuery{raw: "_count=0&patient=p1", wantTotal: true}})

	// Tokens.
	add("action=R")
	add("action=C,U,D")
	none("action=E&action:not=E")
	add("outcome=0")
	add("outcome=4")
	add("outcome=8")
	add("outcome=12")
	add("outcome=4,8,12")
	add("outcome:not=0")
	add("outcome:not=0,4")
	none("outcome=http://terminology.hl7.org/CodeSystem/audit-event-outcome|4") // outcome is a code: no system
	add("outcome=|4")
	add("outcome:missing=false")
	none("outcome:missing=true")
	none("outcome=99")
	add("type=rest")
	add("type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest")
	add("type=http://dicom.nema.org/resources/ontology/DCM|")
	add("type=http://dicom.nema.org/resources/ontology/DCM|110114,http://dicom.nema.org/resources/ontology/DCM|110113")
	none("type=|rest")
	none("type=http://dicom.nema.org|") // a prefix of a system is another system
	none("type=http://dicom.nema.org/resources/ontology/DCM/|")
	none("type:text=operation") // the start of the display ("RESTful Operation"), as the FHIR store matches
	add("type:not=rest")
	add("type:text=user")
	add("type:text=RESTful")
	add("type:text=security alert")
	add("type:missing=false")
	none("type=nosystem|nocode")
	add("subtype=read")
	add("subtype=http://hl7.org/fhir/restful-interaction|search-type")
	add("subtype=urn:ihe:event-type-code|ITI-71")
	add("subtype=" + audit.SystemWardenAction + "|")
	add("subtype=token&subtype=urn:ihe:event-type-code|")
	add("subtype:text=get access")
	none("subtype=http://hl7.org/fhir|")
	none("subtype=http://hl7.org/fhir/restful-interaction|rea")
	add("subtype:not=read,vread")
	add("subtype:missing=false")
	none("subtype:missing=true")
	add("altid=carol")
	add("altid:missing=false")
	add("altid:missing=true")
	add("altid:not=carol")
	none("altid=nobody")
	add("agent-role:missing=true")
	none("agent-role:missing=false")
	none("agent-role=110153")
	add("agent-role:not=110153")
	add("_tag:missing=true")
	none("_tag=x")
	add("_security:missing=true")
	none("_security:missing=false")

	// _id.
	add("_id=" + tr.ids[3])
	add("_id=" + tr.ids[3] + "," + tr.ids[mid] + "," + tr.ids[len(tr.ids)-1] + ",nope")
	add("_id:not=" + tr.ids[3] + "," + tr.ids[4])
	add("_id=" + tr.ids[3] + "&_id=" + tr.ids[3] + "," + tr.ids[4])
	none("_id=" + tr.ids[3] + "&_id=" + tr.ids[4])
	none("_id=nope")
	add("_id:missing=false")
	none("_id:missing=true")

	// Strings: the peer address.
	add("address=192")
	add("address=192.0.2.7")
	add("address=2001:db8")
	add("address=2001:DB8::1")
	add("address:exact=192.0.2.7")
	add("address:exact=2001:db8::1")
	none("address:exact=2001:DB8::1")
	add("address:exact=203.0.113.9")
	none("address:exact=::ffff:203.0.113.9")
	add("address:contains=db8")
	add("address:contains=0.2")
	add("address:contains=ABCD")
	add("address=198,2001:db8:1")
	add("address=192&address:contains=70")
	add("address:missing=true")
	add("address:missing=false")
	none("address=zz")

	// References.
	add("agent=Practitioner/2")
	add("agent=2")
	add("agent:Practitioner=2")
	add("agent:PractitionerRole=2")
	add("entity:Observation=p1")
	either("entity:Patient=p1&entity:Observation=p1")
	add("agent=Practitioner/77") // recorded as an absolute URL of this server
	// The FHIR API makes a search value under its base relative (see
	// store.Store.Search); as a URL it matches references written so.
	none("agent=" + diffBase + "/Practitioner/77")
	add("agent=https://other.example/fhir/Practitioner/9")
	none("agent=Practitioner/9") // an absolute URL of another server is no local reference
	none("agent=9")
	add("agent=Patient/p1")
	add("agent:Patient=p1")
	add("agent=PractitionerRole/3,RelatedPerson/r1")
	add("agent:identifier=app-1")
	add("agent:identifier=app-1,app-2")
	add("agent:identifier=|app-1")
	add("agent:identifier=urn:ietf:rfc:3986|" + diffBase)
	add("agent:identifier=urn:ietf:rfc:3986|")
	add("agent:identifier=carol@example.org,mailto:carol@example.org")
	add("agent:identifier=dave")
	add("agent:identifier=user-1")
	add("agent:missing=false")
	none("agent:missing=true")
	none("agent=Practitioner/999")
	add("entity=Patient/p1")
	add("entity=p1")
	add("entity:Patient=p2")
	add("entity=Observation/o3")
	add("entity=o3")
	add("entity=Encounter/e1")
	add("entity=Encounter/e1/_history/2")
	add("entity=Consent/c0,Consent/c1")
	add("entity:identifier=req-17")
	add("entity:identifier=req-17,req-18,req-300")
	add("entity=" + twoEntities[0] + "&entity=" + twoEntities[1])
	add("entity:missing=false")
	none("entity=Observation/o99")
	add("patient=p1")
	add("patient=Patient/p2")
	add("patient=p1,p3")
	add("patient=p1&patient=p3")
	add("patient:missing=true")
	add("patient:missing=false")
	none("patient=p99")
	none("patient=" + diffBase + "/Patient/p1") // a URL is matched as written
	add("policy=urn:ietf:params:oauth:jti:jti-7")
	add("policy=urn:ietf:params:oauth:jti:jti%2Fwith%20space-1")
	add("policy=urn:ietf:params:oauth:jti:jti-7,urn:ietf:params:oauth:jti:jti-8")
	add("policy:missing=true")
	add("policy:missing=false")
	none("policy=urn:ietf:params:oauth:jti:nope")
	none("policy=urn:ietf:params:oauth:jti")

	// Dates: date is AuditEvent.recorded, _lastUpdated the arrival time
	// to the millisecond.
	for _, f := range dateForms(recT, rec) {
		for _, p := range []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"} {
			either("date=" + p + f)
		}
	}
	// Boundaries: an event recorded a millisecond after another (sa and
	// eb meet, gt and ge part), and one stored a millisecond after
	// another.
	for i := 1; i < len(tr.ids); i++ {
		if tv.recorded[i].Sub(tv.recorded[i-1]) == time.Millisecond && tv.recorded[i].Equal(tv.recorded[i].Truncate(time.Millisecond)) {
			for _, p := range []string{"", "ne", "gt", "lt", "ge", "le", "sa", "eb"} {
				either("date=" + p + tv.instants[i-1])
				either("date=" + p + tv.instants[i])
			}
			break
		}
	}
	for i := 1; i < len(tr.ids); i++ {
		if tr.writes[i].Resource.LastUpdated.Sub(tr.writes[i-1].Resource.LastUpdated) == time.Millisecond {
			for _, p := range []string{"", "ne", "gt", "lt", "ge", "le", "sa", "eb"} {
				either("_lastUpdated=" + p + tv.published[i-1])
				either("_lastUpdated=" + p + tv.published[i])
			}
			break
		}
	}
	add("date=2026")
	add("date=2026-11")
	none("date=2025")
	none("date=2026-10")
	add("date=ge2026-11-22&date=lt2026-11-24")
	add("date=lt2026-11-21,gt2026-11-27")
	add("date=ge" + rec + "&_sort=-date&_count=9")
	add("date:missing=false")
	none("date:missing=true")
	for _, p := range []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"} {
		either("_lastUpdated=" + p + lu)
		either("_lastUpdated=" + p + recT.Format("2006-01-02T15:04Z"))
	}
	either("_lastUpdated=ge" + lu + "&date=lt" + rec)
	// Instants finer than the millisecond: _lastUpdated is an instant
	// (the range of one microsecond), date as precise as recorded.
	for _, p := range []string{"", "ne", "gt", "lt", "ge", "le", "sa", "eb"} {
		either("_lastUpdated=" + p + strings.TrimSuffix(lu, "Z") + "500Z")
		either("date=" + p + recT.Format("2006-01-02T15:04:05.000000Z"))
		either("date=" + p + recT.Add(500*time.Microsecond).Format("2006-01-02T15:04:05.000000Z"))
	}
	add("_lastUpdated=2026-11")
	none("_lastUpdated=2027")
	add("_lastUpdated:missing=false")
	none("_lastUpdated:missing=true")

	// Combinations.
	add("patient=p1&outcome=0&_sort=-date")
	add("agent=Practitioner/2&date=ge2026-11-22&_sort=_lastUpdated&_count=3")
	add("subtype=read,search-type&outcome:not=0&address=2001")
	add("type=rest&entity=Observation/o1,Observation/o2&_sort=-_lastUpdated")
	add("policy:missing=true&agent:identifier=app-0")

	// Compartments.
	for _, p := range tv.patients {
		out = append(out, c{q: diffQuery{patient: p}})
	}
	out = append(out, c{q: diffQuery{patient: "p99"}, wantEmpty: true})
	out = append(out, c{q: diffQuery{patient: "p1", raw: "_sort=-date&_count=4"}})
	out = append(out, c{q: diffQuery{patient: "p2", raw: "outcome=4,8"}})
	out = append(out, c{q: diffQuery{patient: "p1", raw: "patient=p2"}})
	out = append(out, c{q: diffQuery{patient: "p3", raw: "_summary=count"}})
	out = append(out, c{q: diffQuery{patient: "p3", raw: "_count=2", wantTotal: true}})
	return out
}

// diffFixture is a trail stored in both stores.
type diffFixture struct {
	reg  *searchparam.Registry
	tr   *auditTrail
	tv   *trailValues
	fhir store.Store
	d    *eventdb.DB
	// strict: the named cases that should match something (or nothing)
	// must, as they do on the default trail.
	strict bool
	// pagedOnly runs only the named cases that are paged through.
	pagedOnly bool
	// queries is the size of the random sample.
	queries int
}

// TestDiff compares eventdb with the FHIR store on one trail of
// -eventdb.events events: the fixed table of searches, every parameter, a
// random sample, reads, and the searches eventdb refuses.
func TestDiff(t *testing.T) {
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	tr := seedTrail(t, *diffSeed, *diffEvents, false)
	fhir, d := loadTrail(t, tr)
	fx := &diffFixture{reg: reg, tr: tr, tv: collectValues(t, tr), fhir: fhir, d: d,
		strict: *diffSeed == 1 && *diffEvents == trailLen, queries: randomQueries}
	t.Run("named", func(t *testing.T) { testDiffNamed(t, fx) })
	t.Run("parameters", func(t *testing.T) { testDiffParameters(t, fx) })
	t.Run("random", func(t *testing.T) { testDiffRandom(t, fx) })
	t.Run("read", func(t *testing.T) { testDiffRead(t, fx) })
	t.Run("unsupported", func(t *testing.T) { testDiffUnsupported(t, fx) })
}

// TestDiffJournalOrder compares eventdb with the FHIR store on a trail
// in the order a journal holds events under concurrent requests: not in
// the order of their times, some in the same millisecond. Without _sort,
// and between events that sort alike, both list events in the order
// they were stored.
func TestDiffJournalOrder(t *testing.T) {
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	tr := seedTrail(t, *diffSeed, 100, true)
	inversions, ties := 0, 0
	for i := 1; i < len(tr.writes); i++ {
		a, b := tr.writes[i-1].Resource.LastUpdated, tr.writes[i].Resource.LastUpdated
		if b.Before(a) {
			inversions++
		}
		if b.Equal(a) {
			ties++
		}
	}
	if inversions == 0 || ties == 0 {
		t.Fatalf("the trail has %d events before their predecessor and %d in its millisecond: it tests nothing", inversions, ties)
	}
	fhir, d := loadTrail(t, tr)
	fx := &diffFixture{reg: reg, tr: tr, tv: collectValues(t, tr), fhir: fhir, d: d, pagedOnly: true, queries: 40}
	t.Run("named", func(t *testing.T) { testDiffNamed(t, fx) })
	t.Run("random", func(t *testing.T) { testDiffRandom(t, fx) })
}

// testDiffNamed compares the stores on the fixed table of searches;
// those that sort, count or search a compartment are paged through both
// ways.
func testDiffNamed(t *testing.T, fx *diffFixture) {
	seen := map[string]bool{}
	for _, tc := range namedCases(fx.tv) {
		name := tc.q.String()
		if seen[name] {
			continue
		}
		seen[name] = true
		paged := tc.q.patient != "" || strings.Contains(tc.q.raw, "_sort") || strings.Contains(tc.q.raw, "_count")
		if fx.pagedOnly && !paged {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pageSize := 0
			if paged {
				pageSize = 3
			}
			n := differ(t, fx, tc.q, pageSize, paged)
			if (n == 0) != tc.wantEmpty && !tc.anyCount {
				// The table is written for the default trail; another
				// one may match differently.
				stale := t.Errorf
				if !fx.strict {
					stale = t.Logf
				}
				stale("%s: %d matches; the case is stale (want empty: %v)", tc.q, n, tc.wantEmpty)
			}
		})
	}
}

// testDiffParameters searches on every AuditEvent parameter the registry
// supports: :missing both ways and values of it that occur in the trail
// (eight of its forms at most), skipping what the parser refuses.
func testDiffParameters(t *testing.T, fx *diffFixture) {
	rng := rand.New(rand.NewPCG(*diffSeed, 2))
	for _, p := range fx.reg.Params("AuditEvent") {
		clauses := []string{p.Code + ":missing=true", p.Code + ":missing=false"}
		vals := slices.Clone(fx.tv.byParam[p.Code])
		rng.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
		clauses = append(clauses, vals[:min(len(vals), 8)]...)
		for _, cl := range clauses {
			dq := diffQuery{raw: cl}
			if _, err := dq.parse(fx.reg); err != nil {
				t.Logf("%s: the parser refuses it: %v", dq, err)
				continue
			}
			t.Run(dq.String(), func(t *testing.T) {
				t.Parallel()
				differ(t, fx, dq, 0, false)
			})
		}
	}
}

// testDiffRandom compares the stores on a seeded random sample of
// searches: one to three clauses drawn from the values in the trail (ORs
// of two values, a parameter repeated), some in a Patient compartment,
// with random sorting, counts, totals and paging.
func testDiffRandom(t *testing.T, fx *diffFixture) {
	tr, tv := fx.tr, fx.tv
	rng := rand.New(rand.NewPCG(*diffSeed, 3))
	var params []string
	for p := range tv.byParam {
		params = append(params, p)
	}
	slices.Sort(params)
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	date := func(param string) string {
		i := rng.IntN(len(tr.ids))
		written := tv.instants[i]
		if param == "_lastUpdated" {
			written = tv.published[i]
		}
		prefixes := []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}
		return param + "=" + pick(prefixes) + pick(dateForms(tv.recorded[i], written))
	}
	clause := func() string {
		switch k := rng.IntN(20); {
		case k < 3:
			return date("date")
		case k < 4:
			return date("_lastUpdated")
		case k < 5:
			return "_id=" + pick(tr.ids) + "," + pick(tr.ids)
		case k < 6:
			return pick(params) + ":missing=" + pick([]string{"true", "false"})
		}
		p := pick(params)
		cl := pick(tv.byParam[p])
		if rng.IntN(4) == 0 {
			// An OR of two values of the same form.
			other := pick(tv.byParam[p])
			name, _, _ := strings.Cut(cl, "=")
			if oname, oval, _ := strings.Cut(other, "="); oname == name {
				cl += "," + oval
			}
		}
		return cl
	}
	sorts := []string{"", "", "", "date", "-date", "_lastUpdated", "-_lastUpdated", "date,_lastUpdated", "-date,-_lastUpdated", "date,-_lastUpdated", "-_lastUpdated,date"}
	for i := range fx.queries {
		var parts []string
		for range 1 + rng.IntN(3) {
			parts = append(parts, clause())
		}
		if s := pick(sorts); s != "" {
			parts = append(parts, "_sort="+s)
		}
		switch k := rng.IntN(10); {
		case k < 3:
		case k < 4:
			parts = append(parts, "_summary=count")
		case k < 5:
			parts = append(parts, "_count=0")
		default:
			parts = append(parts, fmt.Sprintf("_count=%d", 1+rng.IntN(25)))
		}
		dq := diffQuery{raw: strings.Join(parts, "&"), wantTotal: rng.IntN(2) == 0}
		if rng.IntN(4) == 0 {
			dq.patient = pick(slices.Concat(tv.patients, []string{"p99"}))
		}
		pageSize, back := 1+rng.IntN(9), rng.IntN(4) == 0
		if _, err := dq.parse(fx.reg); err != nil {
			t.Fatalf("%s: %v", dq, err)
		}
		t.Run(fmt.Sprintf("%03d %s", i, dq), func(t *testing.T) {
			t.Parallel()
			differ(t, fx, dq, pageSize, back)
		})
	}
}

// testDiffUnsupported: what eventdb does not answer it refuses with
// ErrUnsupported, never with a wrong answer.
func testDiffUnsupported(t *testing.T, fx *diffFixture) {
	ctx := context.Background()
	reg, d := fx.reg, fx.d
	for _, dq := range []diffQuery{
		{raw: "patient.name=x"},
		{raw: "agent:Practitioner.name=x"},
		{raw: "entity.identifier=x"},
		{raw: "_has:AuditEvent:entity:outcome=4"},
		{raw: "_include=AuditEvent:patient"},
		{raw: "_include=AuditEvent:agent:Practitioner"},
		{raw: "_revinclude=Provenance:target"},
		{raw: "_sort=outcome"},
		{raw: "_sort=_id"},
		{raw: "_sort=address"},
		{raw: "_sort=date,outcome"},
		{raw: "outcome=0&_sort=-agent"},
	} {
		t.Run(dq.String(), func(t *testing.T) {
			q, err := dq.parse(reg)
			if err != nil {
				t.Fatalf("the parser refuses it: %v", err)
			}
			for _, page := range []store.PageRequest{{}, {WantTotal: true}, {OnlyCount: true}} {
				if res, err := d.Search(ctx, q, page); !errors.Is(err, eventdb.ErrUnsupported) {
					t.Errorf("%+v: %v, %v; want ErrUnsupported", page, res, err)
				}
			}
		})
	}
	t.Run("another type", func(t *testing.T) {
		q, err := search.Parse(reg, "Patient", url.Values{"name": {"x"}}, search.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Search(ctx, q, store.PageRequest{}); !errors.Is(err, eventdb.ErrUnsupported) {
			t.Errorf("Patient?name=x: %v, want ErrUnsupported", err)
		}
	})
	t.Run("another compartment", func(t *testing.T) {
		q, err := search.Parse(reg, "AuditEvent", url.Values{}, search.Options{})
		if err != nil {
			t.Fatal(err)
		}
		q.Compartment = &search.Compartment{Type: "Encounter", ID: "e1"}
		if _, err := d.Search(ctx, q, store.PageRequest{}); !errors.Is(err, eventdb.ErrUnsupported) {
			t.Errorf("Encounter/e1/AuditEvent: %v, want ErrUnsupported", err)
		}
	})
}

// testDiffRead: every event reads back from eventdb as from the FHIR
// store; unknown ones are store.ErrNotFound in both.
func testDiffRead(t *testing.T, fx *diffFixture) {
	ctx := context.Background()
	fhir, d := fx.fhir, fx.d
	for _, id := range fx.tr.ids {
		want, err := fhir.Read(ctx, "AuditEvent", id)
		if err != nil {
			t.Fatalf("the FHIR store: %s: %v", id, err)
		}
		got, err := d.Read(ctx, "AuditEvent", id)
		if err != nil {
			t.Errorf("eventdb: %s: %v", id, err)
			continue
		}
		if string(got.JSON) != string(want.JSON) {
			t.Errorf("%s: JSON differs\nsql:     %s\neventdb: %s", id, want.JSON, got.JSON)
		}
		if got.Type != want.Type || got.ID != want.ID || got.Version != want.Version || got.Deleted != want.Deleted || !got.LastUpdated.Equal(want.LastUpdated) {
			t.Errorf("%s: read as %s/%s v%d at %v (deleted %v), the FHIR store %s/%s v%d at %v (deleted %v)", id,
				got.Type, got.ID, got.Version, got.LastUpdated, got.Deleted, want.Type, want.ID, want.Version, want.LastUpdated, want.Deleted)
		}
		if !slices.Equal(got.Patients, want.Patients) {
			t.Errorf("%s: compartments %q, the FHIR store %q", id, got.Patients, want.Patients)
		}
	}
	for _, tc := range []struct{ typ, id string }{
		{"AuditEvent", "nope"},
		{"AuditEvent", fx.tr.ids[0] + "x"},
		{"AuditEvent", "x" + fx.tr.ids[0]},
		{"Patient", fx.tr.ids[0]},
	} {
		if _, err := fhir.Read(ctx, tc.typ, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the FHIR store: %s/%s: %v, want ErrNotFound", tc.typ, tc.id, err)
		}
		if _, err := d.Read(ctx, tc.typ, tc.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("eventdb: %s/%s: %v, want ErrNotFound", tc.typ, tc.id, err)
		}
	}
}
