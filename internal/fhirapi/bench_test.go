package fhirapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/demo"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// BenchmarkImportBundle measures loading the demo's Synthea transaction
// Bundles through ProcessBundle (validation, reference rewriting,
// extraction, SQLite writes); reported as resources/s.
func BenchmarkImportBundle(b *testing.B) {
	bundles, err := demo.Patients()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	entries := 0
	for _, bu := range bundles {
		entries += bytes.Count(bu.JSON, []byte(`"request"`))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "b.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		api, err := fhirapi.New(st, fhirapi.Options{BaseURL: "https://bench.invalid/fhir", Unauthenticated: true, CursorKey: bytes.Repeat([]byte{1}, 32), MaxBodyBytes: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, bu := range bundles {
			if _, err := api.ProcessBundle(ctx, bu.JSON, fhirapi.BundleOptions{StableIDs: true}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(entries*b.N)/b.Elapsed().Seconds(), "resources/s")
}

// BenchmarkTransaction100 posts 100-entry transaction Bundles of new
// Observations.
func BenchmarkTransaction100(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "b.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	api, err := fhirapi.New(st, fhirapi.Options{BaseURL: "https://bench.invalid/fhir", Unauthenticated: true, CursorKey: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	var entries []string
	obs, _ := json.Marshal(observation("p1", "http://loinc.org", "8867-4", "2024-01-01T10:00:00Z", 72))
	for i := 0; i < 100; i++ {
		entries = append(entries, `{"resource":`+string(obs)+`,"request":{"method":"POST","url":"Observation"}}`)
	}
	body := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := api.ProcessBundle(ctx, body, fhirapi.BundleOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bundles/s")
}

// benchAPI is an API over a SQLite store holding the demo patients.
func benchAPI(b *testing.B) (*fhirapi.API, string) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "b.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	api, err := fhirapi.New(st, fhirapi.Options{BaseURL: "https://bench.invalid/fhir", Unauthenticated: true, CursorKey: bytes.Repeat([]byte{1}, 32), MaxBodyBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	bundles, err := demo.Patients()
	if err != nil {
		b.Fatal(err)
	}
	for _, bu := range bundles {
		if _, err := api.ProcessBundle(ctx, bu.JSON, fhirapi.BundleOptions{StableIDs: true}); err != nil {
			b.Fatal(err)
		}
	}
	return api, "08bb5ad8-79b2-47ef-a0ad-81ef0b4ab2c3" // Harland DuBuque
}

func benchGET(b *testing.B, api *fhirapi.API, path string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("GET", "https://bench.invalid/fhir/"+path, nil)
			w := httptest.NewRecorder()
			api.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("%s: %d %s", path, w.Code, w.Body)
			}
		}
	})
}

func BenchmarkReadHandler(b *testing.B) {
	api, pid := benchAPI(b)
	benchGET(b, api, "Patient/"+pid)
}

func BenchmarkSearchPatientCodeHandler(b *testing.B) {
	api, pid := benchAPI(b)
	benchGET(b, api, "Observation?patient="+pid+"&code=http%3A%2F%2Floinc.org%7C72514-3&_count=50")
}
