package mtls_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// testCA is a CA for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64 = 1000

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestCA(t testing.TB, name string) *testCA {
	key := newKey(t)
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

// issue makes a leaf; ca nil makes it self-signed.
func (ca *testCA) issue(t testing.TB, cn string, usage x509.ExtKeyUsage, notAfter time.Time) tls.Certificate {
	key := newKey(t)
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func (ca *testCA) crl(t testing.TB, number int64, revoked ...*x509.Certificate) []byte {
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number),
		ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func writePEM(t testing.TB, name string, c tls.Certificate) (certFile, keyFile string) {
	certFile, keyFile = name+".pem", name+"-key.pem"
	kd, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// mtlsEnv is a server with a Listener, and the CAs around it.
type mtlsEnv struct {
	dir                      string
	serverCA, trusted, other *testCA
	crlFile                  string
	listener                 *mtls.Listener
	logs                     *syncBuffer
	addr                     string
	certFile, keyFile        string
}

func newEnv(t *testing.T) *mtlsEnv { return newEnvWith(t, nil, nil) }

// newEnvWith is newEnv with changed options (set before the listener is
// made) and a handler wrapped around the default one.
func newEnvWith(t *testing.T, opts func(*mtlsEnv, *mtls.ServerOptions), wrap func(*mtls.Listener, http.Handler) http.Handler) *mtlsEnv {
	e := &mtlsEnv{dir: t.TempDir(), serverCA: newTestCA(t, "server CA"), trusted: newTestCA(t, "partner CA"), other: newTestCA(t, "other CA")}
	e.certFile, e.keyFile = writePEM(t, filepath.Join(e.dir, "server"), e.serverCA.issue(t, "server", x509.ExtKeyUsageServerAuth, time.Now().Add(time.Hour)))
	bundle := filepath.Join(e.dir, "clients-ca.pem")
	os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.trusted.cert.Raw}), 0o600)
	e.crlFile = filepath.Join(e.dir, "partner.crl")
	os.WriteFile(e.crlFile, e.trusted.crl(t, 1), 0o600)
	e.logs = &syncBuffer{}
	o := mtls.ServerOptions{CertFile: e.certFile, KeyFile: e.keyFile, ClientCAFile: bundle,
		CRLFiles: []string{e.crlFile}, CheckEvery: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(e.logs, nil))}
	if opts != nil {
		opts(e, &o)
	}
	l, err := mtls.NewListener(o)
	if err != nil {
		t.Fatal(err)
	}
	e.listener = l
	ln, err := tls.Listen("tcp", "127.0.0.1:0", l.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := l.Identify(r.TLS)
		if err != nil {
			http.Error(w, "refused", 403)
			return
		}
		io.WriteString(w, id.Thumbprint+" "+map[bool]string{true: "verified", false: "unverified"}[id.Verified])
	})
	if wrap != nil {
		h = wrap(l, h)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.addr = ln.Addr().String()
	return e
}

func (e *mtlsEnv) client(cert *tls.Certificate, maxVersion uint16) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(e.serverCA.cert)
	cfg := &tls.Config{RootCAs: pool, MaxVersion: maxVersion}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func (e *mtlsEnv) get(cert *tls.Certificate) (string, error) {
	resp, err := e.client(cert, 0).Get("https://" + e.addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), nil
}

func thumb(c tls.Certificate) string {
	s := sha256.Sum256(c.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// Client certificates that must not get through the handshake, each
// tried over a real TLS connection.
func TestListenerRefusesCertificates(t *testing.T) {
	e := newEnv(t)
	soon := time.Now().Add(time.Hour)
	revokedCert := e.trusted.issue(t, "revoked app", x509.ExtKeyUsageClientAuth, soon)
	os.WriteFile(e.crlFile, e.trusted.crl(t, 2, revokedCert.Leaf), 0o600)
	time.Sleep(20 * time.Millisecond)
	cases := map[string]tls.Certificate{
		"from an untrusted CA": e.other.issue(t, "app", x509.ExtKeyUsageClientAuth, soon),
		"expired, trusted CA":  e.trusted.issue(t, "app", x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Minute)),
		"expired, self-signed": (*testCA)(nil).issue(t, "app", x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Minute)),
		"server-only usage":    e.trusted.issue(t, "app", x509.ExtKeyUsageServerAuth, soon),
		"revoked in the CRL":   revokedCert,
	}
	for name, cert := range cases {
		t.Run(name, func(t *testing.T) {
			if body, err := e.get(&cert); err == nil {
				t.Fatalf("handshake accepted the certificate: %q", body)
			}
		})
	}
}

