// Package pki is Warden's certificate authority for operators: a root CA
// kept in a directory (its key sealed with a passphrase), the client and
// server certificates it issues for mutual TLS between organisations
// (RFC 8705 §2.1, SPIFFE X.509-SVIDs), an index of every serial it has
// issued, and the certificate revocation list (RFC 5280 §5) that
// Warden's TLS listener reads.
//
// The CA key is only ever written encrypted; an issued key is written
// with mode 0600, encrypted when the caller gives a passphrase. It never
// logs, nor puts in an error, key material or a passphrase; it uses no
// SHA-1. It serves nothing: internal/mtls reads the files it writes.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// File names inside a CA directory.
const (
	CertFile  = "ca.pem"     // the root certificate: give it to whoever must trust this CA
	KeyFile   = "ca-key.pem" // the CA key, age-encrypted with the passphrase
	IndexFile = "index.json" // every serial issued, its status and revocation
	CRLFile   = "crl.pem"    // the current revocation list (PEM "X509 CRL")
	IssuedDir = "issued"     // a copy of every issued certificate, SERIAL.pem
	lockFile  = ".lock"
)

// Errors. Their texts never include a passphrase, key bytes or a path's
// contents.
var (
	ErrExists          = errors.New("pki: a CA already exists in this directory")
	ErrNoCA            = errors.New("pki: no CA in this directory (run 'warden pki init')")
	ErrWrongPassphrase = errors.New("pki: wrong passphrase for the CA key")
	ErrDamagedKey      = errors.New("pki: the CA key file is damaged or not encrypted")
	ErrKeyMismatch     = errors.New("pki: the CA key does not belong to the CA certificate")
	ErrBadCACert       = errors.New("pki: the CA certificate is not a valid self-signed CA")
	ErrWeakPassphrase  = errors.New("pki: the passphrase must be at least 12 characters")
	ErrReadOnly        = errors.New("pki: the CA was opened without its passphrase")
	ErrCAExpired       = errors.New("pki: the CA certificate has expired or is not yet valid")
	ErrBadOptions      = errors.New("pki: invalid options")
)

// MinPassphrase is the shortest passphrase Init accepts, in bytes.
const MinPassphrase = 12

// KeyType is the kind of key the CA and its certificates use.
type KeyType string

// Key types. Both sign with SHA-256 or SHA-384 (never SHA-1).
const (
	ECDSAP256 KeyType = "ecdsa-p256" // the default: ECDSA with SHA-256
	ECDSAP384 KeyType = "ecdsa-p384" // ECDSA with SHA-384
)

// Defaults and limits.
const (
	DefaultCADays     = 3650
	MaxCADays         = 7300
	DefaultWorkFactor = 18 // scrypt N = 2^18: 256 MiB and about a second per unlock
	MinWorkFactor     = 15
	maxWorkFactor     = 22 // what Open accepts: caps the cost a damaged file can impose
	DefaultCRLDays    = 7
	backdate          = time.Minute
)

// Options configure Init.
type Options struct {
	Name    string  // the CA's common name; default "Warden CA"
	Days    int     // validity; default DefaultCADays, at most MaxCADays
	KeyType KeyType // default ECDSAP256
	// WorkFactor is log2 of scrypt's N for sealing the CA key (default
	// DefaultWorkFactor, at least MinWorkFactor, at most 22).
	WorkFactor int
	OpenOptions
}

// OpenOptions configure how an opened CA signs.
type OpenOptions struct {
	// CRLValidity is the span between a CRL's thisUpdate and nextUpdate
	// (RFC 5280 §5.1.2.5); default DefaultCRLDays days.
	CRLValidity time.Duration
	Now         func() time.Time // default time.Now
}

// CA is an open certificate authority directory. Its methods are safe for
// concurrent use, and across processes: the index is locked while it
// changes.
type CA struct {
	dir  string
	cert *x509.Certificate
	key  crypto.Signer // nil when opened read-only
	o    OpenOptions

	mu sync.Mutex // serialises Issue and Revoke within the process
}

