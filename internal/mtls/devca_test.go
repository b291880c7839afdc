package mtls_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

var devHosts = []string{"localhost", "127.0.0.1", "::1", "warden.test"}

// pkiFiles are the four files of a development PKI, by name.
type pkiFiles map[string][]byte

var pkiNames = []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"}

func readPKI(t *testing.T, dir string) pkiFiles {
	t.Helper()
	out := pkiFiles{}
	for _, name := range pkiNames {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		out[name] = b
	}
	return out
}

func ensure(t *testing.T, dir string, hosts []string, now time.Time) *mtls.DevPKI {
	t.Helper()
	p, err := mtls.EnsureDevPKI(dir, hosts, now)
	if err != nil {
		t.Fatalf("EnsureDevPKI: %v", err)
	}
	return p
}

func parseCertFile(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// verify checks the server certificate of p against the CA of caDir for
// host at now.
func verify(t *testing.T, p *mtls.DevPKI, caFile, host string, now time.Time, usage x509.ExtKeyUsage) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(parseCertFile(t, caFile))
	_, err := parseCertFile(t, p.CertFile).Verify(x509.VerifyOptions{
		DNSName:     host,
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{usage},
	})
	return err
}

func assertVerifies(t *testing.T, p *mtls.DevPKI, hosts []string, now time.Time) {
	t.Helper()
	for _, h := range hosts {
		if err := verify(t, p, p.CAFile, h, now, x509.ExtKeyUsageServerAuth); err != nil {
			t.Errorf("server certificate does not verify for %q: %v", h, err)
		}
	}
}

func TestEnsureDevPKICreatesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	now := time.Now()
	p := ensure(t, dir, devHosts, now)

	want := map[string]string{
		"ca.pem":         p.CAFile,
		"server.pem":     p.CertFile,
		"server-key.pem": p.KeyFile,
	}
	for name, got := range want {
		if got != filepath.Join(dir, name) {
			t.Errorf("DevPKI path for %s = %q, want it in %s", name, got, dir)
		}
	}
	if p.Dir != dir {
		t.Errorf("Dir = %q, want %q", p.Dir, dir)
	}
	for _, name := range pkiNames {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "ca-key.pem" || name == "server-key.pem" {
			if mode := fi.Mode().Perm(); mode != 0o600 {
				t.Errorf("%s mode = %o, want 600", name, mode)
			}
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		t.Errorf("directory mode = %o, want no group or other access", mode)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(pkiNames) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %v (no temporary files left)", names, pkiNames)
	}

	ca := parseCertFile(t, p.CAFile)
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA=%v BasicConstraintsValid=%v KeyUsage=%b", ca.IsCA, ca.BasicConstraintsValid, ca.KeyUsage)
	}
	srv := parseCertFile(t, p.CertFile)
	if srv.IsCA {
		t.Error("server certificate is a CA")
	}
	for name, b := range readPKI(t, dir) {
		if name == "ca-key.pem" || name == "server-key.pem" {
			if block, _ := pem.Decode(b); block == nil || block.Type != "PRIVATE KEY" {
				t.Errorf("%s: not a PKCS #8 PRIVATE KEY block", name)
			}
		}
	}
}

func TestEnsureDevPKIServerCertificateHosts(t *testing.T) {
	now := time.Now()
	p := ensure(t, t.TempDir(), devHosts, now)
	other := ensure(t, t.TempDir(), devHosts, now)

	// The ways around the certificate first.
	refused := []struct {
		name   string
		host   string
		caFile string
		usage  x509.ExtKeyUsage
		at     time.Time
	}{
		{"other DNS name", "evil.test", p.CAFile, x509.ExtKeyUsageServerAuth, now},
		{"subdomain of a host", "api.warden.test", p.CAFile, x509.ExtKeyUsageServerAuth, now},
		{"host as a suffix", "evilwarden.test", p.CAFile, x509.ExtKeyUsageServerAuth, now},
		{"other IPv4 address", "127.0.0.2", p.CAFile, x509.ExtKeyUsageServerAuth, now},
		{"other IPv6 address", "::2", p.CAFile, x509.ExtKeyUsageServerAuth, now},
		{"IP address as a DNS name", "127.0.0.1.nip.io", p.CAFile, x509.ExtKeyUsageServerAuth, now},
		{"another development CA", "localhost", other.CAFile, x509.ExtKeyUsageServerAuth, now},
		{"used as a client certificate", "localhost", p.CAFile, x509.ExtKeyUsageClientAuth, now},
		{"after it expired", "localhost", p.CAFile, x509.ExtKeyUsageServerAuth, now.AddDate(0, 4, 0)},
		{"before it was issued", "localhost", p.CAFile, x509.ExtKeyUsageServerAuth, now.Add(-2 * time.Hour)},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if err := verify(t, p, tc.caFile, tc.host, tc.at, tc.usage); err == nil {
				t.Errorf("server certificate verified for %q; want an error", tc.host)
			}
		})
	}

	for _, h := range devHosts {
		t.Run("host "+h, func(t *testing.T) {
			if err := verify(t, p, p.CAFile, h, now, x509.ExtKeyUsageServerAuth); err != nil {
				t.Errorf("server certificate does not verify for %q: %v", h, err)
			}
		})
	}
}

func TestEnsureDevPKIReusesFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ensure(t, dir, devHosts, now)
	first := readPKI(t, dir)

	for _, tc := range []struct {
		name  string
		hosts []string
		now   time.Time
	}{
		{"same call", devHosts, now},
		{"a day later", devHosts, now.Add(24 * time.Hour)},
		{"fewer hosts", devHosts[:1], now},
		{"hosts in another order", []string{"warden.test", "::1", "127.0.0.1", "localhost"}, now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ensure(t, dir, tc.hosts, tc.now)
			again := readPKI(t, dir)
			for _, name := range pkiNames {
				if !bytes.Equal(first[name], again[name]) {
					t.Errorf("%s was rewritten; want the same bytes", name)
				}
			}
		})
	}
}

func TestEnsureDevPKINewHostKeepsCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ensure(t, dir, devHosts, now)
	first := readPKI(t, dir)
	oldSerial := parseCertFile(t, filepath.Join(dir, "server.pem")).SerialNumber

	hosts := append(append([]string(nil), devHosts...), "api.example.test", "192.0.2.7")
	p := ensure(t, dir, hosts, now)
	again := readPKI(t, dir)

	for _, name := range []string{"ca.pem", "ca-key.pem"} {
		if !bytes.Equal(first[name], again[name]) {
			t.Errorf("%s changed when only a host was added", name)
		}
	}
	for _, name := range []string{"server.pem", "server-key.pem"} {
		if bytes.Equal(first[name], again[name]) {
			t.Errorf("%s was not re-issued for the new host", name)
		}
	}
	if parseCertFile(t, p.CertFile).SerialNumber.Cmp(oldSerial) == 0 {
		t.Error("re-issued server certificate has the old serial number")
	}
	assertVerifies(t, p, hosts, now)
	assertKeyModes(t, dir)
}

func TestEnsureDevPKIRenewsCA(t *testing.T) {
	start := time.Now()
	for _, tc := range []struct {
		name    string
		at      time.Time
		renewCA bool
	}{
		// The CA lives a year; it is replaced when it expires within a day.
		{"expired", start.AddDate(1, 0, 1), true},
		{"expiring within the day", start.AddDate(1, 0, 0).Add(-12 * time.Hour), true},
		{"still valid for two days", start.AddDate(1, 0, 0).Add(-48 * time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ensure(t, dir, devHosts, start)
			first := readPKI(t, dir)

			p := ensure(t, dir, devHosts, tc.at)
			again := readPKI(t, dir)
			caChanged := !bytes.Equal(first["ca.pem"], again["ca.pem"])
			keyChanged := !bytes.Equal(first["ca-key.pem"], again["ca-key.pem"])
			if caChanged != tc.renewCA || keyChanged != tc.renewCA {
				t.Errorf("CA certificate changed=%v, key changed=%v; want %v", caChanged, keyChanged, tc.renewCA)
			}
			// The server certificate (3 months) has expired by then in
			// every case, and must chain to the CA in place.
			if bytes.Equal(first["server.pem"], again["server.pem"]) {
				t.Error("server certificate was not re-issued")
			}
			if tc.renewCA {
				if ca := parseCertFile(t, p.CAFile); !ca.NotAfter.After(tc.at.Add(24 * time.Hour)) {
					t.Errorf("new CA expires %v, want well after %v", ca.NotAfter, tc.at)
				}
			}
			assertVerifies(t, p, devHosts, tc.at)
			assertKeyModes(t, dir)
		})
	}
}

func TestEnsureDevPKIReplacesBadFiles(t *testing.T) {
	now := time.Now()
	foreign := readPKI(t, ensure(t, t.TempDir(), devHosts, now).Dir)
	for _, tc := range []struct {
		name    string
		files   pkiFiles // overwritten before the second call
		renewCA bool
	}{
		{"corrupted server.pem", pkiFiles{"server.pem": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}, false},
		{"empty server.pem", pkiFiles{"server.pem": nil}, false},
		{"corrupted server key", pkiFiles{"server-key.pem": []byte("not a key")}, false},
		{"server key of another certificate", pkiFiles{"server-key.pem": foreign["server-key.pem"]}, false},
		{"server certificate of another CA", pkiFiles{"server.pem": foreign["server.pem"], "server-key.pem": foreign["server-key.pem"]}, false},
		{"server certificate is the CA", pkiFiles{"server.pem": foreign["ca.pem"], "server-key.pem": foreign["ca-key.pem"]}, false},
		{"corrupted CA", pkiFiles{"ca.pem": []byte("garbage")}, true},
		{"CA key of another CA", pkiFiles{"ca-key.pem": foreign["ca-key.pem"]}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ensure(t, dir, devHosts, now)
			first := readPKI(t, dir)
			for name, b := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			p := ensure(t, dir, devHosts, now)
			again := readPKI(t, dir)
			if caChanged := !bytes.Equal(first["ca.pem"], again["ca.pem"]); caChanged != tc.renewCA {
				t.Errorf("CA changed = %v, want %v", caChanged, tc.renewCA)
			}
			for name, b := range tc.files {
				if bytes.Equal(again[name], b) {
					t.Errorf("%s still holds the bad content", name)
				}
			}
			if bytes.Equal(again["server.pem"], foreign["server.pem"]) {
				t.Error("server.pem is the foreign certificate")
			}
			assertVerifies(t, p, devHosts, now)
			assertKeyModes(t, dir)
		})
	}
}

func TestEnsureDevPKIUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mtls.EnsureDevPKI(filepath.Join(file, "pki"), devHosts, time.Now()); err == nil {
		t.Fatal("EnsureDevPKI under a regular file succeeded; want an error")
	}
}

func assertKeyModes(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"ca-key.pem", "server-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s mode = %o, want 600", name, mode)
		}
	}
}
