package authserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/tokens"
	"github.com/wardenfhir/warden/internal/web"
)

// testClock is a settable clock shared by the server, the token service
// and the identity directory.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one authorization server behind a TLS test server, on a real
// SQLite store, with real tokens and users.
type env struct {
	t       *testing.T
	ctx     context.Context
	srv     *Server
	ts      *httptest.Server
	mux     *http.ServeMux
	records store.Records
	tokens  *tokens.Service
	users   *identity.Directory
	clock   *testClock
	issuer  string
	// http is a client that trusts the test server and never follows
	// redirects.
	http *http.Client
}

// testPatients is a PatientDirectory over a fixed list.
type testPatients map[string]string

func (p testPatients) Label(_ context.Context, id string) (string, error) {
	if l, ok := p[id]; ok {
		return l, nil
	}
	return "", store.ErrNotFound
}

func (p testPatients) Search(_ context.Context, name string, limit int) ([]PatientChoice, error) {
	var out []PatientChoice
	for id, l := range p {
		if strings.Contains(strings.ToLower(l), strings.ToLower(name)) && len(out) < limit {
			out = append(out, PatientChoice{ID: id, Label: l})
		}
	}
	return out, nil
}

func newEnv(t testing.TB, mutate ...func(*Options)) *env {
	tt, _ := t.(*testing.T)
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Now().Truncate(time.Second)}
	ts := httptest.NewUnstartedServer(nil)
	// As the FHIR listener does: client certificates requested, not demanded.
	ts.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	issuer := ts.URL + "/fhir"
	tok, err := tokens.New(ctx, tokens.Options{Issuer: issuer, Audience: issuer, Records: db, Sealer: kr, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	users := identity.NewDirectory(db, kr, identity.Options{Now: clock.Now})
	pages, err := web.NewPages()
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Issuer: issuer, Records: db, Tokens: tok, Users: users, Pages: pages,
		Patients:  testPatients{"p1": "Alice Example", "p2": "Bob Example", "p3": "Carol Sample"},
		CookieKey: []byte("0123456789abcdef0123456789abcdef"),
		Now:       clock.Now, HTTPClient: ts.Client(),
	}
	for _, m := range mutate {
		m(&o)
	}
	srv, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	ts.Config.Handler = mux
	hc := ts.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &env{t: tt, ctx: ctx, srv: srv, ts: ts, mux: mux, records: db, tokens: tok, users: users, clock: clock, issuer: issuer, http: hc}
}

// postForm posts form to path (relative to the server) with optional
// basic credentials and returns status and decoded JSON body.
func (e *env) postForm(t testing.TB, path string, form url.Values, basicUser, basicPass string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: not JSON (%d): %s", path, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, m, resp.Header
}

func (e *env) get(t testing.TB, rawURL string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
