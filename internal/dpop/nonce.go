package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// DefaultNonceStep is how long a nonce stays the current one; it is
// accepted for one step more.
const DefaultNonceStep = 5 * time.Minute

// MinNonceKeyLen is the shortest key NewNonces accepts.
const MinNonceKeyLen = 32

// nonceContext separates this MAC's inputs from any other use of the key.
const nonceContext = "warden dpop nonce v1\x00"

// Nonces issues and checks the server nonces of RFC 9449 §8 without
// keeping state: a nonce is a time step and an HMAC-SHA-256 of it under
// the server's key, base64url. A nonce is valid during its step and the
// next, so a client that fetched one just before a step ended still gets
// through. Replicas that share the key accept each other's nonces.
type Nonces struct {
	key  []byte
	step time.Duration
}

// NewNonces returns Nonces keyed by key (at least MinNonceKeyLen bytes,
// from a CSPRNG; it is copied) rotating every step (0: DefaultNonceStep).
func NewNonces(key []byte, step time.Duration) (*Nonces, error) {
	if len(key) < MinNonceKeyLen {
		return nil, errors.New("dpop: nonce key shorter than 32 bytes")
	}
	if step < 0 || (step > 0 && step < time.Second) {
		return nil, errors.New("dpop: nonce step must be at least a second")
	}
	if step == 0 {
		step = DefaultNonceStep
	}
	return &Nonces{key: append([]byte(nil), key...), step: step}, nil
}

// nonceLen is the length of a decoded nonce: an 8-byte step and a MAC.
const nonceLen = 8 + sha256.Size

// Issue returns the current nonce, for the DPoP-Nonce header (RFC 9449
// §8.1).
func (n *Nonces) Issue(now time.Time) string {
	var raw [nonceLen]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(n.stepOf(now)))
	n.mac(raw[8:8], raw[:8])
	return strictBase64.EncodeToString(raw[:])
}

// Valid reports whether nonce was issued by these Nonces (same key) in the
// current step or the one before (RFC 9449 §8, step 10 of §4.3).
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	if strictBase64.EncodedLen(nonceLen) != len(nonce) {
		return false
	}
	var raw [nonceLen]byte
	if k, err := strictBase64.Decode(raw[:], []byte(nonce)); err != nil || k != nonceLen {
		return false
	}
	s, cur := int64(binary.BigEndian.Uint64(raw[:8])), n.stepOf(now)
	if s != cur && s != cur-1 {
		return false
	}
	var want [sha256.Size]byte
	n.mac(want[:0], raw[:8])
	return hmac.Equal(want[:], raw[8:])
}

// mac appends HMAC-SHA-256(key, nonceContext || step) to dst.
func (n *Nonces) mac(dst, step []byte) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte(nonceContext))
	m.Write(step)
	return m.Sum(dst)
}

// stepOf is floor(now / step).
func (n *Nonces) stepOf(now time.Time) int64 {
	ns, w := now.UnixNano(), int64(n.step)
	s := ns / w
	if ns%w < 0 {
		s--
	}
	return s
}
