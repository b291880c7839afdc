package mtls

import (
	"bytes"
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
}

// Listener is the TLS side of the FHIR listener: its certificate and
// client-certificate trust, reloaded when their files change. Client
// certificates are requested on every connection but not demanded (browser
// apps present none); a presented one must be currently valid and, unless
// self-signed (bound to a client's registered key, RFC 8705 §2.2), chain
// to the trusted CAs for client authentication without being revoked —
// otherwise the handshake fails. Policy above decides which clients and
// routes need a certificate (Identify).
type Listener struct {
	o ServerOptions

	mu      sync.RWMutex
	cert    *tls.Certificate
	roots   *x509.CertPool
	crls    []*x509.RevocationList
	gen     uint64 // bumps on every reload: cached identities of older generations are stale
	stamps  map[string]stamp
	checked time.Time
	loadErr error // last reload failure (the previous material stays in use)

	cache   sync.Map     // thumbprint → cachedIdentity
	entries atomic.Int64 // in cache, about: bounded by maxCachedIdentities
}

// maxCachedIdentities bounds the identity cache: anyone can present a
// fresh self-signed certificate on every handshake, so an unbounded cache
// would be a way to fill the server's memory. Past the bound it starts
// over.
const maxCachedIdentities = 10_000

type stamp struct {
	size int64
	mod  time.Time
}

type cachedIdentity struct {
	gen uint64
	id  Identity
	err error
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
	if err := l.reload(); err != nil {
		return nil, err
	}
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
	l.maybeReload()
	leaf := cs.PeerCertificates[0]
	tp := Thumbprint(leaf)
	now := l.o.Now()
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return Identity{}, ErrCertExpired
	}
	l.mu.RLock()
	gen, roots, crls := l.gen, l.roots, l.crls
	l.mu.RUnlock()
	if c, ok := l.cache.Load(tp); ok && c.(cachedIdentity).gen == gen {
		return c.(cachedIdentity).id, c.(cachedIdentity).err
	}
	id, err := identify(leaf, cs.PeerCertificates[1:], roots, crls, now)
	id.Thumbprint = tp
	if l.entries.Add(1) > maxCachedIdentities {
		l.cache.Clear()
		l.entries.Store(1)
	}
	l.cache.Store(tp, cachedIdentity{gen: gen, id: id, err: err})
	return id, err
}

func identify(leaf *x509.Certificate, rest []*x509.Certificate, roots *x509.CertPool, crls []*x509.RevocationList, now time.Time) (Identity, error) {
	id := Identity{SubjectDN: leaf.Subject.String(), DNSNames: leaf.DNSNames, NotAfter: leaf.NotAfter}
	for _, u := range leaf.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	if selfSigned(leaf) {
		return id, nil
	}
	if roots == nil {
		return Identity{}, ErrCertUnknown
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
			return Identity{}, ErrCertUsage
		}
		return Identity{}, ErrCertUnknown
	}
	for _, chain := range chains {
		for i := 0; i+1 < len(chain); i++ {
			if revoked(chain[i], chain[i+1], crls) {
				return Identity{}, ErrCertRevoked
			}
		}
	}
	id.Verified = true
	return id, nil
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
	l.maybeReload()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.cert == nil {
		return nil, ErrNoCertConfig
	}
	return l.cert, nil
}

// ReloadError is the last failure to reload changed files (nil when the
// current files are in use).
func (l *Listener) ReloadError() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.loadErr
}

// maybeReload reloads when CheckEvery has passed and a file changed.
func (l *Listener) maybeReload() {
	now := time.Now()
	l.mu.RLock()
	due := now.Sub(l.checked) >= l.o.CheckEvery
	l.mu.RUnlock()
	if !due {
		return
	}
	l.mu.Lock()
	if now.Sub(l.checked) < l.o.CheckEvery {
		l.mu.Unlock()
		return
	}
	l.checked = now
	changed := false
	for name, st := range l.stamps {
		if fi, err := os.Stat(name); err != nil || fi.Size() != st.size || !fi.ModTime().Equal(st.mod) {
			changed = true
			break
		}
	}
	l.mu.Unlock()
	if changed {
		if err := l.reload(); err != nil {
			l.mu.Lock()
			repeated := l.loadErr != nil && l.loadErr.Error() == err.Error()
			l.loadErr = err
			l.mu.Unlock()
			if l.o.Logger != nil && !repeated {
				l.o.Logger.Warn("TLS files changed but cannot be loaded; the previous certificate, CA bundle and CRLs stay in use", "error", err.Error())
			}
		}
	}
}

// reload reads every file and swaps the material in only if all of it
// loads: a half-written rotation keeps the previous certificate.
func (l *Listener) reload() error {
	files := []string{l.o.CertFile, l.o.KeyFile}
	if l.o.ClientCAFile != "" {
		files = append(files, l.o.ClientCAFile)
	}
	files = append(files, l.o.CRLFiles...)
	stamps := map[string]stamp{}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("mtls: %w", err)
		}
		stamps[f] = stamp{fi.Size(), fi.ModTime()}
	}
	pair, err := tls.LoadX509KeyPair(l.o.CertFile, l.o.KeyFile)
	if err != nil {
		return fmt.Errorf("mtls: loading server certificate: %w", err)
	}
	var roots *x509.CertPool
	if l.o.ClientCAFile != "" {
		b, err := os.ReadFile(l.o.ClientCAFile)
		if err != nil {
			return fmt.Errorf("mtls: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return fmt.Errorf("mtls: no certificate in the client CA bundle %s", l.o.ClientCAFile)
		}
	}
	var crls []*x509.RevocationList
	for _, f := range l.o.CRLFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("mtls: %w", err)
		}
		if p, _ := pem.Decode(b); p != nil && p.Type == "X509 CRL" {
			b = p.Bytes
		}
		crl, err := x509.ParseRevocationList(b)
		if err != nil {
			return fmt.Errorf("mtls: CRL %s: %w", f, err)
		}
		crls = append(crls, crl)
	}
	l.mu.Lock()
	l.cert, l.roots, l.crls, l.stamps, l.loadErr = &pair, roots, crls, stamps, nil
	l.gen++
	l.checked = time.Now()
	l.mu.Unlock()
	return nil
}

// CachedIdentities is how many certificate checks are cached (for tests
// and metrics).
func (l *Listener) CachedIdentities() int {
	n := 0
	l.cache.Range(func(any, any) bool { n++; return true })
	return n
}
