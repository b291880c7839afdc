package fhirapi_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/fhirapi"
)

// recordingSink keeps every Record; when failing is set it refuses them.
type recordingSink struct {
	mu      sync.Mutex
	records []audit.Record
	failing bool
}

func (s *recordingSink) Append(_ context.Context, r audit.Record) (audit.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return audit.Receipt{}, errors.New("log unavailable")
	}
	s.records = append(s.records, r)
	return audit.Receipt{EventID: fmt.Sprint(len(s.records))}, nil
}

func (s *recordingSink) last(t *testing.T) audit.Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) == 0 {
		t.Fatal("no audit record")
	}
	return s.records[len(s.records)-1]
}

func TestEveryRequestAudited(t *testing.T) {
	sink := &recordingSink{}
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Audit = sink })

	// A search: who, what, and every patient whose data came back.
	f.mustStatus(f.as("p1-all", "GET", "/Observation?_include=Observation:subject", nil), 200)
	r := sink.last(t)
	if r.Action != "search-type" || r.Status != 200 || r.ClientID != "app" || r.FHIRUser != "Patient/p1" || r.TokenID == "" ||
		!slices.Equal(r.Patients, []string{"p1"}) || len(r.Resources) != 3 || r.Query.Get("_include") != "Observation:subject" {
		t.Errorf("search record %+v", r)
	}
	if !r.PeerAddr.IsLoopback() || r.RequestID == "" || r.Path != "/fhir/Observation" {
		t.Errorf("search record peer/id/path: %v %q %q", r.PeerAddr, r.RequestID, r.Path)
	}
	// A backend search over several patients names them all.
	f.mustStatus(f.as("backend-obs", "GET", "/Observation", nil), 200)
	if r := sink.last(t); !slices.Equal(r.Patients, []string{"p1", "p2"}) || r.Subject != "" {
		t.Errorf("backend search record %+v", r)
	}
	// Refusals are audited with their rule.
	f.as("p1-obs-r", "GET", "/Observation", nil)
	if r := sink.last(t); r.Status != 403 || !strings.Contains(r.DenyRule, "patient/Observation.s") {
		t.Errorf("denied record %+v", r)
	}
	f.as("p1-all", "GET", "/Observation/o2", nil)
	if r := sink.last(t); r.Status != 404 || len(r.Patients) != 0 {
		t.Errorf("hidden read record %+v", r)
	}
	f.do("GET", "/Patient/p1", nil)
	if r := sink.last(t); r.Status != 401 || r.ClientID != "" || r.Action != "read" {
		t.Errorf("unauthenticated record %+v", r)
	}
	// A write names what it wrote; a Bundle says which kind it was.
	f.mustStatus(f.as("p1-all", "POST", "/Observation", observation("p1", "http://loinc.org", "3", "2024-01-01", 1)), 201)
	if r := sink.last(t); r.Action != "create" || !slices.Equal(r.Patients, []string{"p1"}) || len(r.Resources) != 1 {
		t.Errorf("create record %+v", r)
	}
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"resource": observation("p1", "http://loinc.org", "4", "2024-01-01", 1), "request": map[string]any{"method": "POST", "url": "Observation"}}}}
	f.mustStatus(f.as("p1-all", "POST", "/", tx), 200)
	if r := sink.last(t); r.Action != "transaction" || len(r.Resources) != 1 {
		t.Errorf("transaction record %+v", r)
	}
	// Break-the-glass is carried into the record.
	f.mustStatus(f.as("prac-p2-glass", "GET", "/Observation/o2", nil), 200)
	if r := sink.last(t); r.BreakGlassReason == "" || r.Review == "" {
		t.Errorf("break-the-glass record %+v", r)
	}
	// Odd input still gives a valid event (a refused event would be a 503).
	f.as("p1-all", "GET", "/Observation?name=%FF%FE&x=%0C", nil)
	// Every record makes a valid AuditEvent.
	for _, r := range sink.records {
		if _, err := audit.Build(r, f.url); err != nil {
			t.Errorf("record %s %s does not build: %v", r.Method, r.Path, err)
		}
	}
}

