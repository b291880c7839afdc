package web

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealed encodes small state structs (an authorization request in
// progress, the signed-in user of an interaction) into cookie values that
// the browser carries but can neither read nor change: JSON sealed with
// XChaCha20-Poly1305 under a server key, with its expiry inside the
// ciphertext and the purpose as associated data, so that a value sealed
// for one purpose does not open as another.
//
// A value is base64url (no padding) of a 24-byte random nonce followed by
// the AEAD ciphertext of an 8-byte big-endian Unix expiry time and the
// JSON.
type Sealed struct {
	aead    cipher.AEAD
	ad      []byte
	now     func() time.Time
	purpose string
}

// MaxSealedLen bounds an encoded value, so it fits in a cookie (browsers
// keep 4096 bytes of name, value and attributes) and Open never decodes
// more.
const MaxSealedLen = 3800

// Errors of Open. Neither says more than its name.
var (
	// ErrSealedInvalid means the value is malformed, was tampered with,
	// was sealed under another key or for another purpose, or holds JSON
	// that does not fit the struct.
	ErrSealedInvalid = errors.New("web: invalid sealed value")
	// ErrSealedExpired means the value was genuine but has expired.
	ErrSealedExpired = errors.New("web: sealed value expired")
)

// NewSealed returns a codec for one purpose ("authorize", "login", …)
// with key, 32 random bytes that only the server knows.
func NewSealed(key []byte, purpose string) (*Sealed, error) {
	if len(key) != chacha20poly1305.KeySize {
		return nil, ErrShortKey
	}
	if purpose == "" {
		return nil, errors.New("web: a sealed value needs a purpose")
	}
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &Sealed{aead: a, ad: []byte("warden/web/sealed\x00" + purpose), now: time.Now, purpose: purpose}, nil
}

// Seal encodes v as JSON and seals it, valid for ttl.
func (s *Sealed) Seal(v any, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", errors.New("web: a sealed value needs a positive lifetime")
	}
	body, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("web: seal %s: %w", s.purpose, err)
	}
	n := s.aead.NonceSize()
	pt := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(body)), uint64(s.now().Add(ttl).Unix()))
	pt = append(pt, body...)
	out := make([]byte, n, n+len(pt)+s.aead.Overhead())
	rand.Read(out)
	out = s.aead.Seal(out, out, pt, s.ad)
	enc := base64.RawURLEncoding.EncodeToString(out)
	if len(enc) > MaxSealedLen {
		return "", fmt.Errorf("web: sealed %s is %d bytes, more than %d", s.purpose, len(enc), MaxSealedLen)
	}
	return enc, nil
}

// Open checks and decodes a value made by Seal with the same key and
// purpose into v (a pointer). Unknown JSON fields are refused.
func (s *Sealed) Open(value string, v any) error {
	n := s.aead.NonceSize()
	if len(value) > MaxSealedLen || len(value) < base64.RawURLEncoding.EncodedLen(n+8+s.aead.Overhead()) {
		return ErrSealedInvalid
	}
	raw, err := decodeB64URL(value)
	if err != nil || len(raw) < n+8+s.aead.Overhead() {
		return ErrSealedInvalid
	}
	pt, err := s.aead.Open(nil, raw[:n], raw[n:], s.ad)
	if err != nil {
		return ErrSealedInvalid
	}
	exp := int64(binary.BigEndian.Uint64(pt))
	if s.now().Unix() >= exp {
		return ErrSealedExpired
	}
	dec := json.NewDecoder(bytes.NewReader(pt[8:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		return ErrSealedInvalid
	}
	return nil
}

// decodeB64URL decodes unpadded base64url strictly: only the alphabet (the
// standard decoder skips line breaks) and zero trailing bits, so that one
// byte string has exactly one encoding.
func decodeB64URL(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, ErrSealedInvalid
		}
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}
