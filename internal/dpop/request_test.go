package dpop

import (
	"crypto/elliptic"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

const testOrigin = "https://fhir.example.org"

// TestVerifyRequestRefuses: the request-level ways around the checks —
// no proof, several DPoP headers, a Host header pointing elsewhere.
func TestVerifyRequestRefuses(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	v := newVerifier(t, Options{})

	r := httptest.NewRequest("GET", testURI, nil)
	if _, err := v.VerifyRequest(r, testOrigin, testToken, testNow); !errors.Is(err, ErrMissingProof) {
		t.Errorf("no DPoP header: %v, want ErrMissingProof", err)
	}

	r = httptest.NewRequest("GET", testURI, nil)
	r.Header.Add("DPoP", sign(t, spec{alg: jose.ES256, key: ec}))
	r.Header.Add("DPoP", sign(t, spec{alg: jose.ES256, key: ec}))
	if _, err := v.VerifyRequest(r, testOrigin, testToken, testNow); !errors.Is(err, ErrMalformed) {
		t.Errorf("two DPoP headers: %v, want ErrMalformed", err)
	}

	// A proof made for another server, sent here with that server's Host:
	// htu is checked against the configured origin, not the Host header.
	r = httptest.NewRequest("GET", "https://evil.example.org/fhir/Observation", nil)
	r.Header.Set("DPoP", sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": "https://evil.example.org/fhir/Observation"}}))
	if _, err := v.VerifyRequest(r, testOrigin, testToken, testNow); !errors.Is(err, ErrURI) {
		t.Errorf("proof for the Host header's server: %v, want ErrURI", err)
	}

	r = httptest.NewRequest("POST", testURI, nil)
	r.Header.Set("DPoP", sign(t, spec{alg: jose.ES256, key: ec}))
	if _, err := v.VerifyRequest(r, testOrigin, testToken, testNow); !errors.Is(err, ErrMethod) {
		t.Errorf("GET proof on a POST: %v, want ErrMethod", err)
	}
}

// TestVerifyRequestAccepts: the proof of a request with a query string,
// the origin given with a trailing slash.
func TestVerifyRequestAccepts(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	v := newVerifier(t, Options{})
	r := httptest.NewRequest("GET", testURI, nil)
	r.Header.Set("DPoP", sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"jti": "r1"}}))
	p, err := v.VerifyRequest(r, testOrigin+"/", testToken, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if p.JKT != thumbprint(t, ec) || p.JTI != "r1" {
		t.Errorf("Proof = %+v", p)
	}
	if h, err := ProofHeader(httptest.NewRequest("GET", testURI, nil)); h != "" || err != nil {
		t.Errorf("ProofHeader of a request without one = %q, %v", h, err)
	}
}
