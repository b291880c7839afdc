package fhirapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// denyList is a Consents that withholds listed resources ("Type/id") of
// one patient from one client: the FHIR API's tests need decisions, not
// the consent engine (internal/consent tests that).
type denyList struct {
	mu      sync.Mutex
	client  string
	patient string
	denied  map[string]bool
	down    bool
	changed atomic.Int64
	asked   atomic.Int64
}

func (d *denyList) Allows(_ context.Context, p *policy.Principal, _ policy.Action, patient string, res *store.Resource) (bool, string, error) {
	d.asked.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return false, "", errors.New("consents unreadable")
	}
	if p.ClientID == d.client && patient == d.patient && d.denied[res.Type+"/"+res.ID] {
		return false, "Consent/c1#provision", nil
	}
	return true, "", nil
}

func (d *denyList) MayWithhold(_ context.Context, p *policy.Principal, patient string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return p.ClientID == d.client && (patient == "" || patient == d.patient) && len(d.denied) > 0, nil
}

func (d *denyList) Validate(consent []byte) error {
	if bytes.Contains(consent, []byte("malformed")) {
		return errors.New("provision.period ends before it starts")
	}
	return nil
}

func (d *denyList) Changed(context.Context) error { d.changed.Add(1); return nil }

func (d *denyList) deny(refs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range refs {
		d.denied[r] = true
	}
}

// TestConsentEnforced: a resource a patient's consent withholds from an
// app is withheld on every path — read, vread, history, search (with an
// honest total and _summary=count), includes, $everything, the next page
// of a search paged before the consent changed, and writes — while other
// clients still see it.
func TestConsentEnforced(t *testing.T) {
	cs := &denyList{client: "app", patient: "p1", denied: map[string]bool{}}
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Consents = cs })

	// Paged before the consent changes: one Observation a page.
	first := f.as("p1-read", "GET", "/Observation?_count=1&_sort=_id", nil)
	f.mustStatus(first, 200)
	next := link(first.json(t), "next")
	if next == "" {
		t.Fatal("no next page")
	}
	// _sort=_id: o1lab is on page 1, o1vital on page 2.
	cs.deny("Observation/o1vital")

	hiddenBody := f.as("p1-read", "GET", "/Observation/nosuch", nil)
	for _, path := range []string{"/Observation/o1vital", "/Observation/o1vital/_history/1", "/Observation/o1vital/_history"} {
		r := f.as("p1-read", "GET", path, nil)
		if r.status != 404 {
			t.Errorf("%s: status %d, want 404 (hidden)", path, r.status)
		}
		if d, want := diagnostics(t, r), diagnostics(t, hiddenBody); strings.ReplaceAll(d, "o1vital", "nosuch") != want && !strings.Contains(d, "not found") {
			t.Errorf("%s: diagnostics %q differ from a missing resource's %q", path, d, want)
		}
	}
	if r := f.as("p1-read", "GET", next, nil); r.status == 200 {
		if ids := entryIDs(t, r.json(t), "match"); slices.Contains(ids, "Observation/o1vital") {
			t.Errorf("the next page, minted before the consent changed, disclosed the withheld resource: %v", ids)
		}
	}
	for _, c := range []struct {
		path      string
		wantTotal float64 // -1: no total given
	}{
		{"/Observation", 1},
		{"/Observation?patient=p1", 1},
		{"/Patient/p1/Observation", 1},
		{"/Observation?_summary=count", 1},
		{"/Observation?_count=1", -1}, // several pages: a total is not given
	} {
		r := f.as("p1-read", "GET", c.path, nil)
		f.mustStatus(r, 200)
		b := r.json(t)
		if ids := entryIDs(t, b, "match"); slices.Contains(ids, "Observation/o1vital") {
			t.Errorf("%s disclosed the withheld resource", c.path)
		}
		total, has := b["total"].(float64)
		if c.wantTotal < 0 && has || c.wantTotal >= 0 && total != c.wantTotal {
			t.Errorf("%s: total %v (given: %v), want %v", c.path, total, has, c.wantTotal)
		}
	}
	r := f.as("p1-read", "GET", "/Patient?_id=p1&_revinclude=Observation:patient", nil)
	f.mustStatus(r, 200)
	if ids := entryIDs(t, r.json(t), "include"); slices.Contains(ids, "Observation/o1vital") || !slices.Contains(ids, "Observation/o1lab") {
		t.Errorf("_revinclude: %v", ids)
	}
	r = f.as("p1-read", "GET", "/Patient/p1/$everything", nil)
	f.mustStatus(r, 200)
	if ids := entryIDs(t, r.json(t), ""); slices.Contains(ids, "Observation/o1vital") || !slices.Contains(ids, "Observation/o1lab") {
		t.Errorf("$everything: %v", ids)
	}
	// Writes: the withheld resource cannot be changed (it is hidden), and
	// a write the consent refuses is refused.
	obs := observation("p1", "http://loinc.org", "1234-5", "2024-01-01", 1)
	obs["id"] = "o1vital"
	if r := f.as("p1-all", "PUT", "/Observation/o1vital", obs); r.status != 404 {
		t.Errorf("update of the withheld resource: %d, want 404", r.status)
	}
	cs.deny("Observation/newone")
	obs["id"] = "newone"
	if r := f.as("p1-all", "PUT", "/Observation/newone", obs); r.status != 403 {
		t.Errorf("write the consent refuses: %d, want 403: %s", r.status, r.body)
	}
	// Another client is not concerned by this consent.
	if r := f.as("backend-obs", "GET", "/Observation/o1vital", nil); r.status != 200 {
		t.Errorf("another client: %d, want 200", r.status)
	}
	// Trusted internal calls are not subject to consents.
	if _, err := f.api.ProcessBundle(fhirapi.Trusted(context.Background()), []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/o1vital"}}]}`), fhirapi.BundleOptions{}); err != nil {
		t.Fatal(err)
	}

	// Consents that cannot be read: 503, nothing disclosed.
	cs.mu.Lock()
	cs.down = true
	cs.mu.Unlock()
	for _, path := range []string{"/Observation/o1lab", "/Observation", "/Patient/p1/$everything"} {
		r := f.as("p1-read", "GET", path, nil)
		if r.status != 503 || strings.Contains(string(r.body), "o1lab") {
			t.Errorf("%s with consents unreadable: %d %s", path, r.status, r.body)
		}
	}
}

