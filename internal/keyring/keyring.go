// Package keyring owns Warden's master key material: the keyset that seals
// every other secret Warden stores (token-signing private keys today,
// field-level encryption keys later). It opens, creates and rotates that
// keyset and offers authenticated encryption with associated data under it.
// It never speaks HTTP, never logs, and never returns key material or the
// reason a ciphertext failed to open.
//
// # The master keyset file
//
// DIR/master.json is the root secret of a Warden deployment: whoever reads
// it can unseal every signing key and every sealed field in the database.
// It is a Tink keyset in Tink's JSON keyset format, in clear text:
//
//	{"primaryKeyId": 1234,
//	 "key": [{"keyData": {"typeUrl": "type.googleapis.com/google.crypto.tink.AesGcmKey",
//	                      "value": "<base64 AesGcmKey proto: the 32-byte key>",
//	                      "keyMaterialType": "SYMMETRIC"},
//	          "status": "ENABLED", "keyId": 1234, "outputPrefixType": "TINK"}]}
//
// Every key is an AES-256-GCM key (anything else is refused as corrupt).
// The primary key seals; every enabled key opens what it sealed, because a
// Tink ciphertext starts with a 5-byte prefix naming its key (0x01 and the
// big-endian key id), followed by the 12-byte nonce, the ciphertext and the
// 16-byte tag. Rotation adds a key and makes it primary; older keys stay so
// that old ciphertexts still open; the keyset grows by one key per
// rotation, so rotate on a schedule (yearly, say), not per request.
//
// The file is created with mode 0600 in a directory created with mode
// 0700, and Open refuses a file that grants any permission to group or
// others. Production deployments should not keep the keyset in clear text
// on disk: wrap it with a key management service using Tink's KMS envelope
// encryption (keyset.Handle.Write with a KMS-backed tink.AEAD, or
// aead.NewKMSEnvelopeAEAD2), so that the file alone is worthless without
// the KMS.
package keyring

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// FileName is the name of the master keyset file inside the keyring
// directory.
const FileName = "master.json"

// Errors returned by the keyring; test with errors.Is.
var (
	// ErrUnseal is returned for every ciphertext that does not open:
	// wrong key, wrong associated data, tampering, truncation. It carries
	// no detail on purpose.
	ErrUnseal = errors.New("keyring: cannot unseal")
	// ErrPermissions is returned by Open when the keyset file grants any
	// access to group or others, or is not a regular file.
	ErrPermissions = errors.New("keyring: master keyset file is accessible to others")
	// ErrCorrupt is returned by Open when the keyset file cannot be read
	// as a keyset of AES-256-GCM keys.
	ErrCorrupt = errors.New("keyring: master keyset file is not a valid AES-256-GCM keyset")

	errSeal = errors.New("keyring: seal failed")
)

// Keyring seals and unseals with the master keyset. It is safe for
// concurrent use; Rotate may run while Seal and Unseal do.
type Keyring struct {
	path string

	mu     sync.Mutex // serialises Rotate
	handle *keyset.Handle
	aead   atomic.Pointer[tink.AEAD]
}

// Open opens the master keyset DIR/master.json, creating the directory
// (0700) and a keyset with one fresh AES-256-GCM key (file 0600) when it
// is missing. An existing file must be a regular file with no group or
// other permission bits (ErrPermissions) holding a valid AES-256-GCM
// keyset (ErrCorrupt).
func Open(dir string) (*Keyring, error) {
	if dir == "" {
		return nil, errors.New("keyring: no directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k := &Keyring{path: filepath.Join(dir, FileName)}
	if _, err := os.Stat(k.path); errors.Is(err, fs.ErrNotExist) {
		h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
		if err != nil {
			return nil, fmt.Errorf("keyring: new keyset: %w", err)
		}
		if err := createKeysetFile(k.path, h); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	// Read back what is on disk, also after creating it: if another
	// process created the file first, its keyset is the one to use.
	h, err := readKeysetFile(k.path)
	if err != nil {
		return nil, err
	}
	if err := k.use(h); err != nil {
		return nil, err
	}
	return k, nil
}

// use makes h the keyring's keyset after checking that it holds only
// AES-256-GCM keys.
func (k *Keyring) use(h *keyset.Handle) error {
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return ErrCorrupt
		}
		key, ok := e.Key().(*aesgcm.Key)
		if !ok {
			return ErrCorrupt
		}
		if p, ok := key.Parameters().(*aesgcm.Parameters); !ok || p.KeySizeInBytes() != 32 {
			return ErrCorrupt
		}
	}
	a, err := aead.New(h)
	if err != nil {
		return ErrCorrupt
	}
	k.handle = h
	k.aead.Store(&a)
	return nil
}

// Seal encrypts plaintext with the primary key, binding associatedData
// (authenticated, not encrypted): Unseal needs the same associatedData.
// Callers should bind the ciphertext to what it belongs to (a record kind
// and key) so that it cannot be swapped for another.
func (k *Keyring) Seal(plaintext, associatedData []byte) ([]byte, error) {
	c, err := (*k.aead.Load()).Encrypt(plaintext, associatedData)
	if err != nil {
		return nil, errSeal
	}
	return c, nil
}

// Unseal decrypts a ciphertext made by Seal under any key of the keyset.
// Every failure is ErrUnseal, with no detail.
func (k *Keyring) Unseal(ciphertext, associatedData []byte) ([]byte, error) {
	p, err := (*k.aead.Load()).Decrypt(ciphertext, associatedData)
	if err != nil {
		return nil, ErrUnseal
	}
	return p, nil
}

// Rotate adds a fresh AES-256-GCM key and makes it primary: new seals use
// it, old ciphertexts still open under the keys that sealed them. The file
// is rewritten atomically (temporary file, fsync, rename, directory fsync)
// before the new key is used, so a crash leaves either the old or the new
// keyset, and nothing is ever sealed under a key that is not on disk.
func (k *Keyring) Rotate() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := keyset.NewManagerFromHandle(k.handle)
	id, err := m.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return fmt.Errorf("keyring: rotate: %w", err)
	}
	if err := m.SetPrimary(id); err != nil {
		return fmt.Errorf("keyring: rotate: %w", err)
	}
	h, err := m.Handle()
	if err != nil {
		return fmt.Errorf("keyring: rotate: %w", err)
	}
	if err := replaceKeysetFile(k.path, h); err != nil {
		return err
	}
	return k.use(h)
}
