package mtls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of client certificate checks (their texts name no certificate
// content beyond what the TLS alert already says).
var (
	ErrCertExpired  = errors.New("mtls: client certificate expired or not yet valid")
	ErrCertRevoked  = errors.New("mtls: client certificate revoked")
	ErrCertUnknown  = errors.New("mtls: client certificate from an untrusted issuer")
	ErrCertUsage    = errors.New("mtls: client certificate not for client authentication")
	ErrNoCertConfig = errors.New("mtls: no server certificate")
)

// ServerOptions configure a Listener's TLS.
type ServerOptions struct {
	CertFile, KeyFile string
	MinVersion        string // "1.3" (default) or "1.2"
	// ClientCAFile is a PEM bundle of the CAs whose client certificates
	// are trusted (PKI-bound clients, RFC 8705 §2.1); empty trusts none,
	// leaving only self-signed certificates bound to a registered key.
	ClientCAFile string
	// CRLFiles are the revocation lists (PEM or DER) of those CAs.
	CRLFiles []string
	// CheckEvery is how often the files are looked at for changes
	// (default 1 s): a rotated certificate, bundle or CRL is picked up
	// without a restart or a dropped connection.
	CheckEvery time.Duration
	Now        func() time.Time
	// Logger, if set, hears of changed files that could not be loaded
	// (the previous material stays in use): once per distinct failure.
	Logger *slog.Logger
	// OCSP, if set, asks the certificate's OCSP responder about every
	// client certificate that chains to a trusted CA (after the CRLs).
	OCSP *OCSPChecker
}

// Listener is the TLS side of the FHIR listener: its certificate and
// client-certificate trust, reloaded when their files change. Client
// certificates are requested on every connection but not demanded (browser
// apps present none); a presented one must be currently valid and, unless
// self-signed (bound to a client's registered key, RFC 8705 §2.2), chain
// to the trusted CAs for client authentication without being revoked (CRL,
// and OCSP when ServerOptions.OCSP is set) — otherwise the handshake
// fails. Policy above decides which clients and routes need a certificate
// (Identify, RouteGuard).
type Listener struct {
	o        ServerOptions
	material *Reloading[*material]

	cache   sync.Map     // thumbprint → cachedIdentity
	entries atomic.Int64 // in cache, about: bounded by maxCachedIdentities
}

// material is what the Listener's files hold.
type material struct {
	cert  *tls.Certificate
	roots *x509.CertPool
	crls  []*x509.RevocationList
}

// maxCachedIdentities bounds the identity cache: anyone can present a
// fresh self-signed certificate on every handshake, so an unbounded cache
// would be a way to fill the server's memory. Past the bound it starts
// over.
const maxCachedIdentities = 10_000

type cachedIdentity struct {
	gen    uint64 // the material's generation: older ones are stale
	id     Identity
	issuer *x509.Certificate // of a verified certificate, for OCSP
	err    error
}

// NewListener loads the files once; a missing or broken file is an error
// here, and later only keeps the previous material (logged by the caller
// through ReloadError).
func NewListener(o ServerOptions) (*Listener, error) {
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.MinVersion {
	case "", "1.3", "1.2":
	default:
		return nil, fmt.Errorf("mtls: unsupported minimum TLS version %q", o.MinVersion)
	}
	l := &Listener{o: o}
	files := []string{o.CertFile, o.KeyFile}
	if o.ClientCAFile != "" {
		files = append(files, o.ClientCAFile)
	}
	files = append(files, o.CRLFiles...)
	m, err := NewReloading(files, o.CheckEvery, o.Logger, "TLS (server certificate, client CA bundle, CRLs)", o.loadMaterial)
	if err != nil {
		return nil, err
	}
	l.material = m
	return l, nil
}

// TLSConfig is the listener's tls.Config.
func (l *Listener) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		NextProtos:       []string{"h2", "http/1.1"},
		ClientAuth:       tls.RequestClientCert,
		GetCertificate:   func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.certificate() },
		VerifyConnection: func(cs tls.ConnectionState) error { _, err := l.Identify(&cs); return err },
	}
	if l.o.MinVersion == "1.2" {
		cfg.MinVersion = tls.VersionTLS12
		cfg.CipherSuites = tls12Suites
	}
	return cfg
}

// tls12Suites are the TLS 1.2 suites allowed: AEAD with forward secrecy.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Thumbprint is the certificate's SHA-256 thumbprint, base64url without
// padding: RFC 8705 §3.1 x5t#S256.
func Thumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// PeerThumbprint is the thumbprint of the connection's client
// certificate, "" when there is none.
func PeerThumbprint(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	return Thumbprint(cs.PeerCertificates[0])
}

