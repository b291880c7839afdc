package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The ways to get a certificate the CA must not sign.
func TestIssueRefuses(t *testing.T) {
	ca, dir := newTestCA(t, Options{Days: 1})
	expired, err := Open(dir, testPassphrase, OpenOptions{Now: func() time.Time { return time.Now().Add(25 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	early, err := Open(dir, testPassphrase, OpenOptions{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		ca   *CA
		kind Kind
		cn   string
		o    IssueOptions
		want error
	}{
		{"CA expired", expired, Client, "late", IssueOptions{}, ErrCAExpired},
		{"CA not yet valid", early, Client, "early", IssueOptions{}, ErrCAExpired},
		{"unknown kind", ca, "code-signing", "x", IssueOptions{}, ErrBadKind},
		{"empty kind", ca, "", "x", IssueOptions{}, ErrBadKind},
		{"name escapes the output directory", ca, Client, "../etc/passwd", IssueOptions{}, ErrBadName},
		{"name with a slash", ca, Client, "a/b", IssueOptions{}, ErrBadName},
		{"name starting with a dot", ca, Client, ".hidden", IssueOptions{}, ErrBadName},
		{"empty name", ca, Client, "", IssueOptions{}, ErrBadName},
		{"name too long", ca, Client, string(bytes.Repeat([]byte("a"), 65)), IssueOptions{}, ErrBadName},
		{"DNS name with an underscore", ca, Server, "s", IssueOptions{DNSNames: []string{"a_b.example"}}, ErrBadDNSName},
		{"DNS name with a trailing dot", ca, Server, "s", IssueOptions{DNSNames: []string{"fhir.example."}}, ErrBadDNSName},
		{"DNS name that is an IP", ca, Server, "s", IssueOptions{DNSNames: []string{"10.0.0.1"}}, ErrBadDNSName},
		{"DNS label too long", ca, Server, "s", IssueOptions{DNSNames: []string{string(bytes.Repeat([]byte("a"), 64)) + ".example"}}, ErrBadDNSName},
		{"DNS label with a leading hyphen", ca, Server, "s", IssueOptions{DNSNames: []string{"-a.example"}}, ErrBadDNSName},
		{"DNS name with a space", ca, Server, "s", IssueOptions{DNSNames: []string{"a b.example"}}, ErrBadDNSName},
		{"unicode DNS name", ca, Server, "s", IssueOptions{DNSNames: []string{"hôpital.example"}}, ErrBadDNSName},
		{"wildcard on a client", ca, Client, "c", IssueOptions{DNSNames: []string{"*.example.org"}}, ErrBadDNSName},
		{"wildcard over a TLD", ca, Server, "s", IssueOptions{DNSNames: []string{"*.org"}}, ErrBadDNSName},
		{"wildcard not leftmost", ca, Server, "s", IssueOptions{DNSNames: []string{"a.*.example.org"}}, ErrBadDNSName},
		{"SPIFFE ID with uppercase trust domain", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://Hospital.example/svc"}}, ErrBadSPIFFEID},
		{"SPIFFE ID with a query", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://h.example/svc?x=1"}}, ErrBadSPIFFEID},
		{"SPIFFE ID with a port", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://h.example:8443/svc"}}, ErrBadSPIFFEID},
		{"SPIFFE ID with a dot-dot segment", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://h.example/a/../b"}}, ErrBadSPIFFEID},
		{"SPIFFE ID with a trailing slash", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://h.example/svc/"}}, ErrBadSPIFFEID},
		{"SPIFFE ID with user info", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://u@h.example/svc"}}, ErrBadSPIFFEID},
		{"SPIFFE scheme in uppercase", ca, Client, "c", IssueOptions{URIs: []string{"SPIFFE://h.example/svc"}}, ErrBadSPIFFEID},
		{"two SPIFFE IDs", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://h.example/a", "spiffe://h.example/b"}}, ErrTwoSPIFFEIDs},
		{"SPIFFE ID and another URI", ca, Client, "c", IssueOptions{URIs: []string{"spiffe://h.example/a", "https://h.example/"}}, ErrTwoSPIFFEIDs},
		{"relative URI", ca, Client, "c", IssueOptions{URIs: []string{"/svc"}}, ErrBadURI},
		{"URI without a host", ca, Client, "c", IssueOptions{URIs: []string{"https:///svc"}}, ErrBadURI},
		{"URI with a fragment", ca, Client, "c", IssueOptions{URIs: []string{"https://h.example/#x"}}, ErrBadURI},
		{"URI with a space", ca, Client, "c", IssueOptions{URIs: []string{"https://h.example/a b"}}, ErrBadURI},
		{"URI with user info", ca, Client, "c", IssueOptions{URIs: []string{"https://u:p@h.example/"}}, ErrBadURI},
		{"unspecified IP", ca, Server, "s", IssueOptions{IPs: []net.IP{net.IPv4zero}}, ErrBadIP},
		{"malformed IP", ca, Server, "s", IssueOptions{IPs: []net.IP{{1, 2, 3}}}, ErrBadIP},
		{"server without a name", ca, Server, "not_a_host", IssueOptions{}, ErrNoServerName},
		{"too many days", ca, Server, "fhir.example", IssueOptions{Days: MaxLeafDays + 1}, ErrBadDays},
		{"negative days", ca, Client, "c", IssueOptions{Days: -1}, ErrBadDays},
		{"short key passphrase", ca, Client, "c", IssueOptions{KeyPassphrase: []byte("short")}, ErrWeakPassphrase},
		{"weak key work factor", ca, Client, "c", IssueOptions{KeyPassphrase: testPassphrase, KeyWorkFactor: 10}, ErrBadOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if is, err := tc.ca.Issue(tc.kind, tc.cn, tc.o); !errors.Is(err, tc.want) {
				t.Fatalf("Issue = %v, %v; want %v", is, err, tc.want)
			}
		})
	}
	if l, err := ca.List(); err != nil || len(l) != 0 {
		t.Errorf("refused requests were recorded: %v, %v", l, err)
	}
}

func verifyFor(ca *CA, c *x509.Certificate, usage x509.ExtKeyUsage) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestIssuedCertificates(t *testing.T) {
	ca, dir := newTestCA(t, Options{Name: "Hospital A CA"})
	client, err := ca.Issue(Client, "lab-backend", IssueOptions{URIs: []string{"spiffe://hospital-a.example/ns/lab/sa/backend"}})
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(Server, "fhir.hospital-a.example", IssueOptions{
		DNSNames: []string{"fhir.hospital-a.example", "*.api.hospital-a.example"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("client for clientAuth only", func(t *testing.T) {
		c := client.Certificate
		if err := verifyFor(ca, c, x509.ExtKeyUsageClientAuth); err != nil {
			t.Errorf("verify clientAuth: %v", err)
		}
		if err := verifyFor(ca, c, x509.ExtKeyUsageServerAuth); err == nil {
			t.Error("a client certificate verifies for serverAuth")
		}
		if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://hospital-a.example/ns/lab/sa/backend" {
			t.Errorf("URI SANs %v", c.URIs)
		}
		if c.Subject.CommonName != "lab-backend" {
			t.Errorf("CN %q", c.Subject.CommonName)
		}
		if want := time.Duration(DefaultClientDays) * 24 * time.Hour; c.NotAfter.Sub(c.NotBefore) != want+time.Minute {
			t.Errorf("validity %v, want %v and the minute of backdating", c.NotAfter.Sub(c.NotBefore), want)
		}
	})
	t.Run("server for serverAuth only", func(t *testing.T) {
		c := server.Certificate
		if err := verifyFor(ca, c, x509.ExtKeyUsageServerAuth); err != nil {
			t.Errorf("verify serverAuth: %v", err)
		}
		if err := verifyFor(ca, c, x509.ExtKeyUsageClientAuth); err == nil {
			t.Error("a server certificate verifies for clientAuth")
		}
		for _, h := range []string{"fhir.hospital-a.example", "x.api.hospital-a.example", "127.0.0.1", "::1"} {
			if err := c.VerifyHostname(h); err != nil {
				t.Errorf("VerifyHostname(%s): %v", h, err)
			}
		}
		if err := c.VerifyHostname("evil.example"); err == nil {
			t.Error("VerifyHostname accepts another name")
		}
	})
	t.Run("profile", func(t *testing.T) {
		for _, is := range []*Issued{client, server} {
			c := is.Certificate
			if c.IsCA || !c.BasicConstraintsValid {
				t.Errorf("%s: CA %v", is.Name, c.IsCA)
			}
			if len(c.ExtKeyUsage) != 1 || len(c.UnknownExtKeyUsage) != 0 {
				t.Errorf("%s: EKUs %v %v", is.Name, c.ExtKeyUsage, c.UnknownExtKeyUsage)
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("%s: key usage %b", is.Name, c.KeyUsage)
			}
			if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("%s: signature algorithm %v", is.Name, c.SignatureAlgorithm)
			}
			if !bytes.Equal(c.AuthorityKeyId, ca.Certificate().SubjectKeyId) || len(c.SubjectKeyId) != 20 {
				t.Errorf("%s: key identifiers AKI %x SKID %x", is.Name, c.AuthorityKeyId, c.SubjectKeyId)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || c.SerialNumber.BitLen() < 96 {
				t.Errorf("%s: serial of %d bits", is.Name, c.SerialNumber.BitLen())
			}
			if ago := time.Since(c.NotBefore); ago < time.Minute-5*time.Second || ago > 2*time.Minute {
				t.Errorf("%s: not before %v ago, want about a minute", is.Name, ago)
			}
			if !parseKeyPEM(t, is.KeyPEM).PublicKey.Equal(c.PublicKey) {
				t.Errorf("%s: key does not match the certificate", is.Name)
			}
			if !bytes.Equal(parseCertPEM(t, is.CertPEM).Raw, c.Raw) {
				t.Errorf("%s: CertPEM differs", is.Name)
			}
			copyPEM, err := os.ReadFile(filepath.Join(dir, IssuedDir, FormatSerial(c.SerialNumber)+".pem"))
			if err != nil || !bytes.Equal(copyPEM, is.CertPEM) {
				t.Errorf("%s: the CA kept no copy: %v", is.Name, err)
			}
		}
	})
	t.Run("index", func(t *testing.T) {
		l, err := ca.List()
		if err != nil || len(l) != 2 {
			t.Fatalf("List = %v, %v", l, err)
		}
		if l[0].Serial != client.Entry.Serial || l[0].Kind != Client || l[0].Status != StatusValid || l[0].URIs[0] != "spiffe://hospital-a.example/ns/lab/sa/backend" {
			t.Errorf("client entry %+v", l[0])
		}
		if l[1].Kind != Server || len(l[1].IPs) != 2 || len(l[1].DNSNames) != 2 {
			t.Errorf("server entry %+v", l[1])
		}
	})
}

func TestIssueDefaultsAndClamps(t *testing.T) {
	ca, _ := newTestCA(t, Options{Days: 30})
	s, err := ca.Issue(Server, "fhir.example", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Certificate.DNSNames) != 1 || s.Certificate.DNSNames[0] != "fhir.example" {
		t.Errorf("a server certificate without --dns is not for its NAME: %v", s.Certificate.DNSNames)
	}
	if !s.Certificate.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Errorf("not after %v, want the CA's %v", s.Certificate.NotAfter, ca.Certificate().NotAfter)
	}
	c, err := ca.Issue(Client, "short", IssueOptions{Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Certificate.NotAfter.Sub(c.Certificate.NotBefore); d != 24*time.Hour+time.Minute {
		t.Errorf("validity %v", d)
	}
}

func TestIssueSealedKey(t *testing.T) {
	ca, _ := newTestCA(t, Options{})
	is, err := ca.Issue(Client, "partner", IssueOptions{KeyPassphrase: testPassphrase, KeyWorkFactor: MinWorkFactor})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(is.KeyPEM, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Fatalf("key not sealed:\n%s", is.KeyPEM)
	}
	if _, err := openKey(is.KeyPEM, []byte("not the passphrase")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase opens the key: %v", err)
	}
	k, err := openKey(is.KeyPEM, testPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeyEqual(k.Public(), is.Certificate.PublicKey) {
		t.Error("sealed key does not match")
	}
}

func TestWriteFiles(t *testing.T) {
	ca, _ := newTestCA(t, Options{})
	is, err := ca.Issue(Client, "backend", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	certFile, keyFile, err := is.WriteFiles(out, false)
	if err != nil {
		t.Fatal(err)
	}
	for f, mode := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600, out: 0o700} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", f, st.Mode().Perm(), err, mode)
		}
	}
	if _, _, err := is.WriteFiles(out, false); !errors.Is(err, ErrFileExists) {
		t.Errorf("second WriteFiles: %v, want ErrFileExists", err)
	}
	if _, _, err := is.WriteFiles(out, true); err != nil {
		t.Errorf("WriteFiles replace: %v", err)
	}
	if c, k := OutputFiles(out, "backend"); c != certFile || k != keyFile {
		t.Errorf("OutputFiles = %s %s", c, k)
	}
}

// Concurrent Issue calls, from two handles on the same directory (as two
// processes would), give unique serials and an index holding all of them.
func TestConcurrentIssue(t *testing.T) {
	ca, dir := newTestCA(t, Options{})
	other, err := Open(dir, testPassphrase, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 4
	var wg sync.WaitGroup
	serials := make(chan string, workers*each)
	errs := make(chan error, workers*each)
	for w := range workers {
		h := ca
		if w%2 == 1 {
			h = other
		}
		wg.Go(func() {
			for i := range each {
				is, err := h.Issue(Client, fmt.Sprintf("c%d-%d", w, i), IssueOptions{})
				if err != nil {
					errs <- err
					return
				}
				serials <- is.Entry.Serial
			}
		})
	}
	wg.Wait()
	close(serials)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for s := range serials {
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
	l, err := ca.List()
	if err != nil || len(l) != workers*each {
		t.Fatalf("index has %d entries (%v), want %d", len(l), err, workers*each)
	}
	for _, e := range l {
		if !seen[e.Serial] {
			t.Errorf("index entry %s was not returned by Issue", e.Serial)
		}
	}
	files, _ := os.ReadDir(filepath.Join(dir, IssuedDir))
	if len(files) != workers*each {
		t.Errorf("%d issued copies", len(files))
	}
}
