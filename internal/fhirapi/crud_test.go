package fhirapi_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestLifecycle(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("POST", "/Patient", patient("Chalmers", "Peter", "male", "1974-12-25"))
	ts.mustStatus(r, http.StatusCreated)
	p := r.json(t)
	id := p["id"].(string)
	if len(id) != 36 {
		t.Errorf("server-assigned id %q is not a random UUID", id)
	}
	if got := r.header.Get("ETag"); got != `W/"1"` {
		t.Errorf("ETag %q", got)
	}
	if loc := r.header.Get("Location"); loc != ts.url+"/Patient/"+id+"/_history/1" {
		t.Errorf("Location %q", loc)
	}
	meta := p["meta"].(map[string]any)
	if meta["versionId"] != "1" || meta["lastUpdated"] == nil {
		t.Errorf("meta %v", meta)
	}

	r = ts.do("GET", "/Patient/"+id, nil)
	ts.mustStatus(r, http.StatusOK)
	if r.json(t)["gender"] != "male" {
		t.Errorf("read: %s", r.body)
	}

	upd := patient("Chalmers", "Peter", "male", "1974-12-26")
	upd["id"] = id
	r = ts.do("PUT", "/Patient/"+id, upd, "If-Match", `W/"1"`)
	ts.mustStatus(r, http.StatusOK)
	if r.header.Get("ETag") != `W/"2"` {
		t.Errorf("update ETag %q", r.header.Get("ETag"))
	}
	// a stale If-Match loses
	ts.mustStatus(ts.do("PUT", "/Patient/"+id, upd, "If-Match", `W/"1"`), http.StatusPreconditionFailed)
	// an identical update is a no-op: no new version
	r = ts.do("PUT", "/Patient/"+id, upd)
	ts.mustStatus(r, http.StatusOK)
	if r.header.Get("ETag") != `W/"2"` {
		t.Errorf("no-op update made a new version: %q", r.header.Get("ETag"))
	}

	v1 := ts.do("GET", "/Patient/"+id+"/_history/1", nil)
	ts.mustStatus(v1, http.StatusOK)
	if v1.json(t)["birthDate"] != "1974-12-25" {
		t.Errorf("vread 1: %s", v1.body)
	}
	ts.mustStatus(ts.do("GET", "/Patient/"+id+"/_history/9", nil), http.StatusNotFound)

	ts.mustStatus(ts.do("DELETE", "/Patient/"+id, nil), http.StatusNoContent)
	ts.mustStatus(ts.do("GET", "/Patient/"+id, nil), http.StatusGone)
	h := ts.do("GET", "/Patient/"+id+"/_history", nil)
	ts.mustStatus(h, http.StatusOK)
	hb := h.json(t)
	if hb["type"] != "history" || hb["total"].(float64) != 3 {
		t.Errorf("history: %s", h.body)
	}
	if self := link(hb, "self"); self != ts.url+"/Patient/"+id+"/_history" {
		t.Errorf("history self link %q is not the absolute request URL", self)
	}
	// version 1 is still readable after deletion
	ts.mustStatus(ts.do("GET", "/Patient/"+id+"/_history/1", nil), http.StatusOK)

	// update-as-create with a client id
	c := patient("Doe", "Jane", "female", "1990")
	c["id"] = "client-chosen-1"
	ts.mustStatus(ts.do("PUT", "/Patient/client-chosen-1", c), http.StatusCreated)
	// body id must match the URL
	ts.mustStatus(ts.do("PUT", "/Patient/other", c), http.StatusBadRequest)
}

func TestPreferReturn(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("POST", "/Patient", patient("A", "B", "female", "2000"), "Prefer", "return=minimal")
	ts.mustStatus(r, http.StatusCreated)
	if len(r.body) != 0 || r.header.Get("Location") == "" {
		t.Errorf("return=minimal: body %q location %q", r.body, r.header.Get("Location"))
	}
	r = ts.do("POST", "/Patient", patient("A", "B", "female", "2000"), "Prefer", "return=OperationOutcome")
	ts.mustStatus(r, http.StatusCreated)
	if r.json(t)["resourceType"] != "OperationOutcome" {
		t.Errorf("return=OperationOutcome: %s", r.body)
	}
}

