package routes

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// classifyFHIR is a small classifier for these tests: /fhir/Type[/id].
func classifyFHIR(r *http.Request) Request {
	req := Request{Method: r.Method, Path: r.URL.Path}
	rest, ok := strings.CutPrefix(r.URL.Path, "/fhir/")
	if !ok {
		return req
	}
	req.FHIR = true
	seg := strings.Split(rest, "/")
	req.Type = seg[0]
	switch {
	case len(seg) == 1 && r.Method == http.MethodGet:
		req.Interaction = "search-type"
	case len(seg) == 2 && r.Method == http.MethodGet:
		req.Interaction = "read"
	case len(seg) == 3 && strings.HasPrefix(seg[2], "$"):
		req.Interaction, req.Op = "operation", seg[2]
	}
	return req
}

func TestInventoryAnswers(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	inv, err := Parse([]byte(`
routes:
  - name: patients
    owner: records-team
    interactions: [read, search-type]
    types: [Patient]
  - name: everything
    owner: records-team
    interactions: [operation]
    types: [Patient]
    operations: [$everything]
    deprecated: 2026-05-01T00:00:00Z
    sunset: 2026-12-31T00:00:00Z
    link: https://docs.example/everything
  - name: old-export
    owner: analytics (temporary)
    paths: [/export/]
    methods: [GET]
    expires: 2026-05-15T00:00:00Z
  - name: health
    paths: [/healthz]
`))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	g, err := New(Options{Inventory: inv, Classify: classifyFHIR, Now: func() time.Time { return now },
		OnExpired: func(_ context.Context, r Route) { alerts = append(alerts, r.Name) }})
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	h := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++; w.WriteHeader(200) }))
	do := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "http://w.example"+path, nil))
		return w
	}
	unknown := do("GET", "/fhir/Nothing/here")
	for _, c := range []struct{ method, path string }{
		{"GET", "/fhir/Observation/1"},     // an undeclared type
		{"DELETE", "/fhir/Patient/1"},      // an undeclared interaction
		{"GET", "/fhir/Patient/1/$export"}, // an undeclared operation
		{"POST", "/export/x"},              // a declared path, another method
		{"GET", "/exporter"},               // a prefix is not a substring
		{"GET", "/healthz/more"},           // an exact path is exact
	} {
		w := do(c.method, c.path)
		if w.Code != 404 {
			t.Errorf("%s %s: %d, want 404", c.method, c.path, w.Code)
		}
		if strings.HasPrefix(c.path, "/fhir/") && w.Body.String() != unknown.Body.String() {
			t.Errorf("%s %s: body %q differs from an unknown route's", c.method, c.path, w.Body)
		}
	}
	if served != 0 {
		t.Fatalf("undeclared requests reached the handler %d times", served)
	}
	for _, p := range []string{"/fhir/Patient/1", "/fhir/Patient", "/healthz"} {
		if w := do("GET", p); w.Code != 200 || w.Header().Get("Deprecation") != "" {
			t.Errorf("declared %s: %d %v", p, w.Code, w.Header())
		}
	}
	w := do("GET", "/fhir/Patient/1/$everything")
	if w.Code != 200 || w.Header().Get("Deprecation") != "@1777593600" || w.Header().Get("Sunset") != "Thu, 31 Dec 2026 00:00:00 GMT" ||
		w.Header().Get("Link") != `<https://docs.example/everything>; rel="deprecation"` {
		t.Errorf("deprecated route: %d %v", w.Code, w.Header())
	}
	for range 3 {
		if w := do("GET", "/export/data"); w.Code != 410 || !strings.Contains(w.Body.String(), "retired on 2026-05-15") {
			t.Errorf("expired route: %d %s", w.Code, w.Body)
		}
	}
	if len(alerts) != 1 || alerts[0] != "old-export" {
		t.Errorf("alerts %v, want one for old-export (at most once a minute)", alerts)
	}
	now = now.Add(2 * time.Minute)
	do("GET", "/export/data")
	if len(alerts) != 2 {
		t.Errorf("a minute later the expired route alerts again: %v", alerts)
	}
	// Expiry is read on each request: no restart.
	now = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	if w := do("GET", "/export/data"); w.Code != 200 {
		t.Errorf("before its expiry: %d", w.Code)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, y := range map[string]string{
		"empty":               "routes: []",
		"no name":             "routes: [{paths: [/x]}]",
		"name twice":          "routes: [{name: a, paths: [/x]}, {name: a, paths: [/y]}]",
		"declares nothing":    "routes: [{name: a}]",
		"paths and fhir":      "routes: [{name: a, paths: [/x], interactions: [read]}]",
		"unknown interaction": "routes: [{name: a, interactions: [reed]}]",
		"operation without $": "routes: [{name: a, interactions: [operation], operations: [everything]}]",
		"relative path":       "routes: [{name: a, paths: [x/]}]",
		"traversal":           "routes: [{name: a, paths: [/a/../b]}]",
		"lower-case method":   "routes: [{name: a, paths: [/x], methods: [get]}]",
		"sunset alone":        "routes: [{name: a, paths: [/x], sunset: 2026-01-01T00:00:00Z}]",
		"sunset before":       "routes: [{name: a, paths: [/x], deprecated: 2026-02-01T00:00:00Z, sunset: 2026-01-01T00:00:00Z}]",
		"unknown field":       "routes: [{name: a, paths: [/x], owners: b}]",
	} {
		if _, err := Parse([]byte(y)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := (func() error { d := Default("/fhir"); return d.Validate() })(); err != nil {
		t.Fatalf("the default inventory: %v", err)
	}
}

// FuzzParse: the inventory parser never panics, and what it accepts
// validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte("routes: [{name: a, paths: [/x]}]"))
	f.Add([]byte("routes: [{name: f, interactions: [read], types: [Patient], expires: 2026-01-01T00:00:00Z}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(data)
		if err == nil {
			if verr := inv.Validate(); verr != nil {
				t.Fatalf("accepted an invalid inventory: %v", verr)
			}
		}
	})
}
