package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// Kind is what an issued certificate is for: its only extended key usage.
type Kind string

// Kinds.
const (
	Server Kind = "server" // id-kp-serverAuth (RFC 5280 §4.2.1.12)
	Client Kind = "client" // id-kp-clientAuth (RFC 5280 §4.2.1.12)
)

// Validity limits, in days.
const (
	DefaultServerDays = 397
	DefaultClientDays = 90
	MaxLeafDays       = 397 // CA/Browser Forum Baseline Requirements §6.3.2
)

// Errors of Issue.
var (
	ErrBadKind      = errors.New("pki: kind must be server or client")
	ErrBadDays      = fmt.Errorf("pki: validity must be 1 to %d days", MaxLeafDays)
	ErrNoServerName = errors.New("pki: a server certificate needs a DNS name or an IP address (NAME is not a DNS name: give --dns or --ip)")
	ErrTwoSPIFFEIDs = errors.New("pki: an X.509-SVID carries exactly one URI SAN, its SPIFFE ID")
	ErrFileExists   = errors.New("pki: the output file exists")
)

// ParseKind reads "server" or "client".
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Server, Client:
		return k, nil
	}
	return "", ErrBadKind
}

// IssueOptions are a certificate's names and lifetime.
type IssueOptions struct {
	DNSNames []string // dNSName SANs; a server certificate defaults to NAME
	IPs      []net.IP // iPAddress SANs
	// URIs are uniformResourceIdentifier SANs. A SPIFFE ID
	// (spiffe://trust-domain/path) must be the only one (X.509-SVID §2).
	URIs []string
	Days int // default DefaultServerDays or DefaultClientDays; at most MaxLeafDays
	// KeyPassphrase, when set, seals the returned key like the CA's (age,
	// scrypt); otherwise the key is plain PKCS#8 PEM.
	KeyPassphrase []byte
	// KeyWorkFactor is log2 of scrypt's N for a sealed key (default
	// DefaultWorkFactor, at least MinWorkFactor).
	KeyWorkFactor int
}

// Issued is a certificate the CA has just signed and recorded, with its
// fresh key.
type Issued struct {
	Name        string
	Certificate *x509.Certificate
	CertPEM     []byte
	KeyPEM      []byte // PKCS#8 "PRIVATE KEY", or age-armored when sealed
	Entry       Entry
}

