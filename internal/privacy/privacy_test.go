package privacy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/consent"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/privacy"
	"github.com/wardenfhir/warden/internal/smart"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// tokens is a Verifier over a fixed table of principals.
type tokens map[string]*policy.Principal

func (t tokens) Verify(_ context.Context, raw string) (*policy.Principal, error) {
	if p, ok := t[raw]; ok {
		return p, nil
	}
	return nil, errors.New("unknown token")
}

func principal(client, fhirUser, patient, scope string) *policy.Principal {
	sc, _ := smart.ParseScopes(scope)
	sub := client
	if fhirUser != "" {
		sub = "user-" + strings.ReplaceAll(fhirUser, "/", "-")
	}
	return &policy.Principal{TokenID: "jti-" + client, ClientID: client, Subject: sub, FHIRUser: fhirUser, Patient: patient,
		Scope: scope, Scopes: sc, AuthTime: time.Now(), ACR: policy.ACRPassword}
}

type server struct {
	t       *testing.T
	api     *fhirapi.API
	url     string
	loads   atomic.Int64
	failing atomic.Bool
}

// newServer is the FHIR API over SQLite with the consent Enforcer, and
// p1's record: a psychiatric note (labelled PSY), a lab result, and an
// HIV test (labelled HIV); p2 has one lab result.
func newServer(t *testing.T, def consent.Default) *server {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &server{t: t}
	var api *fhirapi.API
	enf, err := privacy.New(privacy.Options{Default: def, Load: privacy.LoadFrom(func(ctx context.Context, typ string, q url.Values) ([]store.Resource, error) {
		s.loads.Add(1)
		if s.failing.Load() {
			return nil, errors.New("store down")
		}
		return api.SearchTrusted(ctx, typ, q)
	})})
	if err != nil {
		t.Fatal(err)
	}
	tt := tokens{
		"app-p1":    principal("app", "Patient/p1", "p1", "patient/*.cruds"),
		"other-p1":  principal("other-app", "Patient/p1", "p1", "patient/*.rs"),
		"backend":   principal("backend", "", "", "system/*.cruds"),
		"clinician": principal("ehr", "Practitioner/d1", "p1", "user/*.rs"),
		"app-p2":    principal("app", "Patient/p2", "p2", "patient/*.rs"),
	}
	hs := httptest.NewServer(nil)
	t.Cleanup(hs.Close)
	api, err = fhirapi.New(st, fhirapi.Options{BaseURL: hs.URL + "/fhir", CursorKey: bytes.Repeat([]byte{7}, 32), Verifier: tt, Consents: enf})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = api
	s.api, s.url = api, hs.URL+"/fhir"
	obs := func(id, patient, code string, labels ...string) string {
		sec := ""
		for i, l := range labels {
			if i > 0 {
				sec += ","
			}
			sec += fmt.Sprintf(`{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":%q}`, l)
		}
		meta := ""
		if sec != "" {
			meta = `"meta":{"security":[` + sec + `]},`
		}
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,%s"status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2024-05-01"}`, id, meta, code, patient)
	}
	for _, r := range []struct{ typ, id, body string }{
		{"Patient", "p1", `{"resourceType":"Patient","id":"p1"}`},
		{"Patient", "p2", `{"resourceType":"Patient","id":"p2"}`},
		{"Observation", "psy", obs("psy", "p1", "11488-4", "PSY")},
		{"Observation", "lab", obs("lab", "p1", "2345-7")},
		{"Observation", "hiv", obs("hiv", "p1", "75622-1", "HIV")},
		{"Observation", "lab2", obs("lab2", "p2", "2345-7")},
	} {
		if _, err := api.PutTrusted(ctx, r.typ, r.id, []byte(r.body), 0); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *server) do(token, method, path, body string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *server) ids(token, path string) []string {
	s.t.Helper()
	st, b := s.do(token, "GET", path, "")
	if st != 200 {
		s.t.Fatalf("GET %s: %d %s", path, st, b)
	}
	var bundle struct {
		Total *int
		Entry []struct{ Resource struct{ ID string } }
	}
	json.Unmarshal(b, &bundle)
	var out []string
	for _, e := range bundle.Entry {
		out = append(out, e.Resource.ID)
	}
	return out
}

// denyLabel is p1's Consent withholding data labelled label from client.
func denyLabel(id, client, label string) string {
	return `{"resourceType":"Consent","id":"` + id + `","status":"active",
	"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	"patient":{"reference":"Patient/p1"},
	"provision":{"type":"deny","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},
	  "reference":{"identifier":{"system":"` + consent.SystemClient + `","value":"` + client + `"}}}],
	  "securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"` + label + `"}]}}`
}

