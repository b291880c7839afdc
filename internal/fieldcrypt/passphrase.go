package fieldcrypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Environment variables PassphraseFromEnv reads. The passphrase is never
// a flag: other users of the machine could read it in the process list.
const (
	PassphraseEnv     = "WARDEN_KEK_PASSPHRASE"
	PassphraseFileEnv = "WARDEN_KEK_PASSPHRASE_FILE"
)

// Passphrase-protected KEK settings.
const (
	MinPassphrase         = 12 // bytes
	DefaultWorkFactor     = 18 // scrypt N = 2^18: 256 MiB and about a second per unlock
	maxWorkFactor         = 22 // what Open accepts: caps the cost a damaged file can impose
	maxPassphraseKEKBytes = 64 << 10
)

// Errors of the passphrase-protected KEK. Their texts never include the
// passphrase, key bytes or the file's content.
var (
	ErrWrongPassphrase = errors.New("fieldcrypt: wrong passphrase for the key-encryption key")
	ErrWeakPassphrase  = errors.New("fieldcrypt: the key-encryption key passphrase must be at least 12 characters")
	ErrDamagedKEK      = errors.New("fieldcrypt: the key-encryption key file is damaged")
	ErrKEKPermissions  = errors.New("fieldcrypt: the key-encryption key file is accessible to others")
)

// PassphraseFromEnv returns the KEK passphrase from the file named by
// WARDEN_KEK_PASSPHRASE_FILE (first line, at most 4 KiB) or else from
// WARDEN_KEK_PASSPHRASE. getenv is os.Getenv in production.
func PassphraseFromEnv(getenv func(string) string) ([]byte, error) {
	if name := getenv(PassphraseFileEnv); name != "" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: reading the passphrase file named by %s: %w", PassphraseFileEnv, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 4096))
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: reading the passphrase file named by %s: %w", PassphraseFileEnv, err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return []byte(strings.TrimSuffix(line, "\r")), nil
	}
	if p := getenv(PassphraseEnv); p != "" {
		return []byte(p), nil
	}
	return nil, fmt.Errorf("fieldcrypt: no key-encryption key passphrase: set %s or %s", PassphraseFileEnv, PassphraseEnv)
}

// PassphraseKEK is a local master key protected by a passphrase: a Tink
// AES-256-GCM keyset, encrypted with age's scrypt recipient
// (age-encryption.org/v1: scrypt, then ChaCha20-Poly1305), ASCII-armored,
// in a file of mode 0600. `age -d FILE` recovers the Tink JSON keyset by
// hand.
type PassphraseKEK struct{ aead tink.AEAD }

// CreatePassphraseKEK makes a new master key and writes it to path,
// which must not exist, encrypted to passphrase with scrypt work factor
// workFactor (0 means DefaultWorkFactor).
func CreatePassphraseKEK(path string, passphrase []byte, workFactor int) (*PassphraseKEK, error) {
	if len(passphrase) < MinPassphrase {
		return nil, ErrWeakPassphrase
	}
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	if workFactor < 1 || workFactor > maxWorkFactor {
		return nil, fmt.Errorf("fieldcrypt: scrypt work factor must be 1 to %d", maxWorkFactor)
	}
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, errSeal
	}
	var clear bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&clear)); err != nil {
		return nil, errSeal
	}
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return nil, ErrWeakPassphrase
	}
	r.SetWorkFactor(workFactor)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, errSeal
	}
	if _, err := w.Write(clear.Bytes()); err != nil {
		return nil, errSeal
	}
	if err := w.Close(); err != nil {
		return nil, errSeal
	}
	if err := aw.Close(); err != nil {
		return nil, errSeal
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: creating the key-encryption key file: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return nil, fmt.Errorf("fieldcrypt: writing the key-encryption key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("fieldcrypt: writing the key-encryption key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("fieldcrypt: writing the key-encryption key file: %w", err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, errSeal
	}
	return &PassphraseKEK{aead: a}, nil
}

// OpenPassphraseKEK reads the master key at path with passphrase. A
// file readable by group or others is ErrKEKPermissions; a wrong
// passphrase is ErrWrongPassphrase; anything else wrong with the file
// (tampering, truncation, a work factor above 2^22, not an AES-256-GCM
// keyset) is ErrDamagedKEK.
func OpenPassphraseKEK(path string, passphrase []byte) (*PassphraseKEK, error) {
	if len(passphrase) == 0 {
		return nil, ErrWrongPassphrase
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: the key-encryption key file: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, ErrKEKPermissions
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: the key-encryption key file: %w", err)
	}
	if len(data) > maxPassphraseKEKBytes {
		return nil, ErrDamagedKEK
	}
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	id.SetMaxWorkFactor(maxWorkFactor)
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), id)
	if err != nil {
		if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
			return nil, ErrWrongPassphrase
		}
		return nil, ErrDamagedKEK
	}
	clear, err := io.ReadAll(io.LimitReader(r, maxPassphraseKEKBytes))
	if err != nil {
		return nil, ErrDamagedKEK
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(clear)))
	if err != nil {
		return nil, ErrDamagedKEK
	}
	_, a, err := checkAEADKeyset(h)
	if err != nil {
		return nil, ErrDamagedKEK
	}
	return &PassphraseKEK{aead: a}, nil
}

// Wrap encrypts plaintext with the master key (AES-256-GCM), binding ad.
func (k *PassphraseKEK) Wrap(plaintext, ad []byte) ([]byte, error) {
	return k.aead.Encrypt(plaintext, ad)
}

// Unwrap decrypts what Wrap made with the same ad.
func (k *PassphraseKEK) Unwrap(ciphertext, ad []byte) ([]byte, error) {
	return k.aead.Decrypt(ciphertext, ad)
}
