package fhirapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// testServer is the FHIR API over a fresh SQLite store, served plainly
// by httptest (TLS is the server package's business).
type testServer struct {
	t   *testing.T
	api *fhirapi.API
	srv *httptest.Server
	url string // FHIR base
	st  *sqlstore.Store
	dir string // where the database file is
	// keys are the field-encryption keys made for a sealing test.
	keys *fieldcrypt.Keys
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, func(o *fhirapi.Options) { o.Unauthenticated = true })
}

// newTestServerWith is newTestServer with options set by configure.
func newTestServerWith(t *testing.T, configure func(*fhirapi.Options)) *testServer {
	t.Helper()
	return newTestServerOn(t, nil, configure)
}

// newTestServerOn is newTestServerWith serving the store that wrap makes
// of the SQLite one (nil: the SQLite store itself).
func newTestServerOn(t *testing.T, wrap func(store.Store) store.Store, configure func(*fhirapi.Options)) *testServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "w.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := &testServer{t: t, st: st, dir: dir}
	var h http.Handler
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.srv.Close)
	ts.url = ts.srv.URL + "/fhir"
	opts := fhirapi.Options{BaseURL: ts.url, CursorKey: bytes.Repeat([]byte{7}, 32), DefaultCount: 10, MaxCount: 100}
	configure(&opts)
	if opts.Sealing != nil && opts.Keys == nil {
		opts.Keys = testKeys(t, st, dir)
		ts.keys = opts.Keys
	}
	var served store.Store = st
	if wrap != nil {
		served = wrap(st)
	}
	ts.api, err = fhirapi.New(served, opts)
	if err != nil {
		t.Fatal(err)
	}
	h = ts.api
	return ts
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %s", r.status, r.body)
	}
	return m
}

func (ts *testServer) do(method, path string, body any, headers ...string) response {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = ts.url + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (ts *testServer) mustStatus(r response, want int) {
	ts.t.Helper()
	if r.status != want {
		ts.t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
}

// create posts res and returns its id.
func (ts *testServer) create(res map[string]any) string {
	ts.t.Helper()
	r := ts.do("POST", "/"+res["resourceType"].(string), res)
	ts.mustStatus(r, http.StatusCreated)
	return r.json(ts.t)["id"].(string)
}

func patient(family, given, gender, birth string) map[string]any {
	return map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": family, "given": []any{given}}},
		"gender":       gender,
		"birthDate":    birth,
	}
}

func observation(patientID, system, code, date string, value float64) map[string]any {
	return map[string]any{
		"resourceType":      "Observation",
		"status":            "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}},
		"subject":           map[string]any{"reference": "Patient/" + patientID},
		"effectiveDateTime": date,
		"valueQuantity":     map[string]any{"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
	}
}

func entryIDs(t *testing.T, bundle map[string]any, mode string) []string {
	t.Helper()
	var ids []string
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		if s, _ := em["search"].(map[string]any); mode != "" && s["mode"] != mode {
			continue
		}
		if res, ok := em["resource"].(map[string]any); ok {
			ids = append(ids, res["resourceType"].(string)+"/"+res["id"].(string))
		}
	}
	return ids
}

func link(bundle map[string]any, rel string) string {
	links, _ := bundle["link"].([]any)
	for _, l := range links {
		lm := l.(map[string]any)
		if lm["relation"] == rel {
			return lm["url"].(string)
		}
	}
	return ""
}