func TestListenerAcceptsAndIdentifies(t *testing.T) {
	e := newEnv(t)
	soon := time.Now().Add(time.Hour)
	if body, err := e.get(nil); err != nil || body != " unverified" {
		t.Fatalf("no certificate: %q, %v", body, err)
	}
	pki := e.trusted.issue(t, "partner app", x509.ExtKeyUsageClientAuth, soon)
	if body, err := e.get(&pki); err != nil || body != thumb(pki)+" verified" {
		t.Fatalf("trusted CA: %q, %v", body, err)
	}
	self := (*testCA)(nil).issue(t, "phone", x509.ExtKeyUsageClientAuth, soon)
	if body, err := e.get(&self); err != nil || body != thumb(self)+" unverified" {
		t.Fatalf("self-signed: %q, %v", body, err)
	}
	// Revoking a certificate that was accepted takes effect on the next
	// connection, once the CRL file changes.
	os.WriteFile(e.crlFile, e.trusted.crl(t, 3, pki.Leaf), 0o600)
	time.Sleep(20 * time.Millisecond)
	if body, err := e.get(&pki); err == nil {
		t.Fatalf("revoked after a CRL update, still accepted: %q", body)
	}
}

// A rotated server certificate is served to new connections without a
// restart; a connection opened before keeps working; a broken rotation
// keeps the previous certificate.
func TestListenerRotatesServerCertificate(t *testing.T) {
	e := newEnv(t)
	old := e.client(nil, 0)
	served := func(c *http.Client) *x509.Certificate {
		t.Helper()
		resp, err := c.Get("https://" + e.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body) // so the connection is kept for reuse
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0]
	}
	first := served(old)
	next := e.serverCA.issue(t, "server 2", x509.ExtKeyUsageServerAuth, time.Now().Add(2*time.Hour))
	writePEM(t, filepath.Join(e.dir, "server"), next)
	time.Sleep(20 * time.Millisecond)
	if got := served(e.client(nil, 0)); !got.Equal(next.Leaf) {
		t.Fatalf("new connection got %s, want the rotated certificate", got.Subject)
	}
	if got := served(old); !got.Equal(first) {
		t.Fatalf("the keep-alive connection changed certificate")
	}
	os.WriteFile(e.certFile, []byte("not a certificate"), 0o600)
	time.Sleep(20 * time.Millisecond)
	if got := served(e.client(nil, 0)); !got.Equal(next.Leaf) {
		t.Fatalf("a broken rotation replaced the certificate")
	}
	if e.listener.ReloadError() == nil {
		t.Fatal("no reload error reported for a broken certificate file")
	}
	time.Sleep(20 * time.Millisecond)
	served(e.client(nil, 0)) // another check of the same broken file
	if n := strings.Count(e.logs.String(), "cannot be loaded"); n != 1 {
		t.Fatalf("the broken rotation was logged %d times, want once:\n%s", n, e.logs.String())
	}
}

func TestListenerVersions(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client(nil, tls.VersionTLS12).Get("https://" + e.addr + "/"); err == nil {
		t.Fatal("TLS 1.2 accepted by a 1.3-only listener")
	}
	if _, err := mtls.NewListener(mtls.ServerOptions{CertFile: e.certFile, KeyFile: e.keyFile, MinVersion: "1.1"}); err == nil {
		t.Fatal("TLS 1.1 minimum accepted")
	}
	l, err := mtls.NewListener(mtls.ServerOptions{CertFile: e.certFile, KeyFile: e.keyFile, MinVersion: "1.2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.TLSConfig().CipherSuites {
		for _, weak := range tls.InsecureCipherSuites() {
			if s == weak.ID {
				t.Fatalf("insecure suite %s allowed", weak.Name)
			}
		}
	}
	if _, err := mtls.NewListener(mtls.ServerOptions{CertFile: filepath.Join(e.dir, "missing.pem"), KeyFile: e.keyFile}); err == nil {
		t.Fatal("missing certificate file accepted")
	}
}

// A client presenting a fresh self-signed certificate on every handshake
// does not grow the server's memory without bound.
func TestListenerIdentityCacheBounded(t *testing.T) {
	e := newEnv(t)
	cert := (*testCA)(nil).issue(t, "flood", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))
	for i := range 10_050 {
		leaf := *cert.Leaf
		leaf.Raw = append([]byte{byte(i), byte(i >> 8)}, cert.Leaf.Raw...) // a distinct thumbprint each time
		if _, err := e.listener.Identify(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{&leaf}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.listener.CachedIdentities(); n > 10_000 {
		t.Fatalf("%d identities cached", n)
	}
}

// syncBuffer is a bytes.Buffer safe for the listener's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
