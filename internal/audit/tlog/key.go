package tlog

import (
	"crypto/rand"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// NewKey generates an Ed25519 checkpoint signing key named origin and returns
// it in the signed-note encodings (c2sp.org/signed-note): skey
// ("PRIVATE+KEY+<origin>+<hash>+<key>") is a secret for note.NewSigner; vkey
// ("<origin>+<hash>+<key>") is public and is what auditors and witnesses
// verify checkpoints with.
func NewKey(origin string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("%w: key name %q: %v", ErrBadOptions, origin, err)
	}
	// GenerateKey does not check the name; NewSigner does (no spaces, no
	// '+', not empty), and a key it refuses would be useless.
	if _, err := note.NewSigner(skey); err != nil {
		return "", "", fmt.Errorf("%w: key name %q: %v", ErrBadOptions, origin, err)
	}
	return skey, vkey, nil
}
