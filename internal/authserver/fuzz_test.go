package authserver

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzClientAssertion: no client assertion the fuzzer makes up
// authenticates a client, and every refusal is one of the named reasons.
func FuzzClientAssertion(f *testing.F) {
	e := newEnv(f)
	keys := newBackendKeys(f)
	c, _, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "b", Type: ClientBackend, Scopes: "system/Patient.rs", JWKS: keys.jwks(f)})
	if err != nil {
		f.Fatal(err)
	}
	// Seeds signed by a key that is not registered, and malformed ones.
	stranger := newBackendKeys(f)
	f.Add(stranger.sign(f, jose.RS384, "rs", assertionClaims(e, c.ID)), c.ID)
	f.Add(stranger.sign(f, jose.ES384, "ec", assertionClaims(e, c.ID)), "")
	f.Add(unsignedJWT(map[string]any{"alg": "none", "kid": "rs"}, assertionClaims(e, c.ID)), c.ID)
	reasons := []error{ErrAssertionMalformed, ErrAssertionClaims, ErrAssertionAudience, ErrAssertionExpiry,
		ErrAssertionReplay, ErrAssertionKey, ErrClientAuthMethod, ErrUnknownClient, ErrClientDisabled}
	f.Fuzz(func(t *testing.T, assertion, clientID string) {
		form := url.Values{"client_assertion_type": {assertionType}, "client_assertion": {assertion}, "client_id": {clientID}}
		r := httptest.NewRequest(http.MethodPost, "/auth/token", nil)
		got, err := e.srv.auth.authenticate(e.ctx, r, form)
		if err == nil {
			t.Fatalf("a made-up assertion authenticated %q", got.ID)
		}
		for _, reason := range reasons {
			if errors.Is(err, reason) {
				return
			}
		}
		t.Fatalf("unnamed refusal: %v", err)
	})
}

// FuzzRedirectURIValidation: a redirect URI accepted at registration is an
// absolute https URL, or http on loopback, without fragment or user info.
func FuzzRedirectURIValidation(f *testing.F) {
	for _, s := range []string{"https://app.example/cb", "http://127.0.0.1:8080/cb", "http://localhost/cb",
		"https://app.example/cb#x", "javascript:alert(1)", "http://evil.example/", "https://u@h/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if validateRedirectURI(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || u.Host == "" || strings.Contains(raw, "#") || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			t.Fatalf("accepted scheme of %q", raw)
		}
	})
}

// FuzzAuthorizeRequest: whatever the query, the authorization endpoint
// shows a page or redirects to the client's registered redirect URI (with
// iss, RFC 9207) — never anywhere else.
func FuzzAuthorizeRequest(f *testing.F) {
	e := newEnv(f)
	c, _ := e.appClient(f, ClientPublic, appScopes)
	good, _ := e.authorizeURL(c, "launch/patient patient/*.rs", newPKCE(), nil)
	f.Add(strings.SplitN(good, "?", 2)[1])
	_, q := e.authorizeURL(c, "patient/*.rs", newPKCE(), func(q url.Values) { q.Set("aud", "https://evil.example") })
	f.Add(q.Encode())
	f.Add("client_id=" + c.ID + "&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&response_type=token")
	f.Add("client_id=" + c.ID + "&redirect_uri=https%3A%2F%2Fevil.example%2F")
	mux := http.NewServeMux()
	e.srv.Register(mux)
	f.Fuzz(func(t *testing.T, query string) {
		r := httptest.NewRequest(http.MethodGet, "https://example.test/auth/authorize", nil)
		r.URL.RawQuery = query
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		loc := w.Header().Get("Location")
		switch {
		case w.Code == http.StatusOK || w.Code == http.StatusBadRequest:
			if loc != "" {
				t.Fatalf("page with a Location: %q", loc)
			}
		case w.Code == http.StatusSeeOther || w.Code == http.StatusFound:
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatalf("bad Location %q", loc)
			}
			target := *u
			target.RawQuery = ""
			if target.String() != c.RedirectURIs[0] || u.Query().Get("iss") != e.issuer {
				t.Fatalf("redirected to %q", loc)
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}