// TestConsentWithholdsCategory: a patient blocks psychiatric data from
// one app; that app no longer sees it by any path, other apps and the
// patient's other data are untouched; lifting the block takes effect at
// once.
func TestConsentWithholdsCategory(t *testing.T) {
	s := newServer(t, consent.OptOut)
	if got := s.ids("app-p1", "/Observation"); len(got) != 3 {
		t.Fatalf("before any consent: %v", got)
	}
	if st, b := s.do("app-p1", "PUT", "/Consent/block-psy", denyLabel("block-psy", "app", "PSY")); st != 201 {
		t.Fatalf("storing the consent: %d %s", st, b)
	}
	if got := s.ids("app-p1", "/Observation"); slices.Contains(got, "psy") || !slices.Contains(got, "lab") || !slices.Contains(got, "hiv") {
		t.Fatalf("app's search after the block: %v", got)
	}
	if st, _ := s.do("app-p1", "GET", "/Observation/psy", ""); st != 404 {
		t.Fatalf("app's read of the blocked note: %d", st)
	}
	if got := s.ids("app-p1", "/Patient/p1/$everything"); slices.Contains(got, "psy") || !slices.Contains(got, "lab") {
		t.Fatalf("$everything: %v", got)
	}
	if got := s.ids("other-p1", "/Observation"); !slices.Contains(got, "psy") {
		t.Fatalf("another app lost the note: %v", got)
	}
	if got := s.ids("backend", "/Observation?_id=psy"); len(got) != 1 {
		t.Fatalf("a backend client lost the note: %v", got)
	}
	// Lifting the block (status inactive) takes effect on the next request.
	lifted := strings.Replace(denyLabel("block-psy", "app", "PSY"), `"status":"active"`, `"status":"inactive"`, 1)
	if st, b := s.do("app-p1", "PUT", "/Consent/block-psy", lifted); st != 200 {
		t.Fatalf("lifting: %d %s", st, b)
	}
	if st, _ := s.do("app-p1", "GET", "/Observation/psy", ""); st != 200 {
		t.Fatalf("after lifting the block: %d", st)
	}
}

// TestOptInDefault: under a site default of opt-in nothing of a patient
// flows without a permit; a permit for one app opens exactly that app.
func TestOptInDefault(t *testing.T) {
	s := newServer(t, consent.OptIn)
	if got := s.ids("app-p1", "/Observation"); len(got) != 0 {
		t.Fatalf("opt-in without a consent disclosed %v", got)
	}
	permit := `{"resourceType":"Consent","id":"permit-app","status":"active",
	"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	"patient":{"reference":"Patient/p1"},
	"provision":{"type":"permit","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},
	  "reference":{"identifier":{"system":"` + consent.SystemClient + `","value":"app"}}}],
	  "class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}],
	  "provision":[{"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}]}}`
	// Trusted write (the grant ledger's path): the app itself may not
	// write under opt-in without consent.
	if _, err := s.api.PutTrusted(context.Background(), "Consent", "permit-app", []byte(permit), 0); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.ids("app-p1", "/Observation"), ","); got != "lab,psy" && got != "psy,lab" {
		t.Fatalf("opt-in with a permit (HIV excepted): %s", got)
	}
	if got := s.ids("other-p1", "/Observation"); len(got) != 0 {
		t.Fatalf("another app under opt-in: %v", got)
	}
	if got := s.ids("app-p2", "/Observation"); len(got) != 0 {
		t.Fatalf("p1's consent opened p2's record: %v", got)
	}
}

// TestMalformedConsentRefused: a Consent that cannot be enforced is
// refused on write and changes nothing.
func TestMalformedConsentRefused(t *testing.T) {
	s := newServer(t, consent.OptOut)
	bad := strings.Replace(denyLabel("bad", "app", "PSY"), `"type":"deny"`, `"type":"maybe"`, 1)
	st, b := s.do("app-p1", "PUT", "/Consent/bad", bad)
	if st != 400 || !strings.Contains(string(b), "Consent.provision") {
		t.Fatalf("malformed consent: %d %s", st, b)
	}
	if st, _ := s.do("backend", "GET", "/Consent/bad", ""); st != 404 {
		t.Fatalf("the refused consent was stored: %d", st)
	}
	if st, _ := s.do("app-p1", "GET", "/Observation/psy", ""); st != 200 {
		t.Fatalf("a refused consent took effect: %d", st)
	}
}

// TestConsentsUnreadable: when the consents cannot be loaded, nothing of
// the patient is disclosed (503).
func TestConsentsUnreadable(t *testing.T) {
	s := newServer(t, consent.OptOut)
	s.failing.Store(true)
	if st, b := s.do("app-p1", "GET", "/Observation/lab", ""); st != 503 || bytes.Contains(b, []byte("2345-7")) {
		t.Fatalf("consents unreadable: %d %s", st, b)
	}
}

// TestCacheAndReload: a patient's consents are loaded once and kept until
// a change anywhere (Reload) forgets them.
func TestCacheAndReload(t *testing.T) {
	s := newServer(t, consent.OptOut)
	s.ids("app-p1", "/Observation")
	n := s.loads.Load()
	for range 5 {
		s.ids("app-p1", "/Observation")
	}
	if s.loads.Load() != n {
		t.Fatalf("consents reloaded on every request: %d loads", s.loads.Load()-n)
	}
	// Another process stores a consent (trusted, this process's cache is
	// told through Reload only).
	ctx := context.Background()
	if _, err := s.api.PutTrusted(ctx, "Consent", "block-psy", []byte(denyLabel("block-psy", "app", "PSY")), 0); err != nil {
		t.Fatal(err)
	}
	if got := s.ids("app-p1", "/Observation"); slices.Contains(got, "psy") {
		t.Fatalf("the consent written through the API (Changed) is not enforced: %v", got)
	}
}
