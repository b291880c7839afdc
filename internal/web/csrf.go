package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
)

// CSRF makes and checks the tokens of the csrf_token form field: the
// synchronizer-token pattern bound to a session (OWASP CSRF Prevention
// Cheat Sheet, "Signed Double-Submit Cookie" with an HMAC over the session
// id). Each token is a fresh random nonce and HMAC-SHA256(key, nonce,
// session id), so tokens differ on every page (nothing stable for a
// compression side channel such as BREACH to recover) and a token of one
// session is worthless in another.
type CSRF struct {
	key []byte
}

const (
	csrfNonceLen = 16
	csrfMACLen   = sha256.Size
	// csrfTokenLen is the length of a token: base64url of nonce and MAC.
	csrfTokenLen = (csrfNonceLen + csrfMACLen) * 4 / 3
)

// ErrShortKey is returned for a key too short to be a secret.
var ErrShortKey = errors.New("web: key must be 32 bytes of random data")

// NewCSRF returns a CSRF with key, at least 32 random bytes that only the
// server knows (all replicas share it).
func NewCSRF(key []byte) (*CSRF, error) {
	if len(key) < 32 {
		return nil, ErrShortKey
	}
	return &CSRF{key: append([]byte(nil), key...)}, nil
}

func (c *CSRF) mac(nonce []byte, sessionID string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("warden/web/csrf\x00"))
	m.Write(nonce)
	m.Write([]byte(sessionID))
	return m.Sum(nil)
}

// Token returns a new token for the session. It returns "" for an empty
// session id: there is nothing to bind it to, and Valid refuses it.
func (c *CSRF) Token(sessionID string) string {
	if sessionID == "" {
		return ""
	}
	b := make([]byte, csrfNonceLen, csrfNonceLen+csrfMACLen)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(append(b, c.mac(b, sessionID)...))
}

// Valid reports whether token was made by Token for sessionID, comparing
// the MAC in constant time.
func (c *CSRF) Valid(sessionID, token string) bool {
	if sessionID == "" || len(token) != csrfTokenLen {
		return false
	}
	b, err := decodeB64URL(token)
	if err != nil || len(b) != csrfNonceLen+csrfMACLen {
		return false
	}
	return hmac.Equal(b[csrfNonceLen:], c.mac(b[:csrfNonceLen], sessionID))
}

// Protect wraps h in http.CrossOriginProtection: a POST (or any unsafe
// method) that the browser marks as cross-site (Sec-Fetch-Site) or whose
// Origin does not match its Host is refused with 403 before h runs. It is
// defence in depth beside the csrf_token field, not a replacement: requests
// without those headers (old browsers, non-browser clients) pass.
func Protect(h http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header(), "")
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	return p.Handler(h)
}
