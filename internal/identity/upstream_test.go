package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/policy"
)

// upstreamFixture is a mock OpenID provider whose token responses a test
// can rewrite, and an Upstream over it.
type upstreamFixture struct {
	*fixture
	m  *mockoidc.MockOIDC
	up *identity.Upstream

	mu     sync.Mutex
	forge  func(claims jwt.MapClaims, resp map[string]any) // rewrites the next token response; nil: leave it
	client *http.Client
}

func newUpstreamFixture(t *testing.T, trustMFA bool) *upstreamFixture {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &upstreamFixture{fixture: newFixture(t), m: m}
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			forge := f.forge
			f.mu.Unlock()
			if r.URL.Path != mockoidc.TokenEndpoint || forge == nil {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var resp map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || rec.Code != 200 {
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
			forge(claims, resp)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(resp)
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
	// The browser: follows nothing, so the test reads the redirect.
	f.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cfg := m.Config()
	f.up, err = f.dir.NewUpstream(context.Background(), identity.UpstreamConfig{
		Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		RedirectURL: "https://warden.example/login/upstream/callback", Scopes: []string{"profile"}, TrustMFA: trustMFA,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// signIn runs the browser's part: start, visit the provider (which signs
// in the queued user at once), and return the login state with the
// callback's state and code.
func (f *upstreamFixture) signIn(t *testing.T, subject string) (identity.UpstreamLogin, string, string) {
	t.Helper()
	f.m.QueueUser(&mockoidc.MockUser{Subject: subject})
	authURL, login := f.up.Start()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("state") != login.State || q.Get("nonce") != login.Nonce || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || strings.Contains(authURL, login.Verifier) || !strings.Contains(q.Get("scope"), "openid") {
		t.Fatalf("authorization URL %s", authURL)
	}
	resp, err := f.client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(cb.String(), "https://warden.example/login/upstream/callback?") {
		t.Fatalf("provider answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return login, cb.Query().Get("state"), cb.Query().Get("code")
}

func (f *upstreamFixture) setForge(fn func(jwt.MapClaims, map[string]any)) {
	f.mu.Lock()
	f.forge = fn
	f.mu.Unlock()
}

// resign signs claims with the provider's key into the response.
func (f *upstreamFixture) resign(t *testing.T, claims jwt.MapClaims, resp map[string]any) {
	tok, err := f.m.Keypair.SignJWT(claims)
	if err != nil {
		t.Error(err)
	}
	resp["id_token"] = tok
}

func TestUpstreamRefuses(t *testing.T) {
	f := newUpstreamFixture(t, false)
	f.users(t)
	ctx := context.Background()
	if err := f.dir.LinkUpstream(ctx, "alice", f.up.Issuer(), "sub-alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.dir.Create(ctx, identity.NewUser{Username: "erin", Password: alicePassword}); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.LinkUpstream(ctx, "erin", f.up.Issuer(), "sub-erin"); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.SetDisabled(ctx, "erin", true); err != nil {
		t.Fatal(err)
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	impostor := &mockoidc.Keypair{PrivateKey: otherKey, PublicKey: &otherKey.PublicKey, Kid: f.m.Keypair.Kid}

	for _, tc := range []struct {
		name    string
		subject string
		forge   func(jwt.MapClaims, map[string]any)
		tamper  func(l *identity.UpstreamLogin, state, code *string)
		want    error
	}{
		{name: "state of another sign-in", subject: "sub-alice",
			tamper: func(l *identity.UpstreamLogin, state, code *string) { *state = "forged-state" }, want: identity.ErrUpstreamState},
		{name: "no state", subject: "sub-alice",
			tamper: func(l *identity.UpstreamLogin, state, code *string) { *state, l.State = "", "" }, want: identity.ErrUpstreamState},
		{name: "no code", subject: "sub-alice",
			tamper: func(l *identity.UpstreamLogin, state, code *string) { *code = "" }, want: identity.ErrUpstreamToken},
		{name: "code of nobody", subject: "sub-alice",
			tamper: func(l *identity.UpstreamLogin, state, code *string) { *code = "made-up" }, want: identity.ErrUpstreamToken},
		{name: "wrong PKCE verifier", subject: "sub-alice",
			tamper: func(l *identity.UpstreamLogin, state, code *string) {
				l.Verifier = strings.Repeat("v", 43)
			}, want: identity.ErrUpstreamToken},
		{name: "nonce of another sign-in", subject: "sub-alice",
			tamper: func(l *identity.UpstreamLogin, state, code *string) { l.Nonce = "another-nonce" }, want: identity.ErrUpstreamToken},
		{name: "id_token without nonce", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			delete(c, "nonce")
			f.resign(t, c, r)
		}, want: identity.ErrUpstreamToken},
		{name: "no id_token", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			delete(r, "id_token")
		}, want: identity.ErrUpstreamToken},
		{name: "signed by another key with the provider's kid", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			tok, err := impostor.SignJWT(c)
			if err != nil {
				t.Error(err)
			}
			r["id_token"] = tok
		}, want: identity.ErrUpstreamToken},
		{name: "alg none", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			body, _ := json.Marshal(c)
			r["id_token"] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
				base64.RawURLEncoding.EncodeToString(body) + "."
		}, want: identity.ErrUpstreamToken},
		{name: "subject swapped after signing", subject: "sub-mallory", forge: func(c jwt.MapClaims, r map[string]any) {
			parts := strings.Split(r["id_token"].(string), ".")
			c["sub"] = "sub-alice"
			body, _ := json.Marshal(c)
			r["id_token"] = parts[0] + "." + base64.RawURLEncoding.EncodeToString(body) + "." + parts[2]
		}, want: identity.ErrUpstreamToken},
		{name: "audience of another client", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			c["aud"] = "another-client"
			f.resign(t, c, r)
		}, want: identity.ErrUpstreamToken},
		{name: "another issuer", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			c["iss"] = "https://evil.example"
			f.resign(t, c, r)
		}, want: identity.ErrUpstreamToken},
		{name: "expired", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			f.resign(t, c, r)
		}, want: identity.ErrUpstreamToken},
		{name: "at_hash of another access token", subject: "sub-alice", forge: func(c jwt.MapClaims, r map[string]any) {
			c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA"
			f.resign(t, c, r)
		}, want: identity.ErrUpstreamToken},
		{name: "subject linked to no account", subject: "sub-mallory", want: identity.ErrNotLinked},
		{name: "subject of a disabled account", subject: "sub-erin", want: identity.ErrInvalidCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.setForge(tc.forge)
			defer f.setForge(nil)
			login, state, code := f.signIn(t, tc.subject)
			if tc.tamper != nil {
				tc.tamper(&login, &state, &code)
			}
			u, _, err := f.up.Finish(ctx, login, state, code)
			t.Logf("refused: %v", err)
			if !errors.Is(err, tc.want) || u != nil {
				t.Errorf("Finish = %v, %v; want %v", u, err, tc.want)
			}
		})
	}
}

