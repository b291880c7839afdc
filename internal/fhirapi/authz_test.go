package fhirapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/coherence"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/smart"
	"github.com/wardenfhir/warden/internal/store"
)

// tokenTable is a Verifier over a fixed table: the FHIR API's tests need
// principals, not signatures (internal/tokens tests those).
type tokenTable map[string]*policy.Principal

var errUnknownToken = errors.New("unknown token")

func (tt tokenTable) Verify(_ context.Context, raw string) (*policy.Principal, error) {
	if raw == "unconfirmed" { // the process cannot confirm its revocation state
		return nil, fmt.Errorf("%w: database down", coherence.ErrUnavailable)
	}
	if p, ok := tt[raw]; ok {
		return p, nil
	}
	return nil, errUnknownToken
}

// principal builds a Principal for a patient-launch token.
func principal(client, fhirUser, patient, scope string) *policy.Principal {
	sc, unknown := smart.ParseScopes(scope)
	if len(unknown) > 0 {
		panic(fmt.Sprintf("test scope %q has unknown parts %v", scope, unknown))
	}
	sub := "user-" + strings.ReplaceAll(fhirUser, "/", "-")
	if fhirUser == "" {
		sub = client
	}
	return &policy.Principal{TokenID: "jti-" + client, ClientID: client, Subject: sub, FHIRUser: fhirUser, Patient: patient,
		Scope: scope, Scopes: sc, AuthTime: time.Now(), ACR: policy.ACRPassword}
}

// authzFixture is a server with two patients' records and tokens of every
// kind. p1 has a lab and a vital-signs Observation and an Encounter with
// practitioner pr1; p2 has one Observation.
type authzFixture struct {
	*testServer
	tok                    tokenTable
	p1, p2, pr1            string
	o1Lab, o1Vital, o2, e1 string
}

const labCategory = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

func newAuthzFixture(t *testing.T, opts ...func(*fhirapi.Options)) *authzFixture {
	t.Helper()
	return newAuthzFixtureOn(t, nil, opts...)
}