// Init creates a CA in dir (created mode 0700 if missing): a self-signed
// root certificate (RFC 5280 §4.2.1.9 cA true, pathLenConstraint 0;
// §4.2.1.3 keyCertSign and cRLSign; §4.2.1.2 subject key identifier), its
// key sealed with passphrase, an empty index and an empty CRL number 1.
// It refuses a directory that already holds a CA.
func Init(dir string, passphrase []byte, o Options) (*CA, error) {
	if len(passphrase) < MinPassphrase {
		return nil, ErrWeakPassphrase
	}
	if o.Name == "" {
		o.Name = "Warden CA"
	}
	if o.Days == 0 {
		o.Days = DefaultCADays
	}
	if o.Days < 1 || o.Days > MaxCADays {
		return nil, fmt.Errorf("%w: CA validity must be 1 to %d days", ErrBadOptions, MaxCADays)
	}
	if o.WorkFactor == 0 {
		o.WorkFactor = DefaultWorkFactor
	}
	if o.WorkFactor < MinWorkFactor || o.WorkFactor > maxWorkFactor {
		return nil, fmt.Errorf("%w: work factor must be %d to %d", ErrBadOptions, MinWorkFactor, maxWorkFactor)
	}
	if len(o.Name) > 64 {
		return nil, fmt.Errorf("%w: CA name longer than 64 characters", ErrBadOptions)
	}
	o.OpenOptions = o.OpenOptions.withDefaults()
	if err := os.MkdirAll(filepath.Join(dir, IssuedDir), 0o700); err != nil {
		return nil, fmt.Errorf("pki: creating %s: %w", dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, CertFile)); err == nil {
		return nil, ErrExists
	}
	key, err := newKey(o.KeyType)
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := o.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.Name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(0, 0, o.Days),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	sealed, err := sealKey(key, passphrase, o.WorkFactor)
	if err != nil {
		return nil, err
	}
	ca := &CA{dir: dir, cert: cert, key: key, o: o.OpenOptions}
	// ca.pem is written last: a directory without it holds no CA, and a
	// later Init may overwrite what an interrupted one left.
	if err := mtls.WriteFileAtomic(filepath.Join(dir, KeyFile), sealed, 0o600); err != nil {
		return nil, err
	}
	if err := writeIndex(dir, &index{Version: indexVersion}); err != nil {
		return nil, err
	}
	if _, err := ca.signCRL(&index{Version: indexVersion}); err != nil {
		return nil, err
	}
	if err := mtls.WriteFileAtomic(filepath.Join(dir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Open opens the CA in dir and unlocks its key with passphrase. It checks
// that the certificate is a self-signed CA and that the key is its key.
func Open(dir string, passphrase []byte, o OpenOptions) (*CA, error) {
	cert, err := readCACert(dir)
	if err != nil {
		return nil, err
	}
	sealed, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoCA
		}
		return nil, fmt.Errorf("pki: reading the CA key: %w", err)
	}
	key, err := openKey(sealed, passphrase)
	if err != nil {
		return nil, err
	}
	if !publicKeyEqual(key.Public(), cert.PublicKey) {
		return nil, ErrKeyMismatch
	}
	if _, err := readIndex(dir); err != nil {
		return nil, err
	}
	return &CA{dir: dir, cert: cert, key: key, o: o.withDefaults()}, nil
}

// OpenReadOnly opens the CA in dir without its key: List, CRL and
// Certificate work; Issue, Revoke and SignCRL return ErrReadOnly.
func OpenReadOnly(dir string, o OpenOptions) (*CA, error) {
	cert, err := readCACert(dir)
	if err != nil {
		return nil, err
	}
	return &CA{dir: dir, cert: cert, o: o.withDefaults()}, nil
}

func (o OpenOptions) withDefaults() OpenOptions {
	if o.CRLValidity <= 0 {
		o.CRLValidity = DefaultCRLDays * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Certificate is the CA's root certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Dir is the CA's directory.
func (ca *CA) Dir() string { return ca.dir }

func readCACert(dir string) (*x509.Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoCA
		}
		return nil, fmt.Errorf("pki: reading the CA certificate: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, ErrBadCACert
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, ErrBadCACert
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || len(cert.SubjectKeyId) == 0 ||
		cert.KeyUsage&x509.KeyUsageCertSign == 0 || cert.KeyUsage&x509.KeyUsageCRLSign == 0 ||
		cert.CheckSignatureFrom(cert) != nil {
		return nil, ErrBadCACert
	}
	return cert, nil
}

func newKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("%w: unknown key type %q (want %s or %s)", ErrBadOptions, t, ECDSAP256, ECDSAP384)
}

// subjectKeyID is RFC 7093 §2 method 1: the leftmost 160 bits of the
// SHA-256 hash of the subjectPublicKey BIT STRING (RFC 5280 §4.2.1.2
// allows any method; this one uses no SHA-1).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

// newSerial is a positive serial number of 128 random bits (RFC 5280
// §4.1.2.2: at most 20 octets; CA/B Baseline Requirements §7.1: at least
// 64 bits from a CSPRNG).
func newSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