// Identity is what a request's client certificate says.
type Identity struct {
	// Thumbprint is the certificate's SHA-256 thumbprint, base64url
	// (RFC 8705 §3.1 x5t#S256); "" when no certificate was presented.
	Thumbprint string
	// Verified: the certificate chains to a trusted CA (PKI-bound);
	// false for a self-signed certificate, which binds only to a key a
	// client registered.
	Verified  bool
	SubjectDN string
	DNSNames  []string
	URIs      []string // including SPIFFE IDs
	NotAfter  time.Time
}

// Identify checks the connection's client certificate (see Listener) and
// describes it; no certificate is the zero Identity and no error. Results
// are cached per certificate until the trust material changes.
func (l *Listener) Identify(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return Identity{}, nil
	}
	leaf := cs.PeerCertificates[0]
	tp := Thumbprint(leaf)
	now := l.o.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return Identity{}, ErrCertExpired
	}
	m, gen := l.material.Current()
	c, ok := l.cache.Load(tp)
	if !ok || c.(cachedIdentity).gen != gen {
		id, issuer, err := identify(leaf, cs.PeerCertificates[1:], m.roots, m.crls, now)
		id.Thumbprint = tp
		if l.entries.Add(1) > maxCachedIdentities {
			l.cache.Clear()
			l.entries.Store(1)
		}
		c = cachedIdentity{gen: gen, id: id, issuer: issuer, err: err}
		l.cache.Store(tp, c)
	}
	ci := c.(cachedIdentity)
	if ci.err != nil {
		return Identity{}, ci.err
	}
	// OCSP answers expire on their own schedule (nextUpdate), so they are
	// asked of the checker on every handshake; its cache makes a repeated
	// certificate cost no network call.
	if ci.id.Verified && ci.issuer != nil && l.o.OCSP != nil {
		if err := l.o.OCSP.Check(context.Background(), leaf, ci.issuer); err != nil {
			return Identity{}, err
		}
	}
	return ci.id, nil
}

// identify verifies leaf (chain, usage, CRLs) and returns its identity and,
// when it chains to a trusted CA, its issuer.
func identify(leaf *x509.Certificate, rest []*x509.Certificate, roots *x509.CertPool, crls []*x509.RevocationList, now time.Time) (Identity, *x509.Certificate, error) {
	id := Identity{SubjectDN: leaf.Subject.String(), DNSNames: leaf.DNSNames, NotAfter: leaf.NotAfter}
	for _, u := range leaf.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	if selfSigned(leaf) {
		return id, nil, nil
	}
	if roots == nil {
		return Identity{}, nil, ErrCertUnknown
	}
	inter := x509.NewCertPool()
	for _, c := range rest {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage {
			return Identity{}, nil, ErrCertUsage
		}
		return Identity{}, nil, ErrCertUnknown
	}
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			if revoked(chain[i], chain[i+1], crls) {
				return Identity{}, nil, ErrCertRevoked
			}
		}
	}
	id.Verified = true
	var issuer *x509.Certificate
	if len(chains[0]) > 1 {
		issuer = chains[0][1] // else the leaf itself is a trust anchor: nothing to ask its issuer
	}
	return id, issuer, nil
}

// selfSigned: issuer equals subject and the certificate's own key signs
// it (a leaf, so not CheckSignatureFrom, which demands a CA).
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// revoked reports whether a CRL issued (and signed) by issuer lists c.
func revoked(c, issuer *x509.Certificate, crls []*x509.RevocationList) bool {
	for _, crl := range crls {
		if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return true
			}
		}
	}
	return false
}

func (l *Listener) certificate() (*tls.Certificate, error) {
	m, _ := l.material.Current()
	if m.cert == nil {
		return nil, ErrNoCertConfig
	}
	return m.cert, nil
}

// ReloadError is the last failure to reload changed files (nil when the
// current files are in use).
func (l *Listener) ReloadError() error { return l.material.Err() }

// loadMaterial reads every file; the Reloading swaps the material in only
// if all of it loads.
func (o ServerOptions) loadMaterial() (*material, error) {
	pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: loading server certificate: %w", err)
	}
	roots, err := LoadCertPool(o.ClientCAFile)
	if err != nil {
		return nil, err
	}
	var crls []*x509.RevocationList
	for _, f := range o.CRLFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("mtls: %w", err)
		}
		if p, _ := pem.Decode(b); p != nil && p.Type == "X509 CRL" {
			b = p.Bytes
		}
		crl, err := x509.ParseRevocationList(b)
		if err != nil {
			return nil, fmt.Errorf("mtls: CRL %s: %w", f, err)
		}
		crls = append(crls, crl)
	}
	return &material{cert: &pair, roots: roots, crls: crls}, nil
}

// LoadCertPool reads a PEM bundle of CA certificates; "" is a nil pool.
func LoadCertPool(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("mtls: no certificate in the CA bundle %s", file)
	}
	return pool, nil
}

// CachedIdentities is how many certificate checks are cached (for tests
// and metrics).
func (l *Listener) CachedIdentities() int {
	n := 0
	l.cache.Range(func(any, any) bool { n++; return true })
	return n
}