// newAuthzFixtureOn is newAuthzFixture serving the store that wrap makes
// of the SQLite one.
func newAuthzFixtureOn(t *testing.T, wrap func(store.Store) store.Store, opts ...func(*fhirapi.Options)) *authzFixture {
	t.Helper()
	tokens := tokenTable{}
	site, err := policy.DefaultSite()
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, wrap, func(o *fhirapi.Options) {
		o.Verifier = tokens
		o.Site = site
		for _, f := range opts {
			f(o)
		}
	})
	f := &authzFixture{testServer: ts, tok: tokens, p1: "p1", p2: "p2", pr1: "pr1",
		o1Lab: "o1lab", o1Vital: "o1vital", o2: "o2", e1: "e1"}
	obs := func(id, patient, category string) map[string]any {
		o := observation(patient, "http://loinc.org", "1234-5", "2024-01-01", 1)
		o["id"] = id
		o["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}}}}
		o["performer"] = []any{map[string]any{"reference": "Practitioner/pr1"}}
		return o
	}
	p1 := patient("One", "Pat", "female", "1980-01-01")
	p1["id"] = "p1"
	p2 := patient("Two", "Pat", "male", "1981-01-01")
	p2["id"] = "p2"
	var entries []any
	for _, r := range []map[string]any{
		p1, p2,
		{"resourceType": "Practitioner", "id": "pr1", "name": []any{map[string]any{"family": "Doc"}}},
		obs("o1lab", "p1", "laboratory"), obs("o1vital", "p1", "vital-signs"), obs("o2", "p2", "laboratory"),
		{"resourceType": "Encounter", "id": "e1", "status": "finished", "class": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
			"subject": map[string]any{"reference": "Patient/p1"}, "participant": []any{map[string]any{"individual": map[string]any{"reference": "Practitioner/pr1"}}}},
	} {
		entries = append(entries, map[string]any{"resource": r, "request": map[string]any{"method": "PUT", "url": r["resourceType"].(string) + "/" + r["id"].(string)}})
	}
	body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	if _, err := ts.api.ProcessBundle(fhirapi.Trusted(context.Background()), body, fhirapi.BundleOptions{}); err != nil {
		t.Fatal(err)
	}
	tokens["p1-all"] = principal("app", "Patient/p1", "p1", "launch/patient patient/*.cruds")
	tokens["p1-read"] = principal("app", "Patient/p1", "p1", "patient/*.rs")
	tokens["p1-obs-r"] = principal("app", "Patient/p1", "p1", "patient/Observation.r")
	tokens["p1-obs-c"] = principal("app", "Patient/p1", "p1", "patient/Observation.c")
	tokens["p1-obs-u"] = principal("app", "Patient/p1", "p1", "patient/Observation.u")
	tokens["p1-obs-d"] = principal("app", "Patient/p1", "p1", "patient/Observation.d")
	tokens["p1-v1"] = principal("app", "Patient/p1", "p1", "patient/*.read")
	tokens["p1-lab"] = principal("app", "Patient/p1", "p1", "patient/Observation.rs?category="+labCategory+" patient/Patient.rs")
	tokens["p1-user"] = principal("app", "Patient/p1", "", "user/*.rs")
	tokens["p2-all"] = principal("app", "Patient/p2", "p2", "patient/*.cruds")
	tokens["prac-user"] = principal("app", "Practitioner/pr1", "", "user/*.rs")
	tokens["backend-obs"] = principal("backend", "", "", "system/Observation.rs")
	tokens["backend-obs-all"] = principal("backend", "", "", "system/*.cruds")
	tokens["backend-patient-scope"] = principal("backend", "", "", "patient/*.rs")
	mfa := principal("app", "Patient/p1", "p1", "patient/*.cruds")
	mfa.ACR = policy.ACRMultiFactor
	tokens["p1-mfa"] = mfa
	stale := principal("app", "Patient/p1", "p1", "patient/*.cruds")
	stale.ACR, stale.AuthTime = policy.ACRMultiFactor, time.Now().Add(-time.Hour)
	tokens["p1-mfa-stale"] = stale
	tokens["prac-p1"] = principal("ehr-app", "Practitioner/pr1", "p1", "launch openid fhirUser user/*.cruds")
	tokens["prac-p2"] = principal("ehr-app", "Practitioner/pr1", "p2", "launch openid fhirUser user/*.cruds")
	tokens["prac-p2-patient-scope"] = principal("ehr-app", "Practitioner/pr1", "p2", "launch/patient patient/*.rs")
	glass := principal("ehr-app", "Practitioner/pr1", "p2", "launch openid fhirUser user/*.cruds")
	glass.BreakGlassReason = "unconscious in the emergency department"
	tokens["prac-p2-glass"] = glass
	tokens["sched"] = principal("sched", "Patient/p1", "p1", "patient/Appointment.cruds patient/Slot.rs")
	return f
}

// tokens is the fixture's token table, for tests that add their own.
func (f *authzFixture) tokens() tokenTable { return f.tok }

func (f *authzFixture) as(token, method, path string, body any, headers ...string) response {
	f.t.Helper()
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	return f.do(method, path, body, headers...)
}

func diagnostics(t *testing.T, r response) string {
	t.Helper()
	var oo struct {
		Issue []struct{ Diagnostics string } `json:"issue"`
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome (%d): %s", r.status, r.body)
	}
	return oo.Issue[0].Diagnostics
}

