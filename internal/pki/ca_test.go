package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age/armor"
)

var testPassphrase = []byte("correct horse battery staple")

// newTestCA creates a CA in a fresh directory with the cheapest allowed
// scrypt work factor.
func newTestCA(t *testing.T, o Options) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if o.WorkFactor == 0 {
		o.WorkFactor = MinWorkFactor
	}
	ca, err := Init(dir, testPassphrase, o)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return ca, dir
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// dearmor and rearmor move between ca-key.pem and its binary age file.
func dearmor(t *testing.T, b []byte) []byte {
	t.Helper()
	bin, err := io.ReadAll(armor.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func rearmor(t *testing.T, bin []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := armor.NewWriter(&buf)
	w.Write(bin)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The ways to open a CA without holding its passphrase and its intact
// files, each refused with its own error.
func TestOpenRefuses(t *testing.T) {
	_, dir := newTestCA(t, Options{Name: "Test CA"})
	_, otherDir := newTestCA(t, Options{Name: "Other CA"})
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	bin := dearmor(t, keyPEM)
	headerEnd := bytes.Index(bin, []byte("\n--- ")) // the header MAC line
	if headerEnd < 0 {
		t.Fatal("no age header MAC line")
	}
	stanza := bytes.Index(bin, []byte("-> scrypt "))
	stanzaBody := bytes.IndexByte(bin[stanza:], '\n') + stanza + 1

	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	// swapB64 changes one base64 character of the stanza into another
	// character of the alphabet, so the wrapped key still decodes (a bit
	// flip can make an invalid character, which is a damaged file instead:
	// the test would then depend on the random key).
	swapB64 := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		if c[i] == 'A' {
			c[i] = 'B'
		} else {
			c[i] = 'A'
		}
		return c
	}
	cases := []struct {
		name       string
		passphrase []byte
		change     func(t *testing.T, dir string)
		want       error
	}{
		{"wrong passphrase", []byte("correct horse battery stapler"), nil, ErrWrongPassphrase},
		{"empty passphrase", nil, nil, ErrWrongPassphrase},
		{"payload byte flipped", testPassphrase, func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, KeyFile), rearmor(t, flip(bin, len(bin)-5)))
		}, ErrDamagedKey},
		{"header MAC flipped", testPassphrase, func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, KeyFile), rearmor(t, flip(bin, headerEnd+6)))
		}, ErrDamagedKey},
		{"wrapped file key flipped", testPassphrase, func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, KeyFile), rearmor(t, swapB64(bin, stanzaBody+2)))
		}, ErrWrongPassphrase},
		{"scrypt work factor raised past the cap", testPassphrase, func(t *testing.T, d string) {
			tampered := bytes.Replace(bin, []byte(" 15\n"), []byte(" 30\n"), 1)
			writeFile(t, filepath.Join(d, KeyFile), rearmor(t, tampered))
		}, ErrDamagedKey},
		{"truncated key file", testPassphrase, func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, KeyFile), keyPEM[:len(keyPEM)/2])
		}, ErrDamagedKey},
		{"key file replaced by an unencrypted key", testPassphrase, func(t *testing.T, d string) {
			k, _ := newKey(ECDSAP256)
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			writeFile(t, filepath.Join(d, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		}, ErrDamagedKey},
		{"key file of another CA (same passphrase)", testPassphrase, func(t *testing.T, d string) {
			copyFile(t, filepath.Join(otherDir, KeyFile), filepath.Join(d, KeyFile))
		}, ErrKeyMismatch},
		{"certificate of another CA", testPassphrase, func(t *testing.T, d string) {
			copyFile(t, filepath.Join(otherDir, CertFile), filepath.Join(d, CertFile))
		}, ErrKeyMismatch},
		{"certificate signature tampered", testPassphrase, func(t *testing.T, d string) {
			c := readCert(t, filepath.Join(d, CertFile))
			der := flip(c.Raw, len(c.Raw)-3)
			writeFile(t, filepath.Join(d, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		}, ErrBadCACert},
		{"certificate is not PEM", testPassphrase, func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, CertFile), []byte("not a certificate"))
		}, ErrBadCACert},
		{"no CA", testPassphrase, func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, CertFile))
		}, ErrNoCA},
		{"index damaged", testPassphrase, func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, IndexFile), []byte(`{"version":1,"certificates":[{"serial":"zz"}]}`))
		}, ErrBadIndex},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := copyDir(t, dir)
			if tc.change != nil {
				tc.change(t, d)
			}
			ca, err := Open(d, tc.passphrase, OpenOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, %v; want %v", ca, err, tc.want)
			}
			if strings.Contains(err.Error(), string(testPassphrase)) {
				t.Errorf("error %q contains the passphrase", err)
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		ca, err := Open(copyDir(t, dir), testPassphrase, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ca.Certificate().Subject.CommonName != "Test CA" {
			t.Errorf("CN %q", ca.Certificate().Subject.CommonName)
		}
	})
}

