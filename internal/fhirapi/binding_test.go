package fhirapi_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/mtls"
)

// selfSignedClient is a client certificate (self-signed, as RFC 8705
// §2.2 allows).
func selfSignedClient(t *testing.T, cn string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// A sender-constrained token works only for the holder of its key: over
// real TLS connections, a token bound to client A's certificate fails
// with B's certificate and with none, and a DPoP-bound token fails as a
// plain Bearer token.
func TestSenderConstrainedTokens(t *testing.T) {
	certA, certB := selfSignedClient(t, "app A"), selfSignedClient(t, "app B")
	boundA := principal("backend-a", "", "", "system/Patient.rs")
	boundA.CertThumbprint = mtls.Thumbprint(certA.Leaf)
	dpop := principal("phone", "Patient/p1", "p1", "patient/*.rs")
	dpop.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	verifier := tokenTable{"bound-a": boundA, "dpop": dpop, "plain": principal("backend-b", "", "", "system/Patient.rs")}
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Verifier = verifier })

	srv := httptest.NewUnstartedServer(f.api)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()

	call := func(token string, cert *tls.Certificate) (int, string) {
		t.Helper()
		cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/fhir/Patient/p1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate") + string(b)
	}
	refused := []struct {
		name, token string
		cert        *tls.Certificate
	}{
		{"certificate-bound token, another client's certificate", "bound-a", &certB},
		{"certificate-bound token, no certificate", "bound-a", nil},
		{"DPoP-bound token as a Bearer token", "dpop", nil},
		{"DPoP-bound token as a Bearer token, with a certificate", "dpop", &certA},
	}
	for _, c := range refused {
		status, body := call(c.token, c.cert)
		if status != http.StatusUnauthorized || !strings.Contains(body, `error="invalid_token"`) || strings.Contains(body, `"resourceType":"Patient"`) {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}
	if status, body := call("bound-a", &certA); status != http.StatusOK || !strings.Contains(body, `"resourceType":"Patient"`) {
		t.Errorf("certificate-bound token with its certificate: %d %s", status, body)
	}
	if status, _ := call("plain", &certB); status != http.StatusOK {
		t.Errorf("an unbound token with some certificate: %d", status)
	}
}

// dpopProof is a DPoP proof (RFC 9449 §4.2) by key for one request and
// access token.
func dpopProof(t *testing.T, key *ecdsa.PrivateKey, method, htu, token, jti string) string {
	return dpopProofNonce(t, key, method, htu, token, jti, "")
}

func dpopProofNonce(t *testing.T, key *ecdsa.PrivateKey, method, htu, token, jti, nonce string) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	ath := sha256.Sum256([]byte(token))
	c := map[string]any{"jti": jti, "htm": method, "htu": htu, "iat": time.Now().Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(ath[:])}
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

// RFC 9449 at the FHIR API: a DPoP-bound token works only with a fresh
// proof by its key, for this request.
func TestDPoPBoundTokens(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tp, _ := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	bound := principal("phone", "Patient/p1", "p1", "patient/*.rs")
	bound.JKT = base64.RawURLEncoding.EncodeToString(tp)
	verifier := tokenTable{"dpop": bound, "plain": principal("app", "Patient/p1", "p1", "patient/*.rs")}
	v, err := dpop.New(dpop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	origin := "https://" + srv.Listener.Addr().String()
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Verifier, o.DPoP, o.Origin = verifier, v, origin })
	srv.Config.Handler = f.api
	srv.StartTLS()
	defer srv.Close()
	target := origin + "/fhir/Patient/p1"

	call := func(scheme, token, proof string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", scheme+" "+token)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate") + " " + string(b)
	}
	used := dpopProof(t, key, "GET", target, "dpop", "used-once")
	if st, body := call("DPoP", "dpop", used); st != http.StatusOK {
		t.Fatalf("bound token with its proof: %d %s", st, body)
	}
	for _, c := range []struct{ name, scheme, token, proof string }{
		{"as Bearer, no proof", "Bearer", "dpop", ""},
		{"DPoP scheme, no proof", "DPoP", "dpop", ""},
		{"proof by another key", "DPoP", "dpop", dpopProof(t, other, "GET", target, "dpop", "k2")},
		{"replayed proof", "DPoP", "dpop", used},
		{"proof for another URL", "DPoP", "dpop", dpopProof(t, key, "GET", origin+"/fhir/Patient/p2", "dpop", "k3")},
		{"proof for another method", "DPoP", "dpop", dpopProof(t, key, "DELETE", target, "dpop", "k4")},
		{"proof for another token (ath)", "DPoP", "dpop", dpopProof(t, key, "GET", target, "stolen", "k5")},
		{"unbound token under the DPoP scheme", "DPoP", "plain", dpopProof(t, key, "GET", target, "plain", "k6")},
	} {
		if st, body := call(c.scheme, c.token, c.proof); st != http.StatusUnauthorized || strings.Contains(body, `"resourceType":"Patient"`) {
			t.Errorf("%s: %d %s", c.name, st, body)
		} else if !strings.Contains(body, "DPoP realm") {
			t.Errorf("%s: challenge does not offer DPoP: %s", c.name, body)
		}
	}
}

// With server nonces, the FHIR API answers a proof without the nonce with
// 401 use_dpop_nonce and the nonce; the retry with it is served.
func TestDPoPNonceAtAPI(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tp, _ := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	bound := principal("phone", "Patient/p1", "p1", "patient/*.rs")
	bound.JKT = base64.RawURLEncoding.EncodeToString(tp)
	nonces, err := dpop.NewNonces([]byte("0123456789abcdef0123456789abcdef"), 0)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := dpop.New(dpop.Options{Nonces: nonces})
	srv := httptest.NewUnstartedServer(nil)
	origin := "https://" + srv.Listener.Addr().String()
	f := newAuthzFixture(t, func(o *fhirapi.Options) { o.Verifier, o.DPoP, o.Origin = tokenTable{"dpop": bound}, v, origin })
	srv.Config.Handler = f.api
	srv.StartTLS()
	defer srv.Close()
	target := origin + "/fhir/Patient/p1"
	call := func(proof string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "DPoP dpop")
		req.Header.Set("DPoP", proof)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := call(dpopProof(t, key, "GET", target, "dpop", "a1"))
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != http.StatusUnauthorized || nonce == "" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("proof without a nonce: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	if resp, body := call(dpopProofNonce(t, key, "GET", target, "dpop", "a2", nonce)); resp.StatusCode != http.StatusOK {
		t.Fatalf("retry with the nonce: %d %s", resp.StatusCode, body)
	}
}
