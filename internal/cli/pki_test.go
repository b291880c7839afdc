package cli

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/pki"
)

const testPKIPassphrase = "a long enough test passphrase"

// pkiCLI runs 'warden pki args...' in-process the way run does for a
// registered command, with environ as the environment, and returns the
// exit status and output.
func pkiCLI(t *testing.T, environ []string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := pkiCommand()
	fs := newFlagSet(c, &errb)
	e := &env{ctx: t.Context(), stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, environ: environ}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(&out, c, fs)
			return 0, out.String(), errb.String()
		}
		return 2, out.String(), errb.String()
	}
	if err := c.run(e, fs, fs.Args()); err != nil {
		io.WriteString(&errb, err.Error()+"\n")
		if errors.Is(err, errUsage) {
			return 2, out.String(), errb.String()
		}
		return 1, out.String(), errb.String()
	}
	return 0, out.String(), errb.String()
}

func TestPKIHelp(t *testing.T) {
	code, out, _ := pkiCLI(t, nil, "", "--help")
	if code != 0 {
		t.Fatalf("pki --help exit %d", code)
	}
	for _, want := range []string{"Usage: warden pki", "init", "issue", "revoke", "list", "crl", "WARDEN_PKI_PASSPHRASE", "client_ca_file", "client_crl_files"} {
		if !strings.Contains(out, want) {
			t.Errorf("pki --help lacks %q:\n%s", want, out)
		}
	}
	wants := map[string][]string{
		"init":   {"Usage: warden pki init", "-name NAME", "-days DAYS", "-key-type TYPE", "-passphrase-file FILE", "-dir DIR", "at least 12 characters"},
		"issue":  {"Usage: warden pki issue server|client NAME", "-dns HOST", "-ip ADDR", "-spiffe URI", "-days DAYS", "-out DIR", "-force", "serverAuth", "clientAuth", "397"},
		"revoke": {"Usage: warden pki revoke SERIAL|FILE", "-reason REASON", "keyCompromise", "-crl-days DAYS"},
		"list":   {"Usage: warden pki list", "-json", "Needs no passphrase"},
		"crl":    {"Usage: warden pki crl", "-refresh", "nextUpdate"},
	}
	for verb, want := range wants {
		code, out, _ := pkiCLI(t, nil, "", verb, "--help")
		if code != 0 {
			t.Errorf("pki %s --help exit %d", verb, code)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("pki %s --help lacks %q:\n%s", verb, w, out)
			}
		}
	}
}

// The passphrase is never a flag value (it would show in ps): no verb
// has such a flag, and trying one is a usage error.
func TestPKINoPassphraseFlag(t *testing.T) {
	for _, v := range pkiVerbs() {
		var f pkiFlags
		fs := flag.NewFlagSet(v.name, flag.ContinueOnError)
		v.flags(fs, &f)
		fs.VisitAll(func(fl *flag.Flag) {
			if strings.Contains(fl.Name, "passphrase") && !strings.HasSuffix(fl.Name, "-file") {
				t.Errorf("pki %s has a flag -%s", v.name, fl.Name)
			}
		})
		code, _, stderr := pkiCLI(t, nil, "", v.name, "--passphrase", testPKIPassphrase)
		if code != 2 {
			t.Errorf("pki %s --passphrase: exit %d", v.name, code)
		}
		if strings.Contains(stderr, testPKIPassphrase) {
			t.Errorf("pki %s echoes the passphrase: %s", v.name, stderr)
		}
	}
}

// newCLICA creates a CA with the cheapest allowed scrypt cost through the
// command line and returns its directory and an environment carrying the
// passphrase.
func newCLICA(t *testing.T) (dir string, environ []string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "ca")
	environ = []string{"WARDEN_PKI_PASSPHRASE=" + testPKIPassphrase}
	code, out, stderr := pkiCLI(t, environ, "", "init", "--dir", dir, "--name", "Hospital A mTLS CA", "--scrypt-work-factor", "15")
	if code != 0 {
		t.Fatalf("pki init: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "SHA-256 fingerprint") || !strings.Contains(out, filepath.Join(dir, "ca.pem")) {
		t.Errorf("pki init output:\n%s", out)
	}
	return dir, environ
}

