package fhirapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
