package fhirapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/demo"
	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/tokens"
)

// benchPatient is Harland DuBuque, one of the demo patients.
const benchPatient = "08bb5ad8-79b2-47ef-a0ad-81ef0b4ab2c3"

// enforcedBench is the API over the demo patients twice: with real token
// verification and authorization, and with enforcement switched off
// (the Unauthenticated test build), over the same store.
type enforcedBench struct {
	open, enforced *fhirapi.API
	enforcedOpts   fhirapi.Options
	st             store.Store
	tokens         *tokens.Service
	patientTokens  []string // patient/*.rs tokens for benchPatient
}

func newEnforcedBench(b *testing.B) *enforcedBench {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "b.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	keys, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		b.Fatal(err)
	}
	const base = "https://bench.invalid/fhir"
	ts, err := tokens.New(ctx, tokens.Options{Issuer: base, Audience: base, Records: st, Sealer: keys})
	if err != nil {
		b.Fatal(err)
	}
	opts := fhirapi.Options{BaseURL: base, CursorKey: bytes.Repeat([]byte{1}, 32), MaxBodyBytes: 64 << 20}
	eb := &enforcedBench{tokens: ts, st: st}
	open := opts
	open.Unauthenticated = true
	if eb.open, err = fhirapi.New(st, open); err != nil {
		b.Fatal(err)
	}
	enforced := opts
	enforced.Verifier = ts
	eb.enforcedOpts = enforced
	if eb.enforced, err = fhirapi.New(st, enforced); err != nil {
		b.Fatal(err)
	}
	bundles, err := demo.Patients()
	if err != nil {
		b.Fatal(err)
	}
	for _, bu := range bundles {
		if _, err := eb.open.ProcessBundle(ctx, bu.JSON, fhirapi.BundleOptions{StableIDs: true}); err != nil {
			b.Fatal(err)
		}
	}
	// 64 users' worth of tokens, as 64 app sessions would hold.
	for i := range 64 {
		tok, _, _, err := ts.MintAccess(ctx, tokens.AccessClaims{
			Subject: fmt.Sprintf("user-%d", i), ClientID: "app", Scope: "launch/patient openid fhirUser patient/*.rs",
			Patient: benchPatient, FHIRUser: "Patient/" + benchPatient, GrantID: fmt.Sprintf("grant-%d", i),
			AuthTime: time.Now(), ACR: policy.ACRPassword,
		})
		if err != nil {
			b.Fatal(err)
		}
		eb.patientTokens = append(eb.patientTokens, tok)
	}
	return eb
}

// BenchmarkAuthorizeRequest measures the per-request authorization
// overhead the issue bounds (p50 under 50 µs): verifying the bearer token
// and deciding, over 64 live tokens used in turn, as the FHIR API does
// for each request. The first use of each token pays the signature check;
// the p99 shows it.
func BenchmarkAuthorizeRequest(b *testing.B) {
	eb := newEnforcedBench(b)
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tok := eb.patientTokens[i%len(eb.patientTokens)]
		i++
		t0 := time.Now()
		p, err := eb.tokens.Verify(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		d := policy.Decide(p, policy.Request{Action: policy.ActRead, Type: "Observation"}, policy.Options{}, t0)
		if d.Effect != policy.Allow || d.Patient != benchPatient {
			b.Fatalf("decision %+v", d)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkReadEnforced and BenchmarkReadOpen serve the same read by id
// in-process, with and without enforcement: their ratio is what the
// token check, the decision and the compartment check cost per request.
func BenchmarkReadEnforced(b *testing.B) {
	eb := newEnforcedBench(b)
	benchGETAs(b, eb.enforced, "Patient/"+benchPatient, eb.patientTokens)
}

func BenchmarkReadOpen(b *testing.B) {
	eb := newEnforcedBench(b)
	benchGETAs(b, eb.open, "Patient/"+benchPatient, nil)
}

func BenchmarkSearchEnforced(b *testing.B) {
	eb := newEnforcedBench(b)
	benchGETAs(b, eb.enforced, "Observation?patient="+benchPatient+"&code=http%3A%2F%2Floinc.org%7C72514-3&_count=50", eb.patientTokens)
}

func BenchmarkSearchOpen(b *testing.B) {
	eb := newEnforcedBench(b)
	benchGETAs(b, eb.open, "Observation?patient="+benchPatient+"&code=http%3A%2F%2Floinc.org%7C72514-3&_count=50", nil)
}

func benchGETAs(b *testing.B, api *fhirapi.API, path string, toks []string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req := httptest.NewRequest("GET", "https://bench.invalid/fhir/"+path, nil)
			if toks != nil {
				req.Header.Set("Authorization", "Bearer "+toks[i%len(toks)])
				i++
			}
			w := httptest.NewRecorder()
			api.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("%s: %d %s", path, w.Code, w.Body)
			}
		}
	})
}