func TestPKIRefuses(t *testing.T) {
	dir, environ := newCLICA(t)
	wrongFile := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongFile, []byte("not the passphrase at all\n"), 0o600)
	out := t.TempDir()
	cases := []struct {
		name     string
		environ  []string
		args     []string
		code     int
		inStderr string
	}{
		{"no passphrase", nil, []string{"issue", "client", "c", "--dir", dir, "--out", out}, 2, "WARDEN_PKI_PASSPHRASE"},
		{"wrong passphrase file", nil, []string{"issue", "client", "c", "--dir", dir, "--out", out, "--passphrase-file", wrongFile}, 1, "wrong passphrase"},
		{"wrong passphrase in the environment", []string{"WARDEN_PKI_PASSPHRASE=guess guess guess"}, []string{"revoke", "ab", "--dir", dir}, 1, "wrong passphrase"},
		{"init over an existing CA", environ, []string{"init", "--dir", dir}, 1, "already exists"},
		{"short passphrase at init", []string{"WARDEN_PKI_PASSPHRASE=short"}, []string{"init", "--dir", filepath.Join(t.TempDir(), "x")}, 1, "at least 12"},
		{"unknown verb", environ, []string{"sign", "--dir", dir}, 2, "unknown subcommand"},
		{"no verb", environ, nil, 2, "expected one of"},
		{"unknown kind", environ, []string{"issue", "codesign", "c", "--dir", dir, "--out", out}, 2, "server or client"},
		{"NAME escaping --out", environ, []string{"issue", "client", "../../x", "--dir", dir, "--out", out}, 1, "certificate name"},
		{"bad SPIFFE ID", environ, []string{"issue", "client", "c", "--spiffe", "spiffe://Hospital/x", "--dir", dir, "--out", out}, 1, "SPIFFE"},
		{"bad IP", environ, []string{"issue", "server", "s.example", "--ip", "300.1.1.1", "--dir", dir, "--out", out}, 2, "not an IP"},
		{"bad DNS name", environ, []string{"issue", "server", "s", "--dns", "a_b.example", "--dir", dir, "--out", out}, 1, "DNS name"},
		{"too many days", environ, []string{"issue", "server", "s.example", "--days", "398", "--dir", dir, "--out", out}, 1, "397"},
		{"unknown serial", environ, []string{"revoke", "abcdef", "--dir", dir}, 1, "no certificate with that serial"},
		{"not a serial nor a file", environ, []string{"revoke", "no-such-file.pem", "--dir", dir}, 1, "serial number"},
		{"bad reason", environ, []string{"revoke", "ab", "--reason", "certificateHold", "--dir", dir}, 2, "reason"},
		{"no CA", environ, []string{"list", "--dir", t.TempDir()}, 1, "no CA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := pkiCLI(t, tc.environ, "", tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.inStderr)
			}
			if strings.Contains(stderr, testPKIPassphrase) {
				t.Errorf("stderr contains the passphrase")
			}
		})
	}
	if code, stdout, _ := pkiCLI(t, nil, "", "list", "--dir", dir, "--json"); code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("refused commands issued certificates: %s", stdout)
	}
}