func TestAuditFailureDisclosesNothing(t *testing.T) {
	sink := &recordingSink{failing: true}
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Audit = sink })
	for _, c := range []struct{ method, path string }{{"GET", "/Observation/o1lab"}, {"GET", "/Observation"}, {"GET", "/Patient/p1/$everything"}} {
		r := f.as("p1-all", c.method, c.path, nil)
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with the audit trail down: %d", c.method, c.path, r.status)
		}
		if strings.Contains(string(r.body), "o1lab") || strings.Contains(string(r.body), "Pat") || r.header.Get("ETag") != "" {
			t.Errorf("%s %s disclosed data without an audit entry: %v %s", c.method, c.path, r.header, r.body)
		}
	}
	sink.failing = false
	f.mustStatus(f.as("p1-all", "GET", "/Observation/o1lab", nil), 200)
}

// A batch's entries run side by side: its audit record still names
// every resource each entry read or wrote, and every patient.
func TestBatchAuditNamesEveryEntry(t *testing.T) {
	sink := &recordingSink{}
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Audit = sink })
	var entries []any
	for range 6 {
		for _, id := range []string{"o1lab", "o1vital", "o2"} {
			entries = append(entries, map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/" + id}})
		}
		for _, p := range []string{"p1", "p2"} {
			entries = append(entries, map[string]any{"resource": observation(p, "http://loinc.org", "5", "2024-01-01", 1),
				"request": map[string]any{"method": "POST", "url": "Observation"}})
		}
	}
	for round := range 5 {
		f.mustStatus(f.as("backend-obs-all", "POST", "/", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": entries}), 200)
		r := sink.last(t)
		if r.Action != "batch" || len(r.Resources) != len(entries) || !slices.Equal(r.Patients, []string{"p1", "p2"}) {
			t.Fatalf("round %d: batch record names %d resources (want %d), patients %v", round, len(r.Resources), len(entries), r.Patients)
		}
		reads := 0
		for _, res := range r.Resources {
			if strings.HasPrefix(res, "Observation/o1lab/") || strings.HasPrefix(res, "Observation/o1vital/") || strings.HasPrefix(res, "Observation/o2/") {
				reads++
			}
		}
		if reads != 18 {
			t.Fatalf("round %d: %d of the 18 reads in the record: %v", round, reads, r.Resources)
		}
	}
}

// TestBundleBuffersNotShared: Bundles are written from recycled buffers
// (writeBundle). Many callers searching at once, each for its own
// patient's data, must each get exactly their own Bundle: a buffer
// reused while still being written would mix one patient's data into
// another's response. Run with and without the audit trail (whose held
// responses recycle after release).
func TestBundleBuffersNotShared(t *testing.T) {
	for _, audited := range []bool{false, true} {
		t.Run(fmt.Sprintf("audited=%v", audited), func(t *testing.T) {
			f := newAuthzFixture(t, func(o *fhirapi.Options) {
				if audited {
					o.Audit = &recordingSink{}
				}
			})
			want := map[string]string{}
			for _, tok := range []string{"p1-read", "p2-all"} {
				r := f.as(tok, "GET", "/Observation?_count=50", nil)
				f.mustStatus(r, 200)
				want[tok] = string(stripVolatile(r.body))
			}
			if want["p1-read"] == want["p2-all"] {
				t.Fatal("the two patients' searches answer alike")
			}
			var wg sync.WaitGroup
			var bad atomic.Int64
			for w := range 8 {
				tok := []string{"p1-read", "p2-all"}[w%2]
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 40 {
						r := f.as(tok, "GET", "/Observation?_count=50", nil)
						if got := string(stripVolatile(r.body)); r.status != 200 || got != want[tok] {
							if bad.Add(1) == 1 {
								t.Errorf("%s: %d %s, want %s", tok, r.status, got, want[tok])
							}
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// stripVolatile blanks what differs between two answers to one search:
// the Bundle's id and time.
func stripVolatile(b []byte) []byte {
	b = regexp.MustCompile(`^\{"resourceType":"Bundle","id":"[^"]*","meta":\{"lastUpdated":"[^"]*"\}`).ReplaceAll(b, []byte(`{"resourceType":"Bundle"`))
	return b
}
