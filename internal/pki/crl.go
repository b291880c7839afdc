package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// Errors of revocation.
var (
	ErrUnknownSerial = errors.New("pki: this CA issued no certificate with that serial")
	ErrNotIssuedHere = errors.New("pki: the certificate was not issued by this CA")
	ErrBadReason     = errors.New("pki: unknown revocation reason (want unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn)")
	ErrBadCRL        = errors.New("pki: the CRL file is damaged")
)

// Reason is a CRLReason (RFC 5280 §5.3.1). Only the permanent reasons
// that apply to an end-entity certificate are accepted: no
// certificateHold (this CA never un-revokes), removeFromCRL or
// cACompromise/aACompromise.
type Reason int

// Reasons, numbered as in RFC 5280 §5.3.1.
const (
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonPrivilegeWithdrawn   Reason = 9
)

var reasonNames = map[Reason]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
}

func (r Reason) allowed() bool { _, ok := reasonNames[r]; return ok }

// String is the reason's ASN.1 name.
func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// ParseReason reads a reason by its RFC 5280 name, case-insensitively.
func ParseReason(s string) (Reason, error) {
	for r, n := range reasonNames {
		if strings.EqualFold(n, s) {
			return r, nil
		}
	}
	return 0, ErrBadReason
}

// Revoke marks the certificate with serial revoked for reason and signs
// a new CRL listing it (RFC 5280 §5.3.1 reasonCode, omitted for
// unspecified as §5.3.1 asks). Revoking a revoked certificate changes
// nothing (its first revocation time and reason stay) and returns its
// entry without error. A serial this CA never issued is ErrUnknownSerial.
func (ca *CA) Revoke(serial *big.Int, reason Reason) (Entry, error) {
	if ca.key == nil {
		return Entry{}, ErrReadOnly
	}
	if !reason.allowed() {
		return Entry{}, ErrBadReason
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	unlock, err := lockDir(ca.dir)
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	ix, err := readIndex(ca.dir)
	if err != nil {
		return Entry{}, err
	}
	i := ix.find(FormatSerial(serial))
	if i < 0 {
		return Entry{}, ErrUnknownSerial
	}
	if ix.Entries[i].Status == StatusRevoked {
		return ix.Entries[i], nil
	}
	e := &ix.Entries[i]
	e.Status, e.RevokedAt, e.Reason = StatusRevoked, ca.issuedAt(), reason
	// The index is written first: if signing the CRL fails, the next
	// SignCRL still lists the revocation.
	if err := writeIndex(ca.dir, ix); err != nil {
		return Entry{}, err
	}
	if _, err := ca.signCRL(ix); err != nil {
		return Entry{}, err
	}
	return *e, nil
}

// SerialOf returns the serial of the PEM certificate in certPEM after
// checking this CA signed it (for revoking by file).
func (ca *CA) SerialOf(certPEM []byte) (*big.Int, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, ErrNotIssuedHere
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !bytes.Equal(c.RawIssuer, ca.cert.RawSubject) || c.CheckSignatureFrom(ca.cert) != nil {
		return nil, ErrNotIssuedHere
	}
	return c.SerialNumber, nil
}

// SignCRL signs and writes a fresh CRL (the next CRL number) listing
// every revoked certificate still in the index, valid for the configured
// CRLValidity. Run it before the current CRL's nextUpdate: a relying
// party may refuse a stale CRL.
func (ca *CA) SignCRL() ([]byte, error) {
	if ca.key == nil {
		return nil, ErrReadOnly
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	unlock, err := lockDir(ca.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ix, err := readIndex(ca.dir)
	if err != nil {
		return nil, err
	}
	return ca.signCRL(ix)
}

// signCRL is SignCRL with the lock held and the index read: a version 2
// CRL (RFC 5280 §5.1) with the authority key identifier (§5.2.1) and the
// next CRL number (§5.2.3), which it records in the index.
func (ca *CA) signCRL(ix *index) ([]byte, error) {
	now := ca.issuedAt()
	next := now.Add(ca.o.CRLValidity)
	if next.After(ca.cert.NotAfter) {
		next = ca.cert.NotAfter
	}
	if !next.After(now) {
		next = now.Add(time.Second)
	}
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(ix.CRLNumber + 1),
		ThisUpdate: now,
		NextUpdate: next,
	}
	for _, e := range ix.Entries {
		if e.Status != StatusRevoked {
			continue
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   mustSerial(e.Serial),
			RevocationTime: e.RevokedAt,
			ReasonCode:     int(e.Reason),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: signing the CRL: %w", err)
	}
	ix.CRLNumber++
	if err := writeIndex(ca.dir, ix); err != nil {
		return nil, err
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	if err := mtls.WriteFileAtomic(filepath.Join(ca.dir, CRLFile), b, 0o644); err != nil {
		return nil, err
	}
	return b, nil
}

// CRL returns the current CRL file (PEM) after checking it parses and
// carries the CA's signature.
func (ca *CA) CRL() ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(ca.dir, CRLFile))
	if err != nil {
		return nil, fmt.Errorf("pki: reading the CRL: %w", err)
	}
	if _, err := ca.VerifyCRL(b); err != nil {
		return nil, err
	}
	return b, nil
}

// VerifyCRL parses a PEM CRL and checks that this CA signed it (RFC 5280
// §6.3.3 (f)); it does not judge its freshness: compare NextUpdate.
func (ca *CA) VerifyCRL(b []byte) (*x509.RevocationList, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		return nil, ErrBadCRL
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil || crl.CheckSignatureFrom(ca.cert) != nil {
		return nil, ErrBadCRL
	}
	return crl, nil
}
