package authserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// backendKeys are a backend client's signing keys.
type backendKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newBackendKeys(t testing.TB) backendKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return backendKeys{rsa: rk, ec: ek}
}

// jwks is the public JWK Set: kid "rs" (RS384) and "ec" (ES384).
func (k backendKeys) jwks(t testing.TB) string {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: k.rsa.Public(), KeyID: "rs", Algorithm: "RS384", Use: "sig"},
		{Key: k.ec.Public(), KeyID: "ec", Algorithm: "ES384", Use: "sig"},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign signs claims with alg under kid; key is chosen by alg.
func (k backendKeys) sign(t testing.TB, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	var key any
	switch alg {
	case jose.RS384, jose.RS256, jose.PS384:
		key = k.rsa
	case jose.ES384:
		key = k.ec
	default:
		t.Fatalf("no key for %s", alg)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := sg.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertionClaims(e *env, clientID string) map[string]any {
	now := e.clock.Now()
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": e.srv.urls.token,
		"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(),
	}
}

func backendForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {scope},
		"client_assertion_type": {assertionType},
		"client_assertion":      {assertion},
	}
}

func unsignedJWT(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func TestBackendServicesAdversarial(t *testing.T) {
	e := newEnv(t)
	keys := newBackendKeys(t)
	c, _, err := e.srv.Clients().Add(e.ctx, NewClient{
		Name: "bulk export", Type: ClientBackend, Scopes: "system/Patient.rs system/Observation.rs", JWKS: keys.jwks(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := e.srv.Clients().Add(e.ctx, NewClient{
		Name: "other", Type: ClientBackend, Scopes: "system/Patient.rs", JWKS: newBackendKeys(t).jwks(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	with := func(mod func(m map[string]any)) map[string]any {
		m := assertionClaims(e, c.ID)
		mod(m)
		return m
	}
	hs256 := func() string {
		// HS256 keyed with the client's public key: the classic
		// algorithm-confusion attack.
		pub, _ := json.Marshal(jose.JSONWebKey{Key: keys.rsa.Public()})
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, (&jose.SignerOptions{}).WithHeader("kid", "rs"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(assertionClaims(e, c.ID))
		obj, _ := sg.Sign(payload)
		s, _ := obj.CompactSerialize()
		return s
	}
	replayed := keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID))
	if code, body, _ := e.postForm(t, "/auth/token", backendForm(replayed, "system/Patient.rs"), "", ""); code != http.StatusOK {
		t.Fatalf("first use of the assertion: %d %v", code, body)
	}
	cases := []struct {
		name      string
		assertion string
		form      func(url.Values)
		wantCode  int
		wantError string
	}{
		{name: "alg none", assertion: unsignedJWT(map[string]any{"alg": "none", "kid": "rs"}, assertionClaims(e, c.ID))},
		{name: "HS256 with the public key", assertion: hs256()},
		{name: "RS256 not allowed", assertion: keys.sign(t, jose.RS256, "rs", assertionClaims(e, c.ID))},
		{name: "PS384 not allowed", assertion: keys.sign(t, jose.PS384, "rs", assertionClaims(e, c.ID))},
		{name: "expired", assertion: keys.sign(t, jose.RS384, "rs", with(func(m map[string]any) { m["exp"] = e.clock.Now().Add(-time.Minute).Unix() }))},
		{name: "exp 10 minutes ahead", assertion: keys.sign(t, jose.RS384, "rs", with(func(m map[string]any) { m["exp"] = e.clock.Now().Add(10 * time.Minute).Unix() }))},
		{name: "no exp", assertion: keys.sign(t, jose.RS384, "rs", with(func(m map[string]any) { delete(m, "exp") }))},
		{name: "replayed jti", assertion: replayed},
		{name: "no jti", assertion: keys.sign(t, jose.RS384, "rs", with(func(m map[string]any) { delete(m, "jti") }))},
		{name: "wrong aud", assertion: keys.sign(t, jose.RS384, "rs", with(func(m map[string]any) { m["aud"] = "https://evil.example/token" }))},
		{name: "iss differs from sub", assertion: keys.sign(t, jose.RS384, "rs", with(func(m map[string]any) { m["sub"] = other.ID }))},
		{name: "claims another client", assertion: keys.sign(t, jose.RS384, "rs", with(func(m map[string]any) { m["iss"], m["sub"] = other.ID, other.ID }))},
		{name: "unknown kid", assertion: keys.sign(t, jose.RS384, "nope", assertionClaims(e, c.ID))},
		{name: "key of the wrong alg", assertion: keys.sign(t, jose.ES384, "rs", assertionClaims(e, c.ID))},
		{name: "tampered payload", assertion: func() string {
			s := keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID))
			parts := strings.Split(s, ".")
			forged, _ := json.Marshal(with(func(m map[string]any) { m["scope"] = "system/*.cruds" }))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
		}()},
		{name: "wrong assertion type", assertion: keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID)),
			form: func(f url.Values) {
				f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			}},
		{name: "client_id differs from iss", assertion: keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID)),
			form: func(f url.Values) { f.Set("client_id", other.ID) }},
		{name: "scope outside the ceiling", assertion: keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID)),
			form: func(f url.Values) { f.Set("scope", "system/Encounter.rs") }, wantCode: http.StatusBadRequest, wantError: "invalid_scope"},
		{name: "public-client style (no credentials)", assertion: "",
			form: func(f url.Values) {
				f.Del("client_assertion")
				f.Del("client_assertion_type")
				f.Set("client_id", c.ID)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := backendForm(tc.assertion, "system/Patient.rs")
			if tc.form != nil {
				tc.form(f)
			}
			code, body, h := e.postForm(t, "/auth/token", f, "", "")
			want, wantErr := tc.wantCode, tc.wantError
			if want == 0 {
				want, wantErr = http.StatusUnauthorized, "invalid_client"
			}
			if code != want || body["error"] != wantErr {
				t.Fatalf("got %d %v, want %d %s", code, body, want, wantErr)
			}
			if body["access_token"] != nil {
				t.Fatal("an access token on failure")
			}
			if h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Fatalf("error headers: %v", h)
			}
		})
	}
}

