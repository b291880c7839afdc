package mtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// serverConfig is the FHIR listener's tls.Config from a certificate pair.
func serverConfig(certFile, keyFile, minVersion string) (*tls.Config, error) {
	l, err := mtls.NewListener(mtls.ServerOptions{CertFile: certFile, KeyFile: keyFile, MinVersion: minVersion})
	if err != nil {
		return nil, err
	}
	return l.TLSConfig(), nil
}

func devPKI(t *testing.T) *mtls.DevPKI {
	t.Helper()
	return ensure(t, t.TempDir(), devHosts, time.Now())
}

func TestServerConfigRejects(t *testing.T) {
	p := devPKI(t)
	for _, v := range []string{"1.0", "1.1", "1.4", "TLS1.3", "tls1.2", " 1.3", "1.2 ", "1", "13", "max"} {
		t.Run(v, func(t *testing.T) {
			cfg, err := serverConfig(p.CertFile, p.KeyFile, v)
			if err == nil {
				t.Fatalf("ServerConfig(%q) = MinVersion %x; want an error", v, cfg.MinVersion)
			}
			if !strings.Contains(err.Error(), "unsupported minimum TLS version") {
				t.Errorf("error = %v; want it to name the unsupported version", err)
			}
		})
	}
	t.Run("missing certificate", func(t *testing.T) {
		_, err := serverConfig(filepath.Join(t.TempDir(), "none.pem"), p.KeyFile, "1.3")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error = %v; want fs.ErrNotExist", err)
		}
	})
	t.Run("key of another certificate", func(t *testing.T) {
		other := devPKI(t)
		if _, err := serverConfig(p.CertFile, other.KeyFile, "1.3"); err == nil {
			t.Error("ServerConfig with a mismatched key succeeded")
		}
	})
}

func TestServerConfigVersions(t *testing.T) {
	p := devPKI(t)
	for _, v := range []string{"", "1.3"} {
		cfg, err := serverConfig(p.CertFile, p.KeyFile, v)
		if err != nil {
			t.Fatalf("ServerConfig(%q): %v", v, err)
		}
		if cfg.MinVersion != tls.VersionTLS13 {
			t.Errorf("ServerConfig(%q).MinVersion = %x, want TLS 1.3", v, cfg.MinVersion)
		}
		if cfg.GetCertificate == nil {
			t.Errorf("ServerConfig(%q) serves no certificate", v)
		}
		if !slices.Contains(cfg.NextProtos, "h2") || !slices.Contains(cfg.NextProtos, "http/1.1") {
			t.Errorf("ServerConfig(%q).NextProtos = %v, want h2 and http/1.1", v, cfg.NextProtos)
		}
	}

	cfg, err := serverConfig(p.CertFile, p.KeyFile, "1.2")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("ServerConfig(1.2).MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	if len(cfg.CipherSuites) == 0 {
		t.Fatal("ServerConfig(1.2) leaves the cipher suites to the default; want an explicit ECDHE AEAD list")
	}
	secure := map[uint16]*tls.CipherSuite{}
	for _, cs := range tls.CipherSuites() {
		secure[cs.ID] = cs
	}
	for _, id := range cfg.CipherSuites {
		cs, ok := secure[id]
		if !ok {
			t.Errorf("suite %s is not in tls.CipherSuites() (insecure or unknown)", tls.CipherSuiteName(id))
			continue
		}
		name := cs.Name
		aead := strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !aead {
			t.Errorf("suite %s is not ECDHE with an AEAD", name)
		}
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			t.Errorf("suite %s does not support TLS 1.2", name)
		}
	}
}

// handshake runs one TLS handshake over loopback between a listener with
// srvCfg and a client with cliCfg, returning the client's state and the
// errors of both ends.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		srvErr <- c.(*tls.Conn).Handshake()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cliCfg}
	conn, cliErr := d.DialContext(ctx, "tcp", ln.Addr().String())
	var state tls.ConnectionState
	if cliErr == nil {
		state = conn.(*tls.Conn).ConnectionState()
		conn.Close()
	}
	return state, cliErr, <-srvErr
}

func TestServerConfigHandshake(t *testing.T) {
	p := devPKI(t)
	caPEM, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in ca.pem")
	}
	client := func(minV, maxV uint16, suites ...uint16) *tls.Config {
		return &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: minV, MaxVersion: maxV, CipherSuites: suites}
	}

	// The ways around the version and suite floor first.
	refused := []struct {
		name   string
		server string
		client *tls.Config
	}{
		{"TLS 1.2 client, 1.3 server", "1.3", client(tls.VersionTLS12, tls.VersionTLS12)},
		{"TLS 1.2 client, default server", "", client(tls.VersionTLS12, tls.VersionTLS12)},
		{"TLS 1.1 client, 1.2 server", "1.2", client(tls.VersionTLS10, tls.VersionTLS11)},
		{"CBC-only client, 1.2 server", "1.2", client(tls.VersionTLS12, tls.VersionTLS12,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA)},
		{"non-ECDHE client, 1.2 server", "1.2", client(tls.VersionTLS12, tls.VersionTLS12,
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384)},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := serverConfig(p.CertFile, p.KeyFile, tc.server)
			if err != nil {
				t.Fatal(err)
			}
			state, cliErr, srvErr := handshake(t, cfg, tc.client)
			if cliErr == nil {
				t.Errorf("client connected with %s / %s; want refusal", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
			}
			if srvErr == nil {
				t.Error("server completed the handshake; want refusal")
			}
		})
	}

	accepted := []struct {
		name    string
		server  string
		client  *tls.Config
		version uint16
	}{
		{"TLS 1.2 client, 1.2 server", "1.2", client(tls.VersionTLS12, tls.VersionTLS12), tls.VersionTLS12},
		{"modern client, 1.2 server", "1.2", client(0, 0), tls.VersionTLS13},
		{"modern client, 1.3 server", "1.3", client(0, 0), tls.VersionTLS13},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := serverConfig(p.CertFile, p.KeyFile, tc.server)
			if err != nil {
				t.Fatal(err)
			}
			state, cliErr, srvErr := handshake(t, cfg, tc.client)
			if cliErr != nil || srvErr != nil {
				t.Fatalf("handshake: client %v, server %v", cliErr, srvErr)
			}
			if state.Version != tc.version {
				t.Errorf("negotiated %s, want %s", tls.VersionName(state.Version), tls.VersionName(tc.version))
			}
			if state.Version == tls.VersionTLS12 && !slices.Contains(cfg.CipherSuites, state.CipherSuite) {
				t.Errorf("negotiated suite %s is not in the configured list", tls.CipherSuiteName(state.CipherSuite))
			}
		})
	}
}
