package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// BenchmarkHandshake measures a new connection plus one request against
// the FHIR listener's TLS (ECDSA P-256 keys): one-way TLS, mutual TLS
// with a client certificate from a trusted CA (chain and CRL checked),
// mutual TLS resumed (TLS 1.3 PSK, the client's session cache), one-way
// TLS resumed the same way, and a request on a kept-alive connection. The issue asks for mutual TLS at
// ≥ 70 % of one-way's rate and resumption within 10 % of keep-alive.
//
//	go test ./internal/mtls -run '^$' -bench Handshake -benchtime 2s
func BenchmarkHandshake(b *testing.B) {
	dir := b.TempDir()
	serverCA, partner := newTestCA(b, "server CA"), newTestCA(b, "partner CA")
	certFile, keyFile := writePEM(b, filepath.Join(dir, "server"), serverCA.issue(b, "server", x509.ExtKeyUsageServerAuth, time.Now().Add(time.Hour)))
	bundle := filepath.Join(dir, "clients.pem")
	os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: partner.cert.Raw}), 0o600)
	crl := filepath.Join(dir, "partner.crl")
	os.WriteFile(crl, partner.crl(b, 1), 0o600)
	l, err := mtls.NewListener(mtls.ServerOptions{CertFile: certFile, KeyFile: keyFile, ClientCAFile: bundle, CRLFiles: []string{crl}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", l.TLSConfig())
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := l.Identify(r.TLS); err != nil {
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	url := "https://" + ln.Addr().String() + "/"
	client := partner.issue(b, "lab", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))
	pool := x509.NewCertPool()
	pool.AddCert(serverCA.cert)

	run := func(b *testing.B, cert *tls.Certificate, keepAlive, resume bool) {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		if resume {
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		}
		tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: !keepAlive, ForceAttemptHTTP2: false}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		defer tr.CloseIdleConnections()
		get := func() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
			if resume && !resp.TLS.DidResume && b.N > 1 {
				b.Fatal("session not resumed")
			}
		}
		get() // warm: the session ticket, the identity cache, the kept connection
		b.ResetTimer()
		for b.Loop() {
			get()
		}
	}
	b.Run("one-way", func(b *testing.B) { run(b, nil, false, false) })
	b.Run("mutual", func(b *testing.B) { run(b, &client, false, false) })
	b.Run("mutual-resumed", func(b *testing.B) { run(b, &client, false, true) })
	b.Run("one-way-resumed", func(b *testing.B) { run(b, nil, false, true) })
	b.Run("keep-alive", func(b *testing.B) { run(b, &client, true, false) })
}
