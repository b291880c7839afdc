package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

func tlsPair(t *testing.T, is *Issued) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// handshake runs one TLS 1.3 handshake on loopback between serverCfg and
// a client presenting clientCert and trusting roots, and returns the
// server's error (the client's if the server had none). The client
// refusing the server fails the test: that is not what is tested.
func handshake(t *testing.T, serverCfg *tls.Config, roots *x509.CertPool, serverName string, clientCert *tls.Certificate) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, serverCfg)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte("ok"))
		}
		serverErr <- err
	}()
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS13}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cfg)
	var clientErr error
	if err != nil {
		clientErr = err
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 2)
		_, clientErr = io.ReadFull(conn, buf) // TLS 1.3: the server's verdict on the client cert arrives after the client's handshake
		conn.Close()
	}
	if err := <-serverErr; err != nil {
		var alert tls.AlertError
		if errors.As(err, &alert) {
			t.Fatalf("the client refused the server (%v), not the other way round", clientErr)
		}
		return err
	}
	return clientErr
}

func TestMutualTLS(t *testing.T) {
	ca, dir := newTestCA(t, Options{Name: "Hospital A CA"})
	server, err := ca.Issue(Server, "localhost", IssueOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(Client, "partner-b", IssueOptions{URIs: []string{"spiffe://hospital-b.example/backend"}})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := ca.Issue(Client, "stolen", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Revoke(revoked.Certificate.SerialNumber, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	wrongUsage, err := ca.Issue(Server, "not-a-client.example", IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// An impostor CA with the same name, so the client offers its
	// certificate (Go's client offers only certificates whose issuer the
	// server lists) and the server has to refuse it.
	otherCA, _ := newTestCA(t, Options{Name: "Hospital A CA"})
	foreign, err := otherCA.Issue(Client, "partner-b", IssueOptions{URIs: []string{"spiffe://hospital-b.example/backend"}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	serverPair := tlsPair(t, server)
	plain := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{serverPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    roots,
	}

	t.Run("crypto/tls", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			cert *Issued
			want func(error) bool
		}{
			{"client certificate from another CA", foreign, func(err error) bool {
				_, ok := errors.AsType[x509.UnknownAuthorityError](err)
				return ok
			}},
			{"server certificate used as a client certificate", wrongUsage, func(err error) bool {
				e, ok := errors.AsType[x509.CertificateInvalidError](err)
				return ok && e.Reason == x509.IncompatibleUsage
			}},
			{"no client certificate", nil, func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "didn't provide a certificate")
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var cc *tls.Certificate
				if tc.cert != nil {
					p := tlsPair(t, tc.cert)
					cc = &p
				}
				if err := handshake(t, plain, roots, "localhost", cc); !tc.want(err) {
					t.Fatalf("handshake: %v", err)
				}
			})
		}
		t.Run("client certificate from this CA", func(t *testing.T) {
			p := tlsPair(t, client)
			if err := handshake(t, plain, roots, "127.0.0.1", &p); err != nil {
				t.Fatal(err)
			}
		})
	})

	// Warden's own listener reads ca.pem and crl.pem as written here.
	t.Run("mtls.Listener with the CRL", func(t *testing.T) {
		out := t.TempDir()
		certFile, keyFile, err := server.WriteFiles(out, false)
		if err != nil {
			t.Fatal(err)
		}
		l, err := mtls.NewListener(mtls.ServerOptions{
			CertFile: certFile, KeyFile: keyFile,
			ClientCAFile: filepath.Join(dir, CertFile),
			CRLFiles:     []string{filepath.Join(dir, CRLFile)},
		})
		if err != nil {
			t.Fatal(err)
		}
		cfg := l.TLSConfig()
		cfg.NextProtos = nil
		p := tlsPair(t, revoked)
		if err := handshake(t, cfg, roots, "localhost", &p); !errors.Is(err, mtls.ErrCertRevoked) {
			t.Errorf("revoked client: %v, want ErrCertRevoked", err)
		}
		p = tlsPair(t, foreign)
		if err := handshake(t, cfg, roots, "localhost", &p); !errors.Is(err, mtls.ErrCertUnknown) {
			t.Errorf("foreign client: %v, want ErrCertUnknown", err)
		}
		p = tlsPair(t, client)
		if err := handshake(t, cfg, roots, "localhost", &p); err != nil {
			t.Errorf("valid client: %v", err)
		}
	})
}
