package tokens

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

const (
	testIssuer   = "https://127.0.0.1:8443/fhir"
	testAudience = "https://127.0.0.1:8443/fhir"
)

// clock is a settable test clock. It starts at the real time, because
// the store expires records by the real clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one Warden's token state: a real SQLite store, a real keyring.
type env struct {
	records store.Records
	ring    *keyring.Keyring
	clock   *clock
	svc     *Service
}

func newEnv(t testing.TB, configure ...func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ring, err := keyring.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{records: st, ring: ring, clock: newClock()}
	e.svc = e.replica(t, configure...)
	return e
}

// replica starts another Service on the same store and keyring, as a
// second replica or a restart would.
func (e *env) replica(t testing.TB, configure ...func(*Options)) *Service {
	t.Helper()
	o := Options{Issuer: testIssuer, Audience: testAudience, Records: e.records, Sealer: e.ring, Now: e.clock.Now}
	for _, f := range configure {
		f(&o)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mint mints an access token with typical claims.
func (e *env) mint(t testing.TB, s *Service, c AccessClaims) (token, jti string) {
	t.Helper()
	if c.Subject == "" {
		c.Subject = "user-1"
	}
	if c.ClientID == "" {
		c.ClientID = "app-1"
	}
	if c.Scope == "" {
		c.Scope = "launch/patient openid fhirUser patient/Observation.rs"
	}
	token, jti, _, err := s.MintAccess(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return token, jti
}

// segment decodes one part of a compact JWS into a map.
func segment(t testing.TB, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewRequiresOptions(t *testing.T) {
	e := newEnv(t)
	base := Options{Issuer: testIssuer, Audience: testAudience, Records: e.records, Sealer: e.ring}
	cases := map[string]func(*Options){
		"no issuer":            func(o *Options) { o.Issuer = "" },
		"no audience":          func(o *Options) { o.Audience = "" },
		"no records":           func(o *Options) { o.Records = nil },
		"no sealer":            func(o *Options) { o.Sealer = nil },
		"negative lifetime":    func(o *Options) { o.MaxLifetime = -time.Second },
		"negative rotate time": func(o *Options) { o.RotateEvery = -time.Second },
	}
	for name, f := range cases {
		o := base
		f(&o)
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestMintAccessClaims(t *testing.T) {
	e := newEnv(t)
	auth := e.clock.Now().Add(-time.Minute)
	token, jti, exp, err := e.svc.MintAccess(context.Background(), AccessClaims{
		Subject: "u1", ClientID: "app", Scope: "patient/Patient.rs openid", Patient: "p1", Encounter: "e1",
		FHIRUser: "Practitioner/9", GrantID: "g1", ACR: "urn:warden:acr:mfa", AuthTime: auth,
		Lifetime: 2 * time.Minute, CertThumbprint: "x5t", JKT: "jkt",
		FHIRContext:      []map[string]any{{"reference": "Appointment/a1"}},
		BreakGlassReason: "emergency",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e.svc.Verify(context.Background(), token); err != nil || p.BreakGlassReason != "emergency" {
		t.Errorf("Verify: %+v, %v; want the break-the-glass reason", p, err)
	}
	h := segment(t, token, 0)
	if h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] != e.svc.keys.Load().access.kid {
		t.Errorf("header = %v", h)
	}
	c := segment(t, token, 1)
	now := float64(e.clock.Now().Unix())
	want := map[string]any{
		"iss": testIssuer, "sub": "u1", "aud": testAudience, "client_id": "app", "scope": "patient/Patient.rs openid",
		"patient": "p1", "encounter": "e1", "fhirUser": "Practitioner/9", "wgid": "g1", "acr": "urn:warden:acr:mfa",
		"jti": jti, "iat": now, "exp": now + 120, "auth_time": float64(auth.Unix()), "break_glass": "emergency",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	cnf, _ := c["cnf"].(map[string]any)
	if cnf["x5t#S256"] != "x5t" || cnf["jkt"] != "jkt" {
		t.Errorf("cnf = %v", c["cnf"])
	}
	if fc, _ := c["fhirContext"].([]any); len(fc) != 1 {
		t.Errorf("fhirContext = %v", c["fhirContext"])
	}
	if !exp.Equal(e.clock.Now().Add(2 * time.Minute)) {
		t.Errorf("exp = %v", exp)
	}

	// A bare token omits what is unset and lives DefaultLifetime.
	token, _, exp, err = e.svc.MintAccess(context.Background(), AccessClaims{Subject: "backend", ClientID: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	c = segment(t, token, 1)
	for _, k := range []string{"patient", "encounter", "fhirUser", "wgid", "acr", "auth_time", "cnf", "fhirContext", "nbf", "break_glass"} {
		if _, ok := c[k]; ok {
			t.Errorf("bare token has claim %s", k)
		}
	}
	if !exp.Equal(e.clock.Now().Add(DefaultLifetime)) {
		t.Errorf("default exp = %v", exp)
	}
	if _, jti2, _, _ := e.svc.MintAccess(context.Background(), AccessClaims{Subject: "backend", ClientID: "backend"}); jti2 == jti || len(jti2) < 22 {
		t.Errorf("jti %q not unique or too short", jti2)
	}
}

func TestMintRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, c := range map[string]AccessClaims{
		"no subject":              {ClientID: "a"},
		"no client":               {Subject: "u"},
		"lifetime over max":       {Subject: "u", ClientID: "a", Lifetime: DefaultMaxLifetime + time.Second},
		"lifetime under a second": {Subject: "u", ClientID: "a", Lifetime: time.Millisecond},
		"negative lifetime":       {Subject: "u", ClientID: "a", Lifetime: -time.Minute},
		"over Verify's size limit": {Subject: "u", ClientID: "a",
			FHIRContext: []map[string]any{{"reference": strings.Repeat("Encounter/e1", maxTokenLen/12)}}},
		"fhirContext not JSON": {Subject: "u", ClientID: "a", FHIRContext: []map[string]any{{"f": func() {}}}},
	} {
		if _, _, _, err := e.svc.MintAccess(ctx, c); err == nil {
			t.Errorf("MintAccess %s: no error", name)
		}
	}
	for name, c := range map[string]IDClaims{
		"no subject":        {ClientID: "a"},
		"no client":         {Subject: "u"},
		"lifetime over max": {Subject: "u", ClientID: "a", Lifetime: 2 * time.Hour},
	} {
		if _, err := e.svc.MintID(ctx, c); err == nil {
			t.Errorf("MintID %s: no error", name)
		}
	}
}

// jwks parses the published JWK Set.
func jwks(t testing.TB, s *Service) jose.JSONWebKeySet {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func TestJWKS(t *testing.T) {
	e := newEnv(t)
	raw := string(e.svc.JWKS())
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
		if strings.Contains(raw, private+":") {
			t.Errorf("JWKS holds private member %s", private)
		}
	}
	set := jwks(t, e.svc)
	algs := map[string]bool{}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() || k.Use != "sig" {
			t.Errorf("key %s: public %v valid %v use %q", k.KeyID, k.IsPublic(), k.Valid(), k.Use)
		}
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil || k.KeyID != base64.RawURLEncoding.EncodeToString(tp) {
			t.Errorf("kid %s is not the RFC 7638 thumbprint", k.KeyID)
		}
		algs[k.Algorithm] = true
	}
	if len(set.Keys) != 2 || !algs["ES256"] || !algs["RS256"] {
		t.Errorf("JWKS has %d keys, algorithms %v; want one ES256 and one RS256", len(set.Keys), algs)
	}
}

func TestMintID(t *testing.T) {
	e := newEnv(t)
	auth := e.clock.Now().Add(-10 * time.Second)
	tok, err := e.svc.MintID(context.Background(), IDClaims{
		Subject: "u1", ClientID: "app", Nonce: "n-0S6", FHIRUser: "https://127.0.0.1:8443/fhir/Patient/p1",
		Name: "Amy Shaw", ACR: "urn:warden:acr:mfa", AMR: []string{"pwd", "otp"}, AuthTime: auth,
	})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Protected.KeyID
	set := jwks(t, e.svc)
	keys := set.Key(kid)
	if len(keys) != 1 || keys[0].Algorithm != "RS256" {
		t.Fatalf("id_token kid %q not an RS256 key of the JWKS", kid)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("id_token does not verify with the published key: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	now := float64(e.clock.Now().Unix())
	want := map[string]any{"iss": testIssuer, "sub": "u1", "aud": "app", "nonce": "n-0S6", "iat": now,
		"exp": now + DefaultLifetime.Seconds(), "auth_time": float64(auth.Unix()), "acr": "urn:warden:acr:mfa",
		"fhirUser": "https://127.0.0.1:8443/fhir/Patient/p1", "name": "Amy Shaw"}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	if amr, _ := c["amr"].([]any); len(amr) != 2 {
		t.Errorf("amr = %v", c["amr"])
	}
	if typ := segment(t, tok, 0)["typ"]; typ != "JWT" {
		t.Errorf("id_token typ = %v", typ)
	}

	// No nonce sent, none in the token (openid-client checks).
	tok, err = e.svc.MintID(context.Background(), IDClaims{Subject: "u1", ClientID: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := segment(t, tok, 1)["nonce"]; ok {
		t.Error("id_token carries a nonce nobody sent")
	}
}

func TestErrorsMatchReason(t *testing.T) {
	err := invalid(ErrExpired)
	if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, ErrExpired) || errors.Is(err, ErrRevoked) {
		t.Fatalf("%v does not match exactly ErrInvalidToken and ErrExpired", err)
	}
	if err.Error() != "tokens: invalid token: expired" {
		t.Errorf("Error() = %q", err)
	}
}
