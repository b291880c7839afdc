package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/adminapi"
	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/tokens"
)

// launches records minted launch contexts; the authorization server's
// own tests cover redeeming them.
type launches struct{ got []authserver.LaunchContext }

func (l *launches) MintLaunch(_ context.Context, c authserver.LaunchContext) (string, error) {
	l.got = append(l.got, c)
	return "launch-1", nil
}

var adminToken = bytes.Repeat([]byte("t"), 40)

func newAPI(t *testing.T) (http.Handler, *launches, *tokens.Service) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "a.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://warden.invalid/fhir"
	ts, err := tokens.New(context.Background(), tokens.Options{Issuer: base, Audience: base, Records: st, Sealer: keys})
	if err != nil {
		t.Fatal(err)
	}
	l := &launches{}
	api, err := adminapi.New(authserver.NewRegistry(st, ts, time.Now), l, adminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	return api, l, ts
}

func call(t *testing.T, h http.Handler, method, path, token, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var m map[string]any
	json.Unmarshal(w.Body.Bytes(), &m)
	return w, m
}

func TestAdminRefusals(t *testing.T) {
	h, l, _ := newAPI(t)
	good := string(adminToken)
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"no token", "GET", "/admin/clients", "", "", 401},
		{"wrong token", "GET", "/admin/clients", strings.Repeat("x", 40), "", 401},
		{"token prefix", "GET", "/admin/clients", good[:39], "", 401},
		{"token plus more", "GET", "/admin/clients", good + "x", "", 401},
		{"no token on launch", "POST", "/admin/launch", "", `{"patient":"p1"}`, 401},
		{"unknown field", "POST", "/admin/clients", good, `{"name":"x","type":"public","scopes":"patient/*.rs","secret":"mine"}`, 400},
		{"not JSON", "POST", "/admin/clients", good, `name=x`, 400},
		{"http redirect on the internet", "POST", "/admin/clients", good, `{"name":"x","type":"public","redirect_uris":["http://evil.example/cb"],"scopes":"patient/*.rs"}`, 400},
		{"bad lifetime", "POST", "/admin/clients", good, `{"name":"x","type":"public","redirect_uris":["https://a.example/cb"],"scopes":"patient/*.rs","token_lifetime":"soon"}`, 400},
		{"unknown client", "GET", "/admin/clients/nope", good, "", 404},
		{"disable unknown client", "POST", "/admin/clients/nope/disable", good, "", 404},
		{"launch without patient", "POST", "/admin/launch", good, `{}`, 400},
		{"launch for a day", "POST", "/admin/launch", good, `{"patient":"p1","ttl":"24h"}`, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, _ := call(t, h, c.method, c.path, c.token, c.body)
			if w.Code != c.status {
				t.Errorf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
		})
	}
	if _, m := call(t, h, "GET", "/admin/clients", good, ""); m != nil {
		t.Errorf("refused registrations left clients behind: %v", m)
	}
	if len(l.got) != 0 {
		t.Errorf("refused launches minted %v", l.got)
	}
}

