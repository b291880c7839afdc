// Package upstream owns Warden's side of connections to a backend FHIR
// server (proxy mode): the TLS client configuration that presents
// Warden's own client certificate, trusts only the configured CA, checks
// the server's name, and picks up rotated certificate, key and CA files
// without a restart. It never logs key material and never falls back to
// the system roots when a CA file is configured.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// Errors of the configuration and of the server's certificate.
var (
	ErrConfig       = errors.New("upstream: invalid TLS configuration")
	ErrServerCert   = errors.New("upstream: server certificate not trusted")
	ErrNoServerName = errors.New("upstream: no server name to verify the certificate against")
	ErrNoServerCert = errors.New("upstream: server presented no certificate")
)

// TLSConfig is how Warden connects to an upstream server.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs trusted for the upstream's
	// certificate; when set, only they are trusted (not the system roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are Warden's client certificate (chain) and
	// key, presented when the server asks (RFC 8446 §4.4.2); both or
	// neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry; empty
	// is the host of the URL being fetched.
	ServerName string `yaml:"server_name"`
	// MinVersion is "1.3" (default) or "1.2".
	MinVersion string `yaml:"min_version"`
	// CheckEvery is how often the files are looked at for changes
	// (default 1 s).
	CheckEvery time.Duration `yaml:"-"`
	// Logger hears of changed files that cannot be loaded.
	Logger *slog.Logger `yaml:"-"`
}

// material is what the files hold.
type material struct {
	roots *x509.CertPool   // nil: system roots
	cert  *tls.Certificate // nil: none presented
}

// ClientConfig is the tls.Config for connections to the upstream. The
// certificate is chosen per handshake (GetClientCertificate) and the
// server's chain verified per handshake (VerifyConnection) against the
// CA bundle current at that moment, so rotations apply to the next new
// connection.
//
// With server_name empty, the name checked is the one the connection
// state carries (SNI), which Go leaves empty for an IP address: use
// Transport, which checks the dialled host, or set ServerName.
func (c TLSConfig) ClientConfig() (*tls.Config, error) {
	cfg, _, err := c.clientConfig()
	return cfg, err
}

// clientConfig is ClientConfig and its verifier for a given name.
func (c TLSConfig) clientConfig() (*tls.Config, func(name string) func(tls.ConnectionState) error, error) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, nil, fmt.Errorf("%w: cert_file and key_file go together", ErrConfig)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: c.ServerName}
	switch c.MinVersion {
	case "", "1.3":
	case "1.2":
		cfg.MinVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}
	default:
		return nil, nil, fmt.Errorf("%w: unsupported minimum TLS version %q", ErrConfig, c.MinVersion)
	}
	var files []string
	for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	m, err := mtls.NewReloading(files, c.CheckEvery, c.Logger, "upstream TLS (client certificate, CA bundle)", c.load)
	if err != nil {
		return nil, nil, err
	}
	// A client certificate is offered only through the callback, so a
	// rotated file is used on the next handshake.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cur, _ := m.Current()
		if cur.cert == nil {
			return &tls.Certificate{}, nil // none: the server decides
		}
		return cur.cert, nil
	}
	if c.CAFile == "" {
		return cfg, nil, nil // Go verifies against the system roots
	}
	// Go's own verification would use a fixed RootCAs; it is turned off
	// and done here, with the bundle current at handshake time (the
	// crypto/tls documentation's pattern for VerifyConnection).
	verifier := func(name string) func(tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			cur, _ := m.Current()
			return verifyServer(cs, cur.roots, name)
		}
	}
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = verifier(c.ServerName)
	return cfg, verifier, nil
}

// verifyServer checks the server's chain against roots for server
// authentication and its name (RFC 6125 via x509.VerifyHostname).
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoServerCert
	}
	name := serverName
	if name == "" {
		name = cs.ServerName
	}
	if name == "" {
		return ErrNoServerName
	}
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("%w: %v", ErrServerCert, err)
	}
	return nil
}

func (c TLSConfig) load() (*material, error) {
	var m material
	var err error
	if m.roots, err = mtls.LoadCertPool(c.CAFile); err != nil {
		return nil, err
	}
	if c.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream: loading client certificate: %w", err)
		}
		m.cert = &pair
	}
	return &m, nil
}

// Transport is an http.Transport using ClientConfig, with the timeouts a
// proxy needs (no environment proxy: the upstream is reached directly).
// The server's certificate is checked against ServerName or, when that is
// empty, the dialled host (a DNS name or an IP address).
func (c TLSConfig) Transport() (*http.Transport, error) {
	cfg, verifier, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext: dialer.DialContext,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			conn := cfg.Clone()
			if conn.ServerName == "" {
				conn.ServerName = host
				if verifier != nil {
					conn.VerifyConnection = verifier(host)
				}
			}
			return (&tls.Dialer{NetDialer: dialer, Config: conn}).DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   32,
	}, nil
}
