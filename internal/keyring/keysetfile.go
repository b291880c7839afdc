package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// maxKeysetFile bounds what Open reads: a keyset of a few hundred rotated
// keys is far smaller.
const maxKeysetFile = 1 << 20

// readKeysetFile reads the clear-text JSON keyset at path after checking
// that nobody but the owner may access it.
func readKeysetFile(path string) (*keyset.Handle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v (want 0600)", ErrPermissions, path, st.Mode())
	}
	if st.Size() > maxKeysetFile {
		return nil, ErrCorrupt
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(&buf))
	if err != nil {
		return nil, ErrCorrupt
	}
	return h, nil
}

// createKeysetFile writes h to path only if path does not exist yet, so
// two processes starting at once never overwrite each other's keyset: the
// file is written to a temporary name and hard-linked into place.
func createKeysetFile(path string, h *keyset.Handle) error {
	tmp, err := writeTemp(path, h)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keyring: create keyset: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// replaceKeysetFile atomically replaces the keyset at path with h.
func replaceKeysetFile(path string, h *keyset.Handle) error {
	tmp, err := writeTemp(path, h)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("keyring: replace keyset: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes h as a clear-text JSON keyset to a new 0600 file next
// to path, fsyncs it and returns its name.
func writeTemp(path string, h *keyset.Handle) (name string, err error) {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return "", fmt.Errorf("keyring: encode keyset: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return "", fmt.Errorf("keyring: write keyset: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("keyring: sync keyset: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("keyring: write keyset: %w", err)
	}
	return f.Name(), nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync directory: %w", err)
	}
	return nil
}
