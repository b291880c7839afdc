package export_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit/export"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its PEM certificate
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// issue returns a leaf certificate for names (IP addresses or DNS names),
// valid from notBefore to notAfter.
func (ca *testCA) issue(t testing.TB, usage x509.ExtKeyUsage, notBefore, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// files writes cert as PEM certificate and key files.
func files(t testing.TB, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// receiver is an RFC 5425 syslog receiver on loopback: it parses every
// frame, and answers the sender's close_notify with its own.
type receiver struct {
	t    testing.TB
	cfg  *tls.Config // nil: plain TCP (to check nothing is sent in clear)
	addr string

	mu     sync.Mutex
	ln     net.Listener
	frames [][]byte // SYSLOG-MSGs in arrival order
	msgs   []export.Message
	raw    []byte // plain TCP: everything received
	// crashAfter, when above 0, makes the receiver drop the TCP
	// connection without a close_notify and stop listening once it has
	// received that many frames in all (a receiver crash).
	crashAfter int
	crashed    chan struct{}
	wg         sync.WaitGroup
}

func startReceiver(t testing.TB, cfg *tls.Config) *receiver {
	r := &receiver{t: t, cfg: cfg, crashed: make(chan struct{})}
	r.listen("127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) listen(addr string) {
	var ln net.Listener
	var err error
	for range 50 { // the port of a crashed receiver may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.ln, r.addr = ln, ln.Addr().String()
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serve(c)
			}()
		}
	}()
}

func (r *receiver) stop() {
	r.mu.Lock()
	ln := r.ln
	r.mu.Unlock()
	ln.Close()
	r.wg.Wait()
}

// restart listens again on the same address after a crash.
func (r *receiver) restart() { r.listen(r.addr) }

func (r *receiver) serve(raw net.Conn) {
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	if r.cfg == nil {
		b, _ := io.ReadAll(io.LimitReader(raw, 1<<20))
		r.mu.Lock()
		r.raw = append(r.raw, b...)
		r.mu.Unlock()
		return
	}
	c := tls.Server(raw, r.cfg)
	br := bufio.NewReader(c)
	for {
		frame, err := export.ReadFrame(br, export.MaxFrame)
		if errors.Is(err, io.EOF) {
			c.Close() // RFC 5425 §4.4: answer close_notify with close_notify
			return
		}
		if err != nil {
			return // a handshake refused, or a sender that went away
		}
		m, err := export.ParseMessage(frame)
		if err != nil {
			r.t.Errorf("receiver: %v", err)
			return
		}
		r.mu.Lock()
		r.frames = append(r.frames, frame)
		r.msgs = append(r.msgs, m)
		crash := r.crashAfter > 0 && len(r.msgs) == r.crashAfter
		if crash {
			r.crashAfter = 0
			r.ln.Close()
		}
		r.mu.Unlock()
		if crash {
			raw.(*net.TCPConn).SetLinger(0) // RST: no close_notify, no FIN
			raw.Close()
			close(r.crashed)
			return
		}
	}
}

func (r *receiver) messages() []export.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]export.Message(nil), r.msgs...)
}
