package pki

import (
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRevokeRefuses(t *testing.T) {
	ca, _ := newTestCA(t, Options{})
	is, err := ca.Issue(Client, "c", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, otherDir := newTestCA(t, Options{})
	other, err := Open(otherDir, testPassphrase, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Issue(Client, "c", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		serial *big.Int
		reason Reason
		want   error
	}{
		{"serial never issued", big.NewInt(12345), ReasonKeyCompromise, ErrUnknownSerial},
		{"serial of another CA", foreign.Certificate.SerialNumber, ReasonKeyCompromise, ErrUnknownSerial},
		{"the CA's own serial", ca.Certificate().SerialNumber, ReasonKeyCompromise, ErrUnknownSerial},
		{"certificateHold (not permanent)", is.Certificate.SerialNumber, Reason(6), ErrBadReason},
		{"removeFromCRL", is.Certificate.SerialNumber, Reason(8), ErrBadReason},
		{"cACompromise on a leaf", is.Certificate.SerialNumber, Reason(2), ErrBadReason},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.Revoke(tc.serial, tc.reason); !errors.Is(err, tc.want) {
				t.Fatalf("Revoke = %v, want %v", err, tc.want)
			}
		})
	}
	if crl := parseCRL(t, ca); crl.Number.Int64() != 1 {
		t.Errorf("refused revocations signed CRL %v", crl.Number)
	}
	if _, err := ca.SerialOf(foreign.CertPEM); !errors.Is(err, ErrNotIssuedHere) {
		t.Errorf("SerialOf(foreign) = %v", err)
	}
	if _, err := ca.SerialOf([]byte("garbage")); !errors.Is(err, ErrNotIssuedHere) {
		t.Errorf("SerialOf(garbage) = %v", err)
	}
	if n, err := ca.SerialOf(is.CertPEM); err != nil || n.Cmp(is.Certificate.SerialNumber) != 0 {
		t.Errorf("SerialOf(own) = %v, %v", n, err)
	}
}

func TestRevoke(t *testing.T) {
	ca, dir := newTestCA(t, Options{OpenOptions: OpenOptions{CRLValidity: 48 * time.Hour}})
	keep, err := ca.Issue(Client, "keep", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lost, err := ca.Issue(Client, "lost", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := ca.Revoke(lost.Certificate.SerialNumber, ReasonKeyCompromise)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != StatusRevoked || e.Reason != ReasonKeyCompromise || e.RevokedAt.IsZero() {
		t.Errorf("entry %+v", e)
	}
	crl := parseCRL(t, ca)
	if crl.Number.Int64() != 2 {
		t.Errorf("CRL number %v, want 2", crl.Number)
	}
	if d := crl.NextUpdate.Sub(crl.ThisUpdate); d != 48*time.Hour {
		t.Errorf("nextUpdate - thisUpdate = %v", d)
	}
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL lists %d certificates", len(crl.RevokedCertificateEntries))
	}
	r := crl.RevokedCertificateEntries[0]
	if r.SerialNumber.Cmp(lost.Certificate.SerialNumber) != 0 || r.ReasonCode != int(ReasonKeyCompromise) || !r.RevocationTime.Equal(e.RevokedAt) {
		t.Errorf("CRL entry %+v", r)
	}
	if len(crl.AuthorityKeyId) == 0 || string(crl.AuthorityKeyId) != string(ca.Certificate().SubjectKeyId) {
		t.Errorf("CRL authority key id %x", crl.AuthorityKeyId)
	}
	if err := crl.CheckSignatureFrom(keep.Certificate); err == nil {
		t.Error("the CRL verifies with a leaf certificate")
	}

	t.Run("again is idempotent", func(t *testing.T) {
		again, err := ca.Revoke(lost.Certificate.SerialNumber, ReasonSuperseded)
		if err != nil {
			t.Fatal(err)
		}
		if !again.RevokedAt.Equal(e.RevokedAt) || again.Reason != ReasonKeyCompromise {
			t.Errorf("second revocation changed the entry: %+v", again)
		}
		if n := parseCRL(t, ca).Number.Int64(); n != 2 {
			t.Errorf("second revocation signed CRL %d", n)
		}
	})
	t.Run("unspecified omits the reason", func(t *testing.T) {
		if _, err := ca.Revoke(keep.Certificate.SerialNumber, ReasonUnspecified); err != nil {
			t.Fatal(err)
		}
		crl := parseCRL(t, ca)
		if crl.Number.Int64() != 3 || len(crl.RevokedCertificateEntries) != 2 {
			t.Fatalf("CRL %v with %d entries", crl.Number, len(crl.RevokedCertificateEntries))
		}
		for _, r := range crl.RevokedCertificateEntries {
			if r.SerialNumber.Cmp(keep.Certificate.SerialNumber) == 0 && len(r.Extensions) != 0 {
				t.Errorf("unspecified reason encoded: %v", r.Extensions)
			}
		}
	})
	t.Run("SignCRL numbers on", func(t *testing.T) {
		if _, err := ca.SignCRL(); err != nil {
			t.Fatal(err)
		}
		if crl := parseCRL(t, ca); crl.Number.Int64() != 4 || len(crl.RevokedCertificateEntries) != 2 {
			t.Errorf("CRL %v with %d entries", crl.Number, len(crl.RevokedCertificateEntries))
		}
		b, err := ca.CRL()
		if err != nil || len(b) == 0 {
			t.Errorf("CRL() = %v", err)
		}
	})
	t.Run("survives reopen", func(t *testing.T) {
		before, _ := ca.List()
		re, err := Open(dir, testPassphrase, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		after, err := re.List()
		if err != nil || len(after) != len(before) {
			t.Fatalf("List after reopen = %d entries, %v", len(after), err)
		}
		for i := range before {
			b, a := before[i], after[i]
			if a.Serial != b.Serial || a.Status != b.Status || !a.RevokedAt.Equal(b.RevokedAt) || a.Reason != b.Reason || !a.NotAfter.Equal(b.NotAfter) {
				t.Errorf("entry %d: %+v became %+v", i, b, a)
			}
		}
		if _, err := re.SignCRL(); err != nil {
			t.Fatal(err)
		}
		if n := parseCRL(t, re).Number.Int64(); n != 5 {
			t.Errorf("CRL number after reopen %d, want 5", n)
		}
	})
	t.Run("damaged CRL file", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, CRLFile), []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
		if _, err := ca.CRL(); !errors.Is(err, ErrBadCRL) {
			t.Errorf("CRL() = %v", err)
		}
		os.Remove(filepath.Join(dir, CRLFile))
		if _, err := ca.SignCRL(); err != nil {
			t.Errorf("SignCRL without a CRL file: %v", err)
		}
	})
}

func TestParseReason(t *testing.T) {
	for r, name := range reasonNames {
		got, err := ParseReason(name)
		if err != nil || got != r || r.String() != name {
			t.Errorf("ParseReason(%q) = %v, %v", name, got, err)
		}
	}
	for _, bad := range []string{"", "certificateHold", "removeFromCRL", "cACompromise", "6"} {
		if _, err := ParseReason(bad); !errors.Is(err, ErrBadReason) {
			t.Errorf("ParseReason(%q) = %v", bad, err)
		}
	}
}
