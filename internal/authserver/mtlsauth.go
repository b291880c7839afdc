package authserver

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/mtls"
)

// Reasons a certificate authentication fails (invalid_client to the
// client; for logs and tests).
var (
	ErrNoClientCertificate = errors.New("authserver: the client presented no certificate")
	ErrCertificateSubject  = errors.New("authserver: the certificate does not name the registered subject")
	ErrCertificateKey      = errors.New("authserver: the certificate's key is not one of the client's keys")
	ErrCertificateTrust    = errors.New("authserver: the certificate does not chain to a trusted CA")
)

// CertificateChecker checks a connection's client certificate
// (*mtls.Listener): validity, trust and revocation.
type CertificateChecker interface {
	Identify(cs *tls.ConnectionState) (mtls.Identity, error)
}

// authenticateTLS authenticates client c by the certificate of the
// connection (RFC 8705 §2).
func (a *clientAuthenticator) authenticateTLS(cs *tls.ConnectionState, c Client) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ErrNoClientCertificate
	}
	if a.certs == nil {
		return ErrCertificateTrust
	}
	id, err := a.certs.Identify(cs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCertificateTrust, err)
	}
	leaf := cs.PeerCertificates[0]
	switch c.TLS.AuthMethod {
	case TLSClientAuth:
		if !id.Verified {
			return ErrCertificateTrust // a self-signed certificate names whatever it likes
		}
		if !certificateNames(leaf, id, c.TLS) {
			return ErrCertificateSubject
		}
		return nil
	case SelfSignedTLSClientAuth:
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
			return ErrCertificateKey
		}
		want, err := (&jose.JSONWebKey{Key: leaf.PublicKey}).Thumbprint(crypto.SHA256)
		if err != nil {
			return ErrCertificateKey
		}
		for _, k := range set.Keys {
			if got, err := k.Thumbprint(crypto.SHA256); err == nil && string(got) == string(want) {
				return nil
			}
		}
		return ErrCertificateKey
	}
	return ErrClientAuthMethod
}

// certificateNames reports whether the certificate carries the one name
// the client registered (RFC 8705 §2.1.2).
func certificateNames(leaf *x509.Certificate, id mtls.Identity, t ClientTLS) bool {
	switch {
	case t.SubjectDN != "":
		want, err1 := parseDN(t.SubjectDN)
		got, err2 := parseDN(leaf.Subject.String())
		return err1 == nil && err2 == nil && slices.Equal(want, got)
	case t.SANDNS != "":
		return slices.ContainsFunc(id.DNSNames, func(n string) bool { return strings.EqualFold(n, t.SANDNS) })
	case t.SANURI != "":
		return slices.Contains(id.URIs, t.SANURI)
	}
	return false
}

// parseDN splits an RFC 4514 distinguished name into its attributes,
// "TYPE=value" with the type upper-cased and spaces around separators
// dropped, so that two spellings of one DN compare equal. Escapes are kept
// as written (a backslash escapes the next character).
func parseDN(dn string) ([]string, error) {
	var out []string
	var cur strings.Builder
	flush := func() error {
		attr := strings.TrimSpace(cur.String())
		cur.Reset()
		typ, val, ok := strings.Cut(attr, "=")
		if !ok || strings.TrimSpace(typ) == "" {
			return fmt.Errorf("subject DN %q is not an RFC 4514 distinguished name", dn)
		}
		out = append(out, strings.ToUpper(strings.TrimSpace(typ))+"="+strings.TrimSpace(val))
		return nil
	}
	escaped := false
	for _, r := range dn {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			cur.WriteRune(r)
			escaped = true
		case r == ',' || r == '+':
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			cur.WriteRune(r)
		}
	}
	if escaped {
		return nil, fmt.Errorf("subject DN %q ends in an escape", dn)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
