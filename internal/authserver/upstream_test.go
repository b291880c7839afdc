package authserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/policy"
)

// upstreamFailed is the start of the generic message of a refused
// upstream sign-in.
const upstreamFailed = "Signing in with Hospital SSO did not succeed."

// upstreamEnv is an authorization server whose sign-in page offers a
// mockoidc provider as "Hospital SSO".
type upstreamEnv struct {
	*env
	m *mockoidc.MockOIDC

	mu sync.Mutex
	// forge rewrites the claims of the next id_token the provider issues,
	// re-signed with its key; nil leaves it. (The first token request of
	// golang.org/x/oauth2 may be refused and retried with the other
	// client authentication style: only a success consumes forge.)
	forge func(jwt.MapClaims)
	// deny makes the provider answer the next authorization request with
	// error=access_denied and a hostile error_description.
	deny bool
}

const hostileDescription = `<script>alert(1)</script> Upstream says: account frozen`

func newUpstreamEnv(t *testing.T, trustMFA bool) *upstreamEnv {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ue := &upstreamEnv{m: m}
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ue.mu.Lock()
			forge, deny := ue.forge, ue.deny
			if r.URL.Path == mockoidc.AuthorizationEndpoint {
				ue.deny = false
			}
			ue.mu.Unlock()
			switch {
			case r.URL.Path == mockoidc.AuthorizationEndpoint && deny:
				cb, err := url.Parse(r.FormValue("redirect_uri"))
				if err != nil {
					http.Error(w, "bad redirect_uri", http.StatusBadRequest)
					return
				}
				cb.RawQuery = url.Values{"error": {"access_denied"}, "error_description": {hostileDescription}, "state": {r.FormValue("state")}}.Encode()
				http.Redirect(w, r, cb.String(), http.StatusFound)
			case r.URL.Path == mockoidc.TokenEndpoint && forge != nil:
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				var resp map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || rec.Code != http.StatusOK {
					w.WriteHeader(rec.Code)
					w.Write(rec.Body.Bytes())
					return
				}
				claims := jwt.MapClaims{}
				raw, _ := resp["id_token"].(string)
				if parts := strings.Split(raw, "."); len(parts) == 3 {
					payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
					json.Unmarshal(payload, &claims)
				}
				forge(claims)
				ue.setForge(nil)
				tok, err := m.Keypair.SignJWT(claims)
				if err != nil {
					t.Error(err)
				}
				resp["id_token"] = tok
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(resp)
			default:
				next.ServeHTTP(w, r)
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	cfg := m.Config()
	ue.env = newEnv(t, func(o *Options) {
		redirect, err := UpstreamRedirectURL(o.Issuer)
		if err != nil || redirect != strings.TrimSuffix(o.Issuer, "/fhir")+upstreamCallbackPath {
			t.Fatalf("redirect URL %q, %v", redirect, err)
		}
		o.Upstream, err = o.Users.NewUpstream(context.Background(), identity.UpstreamConfig{
			Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
			RedirectURL: redirect, TrustMFA: trustMFA,
		})
		if err != nil {
			t.Fatal(err)
		}
		o.UpstreamName = "Hospital SSO"
	})
	return ue
}

// link links the account username to subject at the provider.
func (ue *upstreamEnv) link(t *testing.T, username, subject string) {
	t.Helper()
	if err := ue.users.LinkUpstream(ue.ctx, username, ue.m.Issuer(), subject); err != nil {
		t.Fatal(err)
	}
}

func (ue *upstreamEnv) setForge(f func(jwt.MapClaims)) {
	ue.mu.Lock()
	ue.forge = f
	ue.mu.Unlock()
}

func (ue *upstreamEnv) setDeny() {
	ue.mu.Lock()
	ue.deny = true
	ue.mu.Unlock()
}

var upstreamLinkRE = regexp.MustCompile(`<a href="([^"]*)">Sign in with Hospital SSO</a>`)

// upstreamLink returns the sign-in page's link to the upstream provider.
func (p page) upstreamLink(t *testing.T) string {
	t.Helper()
	m := upstreamLinkRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no upstream link on the page (%d): %.600s", p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

// viaProvider clicks the sign-in page's upstream link and lets the
// provider sign subject in; it returns the callback URL the provider
// sends the browser back to, not yet visited.
func (ue *upstreamEnv) viaProvider(t *testing.T, b *browser, login page, subject string) string {
	t.Helper()
	ue.m.QueueUser(&mockoidc.MockUser{Subject: subject})
	start := b.get(t, ue.ts.URL+login.upstreamLink(t))
	if start.status != http.StatusSeeOther || start.location == nil || !strings.HasPrefix(start.location.String(), ue.m.AuthorizationEndpoint()+"?") {
		t.Fatalf("upstream start: %d %v %.300s", start.status, start.location, start.body)
	}
	if q := start.location.Query(); q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
		t.Fatalf("provider request %v", q)
	}
	prov := b.get(t, start.location.String())
	if prov.location == nil || !strings.HasPrefix(prov.location.String(), ue.ts.URL+upstreamCallbackPath+"?") {
		t.Fatalf("provider answered %d %v", prov.status, prov.location)
	}
	return prov.location.String()
}

// refused checks that p is the sign-in page again with the generic
// message, and nothing further.
func refused(t *testing.T, p page) {
	t.Helper()
	if p.status != http.StatusOK || p.location != nil || !strings.Contains(p.body, upstreamFailed) ||
		len(p.inputs("username")) != 1 || len(p.inputs("scope")) > 0 || len(p.inputs("patient")) > 0 {
		t.Fatalf("not refused with the sign-in page: %d %v %.600s", p.status, p.location, p.body)
	}
}

// cookieSnapshot copies b's cookies for the server into a fresh browser.
func (ue *upstreamEnv) cookieSnapshot(t *testing.T, b *browser) *browser {
	t.Helper()
	u, _ := url.Parse(ue.ts.URL)
	nb := ue.browser(t)
	var cs []*http.Cookie
	for _, c := range b.client.Jar.Cookies(u) {
		cs = append(cs, &http.Cookie{Name: c.Name, Value: c.Value, Path: "/", Secure: true, HttpOnly: true})
	}
	nb.client.Jar.SetCookies(u, cs)
	return nb
}

// upstreamCookieDeleted reports whether p's response deletes the upstream
// cookie.
func upstreamCookieDeleted(p page) bool {
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == "__Host-"+upstreamCookie && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// TestUpstreamStandaloneLaunch: authorize, the sign-in page, the upstream
// link, mockoidc, the callback, the approval, the token: the grant is the
// linked local user's.
func TestUpstreamStandaloneLaunch(t *testing.T) {
	ue := newUpstreamEnv(t, false)
	c, _ := ue.appClient(t, ClientPublic, appScopes)
	u := ue.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	ue.addUser(t, "bob", "Patient/p2", []string{"p2"}, false)
	ue.link(t, "alice", "sub-alice")
	ue.link(t, "bob", "sub-bob")

	p := newPKCE()
	b := ue.browser(t)
	authURL, q := ue.authorizeURL(c, "launch/patient openid fhirUser profile offline_access patient/*.rs", p, func(q url.Values) { q.Set("nonce", "n-upstream-1") })
	pg := b.get(t, authURL)
	if pg.status != http.StatusOK || len(pg.inputs("username")) != 1 {
		t.Fatalf("sign-in page: %d", pg.status)
	}
	if csp := pg.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
		t.Fatalf("CSP %q", csp)
	}
	cb := ue.viaProvider(t, b, pg, "sub-alice")
	pg = b.get(t, cb)
	if !upstreamCookieDeleted(pg) {
		t.Fatal("callback kept the upstream cookie")
	}
	if got := pg.inputs("scope"); len(got) == 0 || len(pg.inputs("patient")) > 0 {
		t.Fatalf("not the approval page: %d %.600s", pg.status, pg.body)
	}
	params := redirectParams(t, b.approve(t, pg, nil), c)
	if params.Get("state") != q.Get("state") || params.Get("iss") != ue.issuer || params.Get("code") == "" {
		t.Fatalf("redirect params %v", params)
	}
	st, tok, _ := ue.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK || tok["patient"] != "p1" || tok["refresh_token"] == nil {
		t.Fatalf("%d %v", st, tok)
	}
	pr, err := ue.tokens.Verify(ue.ctx, tok["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Subject != u.ID || pr.FHIRUser != "Patient/p1" || pr.Patient != "p1" || pr.ACR != policy.ACRPassword ||
		pr.AuthTime.IsZero() || ue.clock.Now().Sub(pr.AuthTime) > time.Minute {
		t.Fatalf("principal %+v", pr)
	}
	claims := jwtClaims(t, tok["id_token"].(string))
	if claims["sub"] != u.ID || claims["fhirUser"] != ue.issuer+"/Patient/p1" || claims["nonce"] != "n-upstream-1" ||
		claims["name"] != "User alice" || claims["auth_time"] == nil {
		t.Fatalf("id_token claims %v", claims)
	}
	// The interaction is over: the callback once more starts nothing.
	if pg := b.get(t, cb); pg.status != http.StatusBadRequest || len(pg.inputs("scope")) > 0 {
		t.Fatalf("callback after the approval: %d %.300s", pg.status, pg.body)
	}

	// Another subject signs in as its own account, through the picker
	// stage logic like a password sign-in (one patient: none shown).
	p = newPKCE()
	b = ue.browser(t)
	authURL, _ = ue.authorizeURL(c, "launch/patient openid fhirUser patient/*.rs", p, nil)
	pg = b.get(t, ue.viaProvider(t, b, b.get(t, authURL), "sub-bob"))
	params = redirectParams(t, b.approve(t, pg, nil), c)
	if st, tok, _ := ue.exchange(t, c, "", params.Get("code"), p.verifier); st != http.StatusOK || tok["patient"] != "p2" ||
		jwtClaims(t, tok["id_token"].(string))["fhirUser"] != ue.issuer+"/Patient/p2" {
		t.Fatalf("%d %v", st, tok)
	}
}

// TestUpstreamAdversarial: every way into the callback but the right one
// ends on the sign-in page (or an error page) without a grant.
func TestUpstreamAdversarial(t *testing.T) {
	ue := newUpstreamEnv(t, false)
	c, _ := ue.appClient(t, ClientPublic, appScopes)
	ue.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	ue.addUser(t, "carol", "Patient/p3", []string{"p3"}, false)
	ue.link(t, "alice", "sub-alice")
	ue.link(t, "carol", "sub-carol")
	const scope = "launch/patient openid fhirUser patient/*.rs"
	signInPage := func(t *testing.T) (*browser, page) {
		b := ue.browser(t)
		authURL, _ := ue.authorizeURL(c, scope, newPKCE(), nil)
		pg := b.get(t, authURL)
		if pg.status != http.StatusOK {
			t.Fatalf("authorize: %d", pg.status)
		}
		return b, pg
	}
	approval := func(t *testing.T, p page) {
		t.Helper()
		if len(p.inputs("scope")) == 0 {
			t.Fatalf("not the approval page: %d %.400s", p.status, p.body)
		}
	}

	t.Run("start without the interaction", func(t *testing.T) {
		_, pg := signInPage(t)
		if p := ue.browser(t).get(t, ue.ts.URL+pg.upstreamLink(t)); p.status != http.StatusBadRequest || p.location != nil {
			t.Fatalf("%d %v", p.status, p.location)
		}
	})
	t.Run("start without the page's token", func(t *testing.T) {
		b, _ := signInPage(t)
		_, other := signInPage(t)
		for _, path := range []string{upstreamStartPath, upstreamStartPath + "?csrf_token=x", other.upstreamLink(t)} {
			if p := b.get(t, ue.ts.URL+path); p.status != http.StatusBadRequest || p.location != nil {
				t.Fatalf("%s: %d %v", path, p.status, p.location)
			}
		}
	})
	t.Run("callback without any cookie", func(t *testing.T) {
		b, pg := signInPage(t)
		cb := ue.viaProvider(t, b, pg, "sub-alice")
		if p := ue.browser(t).get(t, cb); p.status != http.StatusBadRequest || len(p.inputs("scope")) > 0 {
			t.Fatalf("%d %.300s", p.status, p.body)
		}
	})
	t.Run("callback without the upstream cookie", func(t *testing.T) {
		b, pg := signInPage(t)
		cb := ue.viaProvider(t, b, pg, "sub-alice")
		nb := ue.browser(t)
		u, _ := url.Parse(ue.ts.URL)
		for _, ck := range b.client.Jar.Cookies(u) {
			if ck.Name != "__Host-"+upstreamCookie {
				nb.client.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/", Secure: true}})
			}
		}
		refused(t, nb.get(t, cb))
	})
	t.Run("cookie from another interaction", func(t *testing.T) {
		victim, vpg := signInPage(t)
		cb := ue.viaProvider(t, victim, vpg, "sub-alice")
		attacker, _ := signInPage(t)
		u, _ := url.Parse(ue.ts.URL)
		for _, ck := range victim.client.Jar.Cookies(u) {
			if ck.Name == "__Host-"+upstreamCookie {
				attacker.client.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/", Secure: true}})
			}
		}
		refused(t, attacker.get(t, cb))
		// The crossed attempt burnt nothing: the victim's own callback
		// still completes.
		approval(t, victim.get(t, cb))
	})
	t.Run("state mismatch", func(t *testing.T) {
		b, pg := signInPage(t)
		cb, _ := url.Parse(ue.viaProvider(t, b, pg, "sub-alice"))
		q := cb.Query()
		q.Set("state", "forged-state-forged-state-forged-state-forg")
		cb.RawQuery = q.Encode()
		refused(t, b.get(t, cb.String()))
	})
	t.Run("no state, no code", func(t *testing.T) {
		b, pg := signInPage(t)
		cb, _ := url.Parse(ue.viaProvider(t, b, pg, "sub-alice"))
		cb.RawQuery = ""
		refused(t, b.get(t, cb.String()))
	})
	t.Run("replayed callback", func(t *testing.T) {
		b, pg := signInPage(t)
		cb := ue.viaProvider(t, b, pg, "sub-alice")
		before := ue.cookieSnapshot(t, b)
		again := ue.cookieSnapshot(t, b)
		approval(t, b.get(t, cb))
		// With the cookies as they were before the first use.
		refused(t, before.get(t, cb))
		// The same, once more, with the sign-in abandoned in between.
		refused(t, again.get(t, cb))
		// With the browser's cookies now: the interaction moved on.
		if p := b.get(t, cb); p.status != http.StatusBadRequest || len(p.inputs("scope")) > 0 {
			t.Fatalf("%d %.300s", p.status, p.body)
		}
	})
	t.Run("unlinked subject", func(t *testing.T) {
		b, pg := signInPage(t)
		refused(t, b.get(t, ue.viaProvider(t, b, pg, "sub-nobody")))
	})
	t.Run("disabled user", func(t *testing.T) {
		if err := ue.users.SetDisabled(ue.ctx, "carol", true); err != nil {
			t.Fatal(err)
		}
		b, pg := signInPage(t)
		p := b.get(t, ue.viaProvider(t, b, pg, "sub-carol"))
		refused(t, p)
		if strings.Contains(p.body, "carol") || strings.Contains(p.body, "disabled") {
			t.Fatalf("refusal tells the account apart: %.600s", p.body)
		}
	})
	t.Run("provider says access_denied", func(t *testing.T) {
		b, pg := signInPage(t)
		ue.setDeny()
		cb := ue.viaProvider(t, b, pg, "sub-alice")
		if u, _ := url.Parse(cb); u.Query().Get("error") != "access_denied" {
			t.Fatalf("callback %s", cb)
		}
		p := b.get(t, cb)
		refused(t, p)
		if strings.Contains(p.body, "frozen") || strings.Contains(p.body, "access_denied") || strings.Contains(p.body, "alert(1)") {
			t.Fatalf("provider's text shown: %.600s", p.body)
		}
		// The sign-in page works again: the user may retry.
		approval(t, b.get(t, ue.viaProvider(t, b, p, "sub-alice")))
	})
}

// TestUpstreamStepUp: the provider's amr and auth_time reach the grant;
// acr_values mfa and max_age hold for an upstream sign-in too.
func TestUpstreamStepUp(t *testing.T) {
	ue := newUpstreamEnv(t, true)
	c, _ := ue.appClient(t, ClientPublic, appScopes)
	ue.addUser(t, "dr-up", "Practitioner/pr1", []string{"p1"}, false)
	ue.addUser(t, "dr-totp", "Practitioner/pr2", []string{"p1"}, true)
	ue.link(t, "dr-up", "sub-dr")
	ue.link(t, "dr-totp", "sub-totp")
	const scope = "openid fhirUser user/*.rs"
	authAt := ue.clock.Now().Add(-30 * time.Minute)
	withAuthn := func(amr []string) func(jwt.MapClaims) {
		return func(cl jwt.MapClaims) { cl["amr"] = amr; cl["auth_time"] = authAt.Unix() }
	}

	t.Run("mfa at the provider", func(t *testing.T) {
		p := newPKCE()
		b := ue.browser(t)
		authURL, _ := ue.authorizeURL(c, scope, p, func(q url.Values) { q.Set("acr_values", policy.ACRMultiFactor) })
		cb := ue.viaProvider(t, b, b.get(t, authURL), "sub-dr")
		ue.setForge(withAuthn([]string{"pwd", "mfa", "x-private"}))
		params := redirectParams(t, b.approve(t, b.get(t, cb), nil), c)
		st, tok, _ := ue.exchange(t, c, "", params.Get("code"), p.verifier)
		if st != http.StatusOK {
			t.Fatalf("%d %v", st, tok)
		}
		pr, err := ue.tokens.Verify(ue.ctx, tok["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if pr.ACR != policy.ACRMultiFactor || !pr.AuthTime.Equal(authAt) {
			t.Fatalf("acr %q auth_time %v, want %v", pr.ACR, pr.AuthTime, authAt)
		}
		if cl := jwtClaims(t, tok["id_token"].(string)); cl["auth_time"] != float64(authAt.Unix()) {
			t.Fatalf("id_token auth_time %v", cl["auth_time"])
		}
	})
	t.Run("no mfa at the provider, none here", func(t *testing.T) {
		b := ue.browser(t)
		authURL, _ := ue.authorizeURL(c, scope, newPKCE(), func(q url.Values) { q.Set("acr_values", policy.ACRMultiFactor) })
		cb := ue.viaProvider(t, b, b.get(t, authURL), "sub-dr")
		ue.setForge(withAuthn([]string{"pwd"}))
		params := redirectParams(t, b.get(t, cb), c)
		if params.Get("error") != "unmet_authentication_requirements" || params.Get("code") != "" {
			t.Fatalf("%v", params)
		}
	})
	t.Run("no mfa at the provider, a code here", func(t *testing.T) {
		b := ue.browser(t)
		authURL, _ := ue.authorizeURL(c, scope, newPKCE(), func(q url.Values) { q.Set("acr_values", policy.ACRMultiFactor) })
		cb := ue.viaProvider(t, b, b.get(t, authURL), "sub-totp")
		p := b.get(t, cb)
		if len(p.inputs("scope")) > 0 || !strings.Contains(p.body, "one-time code") || len(p.inputs("otp")) != 1 {
			t.Fatalf("%d %.600s", p.status, p.body)
		}
	})
	t.Run("max_age older than the provider's sign-in", func(t *testing.T) {
		b := ue.browser(t)
		authURL, _ := ue.authorizeURL(c, scope, newPKCE(), func(q url.Values) { q.Set("max_age", "600") })
		cb := ue.viaProvider(t, b, b.get(t, authURL), "sub-dr")
		ue.setForge(withAuthn([]string{"pwd", "mfa"}))
		p := b.get(t, cb)
		if p.location != nil || len(p.inputs("scope")) > 0 || !strings.Contains(p.body, "recent sign-in") {
			t.Fatalf("%d %v %.600s", p.status, p.location, p.body)
		}
	})
}

// TestUpstreamNotConfigured: without Options.Upstream the sign-in page
// has no upstream link and its routes do not exist.
func TestUpstreamNotConfigured(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient patient/*.rs", newPKCE(), nil)
	pg := b.get(t, authURL)
	if pg.status != http.StatusOK || strings.Contains(pg.body, upstreamStartPath) || strings.Contains(pg.body, "Sign in with") || strings.Contains(pg.body, "<a ") {
		t.Fatalf("%d %.600s", pg.status, pg.body)
	}
	for _, path := range []string{upstreamStartPath, upstreamCallbackPath + "?state=x&code=y"} {
		if p := b.get(t, e.ts.URL+path); p.status != http.StatusNotFound {
			t.Fatalf("%s: %d", path, p.status)
		}
	}
}
