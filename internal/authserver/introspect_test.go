package authserver

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// launched is a standalone launch's token response.
func (e *env) launched(t testing.TB, c Client, secret string, u testUser, scope string) map[string]any {
	t.Helper()
	p := newPKCE()
	code := e.standaloneCode(t, c, u, scope, "", p)
	st, tok, _ := e.exchange(t, c, secret, code, p.verifier)
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, tok)
	}
	return tok
}

// rawPost posts form and returns status and the exact body.
func (e *env) rawPost(t testing.TB, path string, form url.Values, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestIntrospection(t *testing.T) {
	e := newEnv(t)
	app, appSecret := e.appClient(t, ClientConfidential, appScopes)
	public, _ := e.appClient(t, ClientPublic, appScopes)
	keys := newBackendKeys(t)
	rs, _, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "resource server", Type: ClientBackend, Scopes: "system/Patient.rs", JWKS: keys.jwks(t)})
	if err != nil {
		t.Fatal(err)
	}
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	tok := e.launched(t, app, appSecret, u, "launch/patient openid fhirUser offline_access patient/*.rs")
	at := tok["access_token"].(string)

	t.Run("callers must authenticate", func(t *testing.T) {
		for name, tc := range map[string]struct {
			form       url.Values
			user, pass string
		}{
			"no credentials":              {form: url.Values{"token": {at}}},
			"public client":               {form: url.Values{"token": {at}, "client_id": {public.ID}}},
			"wrong secret":                {form: url.Values{"token": {at}}, user: app.ID, pass: "nope"},
			"unknown client":              {form: url.Values{"token": {at}}, user: "nobody", pass: "nope"},
			"confidential without secret": {form: url.Values{"token": {at}, "client_id": {app.ID}}},
		} {
			st, body := e.rawPost(t, "/auth/introspect", tc.form, tc.user, tc.pass)
			if st != http.StatusUnauthorized || strings.Contains(body, `"active"`) {
				t.Errorf("%s: %d %s", name, st, body)
			}
		}
	})

	introspect := func(token string) (int, map[string]any, string) {
		st, raw := e.rawPost(t, "/auth/introspect", url.Values{"token": {token}}, app.ID, appSecret)
		_, m, _ := e.postForm(t, "/auth/introspect", url.Values{"token": {token}}, app.ID, appSecret)
		return st, m, raw
	}
	st, m, _ := introspect(at)
	if st != http.StatusOK || m["active"] != true {
		t.Fatalf("%d %v", st, m)
	}
	for _, k := range []string{"scope", "client_id", "sub", "exp", "iat", "iss", "token_type", "patient", "fhirUser"} {
		if _, ok := m[k]; !ok {
			t.Errorf("active answer lacks %s: %v", k, m)
		}
	}
	if m["client_id"] != app.ID || m["patient"] != "p1" || m["fhirUser"] != e.issuer+"/Patient/p1" || m["scope"] != tok["scope"] {
		t.Fatalf("%v", m)
	}
	// A backend client (a resource server) may introspect with its key.
	claims := assertionClaims(e, rs.ID)
	claims["aud"] = e.issuer
	f := url.Values{"token": {at}, "client_assertion_type": {assertionType}, "client_assertion": {keys.sign(t, jose.ES384, "ec", claims)}}
	if st, m, _ := e.postForm(t, "/auth/introspect", f, "", ""); st != http.StatusOK || m["active"] != true {
		t.Fatalf("backend introspection: %d %v", st, m)
	}
	// The refresh token introspects active too.
	if _, m, _ := introspect(tok["refresh_token"].(string)); m["active"] != true || m["token_type"] != "refresh_token" || m["patient"] != "p1" {
		t.Fatalf("refresh: %v", m)
	}
	for name, token := range map[string]string{
		"garbage":             "garbage",
		"forged JWT":          "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
		"tampered token":      at[:len(at)-4] + "AAAA",
		"forged refresh":      "ory_rt_forged.forged",
		"id_token as a token": tok["id_token"].(string),
	} {
		if st, _, raw := introspect(token); st != http.StatusOK || raw != `{"active":false}` {
			t.Errorf("%s: %d %s", name, st, raw)
		}
	}

	// Revocation: wrong client leaves the token alone; the owner revokes.
	if st, _ := e.rawPost(t, "/auth/revoke", url.Values{"token": {at}, "client_id": {public.ID}}, "", ""); st != http.StatusOK {
		t.Fatalf("revoke by another client: %d", st)
	}
	if _, m, _ := introspect(at); m["active"] != true {
		t.Fatal("another client revoked the token")
	}
	if st, body := e.rawPost(t, "/auth/revoke", url.Values{"token": {at}}, app.ID, "wrong"); st != http.StatusUnauthorized {
		t.Fatalf("revoke with a wrong secret: %d %s", st, body)
	}
	if st, body := e.rawPost(t, "/auth/revoke", url.Values{"token": {at}}, app.ID, appSecret); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, body)
	}
	if _, _, raw := introspect(at); raw != `{"active":false}` {
		t.Fatalf("revoked token introspects %s", raw)
	}
	if _, err := e.tokens.Verify(e.ctx, at); err == nil {
		t.Fatal("revoked token verifies")
	}
	// Revoking an unknown or already revoked token is 200.
	for _, token := range []string{at, "garbage"} {
		if st, _ := e.rawPost(t, "/auth/revoke", url.Values{"token": {token}}, app.ID, appSecret); st != http.StatusOK {
			t.Fatalf("re-revoke: %d", st)
		}
	}
	if st, _ := e.rawPost(t, "/auth/revoke", url.Values{}, app.ID, appSecret); st != http.StatusBadRequest {
		t.Fatalf("revoke without a token: %d", st)
	}

	// Revoking the refresh token kills the grant: the refresh token and a
	// fresh access token of the same grant.
	rt := tok["refresh_token"].(string)
	st, r2, _ := e.postForm(t, "/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, app.ID, appSecret)
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, r2)
	}
	if st, _ := e.rawPost(t, "/auth/revoke", url.Values{"token": {r2["refresh_token"].(string)}, "token_type_hint": {"refresh_token"}}, app.ID, appSecret); st != http.StatusOK {
		t.Fatal(st)
	}
	if _, _, raw := introspect(r2["access_token"].(string)); raw != `{"active":false}` {
		t.Fatalf("access token of a revoked grant: %s", raw)
	}
	if _, _, raw := introspect(r2["refresh_token"].(string)); raw != `{"active":false}` {
		t.Fatalf("revoked refresh token: %s", raw)
	}
}