// Bad input gets a 4xx OperationOutcome, never echoes the content, and
// changes nothing.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t)
	const secret = "ZZSECRETVALUE42"
	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
	}{
		{"unknown element", "POST", "/Patient", `{"resourceType":"Patient","favouriteColour":"` + secret + `"}`, nil, 400},
		{"wrong datatype", "POST", "/Patient", `{"resourceType":"Patient","active":"` + secret + `"}`, nil, 400},
		{"bad code", "POST", "/Patient", `{"resourceType":"Patient","gender":"` + secret + `"}`, nil, 400},
		{"missing required", "POST", "/Observation", `{"resourceType":"Observation","code":{"text":"` + secret + `"}}`, nil, 400},
		{"malformed json", "POST", "/Patient", `{"resourceType":"Patient",` + secret, nil, 400},
		{"type mismatch", "POST", "/Patient", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, nil, 400},
		{"deep nesting", "POST", "/Patient", `{"resourceType":"Patient","extension":` + strings.Repeat(`[`, 500) + strings.Repeat(`]`, 500) + `}`, nil, 400},
		{"xml accept", "GET", "/Patient", "", []string{"Accept", "application/fhir+xml"}, 406},
		{"xml format", "GET", "/Patient?_format=xml", "", nil, 406},
		{"xml body", "POST", "/Patient", "<Patient/>", []string{"Content-Type", "application/fhir+xml"}, 415},
		{"gzip body", "POST", "/Patient", "\x1f\x8b\x08\x00" + secret, []string{"Content-Encoding", "gzip"}, 415},
		{"deflate body", "PUT", "/Patient/x", `{"resourceType":"Patient","id":"x"}`, []string{"Content-Encoding", "deflate"}, 415},
		{"method override", "POST", "/Patient", `{"resourceType":"Patient"}`, []string{"X-HTTP-Method-Override", "DELETE"}, 400},
		{"unknown type", "GET", "/Patientx", "", nil, 404},
		{"bad id", "GET", "/Patient/a_b", "", nil, 404},
		{"unknown search param", "GET", "/Patient?unknownparam=" + secret, "", nil, 400},
		{"bad token", "GET", "/Patient?_id=" + secret + "_x", "", nil, 400},
		{"bad date", "GET", "/Patient?birthdate=" + secret, "", nil, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.do(c.method, c.path, c.body, c.headers...)
			ts.mustStatus(r, c.status)
			if r.json(t)["resourceType"] != "OperationOutcome" {
				t.Errorf("not an OperationOutcome: %s", r.body)
			}
			if strings.Contains(string(r.body), secret) {
				t.Errorf("error echoes request content: %s", r.body)
			}
		})
	}
	r := ts.do("GET", "/Patient?_summary=count", nil)
	ts.mustStatus(r, 200)
	if r.json(t)["total"].(float64) != 0 {
		t.Errorf("a rejected write left data behind: %s", r.body)
	}
	r = ts.do("GET", "/Patient?foo=1", nil, "Prefer", "handling=lenient")
	ts.mustStatus(r, 200)
	if !strings.Contains(string(r.body), "foo") {
		t.Errorf("lenient search does not report the ignored parameter: %s", r.body)
	}
}

func TestConditional(t *testing.T) {
	ts := newTestServer(t)
	p := patient("Cond", "One", "male", "1980")
	p["identifier"] = []any{map[string]any{"system": "urn:mrn", "value": "123"}}
	r := ts.do("POST", "/Patient", p, "If-None-Exist", "identifier=urn:mrn|123")
	ts.mustStatus(r, http.StatusCreated)
	id := r.json(t)["id"]
	r = ts.do("POST", "/Patient", p, "If-None-Exist", "identifier=urn:mrn|123")
	ts.mustStatus(r, http.StatusOK)
	if r.json(t)["id"] != id {
		t.Errorf("conditional create made a second resource")
	}
	// conditional update finds the same resource
	p["gender"] = "other"
	r = ts.do("PUT", "/Patient?identifier=urn:mrn|123", p)
	ts.mustStatus(r, http.StatusOK)
	if r.json(t)["id"] != id || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("conditional update: %s", r.body)
	}
	// conditional update without match creates
	q := patient("Cond", "Two", "male", "1980")
	r = ts.do("PUT", "/Patient?identifier=urn:mrn|999", q)
	ts.mustStatus(r, http.StatusCreated)
	// two matches → 412 for create, update and delete
	ts.create(patient("Same", "X", "male", "1970"))
	ts.create(patient("Same", "Y", "male", "1970"))
	ts.mustStatus(ts.do("POST", "/Patient", patient("Same", "Z", "male", "1970"), "If-None-Exist", "family=Same"), http.StatusPreconditionFailed)
	ts.mustStatus(ts.do("PUT", "/Patient?family=Same", patient("Same", "Z", "male", "1970")), http.StatusPreconditionFailed)
	ts.mustStatus(ts.do("DELETE", "/Patient?family=Same", nil), http.StatusPreconditionFailed)
	// a condition naming this server's own base by absolute URL finds
	// the local resource, as a search does
	obs := observation(id.(string), "http://loinc.org", "8480-6", "2020-01-01", 1)
	ts.create(obs)
	r = ts.do("POST", "/Observation", obs, "If-None-Exist", "subject="+ts.url+"/Patient/"+id.(string))
	ts.mustStatus(r, http.StatusOK)
	ts.mustStatus(ts.do("DELETE", "/Patient?identifier=urn:mrn|123", nil), http.StatusNoContent)
	ts.mustStatus(ts.do("GET", "/Patient/"+id.(string), nil), http.StatusGone)
}

func TestCapabilityStatement(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("GET", "/metadata", nil)
	ts.mustStatus(r, 200)
	cs := r.json(t)
	if cs["fhirVersion"] != "4.0.1" {
		t.Fatalf("fhirVersion %v", cs["fhirVersion"])
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	types := map[string]map[string]any{}
	for _, res := range rest["resource"].([]any) {
		m := res.(map[string]any)
		types[m["type"].(string)] = m
	}
	if len(types) < 140 {
		t.Errorf("only %d resource types", len(types))
	}
	obs := types["Observation"]
	found := false
	for _, sp := range obs["searchParam"].([]any) {
		if sp.(map[string]any)["name"] == "code" {
			found = true
		}
	}
	if !found {
		t.Errorf("Observation code search parameter not advertised")
	}
}