func TestAuthenticationRefusals(t *testing.T) {
	f := newAuthzFixture(t)
	for _, c := range []struct {
		name      string
		headers   []string
		path      string
		status    int
		challenge string
	}{
		{"no token", nil, "/Patient/p1", 401, `Bearer realm="warden"`},
		{"basic credentials", []string{"Authorization", "Basic dXNlcjpwYXNz"}, "/Patient/p1", 401, `error="invalid_request"`},
		{"unknown token", []string{"Authorization", "Bearer forged"}, "/Patient/p1", 401, `error="invalid_token"`},
		{"empty bearer", []string{"Authorization", "Bearer "}, "/Patient/p1", 401, `error="invalid_request"`},
		{"token with a space", []string{"Authorization", "Bearer p1-all extra"}, "/Patient/p1", 401, `error="invalid_request"`},
		{"token in the query", []string{"Authorization", "Bearer p1-all"}, "/Patient/p1?access_token=p1-all", 400, `error="invalid_request"`},
		{"unknown path without token", nil, "/NoSuchType/x", 401, `Bearer realm="warden"`},
		{"search without token", nil, "/Observation", 401, `Bearer realm="warden"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do("GET", c.path, nil, c.headers...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, c.challenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, c.challenge)
			}
			if strings.Contains(string(r.body), "Pat") {
				t.Errorf("refusal discloses data: %s", r.body)
			}
		})
	}
	t.Run("metadata is public", func(t *testing.T) {
		f.mustStatus(f.do("GET", "/metadata", nil), 200)
	})
	t.Run("revocation state unconfirmed", func(t *testing.T) {
		// Fail closed with 503 (retry later), not 401 (the token may be
		// good) and never 200.
		r := f.as("unconfirmed", "GET", "/Patient/p1", nil)
		if r.status != 503 {
			t.Fatalf("status %d, want 503: %s", r.status, r.body)
		}
		if d := diagnostics(t, r); strings.Contains(d, "database") || strings.Contains(string(r.body), "Pat") {
			t.Errorf("the 503 says too much: %s", r.body)
		}
	})
	t.Run("two Authorization headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.url+"/Patient/p1", nil)
		req.Header.Add("Authorization", "Bearer p2-all")
		req.Header.Add("Authorization", "Bearer p1-all")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
}

// TestHideExistence: another patient's resource answers exactly like one
// that does not exist, on every way of reaching it.
func TestHideExistence(t *testing.T) {
	f := newAuthzFixture(t)
	missing := f.as("p1-all", "GET", "/Observation/nonexistent", nil)
	if missing.status != 404 {
		t.Fatalf("missing: %d", missing.status)
	}
	want := diagnostics(t, missing)
	for _, path := range []string{
		"/Observation/o2",
		"/Observation/o2/_history/1",
		"/Observation/o2/_history",
		"/Patient/p2",
		"/Patient/p2/$everything",
		"/Patient/p2/Observation",
		"/Practitioner/pr1", // outside every Patient compartment
	} {
		r := f.as("p1-all", "GET", path, nil)
		if r.status != 404 {
			t.Errorf("GET %s: status %d, want 404: %s", path, r.status, r.body)
			continue
		}
		if got := diagnostics(t, r); got != want && !strings.Contains(path, "$everything") && !strings.Contains(path, "/Patient/p2/") {
			t.Errorf("GET %s: %q, want the not-found text %q", path, got, want)
		}
	}
	// Writes to another patient's resource answer as for a missing one.
	o2 := observation("p2", "http://loinc.org", "1", "2024-01-01", 1)
	o2["id"] = "o2"
	if r := f.as("p1-all", "PUT", "/Observation/o2", o2); r.status != 404 {
		t.Errorf("PUT /Observation/o2: status %d, want 404: %s", r.status, r.body)
	}
	gone := f.as("p1-all", "DELETE", "/Observation/nonexistent", nil)
	if r := f.as("p1-all", "DELETE", "/Observation/o2", nil); r.status != gone.status || string(r.body) != string(gone.body) {
		t.Errorf("DELETE /Observation/o2: %d %s, want what a missing id gets: %d %s", r.status, r.body, gone.status, gone.body)
	}
	// ... and nothing changed.
	r := f.as("p2-all", "GET", "/Observation/o2", nil)
	f.mustStatus(r, 200)
	if v := r.json(t)["meta"].(map[string]any)["versionId"]; v != "1" {
		t.Errorf("o2 changed to version %v", v)
	}
}

func TestSearchNarrowing(t *testing.T) {
	f := newAuthzFixture(t)
	for _, c := range []struct {
		name, token, path string
		matches, included []string
		total             float64
	}{
		{"own observations", "p1-all", "/Observation", []string{"Observation/o1lab", "Observation/o1vital"}, nil, 2},
		{"asking for the other patient", "p1-all", "/Observation?subject=Patient/p2", nil, nil, 0},
		{"asking by id", "p1-all", "/Observation?_id=o2", nil, nil, 0},
		{"sorted", "p1-all", "/Observation?_sort=-date", []string{"Observation/o1lab", "Observation/o1vital"}, nil, 2},
		{"count only", "p1-all", "/Observation?_summary=count", nil, nil, 2},
		{"patients", "p1-all", "/Patient", []string{"Patient/p1"}, nil, 1},
		{"include outside the compartment dropped", "p1-all", "/Observation?_include=Observation:performer", []string{"Observation/o1lab", "Observation/o1vital"}, nil, 2},
		{"include of own patient kept", "p1-all", "/Observation?_include=Observation:subject", []string{"Observation/o1lab", "Observation/o1vital"}, []string{"Patient/p1"}, 2},
		{"revinclude narrowed", "p1-all", "/Patient?_revinclude=Observation:subject", []string{"Patient/p1"}, []string{"Observation/o1lab", "Observation/o1vital"}, 1},
		{"practitioner search finds nothing", "p1-all", "/Practitioner", nil, nil, 0},
		{"own compartment search", "p1-all", "/Patient/p1/Observation", []string{"Observation/o1lab", "Observation/o1vital"}, nil, 2},
		{"granular: lab only", "p1-lab", "/Observation", []string{"Observation/o1lab"}, nil, 1},
		{"granular: lab only, asking for vitals", "p1-lab", "/Observation?category=vital-signs", nil, nil, 0},
		{"absolute reference to the other patient", "p1-all", "/Observation?subject=" + "$BASE/Patient/p2", nil, nil, 0},
		{"comma list with the other patient", "p1-all", "/Observation?subject=Patient/p2,Patient/p1", []string{"Observation/o1lab", "Observation/o1vital"}, nil, 2},
		{"non-compartment parameter", "p1-all", "/Observation?focus=Patient/p2", nil, nil, 0},
		{"include wildcard and iterate", "p1-all", "/Encounter?_include=Encounter:*&_revinclude:iterate=Observation:subject", []string{"Encounter/e1"}, []string{"Observation/o1lab", "Observation/o1vital", "Patient/p1"}, 1},
		{"v1 read scope", "p1-v1", "/Observation", []string{"Observation/o1lab", "Observation/o1vital"}, nil, 2},
		{"user scope of a patient user", "p1-user", "/Observation", []string{"Observation/o1lab", "Observation/o1vital"}, nil, 2},
		{"backend system scope", "backend-obs", "/Observation", []string{"Observation/o1lab", "Observation/o1vital", "Observation/o2"}, nil, 3},
		{"backend includes only what it may read", "backend-obs", "/Observation?_include=Observation:subject", []string{"Observation/o1lab", "Observation/o1vital", "Observation/o2"}, nil, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.as(c.token, "GET", strings.ReplaceAll(c.path, "$BASE", f.url), nil)
			f.mustStatus(r, 200)
			b := r.json(t)
			got, inc := entryIDs(t, b, "match"), entryIDs(t, b, "include")
			slices.Sort(got)
			slices.Sort(inc)
			if !slices.Equal(got, c.matches) || !slices.Equal(inc, c.included) {
				t.Errorf("matches %v included %v, want %v and %v", got, inc, c.matches, c.included)
			}
			if b["total"] != c.total {
				t.Errorf("total %v, want %v", b["total"], c.total)
			}
		})
	}
}

func TestScopeRefusals(t *testing.T) {
	f := newAuthzFixture(t)
	newObs := observation("p1", "http://loinc.org", "1", "2024-01-01", 1)
	for _, c := range []struct {
		name, token, method, path string
		body                      any
		status                    int
		mentions                  string
	}{
		{"read-only token cannot search", "p1-obs-r", "GET", "/Observation", nil, 403, "patient/Observation.s"},
		{"read-only token cannot create", "p1-obs-r", "POST", "/Observation", newObs, 403, "patient/Observation.c"},
		{"read scope does not cover other types", "p1-obs-r", "GET", "/Patient/p1", nil, 403, "patient/Patient.r"},
		{"create-only token cannot read", "p1-obs-c", "GET", "/Observation/o1lab", nil, 403, "patient/Observation.r"},
		{"v1 read cannot write", "p1-v1", "POST", "/Observation", newObs, 403, "patient/Observation.c"},
		{"scheduling app never sees lab results", "sched", "GET", "/Observation", nil, 403, "patient/Observation.s"},
		{"chained search refused to patient tokens", "p1-all", "GET", "/Observation?subject.name=Two", nil, 403, "Chained"},
		{"_has refused to patient tokens", "p1-all", "GET", "/Patient?_has:Observation:subject:code=1234-5", nil, 403, "Chained"},
		{"type history refused to patient tokens", "p1-all", "GET", "/Observation/_history", nil, 403, "History across"},
		{"system history refused to patient tokens", "p1-all", "GET", "/_history", nil, 403, ""},
		{"backend with patient scopes and no patient", "backend-patient-scope", "GET", "/Observation", nil, 403, ""},
		{"practitioner user scopes need the site policy", "prac-user", "GET", "/Observation", nil, 403, ""},
		{"granular scope hides vitals", "p1-lab", "GET", "/Observation/o1vital", nil, 404, ""},
		{"create for another patient", "p1-all", "POST", "/Observation", observation("p2", "http://loinc.org", "1", "2024-01-01", 1), 403, "compartment"},
		{"create a patient", "p1-all", "POST", "/Patient", patient("New", "X", "other", "2000-01-01"), 403, "compartment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.as(c.token, c.method, c.path, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.mentions != "" && !strings.Contains(diagnostics(t, r), c.mentions) {
				t.Errorf("outcome %q does not mention %q", diagnostics(t, r), c.mentions)
			}
		})
	}
	// Moving one's own Observation into another patient's compartment.
	moved := observation("p2", "http://loinc.org", "1", "2024-01-01", 1)
	moved["id"] = "o1vital"
	if r := f.as("p1-all", "PUT", "/Observation/o1vital", moved); r.status != 403 {
		t.Errorf("moving to p2: status %d, want 403: %s", r.status, r.body)
	}
	// .u and .d mean update and delete, without read: they reach only the
	// caller's compartment, and a hidden resource stays hidden.
	upd := observation("p1", "http://loinc.org", "77", "2024-01-01", 1)
	upd["id"] = "o1vital"
	if r := f.as("p1-obs-u", "PUT", "/Observation/o1vital", upd); r.status != 200 {
		t.Errorf(".u update: %d %s", r.status, r.body)
	}
	upd["id"] = "o2"
	if r := f.as("p1-obs-u", "PUT", "/Observation/o2", upd); r.status != 404 {
		t.Errorf(".u update of another patient's: %d %s", r.status, r.body)
	}
	if r := f.as("p1-obs-u", "GET", "/Observation/o1lab", nil); r.status != 403 {
		t.Errorf(".u read: %d", r.status)
	}
	if r := f.as("p1-obs-d", "DELETE", "/Observation/o2", nil); r.status != 204 {
		t.Errorf(".d delete of another patient's (answered as missing): %d", r.status)
	}
	if r := f.as("p2-all", "GET", "/Observation/o2", nil); r.status != 200 || !strings.Contains(string(r.body), `"versionId":"1"`) {
		t.Errorf("o2 after p1's attempts: %d %s", r.status, r.body)
	}
	// Success cases: the same tokens within their grant.
	f.mustStatus(f.as("p1-obs-c", "POST", "/Observation", newObs), 201)
	f.mustStatus(f.as("p1-obs-r", "GET", "/Observation/o1lab", nil), 200)
	f.mustStatus(f.as("p1-lab", "GET", "/Observation/o1lab", nil), 200)
	f.mustStatus(f.as("backend-obs", "GET", "/Observation/o2", nil), 200)
	f.mustStatus(f.as("p1-all", "GET", "/Observation/o1lab/_history", nil), 200)
	f.mustStatus(f.as("p1-all", "DELETE", "/Observation/o1vital", nil), 204)
}

// TestConditionalOracles: conditional operations search like searches do,
// so they cannot tell whether another patient's resource exists.
func TestConditionalOracles(t *testing.T) {
	f := newAuthzFixture(t)
	// o2 (p2's) matches _id=o2; narrowed, the condition matches nothing,
	// so the create goes ahead for p1 instead of answering 200 "exists".
	r := f.as("p1-all", "POST", "/Observation", observation("p1", "http://loinc.org", "8", "2024-01-01", 1), "If-None-Exist", "_id=o2")
	if r.status != 201 {
		t.Errorf("If-None-Exist naming another patient's resource: %d %s", r.status, r.body)
	}
	// A conditional delete naming it deletes nothing.
	if r := f.as("p1-all", "DELETE", "/Observation?_id=o2", nil); r.status >= 300 {
		t.Errorf("conditional delete: %d %s", r.status, r.body)
	}
	if r := f.as("p2-all", "GET", "/Observation/o2", nil); r.status != 200 {
		t.Errorf("o2 after p1's conditional delete: %d", r.status)
	}
	// A conditional update naming it creates a new resource in p1's
	// compartment rather than overwriting o2.
	upd := observation("p1", "http://loinc.org", "9", "2024-01-01", 1)
	if r := f.as("p1-all", "PUT", "/Observation?_id=o2", upd); r.status != 201 {
		t.Errorf("conditional update naming o2: %d %s", r.status, r.body)
	}
	if r := f.as("p2-all", "GET", "/Observation/o2", nil); !strings.Contains(string(r.body), `"versionId":"1"`) {
		t.Errorf("o2 changed: %s", r.body)
	}
}

func TestTransactionEntriesAreGuarded(t *testing.T) {
	f := newAuthzFixture(t)
	entry := func(patientID string) map[string]any {
		return map[string]any{"resource": observation(patientID, "http://loinc.org", "9", "2024-02-02", 2), "request": map[string]any{"method": "POST", "url": "Observation"}}
	}
	bundle := func(typ string) map[string]any {
		return map[string]any{"resourceType": "Bundle", "type": typ, "entry": []any{entry("p1"), entry("p2")}}
	}
	r := f.as("p1-all", "POST", "/", bundle("transaction"))
	if r.status != 403 {
		t.Fatalf("transaction with an entry for p2: status %d, want 403: %s", r.status, r.body)
	}
	// All or nothing: p1's entry was not kept either.
	r = f.as("p1-all", "GET", "/Observation?code=9", nil)
	f.mustStatus(r, 200)
	if n := len(entryIDs(t, r.json(t), "match")); n != 0 {
		t.Errorf("%d observations kept from a refused transaction", n)
	}
	// A batch refuses the one entry and runs the other.
	r = f.as("p1-all", "POST", "/", bundle("batch"))
	f.mustStatus(r, 200)
	var resp struct {
		Entry []struct {
			Response struct{ Status string } `json:"response"`
		} `json:"entry"`
	}
	json.Unmarshal(r.body, &resp)
	if len(resp.Entry) != 2 || !strings.HasPrefix(resp.Entry[0].Response.Status, "201") || !strings.HasPrefix(resp.Entry[1].Response.Status, "403") {
		t.Errorf("batch responses %+v, want 201 then 403", resp.Entry)
	}
	// A batch GET of another patient's resource is not found.
	get := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/o2"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Observation?subject=Patient/p2"}},
	}}
	r = f.as("p1-all", "POST", "/", get)
	f.mustStatus(r, 200)
	if strings.Contains(string(r.body), `"id":"o2"`) {
		t.Errorf("batch GET disclosed o2: %s", r.body)
	}
}

func TestEverythingNarrowed(t *testing.T) {
	f := newAuthzFixture(t)
	r := f.as("p1-lab", "GET", "/Patient/p1/$everything", nil)
	f.mustStatus(r, 200)
	got := entryIDs(t, r.json(t), "")
	slices.Sort(got)
	// p1-lab may read Patient and lab Observations: no vitals, no Encounter.
	if want := []string{"Observation/o1lab", "Patient/p1"}; !slices.Equal(got, want) {
		t.Errorf("$everything = %v, want %v", got, want)
	}
}

func TestCursorBoundToCaller(t *testing.T) {
	f := newAuthzFixture(t)
	r := f.as("backend-obs", "GET", "/Observation?_count=1", nil)
	f.mustStatus(r, 200)
	next := link(r.json(t), "next")
	if next == "" {
		t.Fatal("no next link")
	}
	f.mustStatus(f.as("backend-obs", "GET", next, nil), 200)
	// Another caller with the same query cannot continue it.
	if r := f.as("p1-all", "GET", next, nil); r.status != 400 {
		t.Errorf("someone else's cursor: status %d, want 400: %s", r.status, r.body)
	}
}

func TestStepUp(t *testing.T) {
	f := newAuthzFixture(t, func(o *fhirapi.Options) {
		o.Policy = policy.Options{StepUp: []policy.Action{policy.ActDelete, policy.ActEverything}, MaxAuthAge: 10 * time.Minute}
	})
	r := f.as("p1-all", "DELETE", "/Observation/o1vital", nil)
	if r.status != 401 {
		t.Fatalf("delete with a password-only login: status %d, want 401: %s", r.status, r.body)
	}
	if c := r.header.Get("WWW-Authenticate"); !strings.Contains(c, `error="insufficient_user_authentication"`) || !strings.Contains(c, "acr_values=") || !strings.Contains(c, "max_age=600") {
		t.Errorf("challenge %q lacks the RFC 9470 parameters", c)
	}
	if r := f.as("p1-all", "GET", "/Patient/p1/$everything", nil); r.status != 401 {
		t.Errorf("$everything: status %d, want 401", r.status)
	}
	if r := f.as("p1-mfa-stale", "DELETE", "/Observation/o1vital", nil); r.status != 401 {
		t.Errorf("delete with an hour-old multi-factor login: status %d, want 401", r.status)
	}
	// Reads are not step-up actions.
	f.mustStatus(f.as("p1-all", "GET", "/Observation/o1vital", nil), 200)
	f.mustStatus(f.as("p1-mfa", "DELETE", "/Observation/o1vital", nil), 204)
}

// originTable is the registered origins of the fixture's clients.
type originTable map[string][]string

func (o originTable) ClientOrigins(_ context.Context, client string) []string { return o[client] }

func (o originTable) Registered(_ context.Context, origin string) bool {
	for _, list := range o {
		if slices.Contains(list, origin) {
			return true
		}
	}
	return false
}

func TestCORS(t *testing.T) {
	f := newAuthzFixture(t, func(o *fhirapi.Options) {
		o.Origins = originTable{"app": {"https://app.example"}, "other": {"https://other.example"}}
	})
	preflight := func(origin string) response {
		return f.do("OPTIONS", "/Observation", nil, "Origin", origin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	}
	r := preflight("https://app.example")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from a registered origin: %d %v", r.status, r.header)
	}
	for _, origin := range []string{"https://evil.example", "null", "https://app.example.evil.example", "http://app.example"} {
		if r := preflight(origin); r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s allowed: %v", origin, r.header)
		}
	}
	// The real request: only the caller's own client's origins.
	r = f.as("p1-all", "GET", "/Observation/o1lab", nil, "Origin", "https://app.example")
	f.mustStatus(r, 200)
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Errorf("own origin: %v", r.header)
	}
	if r := f.as("p1-all", "GET", "/Observation/o1lab", nil, "Origin", "https://other.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another client's origin allowed with this client's token: %v", r.header)
	}
	// A 401 is readable by registered origins, so the app sees the challenge.
	if r := f.do("GET", "/Observation", nil, "Origin", "https://app.example"); r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("401 to a registered origin: %d %v", r.status, r.header)
	}
	// The capability statement is public.
	if r := f.do("GET", "/metadata", nil, "Origin", "https://anyone.example"); r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("metadata: %v", r.header)
	}
}

// TestSitePolicy: a practitioner reaches a patient's record only where
// the site policy (the default Cedar policy) agrees: a care relationship,
// or break-the-glass with a reason (read only).
func TestSitePolicy(t *testing.T) {
	f := newAuthzFixture(t)
	newObs := func(p string) map[string]any { return observation(p, "http://loinc.org", "5", "2024-03-03", 3) }
	for _, c := range []struct {
		name, token, method, path string
		body                      any
		status                    int
	}{
		// No care relationship with p2 (pr1's Encounter is with p1).
		{"no relationship: read", "prac-p2", "GET", "/Observation/o2", nil, 403},
		{"no relationship: search", "prac-p2", "GET", "/Observation", nil, 403},
		{"no relationship: patient/ scopes too", "prac-p2-patient-scope", "GET", "/Observation/o2", nil, 403},
		{"no relationship: write", "prac-p2", "POST", "/Observation", newObs("p2"), 403},
		{"break-the-glass does not write", "prac-p2-glass", "POST", "/Observation", newObs("p2"), 403},
		{"care relationship still narrows to the patient in context", "prac-p1", "GET", "/Observation/o2", nil, 404},
		// Allowed.
		{"care relationship: read", "prac-p1", "GET", "/Observation/o1lab", nil, 200},
		{"care relationship: write", "prac-p1", "POST", "/Observation", newObs("p1"), 201},
		{"break-the-glass: read", "prac-p2-glass", "GET", "/Observation/o2", nil, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := f.as(c.token, c.method, c.path, c.body); r.status != c.status {
				t.Errorf("status %d, want %d: %s", r.status, c.status, r.body)
			}
		})
	}
	r := f.as("prac-p1", "GET", "/Observation", nil)
	f.mustStatus(r, 200)
	// p1's two, and the one the practitioner just wrote; never p2's o2.
	if got := entryIDs(t, r.json(t), "match"); len(got) != 3 || slices.Contains(got, "Observation/o2") {
		t.Errorf("practitioner search in p1's context: %v", got)
	}
}

// TestAuditTrailReadOnly: no token, not even one with every scope, writes
// an AuditEvent, directly or inside a Bundle.
func TestAuditTrailReadOnly(t *testing.T) {
	f := newAuthzFixture(t)
	ev := map[string]any{"resourceType": "AuditEvent", "id": "forged",
		"type":     map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
		"recorded": "2024-01-01T00:00:00Z",
		"agent":    []any{map[string]any{"requestor": true}},
		"source":   map[string]any{"observer": map[string]any{"display": "forger"}}}
	for _, c := range []struct {
		name, token, method, path string
		body                      any
	}{
		{"create", "backend-obs-all", "POST", "/AuditEvent", ev},
		{"update", "backend-obs-all", "PUT", "/AuditEvent/forged", ev},
		{"delete", "backend-obs-all", "DELETE", "/AuditEvent/forged", nil},
		{"in a transaction", "backend-obs-all", "POST", "/", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"resource": ev, "request": map[string]any{"method": "PUT", "url": "AuditEvent/forged"}}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.as(c.token, c.method, c.path, c.body)
			if r.status != 405 || !strings.Contains(diagnostics(t, r), "read-only") {
				t.Errorf("status %d: %s", r.status, r.body)
			}
		})
	}
	if r := f.as("backend-obs-all", "GET", "/AuditEvent/forged", nil); r.status != 404 {
		t.Errorf("a forged AuditEvent exists: %d %s", r.status, r.body)
	}
	// One the server recorded cannot be deleted or changed either.
	real := maps.Clone(ev)
	real["id"] = "recorded"
	body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": real, "request": map[string]any{"method": "PUT", "url": "AuditEvent/recorded"}}}})
	if _, err := f.api.ProcessBundle(fhirapi.Trusted(context.Background()), body, fhirapi.BundleOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := f.as("backend-obs-all", "DELETE", "/AuditEvent/recorded", nil); r.status != 405 {
		t.Errorf("delete of a recorded AuditEvent: %d %s", r.status, r.body)
	}
	if r := f.as("backend-obs-all", "PUT", "/AuditEvent/recorded", real); r.status != 405 {
		t.Errorf("update of a recorded AuditEvent: %d %s", r.status, r.body)
	}
	if r := f.as("backend-obs-all", "GET", "/AuditEvent/recorded", nil); r.status != 200 || !strings.Contains(string(r.body), `"versionId":"1"`) {
		t.Errorf("the recorded AuditEvent changed: %d %s", r.status, r.body)
	}
}
