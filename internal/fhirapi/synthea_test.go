package fhirapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/demo"
	"github.com/wardenfhir/warden/internal/fhirapi"
)

// TestSyntheaSearch loads the demo patients (real Synthea transaction
// Bundles) and checks searches against answers computed independently
// from the Bundle JSON.
func TestSyntheaSearch(t *testing.T) {
	ts := newTestServer(t)
	bundles, err := demo.Patients()
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		bundles = bundles[:3]
	}
	ctx := context.Background()
	type key struct{ patient, code string }
	want := map[key]int{}
	patients := map[string]int{} // patient id → resources in bundle
	for _, b := range bundles {
		if _, err := ts.api.ProcessBundle(ctx, b.JSON, fhirapi.BundleOptions{StableIDs: true}); err != nil {
			t.Fatalf("%s: %v", b.Name, err)
		}
		var doc struct {
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b.JSON, &doc); err != nil {
			t.Fatal(err)
		}
		pid := ""
		for _, e := range doc.Entry {
			var r struct {
				ResourceType string `json:"resourceType"`
				Subject      struct{ Reference string }
				Code         struct {
					Coding []struct{ System, Code string }
				}
			}
			json.Unmarshal(e.Resource, &r)
			switch r.ResourceType {
			case "Patient":
				pid = strings.TrimPrefix(e.FullURL, "urn:uuid:")
				patients[pid] = len(doc.Entry)
			case "Observation":
				ref := strings.TrimPrefix(r.Subject.Reference, "urn:uuid:")
				seen := map[string]bool{}
				for _, c := range r.Code.Coding {
					k := c.System + "|" + c.Code
					if !seen[k] {
						want[key{ref, k}]++
						seen[k] = true
					}
				}
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("no observations found in the sample")
	}
	n := 0
	for k, count := range want {
		if n++; n > 40 {
			break
		}
		q := "/Observation?patient=" + k.patient + "&code=" + url.QueryEscape(k.code) + "&_count=1000&_total=accurate"
		r := ts.do("GET", q, nil)
		ts.mustStatus(r, http.StatusOK)
		b := r.json(t)
		if got := len(entryIDs(t, b, "match")); got != count {
			t.Errorf("%s: %d matches, want %d", q, got, count)
		}
		if int(b["total"].(float64)) != count {
			t.Errorf("%s: total %v, want %d", q, b["total"], count)
		}
	}

	// Importing again changes nothing: no new versions.
	for _, b := range bundles[:1] {
		if _, err := ts.api.ProcessBundle(ctx, b.JSON, fhirapi.BundleOptions{StableIDs: true}); err != nil {
			t.Fatalf("re-import %s: %v", b.Name, err)
		}
	}
	for pid := range patients {
		r := ts.do("GET", "/Patient/"+pid+"/_history", nil)
		ts.mustStatus(r, http.StatusOK)
		if tot := r.json(t)["total"].(float64); tot != 1 {
			t.Errorf("Patient/%s has %v versions after re-import", pid, tot)
		}
		ev := ts.do("GET", "/Patient/"+pid+"/$everything", nil)
		ts.mustStatus(ev, http.StatusOK)
		ids := entryIDs(t, ev.json(t), "")
		if len(ids) < 2 || ids[0] != "Patient/"+pid {
			t.Errorf("$everything for %s: %d entries", pid, len(ids))
		}
		for _, id := range ids {
			if strings.HasPrefix(id, "Organization/") || strings.HasPrefix(id, "Practitioner/") {
				t.Errorf("$everything returned %s, which is outside the patient compartment", id)
			}
		}
	}
}
