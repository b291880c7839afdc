package fhirapi_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/limits"
)

// limiter is a Limiter over memory with cfg (YAML over the defaults).
func limiter(t *testing.T, cfg string) *limits.Limiter {
	t.Helper()
	c, err := limits.ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	l, err := limits.New(c, limits.NewMemoryStore())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLimitsThroughTheAPI: the peer's limit, the caller's cost limit
// (an $everything costs what many reads do) and the distinct-patient
// budget answer 429 with Retry-After, RateLimit headers and an
// OperationOutcome; an over-budget response is not released and its
// AuditEvent discloses nothing.
func TestLimitsThroughTheAPI(t *testing.T) {
	t.Run("peer address", func(t *testing.T) {
		f := newAuthzFixture(t, func(o *fhirapi.Options) {
			o.Limiter = limiter(t, "per_address: {rate: 60/min, burst: 3}\n")
		})
		for i := range 3 {
			f.mustStatus(f.as("p1-read", "GET", "/Observation/o1lab", nil), 200)
			_ = i
		}
		r := f.as("p1-read", "GET", "/Observation/o1lab", nil)
		if r.status != 429 {
			t.Fatalf("4th request from the address: %d", r.status)
		}
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		if !strings.Contains(r.header.Get("RateLimit-Policy"), "address") {
			t.Errorf("RateLimit-Policy %q", r.header.Get("RateLimit-Policy"))
		}
		if d := diagnostics(t, r); !strings.Contains(d, "Too many requests") || strings.Contains(d, "127.0.0.1") {
			t.Errorf("diagnostics %q", d)
		}
		// Unauthenticated requests count too: a flood is refused before
		// any token check.
		if r := f.do("GET", "/Patient/p1", nil); r.status != 429 {
			t.Errorf("unauthenticated flood: %d", r.status)
		}
	})
	t.Run("cost", func(t *testing.T) {
		f := newAuthzFixture(t, func(o *fhirapi.Options) {
			o.Limiter = limiter(t, "classes:\n  patient-app:\n    user: {rate: 60/min, burst: 60}\n")
		})
		f.mustStatus(f.as("p1-read", "GET", "/Patient/p1/$everything", nil), 200) // 50 units
		r := f.as("p1-read", "GET", "/Patient/p1/$everything", nil)
		if r.status != 429 || !strings.Contains(r.header.Get("RateLimit-Policy"), "user") {
			t.Fatalf("second $everything within the burst of 60 units: %d %q", r.status, r.header.Get("RateLimit-Policy"))
		}
		// Another user is not affected.
		f.mustStatus(f.as("p2-all", "GET", "/Patient/p2/$everything", nil), 200)
	})
	t.Run("bundle entries", func(t *testing.T) {
		// A batch of reads costs what the reads do: 40 entries × 2 units
		// exceed a burst of 60.
		f := newAuthzFixture(t, func(o *fhirapi.Options) {
			o.Limiter = limiter(t, "classes:\n  patient-app:\n    user: {rate: 60/min, burst: 60}\n")
		})
		var entries []any
		for range 40 {
			entries = append(entries, map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/o1lab"}})
		}
		batch := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": entries}
		r := f.as("p1-read", "POST", "/", batch)
		if r.status != 429 || r.header.Get("Retry-After") == "" || strings.Contains(string(r.body), "o1lab\"") {
			t.Fatalf("40-entry batch under a 60-unit burst: %d %s", r.status, r.body)
		}
		// A small one passes.
		f2 := newAuthzFixture(t, func(o *fhirapi.Options) {
			o.Limiter = limiter(t, "classes:\n  patient-app:\n    user: {rate: 60/min, burst: 60}\n")
		})
		batch["entry"] = entries[:5]
		f2.mustStatus(f2.as("p1-read", "POST", "/", batch), 200)
	})
	t.Run("distinct patients", func(t *testing.T) {
		sink := &recordingSink{}
		f := newAuthzFixture(t, func(o *fhirapi.Options) {
			o.Audit = sink
			o.Limiter = limiter(t, "classes:\n  backend:\n    distinct_patients:\n      client: {count: 1, window: 1h}\n")
		})
		f.mustStatus(f.as("backend-obs", "GET", "/Observation/o1lab", nil), 200)
		f.mustStatus(f.as("backend-obs", "GET", "/Observation/o1vital", nil), 200) // same patient
		r := f.as("backend-obs", "GET", "/Observation/o2", nil)                    // a second patient
		if r.status != 429 || strings.Contains(string(r.body), "p2") {
			t.Fatalf("second patient: %d %s", r.status, r.body)
		}
		rec := sink.last(t)
		if rec.Status != 429 || len(rec.Patients) != 0 || len(rec.Resources) != 0 || !strings.HasPrefix(rec.DenyRule, "limit:") {
			t.Fatalf("audit of the withheld response: %+v", rec)
		}
		// A search touching the first patient only still passes.
		r = f.as("backend-obs", "GET", "/Observation?patient=p1", nil)
		f.mustStatus(r, 200)
		if ids := entryIDs(t, r.json(t), "match"); !slices.Contains(ids, "Observation/o1lab") {
			t.Fatalf("search: %v", ids)
		}
	})
}
