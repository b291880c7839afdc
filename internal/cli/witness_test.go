package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// runWitnessCommand runs 'warden witness args...' in-process the way run
// does for a registered command, and returns its exit status.
func runWitnessCommand(ctx context.Context, stdout, stderr io.Writer, args ...string) int {
	c := witnessCommand()
	fs := newFlagSet(c, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(stdout, c, fs)
			return 0
		}
		return 2
	}
	e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: stdout, stderr: stderr}
	if err := c.run(e, fs, fs.Args()); err != nil {
		io.WriteString(stderr, err.Error()+"\n")
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func witnessCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runWitnessCommand(t.Context(), &out, &errb, args...)
	return code, out.String(), errb.String()
}

func TestWitnessHelp(t *testing.T) {
	code, out, _ := witnessCLI(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"Usage: warden witness", "c2sp.org/tlog-witness", "-insecure-http", "-print-key", "-logs FILE", "loopback"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help output lacks %q:\n%s", want, out)
		}
	}
}

// Ways to start a witness that would serve unsafely or not at all.
func TestWitnessRefusesUnsafeStarts(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	_, vkey, err := note.GenerateKey(rand.Reader, "audit.hospital.example/log")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logs, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wdir := filepath.Join(dir, "w")
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"insecure http on every interface", []string{"--insecure-http", "--addr", ":7380"}, 2, "loopback"},
		{"insecure http on 0.0.0.0", []string{"--insecure-http", "--addr", "0.0.0.0:0"}, 2, "loopback"},
		{"insecure http on [::]", []string{"--insecure-http", "--addr", "[::]:0"}, 2, "loopback"},
		{"insecure http on a routable address", []string{"--insecure-http", "--addr", "192.0.2.10:7380"}, 2, "loopback"},
		{"insecure http on a host name", []string{"--insecure-http", "--addr", "witness.example:7380"}, 2, "loopback"},
		{"no TLS and no insecure-http", []string{}, 2, "--tls-cert"},
		{"certificate without key", []string{"--tls-cert", "c.pem"}, 2, "together"},
		{"TLS and insecure-http", []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--insecure-http"}, 2, "insecure-http"},
		{"first start without a name", []string{"--insecure-http"}, 1, "no name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--dir", wdir, "--logs", logs}, c.args...)
			code, _, stderr := witnessCLI(t, args...)
			if code != c.code || !strings.Contains(stderr, c.msg) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, stderr, c.code, c.msg)
			}
			if _, err := os.Stat(filepath.Join(wdir, "state.db")); err == nil {
				t.Fatal("a refused start opened the witness state")
			}
		})
	}
	t.Run("no logs", func(t *testing.T) {
		if code, _, _ := witnessCLI(t, "--dir", wdir, "--name", "w.example", "--insecure-http"); code != 2 {
			t.Fatalf("exit %d without --logs, want 2", code)
		}
	})
}

func TestWitnessPrintKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	code, out, stderr := witnessCLI(t, "--dir", dir, "--name", "witness.partner.example", "--print-key")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	f := strings.Fields(out)
	if len(f) != 4 || f[0] != "witness" || f[1] != "witness.partner.example" || f[3] != "https://127.0.0.1:7380" {
		t.Fatalf("policy line %q", out)
	}
	if _, err := fnote.NewVerifierForCosignatureV1(f[2]); err != nil {
		t.Fatalf("printed key %q is not a cosignature/v1 key: %v", f[2], err)
	}
	fi, err := os.Stat(filepath.Join(dir, "witness.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, %v", fi, err)
	}
	// The key is kept: printed again without --name, and with --url.
	code, again, _ := witnessCLI(t, "--dir", dir, "--print-key", "--url", "https://w.partner.example/")
	if code != 0 || strings.Fields(again)[2] != f[2] || strings.Fields(again)[3] != "https://w.partner.example/" {
		t.Fatalf("second --print-key: exit %d, %q", code, again)
	}
}

// The witness serves over plain HTTP on loopback and over TLS ≥1.2, prints
// its policy line, cosigns a log's checkpoint and stops on cancel.
func TestWitnessServes(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "audit.hospital.example/log")
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "logs")
	if err := os.WriteFile(logs, []byte("# the hospital's audit log\n"+vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, roots := selfSignedCert(t, dir)

	for _, mode := range []struct {
		name   string
		args   []string
		client *http.Client
	}{
		{"insecure-http", []string{"--insecure-http"}, http.DefaultClient},
		{"tls", []string{"--tls-cert", certFile, "--tls-key", keyFile}, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			pr, pw := io.Pipe()
			var stderr bytes.Buffer
			done := make(chan int, 1)
			args := append([]string{"--dir", filepath.Join(dir, mode.name), "--name", "witness.partner.example", "--logs", logs, "--addr", "127.0.0.1:0"}, mode.args...)
			go func() {
				done <- runWitnessCommand(ctx, pw, &stderr, args...)
				pw.Close()
			}()
			line, err := bufio.NewReader(pr).ReadString('\n')
			if err != nil {
				t.Fatalf("no policy line: %v (%s)", err, stderr.String())
			}
			go io.Copy(io.Discard, pr)
			f := strings.Fields(line)
			if len(f) != 4 || f[0] != "witness" {
				t.Fatalf("policy line %q", line)
			}
			url := f[3]
			resp, err := mode.client.Get(url + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz %d", resp.StatusCode)
			}
			root := bytes.Repeat([]byte{9}, 32)
			cp, err := note.Sign(&note.Note{Text: string(flog.Checkpoint{Origin: logSigner.Name(), Size: 3, Hash: root}.Marshal())}, logSigner)
			if err != nil {
				t.Fatal(err)
			}
			resp, err = mode.client.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(append([]byte("old 0\n\n"), cp...)))
			if err != nil {
				t.Fatal(err)
			}
			cosig, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("add-checkpoint %d %q", resp.StatusCode, cosig)
			}
			v, err := fnote.NewVerifierForCosignatureV1(f[2])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(append(cp, cosig...), note.VerifierList(v)); err != nil {
				t.Fatalf("cosignature does not verify with the printed key: %v", err)
			}
			if mode.name == "tls" {
				old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}}}
				if resp, err := old.Get(url + "/healthz"); err == nil {
					resp.Body.Close()
					t.Fatal("served a TLS 1.1 client")
				}
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("witness did not stop")
			}
			if !strings.Contains(stderr.String(), `"origin":"audit.hospital.example/log"`) {
				t.Fatalf("no log line for the cosigned checkpoint:\n%s", stderr.String())
			}
		})
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "witness test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(c)
	return certFile, keyFile, roots
}
