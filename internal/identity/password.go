package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the Argon2id cost parameters (RFC 9106 §3.1) of the
// password hashes a Directory writes.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// MinArgon2Params is the floor Warden never goes below, the OWASP Password
// Storage Cheat Sheet's first Argon2id configuration: 19 MiB of memory, two
// passes, one lane.
var MinArgon2Params = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// atLeast raises every parameter of p that is below the floor to the floor.
func (p Argon2Params) atLeast(floor Argon2Params) Argon2Params {
	p.Memory = max(p.Memory, floor.Memory)
	p.Time = max(p.Time, floor.Time)
	p.Threads = max(p.Threads, floor.Threads)
	return p
}

const (
	saltLen = 16 // bytes; RFC 9106 §3.1 recommends 128 bits
	keyLen  = 32 // bytes of tag

	// Bounds a stored hash must respect to be parsed at all, so that a
	// corrupt or planted record cannot make verification allocate
	// gigabytes or spin for minutes.
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 64
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// errBadHash reports a stored password hash that is not a PHC string this
// package accepts. It never carries the hash itself.
var errBadHash = errors.New("identity: malformed password hash")

// phcHash is a parsed Argon2id PHC string:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64, as the PHC string format
// (https://github.com/P-H-C/phc-string-format) and the reference Argon2
// implementation write them.
type phcHash struct {
	params Argon2Params
	salt   []byte
	key    []byte
}

var b64 = base64.RawStdEncoding.Strict()

// String encodes h as a PHC string.
func (h phcHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.params.Memory, h.params.Time, h.params.Threads,
		b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// parsePHC parses an Argon2id PHC string. It accepts only the canonical
// form String writes (version 19, parameters in the order m, t, p, decimal
// numbers without sign or leading zeros, canonical base64), so that
// parsePHC(s).String() == s for every s it accepts.
func parsePHC(s string) (phcHash, error) {
	var h phcHash
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, errBadHash
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return h, errBadHash
	}
	var nums [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return h, errBadHash
		}
		n, err := canonicalUint(v)
		if err != nil {
			return h, errBadHash
		}
		nums[i] = n
	}
	m, t, p := nums[0], nums[1], nums[2]
	if p < 1 || p > 255 || t < 1 || t > maxTime || m < 8*p || m > maxMemory {
		return h, errBadHash
	}
	h.params = Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p)}
	if !isB64(parts[4]) || !isB64(parts[5]) {
		return h, errBadHash
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < minSaltLen || len(h.salt) > maxSaltLen {
		return phcHash{}, errBadHash
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < minKeyLen || len(h.key) > maxKeyLen {
		return phcHash{}, errBadHash
	}
	return h, nil
}

// isB64 reports whether s holds only base64 alphabet characters
// (encoding/base64 skips line breaks, which the canonical form has none of).
func isB64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// canonicalUint parses a decimal number written without sign or leading
// zeros.
func canonicalUint(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || len(s) > 10 {
		return 0, errBadHash
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errBadHash
		}
	}
	return strconv.ParseUint(s, 10, 32)
}

// hashPassword derives a new Argon2id hash of password with a fresh random
// salt (RFC 9106 §3.1).
func (d *Directory) hashPassword(password string) string {
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails (crypto/rand.Read panics rather than return an error)
	p := d.params
	return phcHash{params: p, salt: salt, key: d.argon2id([]byte(password), salt, p, keyLen)}.String()
}

// verifyPassword reports whether password matches the PHC string stored,
// comparing the tags in constant time, and whether the hash was made with
// parameters other than the Directory's (so it should be rehashed).
func (d *Directory) verifyPassword(stored, password string) (ok, stale bool, err error) {
	h, err := parsePHC(stored)
	if err != nil {
		return false, false, err
	}
	key := d.argon2id([]byte(password), h.salt, h.params, uint32(len(h.key)))
	ok = subtle.ConstantTimeCompare(key, h.key) == 1
	return ok, h.params != d.params || len(h.salt) != saltLen || len(h.key) != keyLen, nil
}

// argon2id runs the key derivation; every password check in this package
// goes through it, so tests can count the work done.
func (d *Directory) argon2id(password, salt []byte, p Argon2Params, n uint32) []byte {
	if d.onHash != nil {
		d.onHash()
	}
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, n)
}
