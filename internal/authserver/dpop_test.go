package authserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/dpop"
)

// dpopKey signs DPoP proofs (RFC 9449 §4.2) as a public app does.
type dpopKey struct{ key *ecdsa.PrivateKey }

func newDPoPKey(t testing.TB) dpopKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return dpopKey{k}
}

func (k dpopKey) jkt(t testing.TB) string {
	tp, err := (&jose.JSONWebKey{Key: k.key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func (k dpopKey) proof(t testing.TB, method, htu, jti string) string {
	return k.proofWithNonce(t, method, htu, jti, "")
}

func (k dpopKey) proofWithNonce(t testing.TB, method, htu, jti, nonce string) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]any{"jti": jti, "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if nonce != "" {
		c["nonce"] = nonce
	}
	claims, _ := json.Marshal(c)
	jws, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func (e *env) postWithProof(t *testing.T, form url.Values, proof string) (int, map[string]any) {
	st, body, _ := e.postWithProofH(t, form, proof)
	return st, body
}

func (e *env) postWithProofH(t *testing.T, form url.Values, proof string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, resp.Header
}

// RFC 9449 at the token endpoint: a public app's grant is bound to its
// DPoP key; its refresh token is useless without a proof by that key.
func TestDPoPBoundGrant(t *testing.T) {
	v, err := dpop.New(dpop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.DPoP = v })
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	p := newPKCE()
	code := e.standaloneCode(t, c, u, "launch/patient offline_access patient/Patient.rs", "", p)
	tokenURL := e.issuer[:strings.Index(e.issuer, "/fhir")] + "/auth/token"
	key, other := newDPoPKey(t), newDPoPKey(t)
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[0]},
		"code_verifier": {p.verifier}, "client_id": {c.ID}}

	if st, body := e.postWithProof(t, exchange, key.proof(t, "POST", "https://elsewhere.example/auth/token", "j0")); st != http.StatusBadRequest || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("proof for another server: %d %v", st, body)
	}
	st, tok := e.postWithProof(t, exchange, key.proof(t, "POST", tokenURL, "j1"))
	if st != http.StatusOK || tok["token_type"] != "DPoP" {
		t.Fatalf("exchange with a proof: %d %v", st, tok)
	}
	pr, err := e.tokens.Verify(e.ctx, tok["access_token"].(string))
	if err != nil || pr.JKT != key.jkt(t) {
		t.Fatalf("access token cnf jkt %q, want the proof key's %q (%v)", pr.JKT, key.jkt(t), err)
	}
	// A resource server introspecting the token learns its binding.
	rs, rsSecret := e.appClient(t, ClientConfidential, appScopes)
	st, intro, _ := e.postForm(t, "/auth/introspect", url.Values{"token": {tok["access_token"].(string)}}, rs.ID, rsSecret)
	cnf, _ := intro["cnf"].(map[string]any)
	if st != http.StatusOK || intro["active"] != true || intro["token_type"] != "DPoP" || cnf["jkt"] != key.jkt(t) {
		t.Fatalf("introspection of a DPoP-bound token: %d %v", st, intro)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {c.ID}}
	for _, bad := range []struct{ name, proof, want string }{
		{"no proof", "", "invalid_request"},
		{"another key", other.proof(t, "POST", tokenURL, "j2"), "invalid_grant"},
		{"the exchange's proof replayed", key.proof(t, "POST", tokenURL, "j1"), "invalid_dpop_proof"},
		{"proof for GET", key.proof(t, "GET", tokenURL, "j3"), "invalid_dpop_proof"},
	} {
		if st, body := e.postWithProof(t, refresh, bad.proof); st != http.StatusBadRequest || body["error"] != bad.want {
			t.Errorf("refresh, %s: %d %v, want %s", bad.name, st, body, bad.want)
		}
	}
	st, r2 := e.postWithProof(t, refresh, key.proof(t, "POST", tokenURL, "j4"))
	if st != http.StatusOK || r2["token_type"] != "DPoP" {
		t.Fatalf("refresh with the key's proof: %d %v", st, r2)
	}
}

// A client registered with dpop_bound_access_tokens gets no token
// without a proof.
func TestDPoPBoundClientNeedsProof(t *testing.T) {
	v, _ := dpop.New(dpop.Options{})
	e := newEnv(t, func(o *Options) { o.DPoP = v })
	c, _, err := e.srv.registry.Add(e.ctx, NewClient{Name: "phone", Type: ClientPublic, Scopes: appScopes,
		RedirectURIs: []string{"https://phone.example/cb"}, DPoPBound: true})
	if err != nil {
		t.Fatal(err)
	}
	u := e.addUser(t, "bob", "Patient/p2", []string{"p2"}, false)
	p := newPKCE()
	code := e.standaloneCode(t, c, u, "launch/patient patient/Patient.rs", "", p)
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[0]},
		"code_verifier": {p.verifier}, "client_id": {c.ID}}
	if st, body := e.postWithProof(t, exchange, ""); st != http.StatusBadRequest || body["access_token"] != nil {
		t.Fatalf("no proof: %d %v", st, body)
	}
}

// With server nonces (auth.dpop_nonce), a proof without the current nonce
// gets use_dpop_nonce and the nonce to use; the retry with it succeeds.
func TestDPoPNonceAtTokenEndpoint(t *testing.T) {
	nonces, err := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), 0)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := dpop.New(dpop.Options{Nonces: nonces})
	e := newEnv(t, func(o *Options) { o.DPoP = v })
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "carol", "Patient/p3", []string{"p3"}, false)
	p := newPKCE()
	code := e.standaloneCode(t, c, u, "launch/patient patient/Patient.rs", "", p)
	tokenURL := e.issuer[:strings.Index(e.issuer, "/fhir")] + "/auth/token"
	key := newDPoPKey(t)
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[0]},
		"code_verifier": {p.verifier}, "client_id": {c.ID}}
	st, body, h := e.postWithProofH(t, exchange, key.proof(t, "POST", tokenURL, "n1"))
	nonce := h.Get("DPoP-Nonce")
	if st != http.StatusBadRequest || body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("proof without a nonce: %d %v nonce %q", st, body, nonce)
	}
	if st, body, _ := e.postWithProofH(t, exchange, key.proofWithNonce(t, "POST", tokenURL, "n2", "forged-nonce")); st != http.StatusBadRequest || body["error"] != "use_dpop_nonce" {
		t.Fatalf("proof with a forged nonce: %d %v", st, body)
	}
	st, tok, _ := e.postWithProofH(t, exchange, key.proofWithNonce(t, "POST", tokenURL, "n3", nonce))
	if st != http.StatusOK || tok["token_type"] != "DPoP" {
		t.Fatalf("retry with the nonce: %d %v", st, tok)
	}
}