func TestAdminClientLifecycle(t *testing.T) {
	h, l, ts := newAPI(t)
	tok := string(adminToken)
	ctx := context.Background()
	w, m := call(t, h, "POST", "/admin/clients", tok, `{"name":"Portal","type":"confidential","redirect_uris":["https://portal.example/cb"],"scopes":"patient/*.rs","origins":["https://portal.example"]}`)
	if w.Code != 201 {
		t.Fatalf("add: %d %s", w.Code, w.Body)
	}
	id, _ := m["client_id"].(string)
	if id == "" || m["client_secret"] == "" || m["client_secret"] == nil {
		t.Fatalf("add answered %v", m)
	}
	if strings.Contains(w.Body.String(), "secret_hash") {
		t.Error("the answer shows the secret's hash")
	}
	w, m = call(t, h, "GET", "/admin/clients/"+id, tok, "")
	if w.Code != 200 || m["client_secret"] != nil || m["name"] != "Portal" {
		t.Errorf("show: %d %v", w.Code, m)
	}
	live, _, _, err := ts.MintAccess(ctx, tokens.AccessClaims{Subject: "u1", ClientID: id, Scope: "patient/*.rs", Patient: "p1", GrantID: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Verify(ctx, live); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	w, m = call(t, h, "POST", "/admin/clients/"+id+"/disable", tok, "")
	if w.Code != 200 || m["disabled"] != true {
		t.Errorf("disable: %d %v", w.Code, m)
	}
	if _, err := ts.Verify(ctx, live); !errors.Is(err, tokens.ErrClientDisabled) {
		t.Errorf("the disabled client's token still verifies: %v", err)
	}
	w, m = call(t, h, "POST", "/admin/clients/"+id+"/enable", tok, "")
	if w.Code != 200 || m["disabled"] != false {
		t.Errorf("enable: %d %v", w.Code, m)
	}
	req := httptest.NewRequest("GET", "/admin/clients", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var list []adminapi.ClientView
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 1 || list[0].ID != id || list[0].Secret != "" {
		t.Errorf("list: %s (%v)", rec.Body, err)
	}
	w, m = call(t, h, "POST", "/admin/launch", tok, `{"patient":"p1","encounter":"e1","ttl":"2m"}`)
	if w.Code != 201 || m["launch"] != "launch-1" || len(l.got) != 1 || l.got[0].Patient != "p1" || l.got[0].Encounter != "e1" {
		t.Errorf("launch: %d %v %+v", w.Code, m, l.got)
	}
	if left := time.Until(l.got[0].Expires); left > 2*time.Minute || left < time.Minute {
		t.Errorf("launch expires in %v, want about 2m", left)
	}
}

func TestShortTokenRefused(t *testing.T) {
	if _, err := adminapi.New(nil, nil, []byte("short"), nil); err == nil {
		t.Error("a short admin token was accepted")
	}
}

type fixedGrants []authserver.Grant

func (g fixedGrants) ForClient(_ context.Context, client string) ([]authserver.Grant, error) {
	var out []authserver.Grant
	for _, x := range g {
		if x.ClientID == client {
			out = append(out, x)
		}
	}
	return out, nil
}

// TestAdminClientGrants: the admin view lists a client's grants, only
// with the admin token, and only for a registered client.
func TestAdminClientGrants(t *testing.T) {
	h, _, _ := newAPI(t)
	tok := string(adminToken)
	w, m := call(t, h, "POST", "/admin/clients", tok, `{"name":"Chart","type":"public","redirect_uris":["https://chart.example/cb"],"scopes":"patient/*.rs"}`)
	if w.Code != 201 {
		t.Fatalf("add: %d %s", w.Code, w.Body)
	}
	id := m["client_id"].(string)
	if w, _ := call(t, h, "GET", "/admin/clients/"+id+"/grants", tok, ""); w.Code != http.StatusNotImplemented {
		t.Fatalf("without a ledger: %d", w.Code)
	}
	h.(*adminapi.API).WithGrants(fixedGrants{
		{ID: "g1", Patient: "p1", ClientID: id, UserID: "secret-user", Scopes: []string{"patient/*.rs"}, Active: true, Blocked: []string{"PSY"}},
		{ID: "g2", Patient: "p2", ClientID: "other", Active: true},
	})
	if w, _ := call(t, h, "GET", "/admin/clients/"+id+"/grants", "", ""); w.Code != 401 {
		t.Fatalf("without the token: %d", w.Code)
	}
	if w, _ := call(t, h, "GET", "/admin/clients/nope/grants", tok, ""); w.Code != 404 {
		t.Fatalf("unknown client: %d", w.Code)
	}
	w, m = call(t, h, "GET", "/admin/clients/"+id+"/grants", tok, "")
	if w.Code != 200 {
		t.Fatalf("grants: %d %s", w.Code, w.Body)
	}
	gs, _ := m["grants"].([]any)
	if len(gs) != 1 || gs[0].(map[string]any)["id"] != "g1" || gs[0].(map[string]any)["patient"] != "p1" {
		t.Fatalf("grants: %s", w.Body)
	}
	if strings.Contains(w.Body.String(), "secret-user") {
		t.Error("the admin view shows the approving user's id")
	}
}