func TestPKIEndToEnd(t *testing.T) {
	dir, environ := newCLICA(t)
	out := filepath.Join(t.TempDir(), "out")
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte(testPKIPassphrase+"\n"), 0o600)

	code, stdout, stderr := pkiCLI(t, nil, "", "issue", "server", "fhir.hospital-a.example", "--dns", "fhir.hospital-a.example", "--ip", "127.0.0.1",
		"--dir", dir, "--out", out, "--passphrase-file", passFile)
	if code != 0 {
		t.Fatalf("issue server: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "serial") {
		t.Errorf("issue output:\n%s", stdout)
	}
	// Flags after the arguments, and the passphrase on standard input.
	code, _, stderr = pkiCLI(t, nil, testPKIPassphrase+"\n", "issue", "client", "partner-b", "--spiffe", "spiffe://hospital-b.example/backend",
		"--dir", dir, "--out", out, "--passphrase-file", "-")
	if code != 0 {
		t.Fatalf("issue client: exit %d: %s", code, stderr)
	}
	for name, mode := range map[string]os.FileMode{
		"fhir.hospital-a.example.pem": 0o644, "fhir.hospital-a.example-key.pem": 0o600,
		"partner-b.pem": 0o644, "partner-b-key.pem": 0o600,
	} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v; want %v", name, err, st.Mode().Perm(), mode)
		}
	}
	client := readPEMCert(t, filepath.Join(out, "partner-b.pem"))
	if len(client.URIs) != 1 || client.URIs[0].String() != "spiffe://hospital-b.example/backend" {
		t.Errorf("client URIs %v", client.URIs)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readPEMCert(t, filepath.Join(dir, "ca.pem")))
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify: %v", err)
	}

	if code, _, stderr := pkiCLI(t, environ, "", "issue", "client", "partner-b", "--dir", dir, "--out", out); code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("reissue without --force: exit %d: %s", code, stderr)
	}
	if code, _, stderr := pkiCLI(t, environ, "", "issue", "client", "partner-b", "--dir", dir, "--out", out, "--force"); code != 0 {
		t.Errorf("reissue with --force: exit %d: %s", code, stderr)
	}
	replaced := readPEMCert(t, filepath.Join(out, "partner-b.pem"))

	if code, stdout, stderr := pkiCLI(t, environ, "", "revoke", filepath.Join(out, "partner-b.pem"), "--reason", "superseded", "--dir", dir); code != 0 || !strings.Contains(stdout, "revoked") {
		t.Fatalf("revoke FILE: exit %d: %s%s", code, stdout, stderr)
	}
	if code, _, stderr := pkiCLI(t, environ, "", "revoke", pki.FormatSerial(client.SerialNumber), "--dir", dir); code != 0 {
		t.Fatalf("revoke SERIAL: exit %d: %s", code, stderr)
	}
	if code, _, stderr := pkiCLI(t, environ, "", "revoke", pki.FormatSerial(client.SerialNumber), "--dir", dir); code != 0 {
		t.Fatalf("revoke again: exit %d: %s", code, stderr)
	}

	code, stdout, _ = pkiCLI(t, nil, "", "list", "--dir", dir, "--json")
	var entries []pki.Entry
	if code != 0 || json.Unmarshal([]byte(stdout), &entries) != nil || len(entries) != 3 {
		t.Fatalf("list --json: exit %d:\n%s", code, stdout)
	}
	revoked := map[string]bool{}
	for _, e := range entries {
		revoked[e.Serial] = e.Status == pki.StatusRevoked
	}
	if !revoked[pki.FormatSerial(client.SerialNumber)] || !revoked[pki.FormatSerial(replaced.SerialNumber)] || len(revoked) != 3 {
		t.Errorf("statuses %v", revoked)
	}
	if code, stdout, _ := pkiCLI(t, nil, "", "list", "--dir", dir); code != 0 || strings.Count(stdout, "revoked") != 2 || !strings.Contains(stdout, "spiffe://hospital-b.example/backend") {
		t.Errorf("list: exit %d:\n%s", code, stdout)
	}

	// crl without a passphrase prints the current CRL; --refresh signs the next.
	code, stdout, stderr = pkiCLI(t, nil, "", "crl", "--dir", dir)
	if code != 0 {
		t.Fatalf("crl: exit %d: %s", code, stderr)
	}
	crl := parsePEMCRL(t, stdout)
	if len(crl.RevokedCertificateEntries) != 2 || crl.Number.Int64() != 3 {
		t.Errorf("CRL number %v lists %d", crl.Number, len(crl.RevokedCertificateEntries))
	}
	if code, stdout, stderr = pkiCLI(t, environ, "", "crl", "--refresh", "--crl-days", "2", "--dir", dir); code != 0 {
		t.Fatalf("crl --refresh: exit %d: %s", code, stderr)
	}
	if crl := parsePEMCRL(t, stdout); crl.Number.Int64() != 4 || crl.NextUpdate.Sub(crl.ThisUpdate).Hours() != 48 {
		t.Errorf("refreshed CRL number %v, span %v", crl.Number, crl.NextUpdate.Sub(crl.ThisUpdate))
	}
	if !strings.Contains(stderr, "next update due") {
		t.Errorf("crl stderr %q", stderr)
	}
}

// Without --dir the CA lives in DATA_DIR/pki-ca, and the passphrase
// variable does not trip the configuration's unknown-variable check.
func TestPKIDefaultDir(t *testing.T) {
	data := t.TempDir()
	environ := []string{"WARDEN_DATA_DIR=" + data, "WARDEN_PKI_PASSPHRASE=" + testPKIPassphrase}
	if code, _, stderr := pkiCLI(t, environ, "", "init", "--scrypt-work-factor", "15"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "pki-ca", "ca.pem")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := pkiCLI(t, environ, "", "issue", "client", "c", "--out", t.TempDir()); code != 0 {
		t.Fatalf("issue: exit %d: %s", code, stderr)
	}
}

func readPEMCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parsePEMCRL(t *testing.T, s string) *x509.RevocationList {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("not a PEM CRL:\n%s", s)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}
