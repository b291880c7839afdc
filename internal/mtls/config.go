package mtls

import (
	"crypto/tls"
	"fmt"
)

// ServerConfig returns the TLS configuration of Warden's listener: TLS 1.3
// unless minVersion is "1.2", in which case only AEAD suites with forward
// secrecy are offered (ECDHE with AES-GCM or ChaCha20-Poly1305).
func ServerConfig(certFile, keyFile, minVersion string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: loading server certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	switch minVersion {
	case "", "1.3":
	case "1.2":
		cfg.MinVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		}
	default:
		return nil, fmt.Errorf("mtls: unsupported minimum TLS version %q", minVersion)
	}
	return cfg, nil
}
