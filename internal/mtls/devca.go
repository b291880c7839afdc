// Package mtls builds Warden's TLS configurations and owns its small PKI:
// the development certificate authority that `warden demo` creates, the
// FHIR listener's TLS (client-certificate identity, CRL and OCSP checks,
// reloading of rotated files) and the per-route client-certificate policy
// (RouteGuard). It never logs key material or certificate subjects and
// writes private keys with mode 0600.
package mtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DevPKI is a development CA and one server certificate signed by it,
// kept as PEM files in a directory.
type DevPKI struct {
	Dir      string
	CAFile   string // CA certificate, to give clients (curl --cacert)
	CertFile string // server certificate chain
	KeyFile  string // server private key
}

// EnsureDevPKI makes sure dir holds a development CA and a server
// certificate valid for hosts (DNS names or IP addresses), creating or
// renewing what is missing, expired (or expiring within a day) or not
// valid for every host. The CA key stays in dir with mode 0600; it is a
// development convenience, not a production CA.
func EnsureDevPKI(dir string, hosts []string, now time.Time) (*DevPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mtls: creating %s: %w", dir, err)
	}
	p := &DevPKI{
		Dir:      dir,
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	caKeyFile := filepath.Join(dir, "ca-key.pem")
	caCert, caKey, err := loadPair(p.CAFile, caKeyFile)
	if err != nil || now.Add(24*time.Hour).After(caCert.NotAfter) {
		caCert, caKey, err = newCA(now)
		if err != nil {
			return nil, err
		}
		if err := writePair(p.CAFile, caKeyFile, caCert, caKey); err != nil {
			return nil, err
		}
	}
	srv, _, err := loadPair(p.CertFile, p.KeyFile)
	if err == nil && serverCertOK(srv, caCert, hosts, now) {
		return p, nil
	}
	srv, srvKey, err := newServerCert(caCert, caKey, hosts, now)
	if err != nil {
		return nil, err
	}
	if err := writePair(p.CertFile, p.KeyFile, srv, srvKey); err != nil {
		return nil, err
	}
	return p, nil
}

func serverCertOK(c, ca *x509.Certificate, hosts []string, now time.Time) bool {
	if now.Add(24*time.Hour).After(c.NotAfter) || c.CheckSignatureFrom(ca) != nil {
		return false
	}
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func newCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Warden development CA", Organization: []string{"Warden (development only)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return issue(tmpl, nil, nil)
}

func newServerCert(ca *x509.Certificate, caKey crypto.Signer, hosts []string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "warden"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.AddDate(0, 3, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(tmpl, ca, caKey)
}

// issue creates a fresh ECDSA P-256 key and a certificate for it from
// tmpl with a random 127-bit serial, signed by parent (self-signed when
// parent is nil).
func issue(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("mtls: creating certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func loadPair(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("mtls: key is not a signer")
	}
	return c, signer, nil
}

func writePair(certFile, keyFile string, c *x509.Certificate, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644)
}

// WriteFileAtomic replaces name with data: written to a temporary file in
// the same directory with mode, fsync'd, renamed over name, and the
// directory fsync'd, so a crash leaves the old file or the new one, never
// a mix. Keys and certificates are written this way (here and by pki).
func WriteFileAtomic(name string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
