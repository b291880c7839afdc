package fieldcrypt

import (
	"errors"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/wardenfhir/warden/internal/keyring"
)

// KEK is a key-encryption key: it wraps the category and index keysets
// before they are stored. Wrap MUST be authenticated encryption binding
// ad; Unwrap MUST fail for any ciphertext Wrap did not make with the
// same ad. Implementations: the master keyring (KeyringKEK), a
// passphrase-protected local key (PassphraseKEK) and Vault Transit
// (package vaulttransit). Any tink.AEAD (AWS KMS, GCP KMS through Tink's
// integrations) fits through AEADKEK.
type KEK interface {
	Wrap(plaintext, ad []byte) ([]byte, error)
	Unwrap(ciphertext, ad []byte) ([]byte, error)
}

// KeyringKEK wraps keysets with Warden's master keyring
// (internal/keyring): the default when no other KEK is configured.
type KeyringKEK struct{ Keyring *keyring.Keyring }

// Wrap seals plaintext under the keyring's primary key.
func (k KeyringKEK) Wrap(plaintext, ad []byte) ([]byte, error) { return k.Keyring.Seal(plaintext, ad) }

// Unwrap opens what Wrap sealed, under any key of the keyring.
func (k KeyringKEK) Unwrap(ciphertext, ad []byte) ([]byte, error) {
	return k.Keyring.Unseal(ciphertext, ad)
}

// AEADKEK uses any Tink AEAD as the key-encryption key: a KMS-backed AEAD
// from a Tink integration (AWS KMS, GCP KMS, HashiCorp Vault) or a local
// one.
type AEADKEK struct{ AEAD tink.AEAD }

// Wrap encrypts plaintext with the AEAD, binding ad.
func (k AEADKEK) Wrap(plaintext, ad []byte) ([]byte, error) { return k.AEAD.Encrypt(plaintext, ad) }

// Unwrap decrypts with the AEAD, binding ad.
func (k AEADKEK) Unwrap(ciphertext, ad []byte) ([]byte, error) {
	return k.AEAD.Decrypt(ciphertext, ad)
}

// kekAEAD presents a KEK as the tink.AEAD that keyset.Handle's Write and
// Read want. Unwrap failures lose their detail here: the caller reports
// ErrKeyUnwrap.
type kekAEAD struct{ kek KEK }

func (a kekAEAD) Encrypt(plaintext, ad []byte) ([]byte, error) { return a.kek.Wrap(plaintext, ad) }

func (a kekAEAD) Decrypt(ciphertext, ad []byte) ([]byte, error) {
	p, err := a.kek.Unwrap(ciphertext, ad)
	if err != nil {
		return nil, errors.New("unwrap failed")
	}
	return p, nil
}
