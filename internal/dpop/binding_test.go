package dpop

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/mtls"
)

func selfSigned(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	k := newEC(t, elliptic.P256())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: testNow, NotAfter: testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCheckBindingRefuses lists the ways to use a bound token without its
// key or certificate.
func TestCheckBindingRefuses(t *testing.T) {
	a, b := newEC(t, elliptic.P256()), newEC(t, elliptic.P256())
	v := newVerifier(t, Options{})
	proofB, err := v.Verify(sign(t, spec{alg: jose.ES256, key: b}), testMethod, testURI, testToken, testNow)
	if err != nil {
		t.Fatal(err)
	}
	jktA := thumbprint(t, a)
	certA, certB := CertThumbprint(selfSigned(t, "a")), CertThumbprint(selfSigned(t, "b"))
	for _, c := range []struct {
		name  string
		cnf   Confirmation
		proof *Proof
		cert  string
		want  error
	}{
		{"jkt-bound token as a bearer token (no proof)", Confirmation{JKT: jktA}, nil, "", ErrProofRequired},
		{"jkt-bound token, empty proof", Confirmation{JKT: jktA}, &Proof{}, "", ErrProofRequired},
		{"jkt-bound token, proof from another key", Confirmation{JKT: jktA}, &proofB, "", ErrKeyMismatch},
		{"jkt-bound token, a certificate instead of a proof", Confirmation{JKT: jktA}, nil, certA, ErrProofRequired},
		{"cert-bound token without a certificate", Confirmation{X5tS256: certA}, nil, "", ErrCertRequired},
		{"cert-bound token with another certificate", Confirmation{X5tS256: certA}, nil, certB, ErrCertMismatch},
		{"cert-bound token, a proof instead of the certificate", Confirmation{X5tS256: certA}, &proofB, "", ErrCertRequired},
		{"bound both ways, proof only", Confirmation{JKT: proofB.JKT, X5tS256: certA}, &proofB, "", ErrCertRequired},
		{"bound both ways, certificate only", Confirmation{JKT: proofB.JKT, X5tS256: certA}, nil, certA, ErrProofRequired},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckBinding(c.cnf, c.proof, c.cert)
			if !errors.Is(err, ErrBinding) || !errors.Is(err, c.want) {
				t.Fatalf("CheckBinding = %v, want ErrBinding and %v", err, c.want)
			}
			if OAuthError(err) != "invalid_token" {
				t.Errorf("OAuthError = %q", OAuthError(err))
			}
		})
	}
}

// TestCheckBindingAccepts: each binding with what it is bound to, and an
// unbound token with or without either.
func TestCheckBindingAccepts(t *testing.T) {
	p := &Proof{JKT: "jkt-a"}
	for _, c := range []struct {
		name  string
		cnf   Confirmation
		proof *Proof
		cert  string
	}{
		{"jkt with its proof", Confirmation{JKT: "jkt-a"}, p, ""},
		{"x5t#S256 with its certificate", Confirmation{X5tS256: "x5t-a"}, nil, "x5t-a"},
		{"both with both", Confirmation{JKT: "jkt-a", X5tS256: "x5t-a"}, p, "x5t-a"},
		{"unbound, nothing", Confirmation{}, nil, ""},
		{"unbound, with a proof and a certificate", Confirmation{}, p, "x5t-a"},
	} {
		if err := CheckBinding(c.cnf, c.proof, c.cert); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestCertThumbprint: RFC 8705 §3.1 x5t#S256, the same value mtls puts in
// tokens.
func TestCertThumbprint(t *testing.T) {
	c := selfSigned(t, "a")
	got := CertThumbprint(c)
	if got != mtls.Thumbprint(c) {
		t.Errorf("CertThumbprint = %q, mtls.Thumbprint = %q", got, mtls.Thumbprint(c))
	}
	if len(got) != 43 {
		t.Errorf("thumbprint %q is not unpadded base64url of 32 bytes", got)
	}
	if CertThumbprint(nil) != "" {
		t.Errorf("CertThumbprint(nil) != \"\"")
	}
}