// BenchmarkNotFoundVsHidden answers a patient token's read of a
// resource that does not exist and of one that exists in another
// patient's record: both are the same 404, and should cost the same, so
// that timing does not tell them apart (compare the two ns/op).
func BenchmarkNotFoundVsHidden(b *testing.B) {
	eb := newEnforcedBench(b)
	other, err := eb.open.SearchTrusted(fhirapi.Trusted(context.Background()), "Observation", map[string][]string{"_count": {"50"}})
	if err != nil {
		b.Fatal(err)
	}
	var hiddenID string
	for _, r := range other {
		if !slices.Contains(r.Patients, benchPatient) {
			hiddenID = r.ID
			break
		}
	}
	if hiddenID == "" {
		b.Fatal("no other patient's Observation")
	}
	for _, c := range []struct{ name, path string }{
		{"missing", "Observation/00000000-0000-4000-8000-000000000000"},
		{"other-patient", "Observation/" + hiddenID},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req := httptest.NewRequest("GET", "https://bench.invalid/fhir/"+c.path, nil)
				req.Header.Set("Authorization", "Bearer "+eb.patientTokens[i%len(eb.patientTokens)])
				i++
				w := httptest.NewRecorder()
				eb.enforced.ServeHTTP(w, req)
				if w.Code != 404 {
					b.Fatalf("%s: %d", c.path, w.Code)
				}
			}
		})
	}
}

// BenchmarkGuard serves the same patient-token read with the gateway's
// guard (request limits far above the load, and the abuse detection
// with its defaults) and without, in turn, timing every request: the
// issue wants the guard's added p50 under 20 µs.
func BenchmarkGuard(b *testing.B) {
	eb := newEnforcedBench(b)
	c, err := limits.ParseConfig([]byte("per_address: {rate: 50000000/min, burst: 1000000}\nclasses:\n  patient-app:\n    user: {rate: 50000000/min, burst: 1000000}\n    client: {rate: 50000000/min, burst: 1000000}\n    patient: {rate: 50000000/min, burst: 1000000}\n    concurrency: 1024\n    distinct_patients:\n      user: {count: 100000, window: 1h}\n      client: {count: 100000, window: 1h}\n"))
	if err != nil {
		b.Fatal(err)
	}
	lim, err := limits.New(c, limits.NewMemoryStore())
	if err != nil {
		b.Fatal(err)
	}
	det, err := detect.New(detect.DefaultPolicy(), detect.Options{})
	if err != nil {
		b.Fatal(err)
	}
	opts := eb.enforcedOpts
	opts.Limiter, opts.Detector = lim, det
	guarded, err := fhirapi.New(eb.st, opts)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		api  *fhirapi.API
	}{{"off", eb.enforced}, {"on", guarded}} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, 1<<16)
			i := 0
			for b.Loop() {
				req := httptest.NewRequest("GET", "https://bench.invalid/fhir/Patient/"+benchPatient, nil)
				req.Header.Set("Authorization", "Bearer "+eb.patientTokens[i%len(eb.patientTokens)])
				i++
				w := httptest.NewRecorder()
				t0 := time.Now()
				c.api.ServeHTTP(w, req)
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
		})
	}
}