// TestConsentWrites: a Consent is validated before it is stored, and a
// stored change is announced (to every process) before the writing
// request answers; a refused one changes nothing.
func TestConsentWrites(t *testing.T) {
	cs := &denyList{client: "app", patient: "p1", denied: map[string]bool{}}
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Consents = cs })
	consent := map[string]any{"resourceType": "Consent", "status": "active",
		"scope":    map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0"}}}},
		"patient":  map[string]any{"reference": "Patient/p1"}}
	bad := map[string]any{}
	for k, v := range consent {
		bad[k] = v
	}
	bad["id"] = "bad"
	bad["policyRule"] = map[string]any{"text": "malformed"}
	r := f.as("p1-all", "PUT", "/Consent/bad", bad)
	if r.status != 400 || !strings.Contains(diagnostics(t, r), "cannot be enforced") {
		t.Fatalf("malformed Consent: %d %s", r.status, r.body)
	}
	if cs.changed.Load() != 0 {
		t.Fatal("a refused Consent was announced")
	}
	if r := f.as("backend-obs-all", "GET", "/Consent/bad", nil); r.status != 404 {
		t.Fatalf("the refused Consent was stored: %d", r.status)
	}
	consent["id"] = "c1"
	f.mustStatus(f.as("p1-all", "PUT", "/Consent/c1", consent), 201)
	if n := cs.changed.Load(); n != 1 {
		t.Fatalf("Changed called %d times after one Consent write", n)
	}
	f.mustStatus(f.as("p1-all", "DELETE", "/Consent/c1", nil), 204)
	if n := cs.changed.Load(); n != 2 {
		t.Fatalf("Changed called %d times after the delete", n)
	}
	// Writing other resources announces nothing.
	f.mustStatus(f.as("p1-all", "POST", "/Observation", observation("p1", "http://loinc.org", "9", "2024-01-01", 1)), 201)
	if n := cs.changed.Load(); n != 2 {
		t.Fatalf("an Observation write called Changed (%d)", n)
	}
	// Trusted writes (the grant ledger) announce too.
	consent["id"] = "c2"
	body := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + string(mustMarshal(t, consent)) + `,"request":{"method":"PUT","url":"Consent/c2"}}]}`
	if _, err := f.api.ProcessBundle(fhirapi.Trusted(context.Background()), []byte(body), fhirapi.BundleOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := cs.changed.Load(); n != 3 {
		t.Fatalf("a trusted Consent write called Changed %d times in all, want 3", n)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConsentRevokeOperation: POST Consent/{id}/$revoke needs the right
// to update that Consent; it revokes the grant and leaves the Consent
// inactive; another patient's Consent is not found.
func TestConsentRevokeOperation(t *testing.T) {
	var revoked []string
	f := newAuthzFixture(t, func(o *fhirapi.Options) {
		o.RevokeGrant = func(_ context.Context, id string) error { revoked = append(revoked, id); return nil }
	})
	consent := map[string]any{"resourceType": "Consent", "id": "c1", "status": "active",
		"scope":    map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0"}}}},
		"patient":  map[string]any{"reference": "Patient/p1"}}
	f.mustStatus(f.as("p1-all", "PUT", "/Consent/c1", consent), 201)
	for _, c := range []struct {
		token  string
		status int
	}{
		{"p2-all", 404},   // another patient's: hidden
		{"p1-read", 403},  // may read, not change
		{"", 401},         // no token
		{"p1-obs-u", 403}, // may change Observations only
	} {
		if r := f.as(c.token, "POST", "/Consent/c1/$revoke", nil); r.status != c.status {
			t.Errorf("%q: %d, want %d: %s", c.token, r.status, c.status, r.body)
		}
	}
	if len(revoked) != 0 {
		t.Fatalf("refused calls revoked %v", revoked)
	}
	r := f.as("p1-all", "POST", "/Consent/c1/$revoke", nil)
	f.mustStatus(r, 200)
	if st := r.json(t)["status"]; st != "inactive" || !slices.Equal(revoked, []string{"c1"}) {
		t.Fatalf("after $revoke: status %v, revoked %v", st, revoked)
	}
	if r := f.as("p1-all", "POST", "/Consent/nosuch/$revoke", nil); r.status != 404 {
		t.Errorf("unknown Consent: %d", r.status)
	}
	if r := f.as("p1-all", "GET", "/Consent/c1/$revoke", nil); r.status != 404 && r.status != 405 {
		t.Errorf("GET $revoke: %d", r.status)
	}

	// Deactivating an app grant's Consent any other way (an update, a
	// delete) revokes the grant too; other Consents' changes revoke
	// nothing.
	revoked = nil
	grant := map[string]any{}
	for k, v := range consent {
		grant[k] = v
	}
	grant["id"] = "g1"
	grant["extension"] = []any{map[string]any{"url": "urn:warden:consent:granted-scopes", "valueString": "patient/*.rs"}}
	f.mustStatus(f.as("p1-all", "PUT", "/Consent/g1", grant), 201)
	consent["id"], consent["status"] = "c2", "inactive"
	f.mustStatus(f.as("p1-all", "PUT", "/Consent/c2", consent), 201)
	if len(revoked) != 0 {
		t.Fatalf("writing an active grant and an inactive plain consent revoked %v", revoked)
	}
	grant["status"] = "inactive"
	f.mustStatus(f.as("p1-all", "PUT", "/Consent/g1", grant), 200)
	if !slices.Equal(revoked, []string{"g1"}) {
		t.Fatalf("deactivating a grant's Consent revoked %v", revoked)
	}
	grant["id"], grant["status"] = "g2", "active"
	f.mustStatus(f.as("p1-all", "PUT", "/Consent/g2", grant), 201)
	f.mustStatus(f.as("p1-all", "DELETE", "/Consent/g2", nil), 204)
	if !slices.Contains(revoked, "g2") {
		t.Fatalf("deleting a grant's Consent revoked %v", revoked)
	}
}