// Issue creates a key and a certificate for it named name (its subject
// common name), usable only for kind's purpose (one extended key usage,
// RFC 5280 §4.2.1.12; keyUsage digitalSignature, §4.2.1.3; cA false,
// §4.2.1.9), with a fresh 128-bit serial, valid from a minute ago for
// o.Days days but never past the CA's own notAfter. It records the
// certificate in the index and in IssuedDir before returning. It refuses
// once the CA has expired, and names that are not valid DNS names, IP
// addresses or URIs.
func (ca *CA) Issue(kind Kind, name string, o IssueOptions) (*Issued, error) {
	if ca.key == nil {
		return nil, ErrReadOnly
	}
	tmpl, err := ca.template(kind, name, o)
	if err != nil {
		return nil, err
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
	for {
		if tmpl.SerialNumber, err = newSerial(); err != nil {
			return nil, err
		}
		if ix.find(FormatSerial(tmpl.SerialNumber)) < 0 {
			break
		}
	}
	key, err := newKey(keyTypeOf(ca.cert))
	if err != nil {
		return nil, err
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(key.Public()); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: signing %q: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key, o.KeyPassphrase, o.KeyWorkFactor)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	e := entryOf(kind, name, cert)
	if err := mtls.WriteFileAtomic(filepath.Join(ca.dir, IssuedDir, e.Serial+".pem"), certPEM, 0o644); err != nil {
		return nil, err
	}
	ix.Entries = append(ix.Entries, e)
	if err := writeIndex(ca.dir, ix); err != nil {
		return nil, err
	}
	return &Issued{Name: name, Certificate: cert, CertPEM: certPEM, KeyPEM: keyPEM, Entry: e}, nil
}

// template checks the request and builds the certificate template (all
// but serial and key identifier).
func (ca *CA) template(kind Kind, name string, o IssueOptions) (*x509.Certificate, error) {
	if _, err := ParseKind(string(kind)); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	now := ca.o.Now()
	if now.Before(ca.cert.NotBefore) || !now.Before(ca.cert.NotAfter) {
		return nil, ErrCAExpired
	}
	days := o.Days
	if days == 0 {
		days = DefaultClientDays
		if kind == Server {
			days = DefaultServerDays
		}
	}
	if days < 1 || days > MaxLeafDays {
		return nil, ErrBadDays
	}
	if o.KeyWorkFactor != 0 && (o.KeyWorkFactor < MinWorkFactor || o.KeyWorkFactor > maxWorkFactor) {
		return nil, fmt.Errorf("%w: work factor must be %d to %d", ErrBadOptions, MinWorkFactor, maxWorkFactor)
	}
	if o.KeyPassphrase != nil && len(o.KeyPassphrase) < MinPassphrase {
		return nil, ErrWeakPassphrase
	}
	notAfter := now.AddDate(0, 0, days)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	if kind == Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, d := range o.DNSNames {
		if err := CheckDNSName(d, kind == Server); err != nil {
			return nil, fmt.Errorf("%w: %q", err, d)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, d)
	}
	for _, ip := range o.IPs {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len || ip.IsUnspecified() {
			return nil, ErrBadIP
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	spiffe := false
	for _, s := range o.URIs {
		u, err := checkURI(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", err, s)
		}
		spiffe = spiffe || u.Scheme == "spiffe"
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if spiffe && len(tmpl.URIs) > 1 {
		return nil, ErrTwoSPIFFEIDs
	}
	if kind == Server && len(tmpl.DNSNames) == 0 && len(tmpl.IPAddresses) == 0 {
		if CheckDNSName(name, false) != nil {
			return nil, ErrNoServerName
		}
		tmpl.DNSNames = []string{name}
	}
	return tmpl, nil
}

// keyTypeOf is the CA key's type: issued keys match it.
func keyTypeOf(c *x509.Certificate) KeyType {
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P384() {
		return ECDSAP384
	}
	return ECDSAP256
}

func entryOf(kind Kind, name string, c *x509.Certificate) Entry {
	e := Entry{
		Serial:    FormatSerial(c.SerialNumber),
		Kind:      kind,
		Name:      name,
		Subject:   c.Subject.String(),
		DNSNames:  c.DNSNames,
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		Status:    StatusValid,
	}
	for _, ip := range c.IPAddresses {
		e.IPs = append(e.IPs, ip.String())
	}
	for _, u := range c.URIs {
		e.URIs = append(e.URIs, u.String())
	}
	return e
}

// WriteFiles writes the certificate to dir/NAME.pem (mode 0644) and the
// key to dir/NAME-key.pem (mode 0600), creating dir with mode 0700. It
// refuses to replace existing files (ErrFileExists) unless replace.
func (is *Issued) WriteFiles(dir string, replace bool) (certFile, keyFile string, err error) {
	if err := checkName(is.Name); err != nil {
		return "", "", err
	}
	certFile, keyFile = OutputFiles(dir, is.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	if !replace {
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Lstat(f); err == nil {
				return "", "", fmt.Errorf("%w: %s", ErrFileExists, f)
			}
		}
	}
	if err := mtls.WriteFileAtomic(keyFile, is.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := mtls.WriteFileAtomic(certFile, is.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// OutputFiles are the paths WriteFiles uses for name in dir.
func OutputFiles(dir, name string) (certFile, keyFile string) {
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
}

// issuedAt is the time a CRL or certificate is stamped with: the CA
// clock, truncated to seconds as X.509 times are.
func (ca *CA) issuedAt() time.Time { return ca.o.Now().UTC().Truncate(time.Second) }
