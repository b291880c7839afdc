package audit

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// LeafDomain is the domain tag every leaf hash starts with; it keeps a
// leaf from being valid as any other SHA-256 preimage Warden computes.
const LeafDomain = "warden-audit-leaf-v1\x00"

// LeafSize is the length of a leaf: one SHA-256 digest.
const LeafSize = sha256.Size

// Commitment is a hiding commitment to one canonical event. Leaf goes to
// the public transparency log; Nonce stays with the event in Warden's own
// store. Without the nonce the leaf reveals nothing about the event (the
// nonce has 256 bits of entropy, so even a guessable event cannot be
// confirmed); deleting the nonce leaves an unlinkable leaf.
type Commitment struct {
	Leaf  []byte
	Nonce [32]byte
}

// Commit returns a commitment to canonical under a fresh random nonce:
// Leaf = SHA-256(LeafDomain || nonce || canonical).
func Commit(canonical []byte) (Commitment, error) {
	var c Commitment
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return Commitment{}, fmt.Errorf("audit: reading a nonce: %w", err)
	}
	c.Leaf = leafHash(c.Nonce, canonical)
	return c, nil
}

// Open reports whether leaf commits to canonical under nonce. The
// comparison takes constant time.
func Open(leaf []byte, nonce [32]byte, canonical []byte) bool {
	want := leafHash(nonce, canonical)
	return len(leaf) == LeafSize && subtle.ConstantTimeCompare(leaf, want) == 1
}

func leafHash(nonce [32]byte, canonical []byte) []byte {
	return putLeafHash(make([]byte, 0, LeafSize), nonce, canonical)
}

// putLeafHash appends SHA-256(LeafDomain || nonce || canonical) to dst.
// canonical may share dst's array past the digest (Append computes the
// leaf in front of its own event): the digest is written only after the
// whole input has been read.
func putLeafHash(dst []byte, nonce [32]byte, canonical []byte) []byte {
	h := sha256.New()
	h.Write([]byte(LeafDomain))
	h.Write(nonce[:])
	h.Write(canonical)
	return h.Sum(dst)
}
