package audit

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func TestCommitOpen(t *testing.T) {
	canon := []byte(`{"resourceType":"AuditEvent","id":"e1"}`)
	c, err := Commit(canon)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(append(append([]byte("warden-audit-leaf-v1\x00"), c.Nonce[:]...), canon...))
	if !bytes.Equal(c.Leaf, want[:]) {
		t.Fatalf("Leaf is not SHA-256(tag || nonce || canonical)")
	}

	otherNonce := c.Nonce
	otherNonce[31] ^= 1
	changed := bytes.Clone(canon)
	changed[10] ^= 0x20
	flipped := bytes.Clone(c.Leaf)
	flipped[0] ^= 0x80
	noTag := sha256.Sum256(append(c.Nonce[:], canon...))
	refusals := []struct {
		name   string
		leaf   []byte
		nonce  [32]byte
		events []byte
	}{
		{"other nonce", c.Leaf, otherNonce, canon},
		{"zero nonce", c.Leaf, [32]byte{}, canon},
		{"changed byte in the event", c.Leaf, c.Nonce, changed},
		{"byte appended to the event", c.Leaf, c.Nonce, append(bytes.Clone(canon), ' ')},
		{"truncated event", c.Leaf, c.Nonce, canon[:len(canon)-1]},
		{"empty event", c.Leaf, c.Nonce, nil},
		{"changed byte in the leaf", flipped, c.Nonce, canon},
		{"truncated leaf", c.Leaf[:31], c.Nonce, canon},
		{"leaf with a byte more", append(bytes.Clone(c.Leaf), 0), c.Nonce, canon},
		{"empty leaf", nil, c.Nonce, canon},
		{"hash without the domain tag", noTag[:], c.Nonce, canon},
	}
	for _, r := range refusals {
		if Open(r.leaf, r.nonce, r.events) {
			t.Errorf("%s: Open accepted", r.name)
		}
	}
	if !Open(c.Leaf, c.Nonce, canon) {
		t.Fatal("Open refused the commitment it was given")
	}
}

// TestCommitHides: committing to the same event twice gives unrelated
// leaves (fresh nonces), so a leaf cannot be confirmed by guessing.
func TestCommitHides(t *testing.T) {
	canon := []byte(`{"resourceType":"AuditEvent"}`)
	seen := map[string]bool{}
	nonces := map[[32]byte]bool{}
	for range 100 {
		c, err := Commit(canon)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Leaf) != LeafSize || seen[string(c.Leaf)] || nonces[c.Nonce] {
			t.Fatal("repeated leaf or nonce")
		}
		seen[string(c.Leaf)], nonces[c.Nonce] = true, true
	}
}