func TestInitRefuses(t *testing.T) {
	_, existing := newTestCA(t, Options{})
	cases := []struct {
		name       string
		dir        string
		passphrase []byte
		o          Options
		want       error
	}{
		{"short passphrase", "", []byte("elevenchars"), Options{}, ErrWeakPassphrase},
		{"no passphrase", "", nil, Options{}, ErrWeakPassphrase},
		{"existing CA", existing, testPassphrase, Options{WorkFactor: MinWorkFactor}, ErrExists},
		{"too long", "", testPassphrase, Options{Days: MaxCADays + 1, WorkFactor: MinWorkFactor}, ErrBadOptions},
		{"negative days", "", testPassphrase, Options{Days: -1, WorkFactor: MinWorkFactor}, ErrBadOptions},
		{"weak work factor", "", testPassphrase, Options{WorkFactor: MinWorkFactor - 1}, ErrBadOptions},
		{"unknown key type", "", testPassphrase, Options{KeyType: "rsa-1024", WorkFactor: MinWorkFactor}, ErrBadOptions},
		{"long name", "", testPassphrase, Options{Name: strings.Repeat("x", 65), WorkFactor: MinWorkFactor}, ErrBadOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "ca")
			}
			if _, err := Init(dir, tc.passphrase, tc.o); !errors.Is(err, tc.want) {
				t.Fatalf("Init = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestCACertificateProfile(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384} {
		t.Run(string(kt), func(t *testing.T) {
			ca, dir := newTestCA(t, Options{Name: "Hospital A CA", Days: 30, KeyType: kt})
			c := readCert(t, filepath.Join(dir, CertFile))
			if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("basic constraints: CA %v, pathlen %d (zero %v)", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("key usage %b", c.KeyUsage)
			}
			skid, _ := subjectKeyID(c.PublicKey)
			if !bytes.Equal(c.SubjectKeyId, skid) || len(skid) != 20 {
				t.Errorf("subject key id %x, want %x", c.SubjectKeyId, skid)
			}
			want := map[KeyType]x509.SignatureAlgorithm{ECDSAP256: x509.ECDSAWithSHA256, ECDSAP384: x509.ECDSAWithSHA384}[kt]
			if c.SignatureAlgorithm != want {
				t.Errorf("signature algorithm %v, want %v", c.SignatureAlgorithm, want)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %x", c.SerialNumber)
			}
			if d := c.NotAfter.Sub(c.NotBefore); d < 30*24*time.Hour || d > 30*24*time.Hour+2*time.Minute {
				t.Errorf("validity %v", d)
			}
			st, err := os.Stat(filepath.Join(dir, KeyFile))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, %v", st.Mode(), err)
			}
			key, _ := os.ReadFile(filepath.Join(dir, KeyFile))
			if !bytes.HasPrefix(key, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) || bytes.Contains(key, []byte("PRIVATE KEY")) {
				t.Errorf("key file is not sealed:\n%s", key)
			}
			if !ca.Certificate().Equal(c) {
				t.Error("Certificate() differs from ca.pem")
			}
			crl := parseCRL(t, ca)
			if crl.Number.Int64() != 1 || len(crl.RevokedCertificateEntries) != 0 {
				t.Errorf("initial CRL number %v with %d entries", crl.Number, len(crl.RevokedCertificateEntries))
			}
			if entries, err := ca.List(); err != nil || len(entries) != 0 {
				t.Errorf("List = %v, %v", entries, err)
			}
			is, err := ca.Issue(Client, "c", IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if is.Certificate.PublicKey.(*ecdsa.PublicKey).Curve != c.PublicKey.(*ecdsa.PublicKey).Curve {
				t.Errorf("issued key on another curve than the CA's")
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	ca, dir := newTestCA(t, Options{})
	if _, err := ca.Issue(Client, "one", IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Issue(Client, "two", IssueOptions{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Issue read-only: %v", err)
	}
	if _, err := ro.Revoke(ca.Certificate().SerialNumber, ReasonUnspecified); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Revoke read-only: %v", err)
	}
	if _, err := ro.SignCRL(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("SignCRL read-only: %v", err)
	}
	if l, err := ro.List(); err != nil || len(l) != 1 {
		t.Errorf("List read-only = %v, %v", l, err)
	}
	if _, err := ro.CRL(); err != nil {
		t.Errorf("CRL read-only: %v", err)
	}
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, b)
}

func readCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return parseCertPEM(t, b)
}

func parseCertPEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseKeyPEM(t *testing.T, b []byte) *ecdsa.PrivateKey {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("not a PKCS#8 PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

// parseCRL reads the CA's current CRL and checks its signature.
func parseCRL(t *testing.T, ca *CA) *x509.RevocationList {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ca.Dir(), CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		t.Fatal("crl.pem is not a PEM CRL")
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl
}
