package dpop

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
)

// Confirmation is an access token's cnf claim (RFC 7800 §3.1): what the
// token is bound to. Both empty: a plain bearer token.
type Confirmation struct {
	JKT     string // RFC 9449 §6.1: SHA-256 thumbprint of the DPoP key, base64url
	X5tS256 string // RFC 8705 §3.1: SHA-256 of the client certificate (DER), base64url
}

// Reasons a bound token is refused. CheckBinding's errors match ErrBinding
// and exactly one of these; the answer is error "invalid_token".
var (
	ErrBinding = errors.New("dpop: token binding not satisfied")

	ErrProofRequired = errors.New("token is bound to a DPoP key and came without a proof")
	ErrKeyMismatch   = errors.New("proof signed by another key than the token is bound to")
	ErrCertRequired  = errors.New("token is bound to a client certificate and none was presented")
	ErrCertMismatch  = errors.New("client certificate is not the one the token is bound to")
)

// bindingError is a refusal: it matches ErrBinding and its reason.
type bindingError struct{ reason error }

func (e *bindingError) Error() string   { return ErrBinding.Error() + ": " + e.reason.Error() }
func (e *bindingError) Unwrap() []error { return []error{ErrBinding, e.reason} }

// CheckBinding checks that a request satisfies its access token's sender
// constraint. proof is the request's verified DPoP proof (nil when the
// request had none, as with "Authorization: Bearer"); certThumbprint is
// CertThumbprint of the TLS client certificate ("" when none). A token
// with cnf.jkt needs a proof whose key has that thumbprint (RFC 9449
// §7.1: a bound token presented as a bearer token is refused); a token
// with cnf.x5t#S256 needs that certificate (RFC 8705 §3); a token bound
// both ways needs both. An unbound token passes: whether a proof sent
// with it is acceptable is the caller's policy.
func CheckBinding(tokenCnf Confirmation, proof *Proof, certThumbprint string) error {
	if tokenCnf.JKT != "" {
		switch {
		case proof == nil || proof.JKT == "":
			return &bindingError{ErrProofRequired}
		case subtle.ConstantTimeCompare([]byte(proof.JKT), []byte(tokenCnf.JKT)) != 1:
			return &bindingError{ErrKeyMismatch}
		}
	}
	if tokenCnf.X5tS256 != "" {
		switch {
		case certThumbprint == "":
			return &bindingError{ErrCertRequired}
		case subtle.ConstantTimeCompare([]byte(certThumbprint), []byte(tokenCnf.X5tS256)) != 1:
			return &bindingError{ErrCertMismatch}
		}
	}
	return nil
}

// CertThumbprint returns the x5t#S256 of cert: the base64url (unpadded)
// SHA-256 of its DER encoding (RFC 8705 §3.1). It returns "" for nil.
func CertThumbprint(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