func TestBackendServicesDisabledClient(t *testing.T) {
	e := newEnv(t)
	keys := newBackendKeys(t)
	c, _, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "b", Type: ClientBackend, Scopes: "system/Patient.rs", JWKS: keys.jwks(t)})
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := e.postForm(t, "/auth/token", backendForm(keys.sign(t, jose.ES384, "ec", assertionClaims(e, c.ID)), "system/Patient.rs"), "", "")
	if code != http.StatusOK {
		t.Fatalf("%d %v", code, body)
	}
	at := body["access_token"].(string)
	if _, err := e.tokens.Verify(e.ctx, at); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if err := e.srv.Clients().Disable(e.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokens.Verify(e.ctx, at); err == nil {
		t.Fatal("a disabled client's token still verifies")
	}
	code, body, _ = e.postForm(t, "/auth/token", backendForm(keys.sign(t, jose.ES384, "ec", assertionClaims(e, c.ID)), "system/Patient.rs"), "", "")
	if code != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("disabled client got %d %v", code, body)
	}
	if err := e.srv.Clients().Enable(e.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	code, body, _ = e.postForm(t, "/auth/token", backendForm(keys.sign(t, jose.ES384, "ec", assertionClaims(e, c.ID)), "system/Patient.rs"), "", "")
	if code != http.StatusOK {
		t.Fatalf("re-enabled client: %d %v", code, body)
	}
}

func TestBackendServicesSuccess(t *testing.T) {
	e := newEnv(t)
	keys := newBackendKeys(t)
	c, secret, err := e.srv.Clients().Add(e.ctx, NewClient{
		Name: "bulk", Type: ClientBackend, Scopes: "system/Patient.rs system/Observation.rs", JWKS: keys.jwks(t),
	})
	if err != nil || secret != "" {
		t.Fatalf("add: %v %q", err, secret)
	}
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		kid string
		aud string
	}{
		{jose.RS384, "rs", e.srv.urls.token},
		{jose.ES384, "ec", e.srv.urls.token},
		{jose.ES384, "ec", e.issuer}, // openid-client / oauth4webapi send the issuer
	} {
		claims := assertionClaims(e, c.ID)
		claims["aud"] = tc.aud
		delete(claims, "iat") // Inferno's assertions may lack iat
		code, body, h := e.postForm(t, "/auth/token", backendForm(keys.sign(t, tc.alg, tc.kid, claims), "system/Patient.rs system/Observation.rs system/Encounter.rs"), "", "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", tc.alg, code, body)
		}
		if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Fatalf("headers %v", h)
		}
		if body["token_type"] != "Bearer" || body["scope"] != "system/Patient.rs system/Observation.rs" {
			t.Fatalf("body %v", body)
		}
		if exp, _ := body["expires_in"].(float64); exp <= 0 || exp > 300 {
			t.Fatalf("expires_in %v", body["expires_in"])
		}
		if _, ok := body["refresh_token"]; ok {
			t.Fatal("backend services got a refresh token")
		}
		p, err := e.tokens.Verify(e.ctx, body["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if p.ClientID != c.ID || p.Subject != c.ID || p.Scope != "system/Patient.rs system/Observation.rs" {
			t.Fatalf("principal %+v", p)
		}
	}
}

