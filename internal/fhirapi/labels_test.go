package fhirapi_test

import (
	"slices"
	"testing"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/labels"
)

// securityCodes reads meta.security codes of a resource.
func securityCodes(t *testing.T, r response) []string {
	t.Helper()
	meta, _ := r.json(t)["meta"].(map[string]any)
	list, _ := meta["security"].([]any)
	var out []string
	for _, c := range list {
		out = append(out, c.(map[string]any)["code"].(string))
	}
	slices.Sort(out)
	return out
}

// TestLabelsOnWrite: every write is labelled from its codes; a client's
// labels are kept and never lowered; in a transaction, an Encounter whose
// reason is an HIV diagnosis inherits its label from the Condition, even
// when the Condition comes later in the Bundle; _security search finds
// them.
func TestLabelsOnWrite(t *testing.T) {
	l, err := labels.New()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerWith(t, func(o *fhirapi.Options) { o.Unauthenticated, o.Labeller = true, l })
	hiv := observation("p1", "http://loinc.org", "55277-8", "2024-01-01", 1)
	hiv["id"] = "hiv"
	r := ts.do("PUT", "/Observation/hiv", hiv)
	ts.mustStatus(r, 201)
	if got := securityCodes(t, r); !slices.Equal(got, []string{"HIV", "R"}) {
		t.Fatalf("HIV status observation labelled %v", got)
	}
	plain := observation("p1", "http://loinc.org", "2345-7", "2024-01-01", 1)
	plain["id"] = "glucose"
	if got := securityCodes(t, ts.do("PUT", "/Observation/glucose", plain)); !slices.Equal(got, []string{"N"}) {
		t.Fatalf("glucose labelled %v", got)
	}
	// Writing the same content again (a re-import) changes nothing: the
	// labels the server added do not make it look different.
	for _, res := range []map[string]any{plain, hiv} {
		r := ts.do("PUT", "/Observation/"+res["id"].(string), res)
		ts.mustStatus(r, 200)
		if v := r.json(t)["meta"].(map[string]any)["versionId"]; v != "1" {
			t.Fatalf("an identical update made version %v", v)
		}
	}
	// A client's very-restricted label stays; its false low one is raised.
	mine := observation("p1", "http://loinc.org", "2345-7", "2024-01-01", 1)
	mine["id"] = "mine"
	mine["meta"] = map[string]any{"security": []any{map[string]any{"system": labels.ConfidentialitySystem, "code": "V"}}}
	if got := securityCodes(t, ts.do("PUT", "/Observation/mine", mine)); !slices.Equal(got, []string{"V"}) {
		t.Fatalf("client's V became %v", got)
	}
	low := observation("p1", "http://loinc.org", "55277-8", "2024-01-01", 1)
	low["id"] = "low"
	low["meta"] = map[string]any{"security": []any{map[string]any{"system": labels.ConfidentialitySystem, "code": "N"}}}
	if got := securityCodes(t, ts.do("PUT", "/Observation/low", low)); !slices.Equal(got, []string{"HIV", "R"}) {
		t.Fatalf("an HIV result sent as N stayed %v", got)
	}

	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111",
			"resource": map[string]any{"resourceType": "Encounter", "status": "finished",
				"class":           map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
				"subject":         map[string]any{"reference": "Patient/p1"},
				"reasonReference": []any{map[string]any{"reference": "urn:uuid:22222222-2222-2222-2222-222222222222"}}},
			"request": map[string]any{"method": "POST", "url": "Encounter"}},
		map[string]any{"fullUrl": "urn:uuid:22222222-2222-2222-2222-222222222222",
			"resource": map[string]any{"resourceType": "Condition",
				"code":    map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "86406008"}}},
				"subject": map[string]any{"reference": "Patient/p1"}},
			"request": map[string]any{"method": "POST", "url": "Condition"}},
	}}
	ts.mustStatus(ts.do("POST", "/", tx), 200)
	r = ts.do("GET", "/Encounter?_security=HIV", nil)
	ts.mustStatus(r, 200)
	if ids := entryIDs(t, r.json(t), "match"); len(ids) != 1 {
		t.Fatalf("Encounters labelled HIV: %v", ids)
	}
	// A transaction of PUTs loaded twice (an import run again) leaves
	// every resource at version 1, inherited labels included.
	again := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": map[string]any{"resourceType": "Encounter", "id": "e9", "status": "finished",
			"class":           map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
			"subject":         map[string]any{"reference": "Patient/p1"},
			"reasonReference": []any{map[string]any{"reference": "Condition/c9"}}},
			"request": map[string]any{"method": "PUT", "url": "Encounter/e9"}},
		map[string]any{"resource": map[string]any{"resourceType": "Condition", "id": "c9",
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "86406008"}}},
			"subject": map[string]any{"reference": "Patient/p1"}},
			"request": map[string]any{"method": "PUT", "url": "Condition/c9"}},
	}}
	ts.mustStatus(ts.do("POST", "/", again), 200)
	ts.mustStatus(ts.do("POST", "/", again), 200)
	for _, ref := range []string{"/Encounter/e9", "/Condition/c9"} {
		r := ts.do("GET", ref, nil)
		if v := r.json(t)["meta"].(map[string]any)["versionId"]; v != "1" {
			t.Errorf("%s at version %v after loading the same transaction twice", ref, v)
		}
		if got := securityCodes(t, r); !slices.Contains(got, "HIV") {
			t.Errorf("%s labels %v", ref, got)
		}
	}

	r = ts.do("GET", "/Observation?_security=http://terminology.hl7.org/CodeSystem/v3-ActCode|HIV", nil)
	if ids := entryIDs(t, r.json(t), "match"); len(ids) != 2 || !slices.Contains(ids, "Observation/hiv") || !slices.Contains(ids, "Observation/low") {
		t.Fatalf("Observations labelled HIV: %v", ids)
	}
}
