package mtls

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func readCert(t testing.TB, name string) *x509.Certificate {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzVerifyOCSPResponse: whatever a responder sends, VerifyOCSPResponse
// either refuses it with ErrOCSPUnavailable or returns an answer about the
// leaf's serial, fresh at the time of the check, whose signature is the
// issuer's or that of a certificate the issuer signed for OCSP signing.
// The seeds (testdata/fuzz) are responses about testdata/ocsp/leaf.pem
// produced at 2026-01-01.
func FuzzVerifyOCSPResponse(f *testing.F) {
	issuer, leaf := readCert(f, "testdata/ocsp/ca.pem"), readCert(f, "testdata/ocsp/leaf.pem")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, err := VerifyOCSPResponse(der, leaf, issuer, now)
		if err != nil {
			if !errors.Is(err, ErrOCSPUnavailable) {
				t.Fatalf("refused without ErrOCSPUnavailable: %v", err)
			}
			return
		}
		if resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Fatal("accepted an answer about another serial")
		}
		if now.After(resp.NextUpdate) && !resp.NextUpdate.IsZero() {
			t.Fatal("accepted a stale answer")
		}
		if resp.CheckSignatureFrom(issuer) != nil {
			d := resp.Certificate
			if d == nil || resp.CheckSignatureFrom(d) != nil || d.CheckSignatureFrom(issuer) != nil ||
				!slices.Contains(d.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
				t.Fatal("accepted an answer not signed by the issuer or its OCSP responder")
			}
		}
		if resp.Status != ocsp.Good && resp.Status != ocsp.Revoked && resp.Status != ocsp.Unknown {
			t.Fatalf("status %d", resp.Status)
		}
	})
}

// TestFuzzSeedsVerify: the seeds are what they are named, so the fuzzer
// starts from answers that pass.
func TestFuzzSeedsVerify(t *testing.T) {
	issuer, leaf := readCert(t, "testdata/ocsp/ca.pem"), readCert(t, "testdata/ocsp/leaf.pem")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, want := range map[string]int{"good": ocsp.Good, "revoked": ocsp.Revoked, "delegated": ocsp.Good, "other-serial": -1, "unauthorized": -1} {
		b, err := os.ReadFile("testdata/fuzz/FuzzVerifyOCSPResponse/" + name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		der, err := unquoteBytes(lines[1])
		if err != nil {
			t.Fatal(err)
		}
		resp, err := VerifyOCSPResponse(der, leaf, issuer, now)
		if want < 0 {
			if err == nil {
				t.Errorf("%s: accepted", name)
			}
			continue
		}
		if err != nil || resp.Status != want {
			t.Errorf("%s: %v, %v", name, resp, err)
		}
	}
}

// FuzzParseIdentity: an accepted identity has a known kind and a non-empty
// value without surrounding space, and parsing its canonical form gives it
// back.
func FuzzParseIdentity(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseIdentity(s)
		if err != nil {
			if !errors.Is(err, ErrBadRouteRule) {
				t.Fatalf("refused without ErrBadRouteRule: %v", err)
			}
			return
		}
		if !slices.Contains([]string{"dn", "dns", "uri", "sha256"}, m.kind) || m.value == "" || strings.TrimSpace(m.value) != m.value {
			t.Fatalf("accepted %q as %+v", s, m)
		}
		again, err := parseIdentity(m.kind + ":" + m.value)
		if err != nil || again != m {
			t.Fatalf("canonical form %+v does not parse back: %+v, %v", m, again, err)
		}
	})
}

// unquoteBytes reads a corpus line `[]byte("...")`.
func unquoteBytes(line string) ([]byte, error) {
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
	return []byte(s), err
}
