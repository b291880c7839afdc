package witness

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Key file names inside a witness directory.
const (
	PrivateKeyFile = "witness.key" // signed-note private key, mode 0600
	PublicKeyFile  = "witness.pub" // signed-note verifier key
	StateFile      = "state.db"
)

// ErrKey reports a missing, unreadable or inconsistent witness key.
var ErrKey = errors.New("witness: key")

// Key is a witness's Ed25519 identity.
type Key struct {
	// Signer produces timestamped cosignature/v1 signatures
	// (c2sp.org/tlog-cosignature).
	Signer note.Signer
	// CosignatureVKey is the cosignature/v1 verifier key that goes on the
	// witness line of a log's policy (c2sp.org/tlog-witness policy).
	CosignatureVKey string
}

// Name is the witness's key name.
func (k Key) Name() string { return k.Signer.Name() }

// PolicyLine returns the line a log operator adds to the log's witness
// policy (c2sp.org/tlog-witness, policy file): "witness <name> <vkey> <url>".
func (k Key) PolicyLine(url string) string {
	return fmt.Sprintf("witness %s %s %s", k.Name(), k.CosignatureVKey, url)
}

// LoadOrCreateKey loads the witness key kept in dir, or, when dir holds
// none, generates an Ed25519 key named name and writes it (private part
// mode 0600, written to a temporary file, synced and renamed). name may be
// empty when the key exists; if given, it must match the stored key's name.
// dir is created mode 0700 if missing.
func LoadOrCreateKey(dir, name string) (Key, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
	}
	skey, err := os.ReadFile(filepath.Join(dir, PrivateKeyFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if name == "" {
			return Key{}, fmt.Errorf("%w: no key in %s and no name to create one", ErrKey, dir)
		}
		s, v, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
		}
		if _, err := note.NewSigner(s); err != nil {
			return Key{}, fmt.Errorf("%w: invalid key name %q", ErrKey, name)
		}
		// Public part first: a crash between the two leaves no private
		// key, so the next start generates a fresh pair.
		if err := writeFileAtomic(dir, PublicKeyFile, []byte(v+"\n"), 0o644); err != nil {
			return Key{}, err
		}
		if err := writeFileAtomic(dir, PrivateKeyFile, []byte(s+"\n"), 0o600); err != nil {
			return Key{}, err
		}
		skey = []byte(s + "\n")
	case err != nil:
		return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
	}
	vkey, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
	}
	k, err := parseKey(strings.TrimSpace(string(skey)), strings.TrimSpace(string(vkey)))
	if err != nil {
		return Key{}, err
	}
	if name != "" && name != k.Name() {
		return Key{}, fmt.Errorf("%w: %s holds the key of %q, not %q", ErrKey, dir, k.Name(), name)
	}
	return k, nil
}

func parseKey(skey, vkey string) (Key, error) {
	plain, err := note.NewSigner(skey)
	if err != nil {
		return Key{}, fmt.Errorf("%w: private key file is not a signed-note key", ErrKey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Key{}, fmt.Errorf("%w: public key file is not a signed-note verifier key", ErrKey)
	}
	// The two files must be halves of one key pair.
	msg := []byte("warden witness key check\n")
	sig, err := plain.Sign(msg)
	if err != nil || v.Name() != plain.Name() || v.KeyHash() != plain.KeyHash() || !v.Verify(msg, sig) {
		return Key{}, fmt.Errorf("%w: private and public key files do not match", ErrKey)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
	}
	cosig, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return Key{Signer: signer, CosignatureVKey: cosig}, nil
}

func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: %v", ErrKey, err)
	}
	return nil
}
