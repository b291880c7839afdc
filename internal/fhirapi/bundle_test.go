package fhirapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/fhirapi"
)

func TestTransaction(t *testing.T) {
	ts := newTestServer(t)
	tx := map[string]any{
		"resourceType": "Bundle",
		"type":         "transaction",
		"entry": []any{
			map[string]any{
				"fullUrl":  "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
				"resource": patient("Trans", "Action", "female", "1970"),
				"request":  map[string]any{"method": "POST", "url": "Patient"},
			},
			map[string]any{
				"fullUrl":  "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
				"resource": observation("ignored", "http://loinc.org", "8480-6", "2020-01-01", 100),
				"request":  map[string]any{"method": "POST", "url": "Observation"},
			},
		},
	}
	obs := tx["entry"].([]any)[1].(map[string]any)["resource"].(map[string]any)
	obs["subject"] = map[string]any{"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}
	r := ts.do("POST", "", tx)
	ts.mustStatus(r, http.StatusOK)
	b := r.json(t)
	if b["type"] != "transaction-response" {
		t.Fatalf("%s", r.body)
	}
	entries := b["entry"].([]any)
	loc0 := entries[0].(map[string]any)["response"].(map[string]any)["location"].(string)
	pid := strings.Split(loc0, "/")[1]
	loc1 := entries[1].(map[string]any)["response"].(map[string]any)["location"].(string)
	o := ts.do("GET", "/"+strings.Join(strings.Split(loc1, "/")[:2], "/"), nil)
	ts.mustStatus(o, http.StatusOK)
	if ref := o.json(t)["subject"].(map[string]any)["reference"]; ref != "Patient/"+pid {
		t.Errorf("urn:uuid reference not rewritten: %v", ref)
	}

	// all or nothing: an invalid second entry leaves nothing behind
	bad := map[string]any{
		"resourceType": "Bundle",
		"type":         "transaction",
		"entry": []any{
			map[string]any{"resource": patient("Rollback", "Me", "male", "1970"), "request": map[string]any{"method": "POST", "url": "Patient"}},
			map[string]any{"resource": map[string]any{"resourceType": "Patient", "gender": "nonsense"}, "request": map[string]any{"method": "POST", "url": "Patient"}},
		},
	}
	r = ts.do("POST", "", bad)
	if r.status < 400 || r.status >= 500 {
		t.Fatalf("invalid transaction: status %d %s", r.status, r.body)
	}
	if !strings.Contains(string(r.body), "Bundle.entry[1]") {
		t.Errorf("error does not name the entry: %s", r.body)
	}
	r = ts.do("GET", "/Patient?family=Rollback", nil)
	if got := entryIDs(t, r.json(t), "match"); len(got) != 0 {
		t.Errorf("failed transaction wrote %v", got)
	}

	// an unresolvable urn:uuid reference fails the transaction
	dangling := map[string]any{
		"resourceType": "Bundle", "type": "transaction",
		"entry": []any{map[string]any{"resource": observation("x", "http://loinc.org", "1", "2020", 1), "request": map[string]any{"method": "POST", "url": "Observation"}}},
	}
	dangling["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["subject"] = map[string]any{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}
	if r = ts.do("POST", "", dangling); r.status != http.StatusBadRequest {
		t.Errorf("dangling urn:uuid: %d %s", r.status, r.body)
	}
}

func TestBatch(t *testing.T) {
	ts := newTestServer(t)
	batch := map[string]any{
		"resourceType": "Bundle",
		"type":         "batch",
		"entry": []any{
			map[string]any{"resource": patient("Batch", "Good", "male", "1970"), "request": map[string]any{"method": "POST", "url": "Patient"}},
			map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/does-not-exist"}},
			map[string]any{"resource": patient("Batch", "Good2", "male", "1971"), "request": map[string]any{"method": "POST", "url": "Patient"}},
		},
	}
	r := ts.do("POST", "", batch)
	ts.mustStatus(r, http.StatusOK)
	entries := r.json(t)["entry"].([]any)
	status := func(i int) string {
		return entries[i].(map[string]any)["response"].(map[string]any)["status"].(string)
	}
	if !strings.HasPrefix(status(0), "201") || !strings.HasPrefix(status(1), "404") || !strings.HasPrefix(status(2), "201") {
		t.Errorf("batch statuses %s %s %s", status(0), status(1), status(2))
	}
}

// Data merged from several sources may hold one identifier twice: an
// API conditional create then fails with 412, but an import (StableIDs)
// treats the identifier as existing, so loading again never fails.
func TestImportToleratesDuplicateIdentifiers(t *testing.T) {
	ts := newTestServer(t)
	org := map[string]any{"resourceType": "Organization", "name": "Dup", "identifier": []any{map[string]any{"system": "urn:org", "value": "1"}}}
	ts.create(org)
	ts.create(org)
	batch := []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Organization","name":"Dup","identifier":[{"system":"urn:org","value":"1"}]},"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:org|1"}}]}`)
	r := ts.do("POST", "", batch)
	ts.mustStatus(r, http.StatusOK)
	if !strings.Contains(string(r.body), "412") {
		t.Errorf("API conditional create with two matches: %s", r.body)
	}
	out, err := ts.api.ProcessBundle(context.Background(), batch, fhirapi.BundleOptions{StableIDs: true})
	if err != nil || !strings.Contains(string(out), `"200 OK"`) {
		t.Errorf("import conditional create with two matches: %v %s", err, out)
	}
	r = ts.do("GET", "/Organization?identifier=urn:org|1&_summary=count", nil)
	if r.json(t)["total"].(float64) != 2 {
		t.Errorf("import created another duplicate: %s", r.body)
	}
}

// A batch's entries run several at a time; conditional creates of one
// identifier in one batch still create it once.
func TestBatchConcurrentConditionalCreates(t *testing.T) {
	ts := newTestServer(t)
	var entries []string
	for i := range 24 {
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Organization","name":"Org %d","identifier":[{"system":"urn:org","value":"42"}]},"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:org|42"}}`, i))
		entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Organization","name":"Other %d"},"request":{"method":"POST","url":"Organization"}}`, i))
	}
	r := ts.do("POST", "", []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+strings.Join(entries, ",")+`]}`))
	ts.mustStatus(r, http.StatusOK)
	created, existing := 0, 0
	for i, e := range r.json(t)["entry"].([]any) {
		st := e.(map[string]any)["response"].(map[string]any)["status"].(string)
		switch {
		case i%2 == 1 && strings.HasPrefix(st, "201"):
		case i%2 == 0 && strings.HasPrefix(st, "201"):
			created++
		case i%2 == 0 && strings.HasPrefix(st, "200"):
			existing++
		default:
			t.Errorf("entry %d: %s", i, st)
		}
	}
	if created != 1 || existing != 23 {
		t.Errorf("conditional creates: %d created, %d found existing; want 1 and 23", created, existing)
	}
	r = ts.do("GET", "/Organization?identifier=urn:org|42&_summary=count", nil)
	if r.json(t)["total"].(float64) != 1 {
		t.Errorf("one identifier stored more than once: %s", r.body)
	}
	r = ts.do("GET", "/Organization?_summary=count", nil)
	if r.json(t)["total"].(float64) != 25 {
		t.Errorf("organizations: %s", r.body)
	}
}