func TestBackendJWKSURL(t *testing.T) {
	keys := newBackendKeys(t)
	var served atomic.Pointer[string]
	set := keys.jwks(t)
	served.Store(&set)
	var fetches atomic.Int32
	jwksServer := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(*served.Load()))
	}))
	defer jwksServer.Close()
	e := newEnv(t)
	host := strings.TrimPrefix(jwksServer.URL, "https://")

	if _, _, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "b", Type: ClientBackend, Scopes: "system/Patient.rs",
		JWKSURL: jwksServer.URL + "/jwks", JWKSHosts: []string{"keys.example.org"}}); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("registration with a jwks_url outside the registered hosts: %v", err)
	}
	c, _, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "b", Type: ClientBackend, Scopes: "system/Patient.rs", JWKSURL: jwksServer.URL + "/jwks"})
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := e.postForm(t, "/auth/token", backendForm(keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID)), "system/Patient.rs"), "", "")
	if code != http.StatusOK {
		t.Fatalf("%d %v", code, body)
	}
	if fetches.Load() != 1 {
		t.Fatalf("fetches = %d", fetches.Load())
	}
	// The client rotates its keys: an assertion under the new key fails
	// while the cached set is fresh (no refetch storm), then succeeds once
	// a refetch is allowed.
	rotated := newBackendKeys(t)
	newSet := rotated.jwks(t)
	served.Store(&newSet)
	if code, _, _ := e.postForm(t, "/auth/token", backendForm(rotated.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID)), "system/Patient.rs"), "", ""); code != http.StatusUnauthorized || fetches.Load() != 1 {
		t.Fatalf("new key within the refetch interval: %d, fetches %d", code, fetches.Load())
	}
	e.clock.Advance(jwksRefetchAfter + time.Second)
	if code, body, _ := e.postForm(t, "/auth/token", backendForm(rotated.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID)), "system/Patient.rs"), "", ""); code != http.StatusOK || fetches.Load() != 2 {
		t.Fatalf("rotated key: %d %v, fetches %d", code, body, fetches.Load())
	}

	// A record whose jwks_url host is not registered (edited behind the
	// registry's back) is never fetched.
	c.JWKSURL = jwksServer.URL + "/jwks"
	c.JWKSHosts = []string{"keys.example.org"}
	c.ID = "tampered"
	if err := e.srv.registry.put(e.ctx, c, true); err != nil {
		t.Fatal(err)
	}
	before := fetches.Load()
	code, body, _ = e.postForm(t, "/auth/token", backendForm(keys.sign(t, jose.RS384, "rs", assertionClaims(e, "tampered")), "system/Patient.rs"), "", "")
	if code != http.StatusUnauthorized || fetches.Load() != before {
		t.Fatalf("unregistered JWKS host: %d %v, fetches %d→%d (host %s)", code, body, before, fetches.Load(), host)
	}
}

func TestAccessTokenLifetimes(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SensitiveScopes = []string{"Observation"}; o.SensitiveLifetime = 2 * time.Minute })
	keys := newBackendKeys(t)
	c, _, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "b", Type: ClientBackend, Scopes: "system/Patient.rs system/Observation.rs",
		JWKS: keys.jwks(t), TokenLifetime: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	long, _, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "b", Type: ClientBackend, Scopes: "system/Patient.rs",
		JWKS: keys.jwks(t), TokenLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		client Client
		scope  string
		want   float64
	}{
		{c, "system/Patient.rs", 240},                       // the client's own lifetime
		{c, "system/Patient.rs system/Observation.rs", 120}, // a sensitive scope shortens it
		{long, "system/Patient.rs", 300},                    // backend tokens live 300 s at most
	} {
		code, body, _ := e.postForm(t, "/auth/token", backendForm(keys.sign(t, jose.ES384, "ec", assertionClaims(e, tc.client.ID)), tc.scope), "", "")
		if code != http.StatusOK {
			t.Fatalf("%d %v", code, body)
		}
		if got := body["expires_in"].(float64); got < tc.want-2 || got > tc.want {
			t.Fatalf("%s: expires_in %v, want %v", tc.scope, got, tc.want)
		}
		p, err := e.tokens.Verify(e.ctx, body["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if d := p.Expires.Sub(p.IssuedAt).Seconds(); d < tc.want-2 || d > tc.want {
			t.Fatalf("%s: token lifetime %vs, want %v", tc.scope, d, tc.want)
		}
	}
}

// TestAsymmetricConfidentialApp: an interactive app authenticating with
// private_key_jwt (SMART client-confidential-asymmetric) and another with
// client_secret_post.
func TestAsymmetricConfidentialApp(t *testing.T) {
	e := newEnv(t)
	keys := newBackendKeys(t)
	c, secret, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "asym", Type: ClientConfidential, Scopes: appScopes,
		RedirectURIs: []string{"https://app.example/callback"}, JWKS: keys.jwks(t)})
	if err != nil {
		t.Fatal(err)
	}
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	p := newPKCE()
	code := e.standaloneCode(t, c, u, "launch/patient patient/*.rs", "", p)
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[0]}, "code_verifier": {p.verifier},
		"client_assertion_type": {assertionType}, "client_assertion": {keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID))}}
	if st, body, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusOK || body["patient"] != "p1" {
		t.Fatalf("private_key_jwt exchange: %d %v", st, body)
	}
	p = newPKCE()
	code = e.standaloneCode(t, c, u, "launch/patient patient/*.rs", "", p)
	f = url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[0]}, "code_verifier": {p.verifier},
		"client_id": {c.ID}, "client_secret": {secret}}
	if st, body, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusOK {
		t.Fatalf("client_secret_post exchange: %d %v", st, body)
	}
	// Two methods at once are refused (RFC 6749 §2.3).
	f.Set("client_assertion_type", assertionType)
	f.Set("client_assertion", keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID)))
	if st, _, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusUnauthorized {
		t.Fatalf("two client authentication methods: %d", st)
	}
}