func TestIntrospectDisabledClientToken(t *testing.T) {
	e := newEnv(t)
	app, secret := e.appClient(t, ClientConfidential, appScopes)
	rs, rsSecret := e.appClient(t, ClientConfidential, "patient/*.rs")
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	tok := e.launched(t, app, secret, u, "launch/patient offline_access patient/*.rs")
	if err := e.srv.Clients().Disable(e.ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"access_token", "refresh_token"} {
		if st, raw := e.rawPost(t, "/auth/introspect", url.Values{"token": {tok[k].(string)}}, rs.ID, rsSecret); st != http.StatusOK || raw != `{"active":false}` {
			t.Fatalf("%s of a disabled client: %d %s", k, st, raw)
		}
	}
	// A disabled client can neither refresh nor start an authorization.
	if st, _, _ := e.postForm(t, "/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, app.ID, secret); st != http.StatusUnauthorized {
		t.Fatalf("refresh by a disabled client: %d", st)
	}
	authURL, _ := e.authorizeURL(app, "patient/*.rs", newPKCE(), nil)
	if pg := e.browser(t).get(t, authURL); pg.status != http.StatusBadRequest || pg.location != nil {
		t.Fatalf("authorize by a disabled client: %d", pg.status)
	}
	// Enabling the client again does not bring its refresh tokens back.
	if err := e.srv.Clients().Enable(e.ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := e.postForm(t, "/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, app.ID, secret); st != http.StatusBadRequest {
		t.Fatalf("refresh after re-enabling: %d %v", st, body)
	}
	if _, err := e.tokens.Verify(e.ctx, tok["access_token"].(string)); err == nil {
		t.Fatal("an access token of a revoked grant verifies after re-enabling")
	}
	tok = e.launched(t, app, secret, u, "launch/patient offline_access patient/*.rs")
	if _, err := e.tokens.Verify(e.ctx, tok["access_token"].(string)); err != nil {
		t.Fatalf("new token after re-enabling: %v", err)
	}
}

func TestDisabledUserCannotRefresh(t *testing.T) {
	e := newEnv(t)
	app, secret := e.appClient(t, ClientConfidential, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	tok := e.launched(t, app, secret, u, "launch/patient offline_access patient/*.rs")
	if err := e.users.SetDisabled(e.ctx, u.Username, true); err != nil {
		t.Fatal(err)
	}
	if st, body, _ := e.postForm(t, "/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, app.ID, secret); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh for a disabled user: %d %v", st, body)
	}
}