func TestUpstreamSignIn(t *testing.T) {
	f := newUpstreamFixture(t, false)
	f.users(t)
	ctx := context.Background()
	if err := f.dir.LinkUpstream(ctx, "Alice", f.up.Issuer(), "sub-alice"); err != nil {
		t.Fatal(err)
	}
	login, state, code := f.signIn(t, "sub-alice")
	u, authn, err := f.up.Finish(ctx, login, state, code)
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.UpstreamIssuer != f.up.Issuer() || u.UpstreamSubject != "sub-alice" ||
		authn.ACR != policy.ACRPassword || len(authn.AMR) != 0 || authn.Time.IsZero() {
		t.Errorf("Finish = %+v %+v", u, authn)
	}
	// The login state is single use at the provider: the code cannot be
	// exchanged twice.
	if _, _, err := f.up.Finish(ctx, login, state, code); !errors.Is(err, identity.ErrUpstreamToken) {
		t.Errorf("second exchange of one code = %v", err)
	}
}

func TestUpstreamMFA(t *testing.T) {
	addAMR := func(c jwt.MapClaims, r map[string]any, f *upstreamFixture, t *testing.T) {
		c["amr"] = []string{"pwd", "mfa", "x-private", "otp", "mfa"}
		c["auth_time"] = time.Now().Add(-time.Minute).Unix()
		f.resign(t, c, r)
	}
	for _, trust := range []bool{false, true} {
		f := newUpstreamFixture(t, trust)
		f.users(t)
		ctx := context.Background()
		if err := f.dir.LinkUpstream(ctx, "alice", f.up.Issuer(), "sub-alice"); err != nil {
			t.Fatal(err)
		}
		f.setForge(func(c jwt.MapClaims, r map[string]any) { addAMR(c, r, f, t) })
		login, state, code := f.signIn(t, "sub-alice")
		_, authn, err := f.up.Finish(ctx, login, state, code)
		if err != nil {
			t.Fatal(err)
		}
		wantACR := policy.ACRPassword
		if trust {
			wantACR = policy.ACRMultiFactor
		}
		if authn.ACR != wantACR || !slices.Equal(authn.AMR, []string{"pwd", "mfa", "otp"}) ||
			time.Since(authn.Time) < 50*time.Second {
			t.Errorf("TrustMFA %v: %+v", trust, authn)
		}
	}
}

func TestLinkUpstream(t *testing.T) {
	f := newFixture(t)
	f.users(t)
	ctx := context.Background()
	const iss = "https://idp.example"
	if err := f.dir.LinkUpstream(ctx, "alice", iss, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.LinkUpstream(ctx, "alice", iss, "s1"); err != nil {
		t.Errorf("linking again: %v", err)
	}
	if err := f.dir.LinkUpstream(ctx, "bob", iss, "s1"); !errors.Is(err, identity.ErrExists) {
		t.Errorf("one subject for two accounts: %v", err)
	}
	if err := f.dir.LinkUpstream(ctx, "nobody", iss, "s9"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
	if u, err := f.dir.ByUpstream(ctx, iss, "s1"); err != nil || u.Username != "alice" {
		t.Errorf("ByUpstream = %v, %v", u, err)
	}
	// The same subject at another issuer is another person.
	if _, err := f.dir.ByUpstream(ctx, "https://other.example", "s1"); !errors.Is(err, identity.ErrNotLinked) {
		t.Errorf("other issuer: %v", err)
	}
	// Relinking moves the link: the old subject no longer signs in.
	if err := f.dir.LinkUpstream(ctx, "alice", iss, "s2"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dir.ByUpstream(ctx, iss, "s1"); !errors.Is(err, identity.ErrNotLinked) {
		t.Errorf("old link still works: %v", err)
	}
	if err := f.dir.LinkUpstream(ctx, "bob", iss, "s1"); err != nil {
		t.Errorf("the freed subject: %v", err)
	}
}
