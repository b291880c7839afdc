package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTemp(t *testing.T) (*Keyring, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k, dir
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	_, dir := openTemp(t)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
	st, err = os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("file mode %v, want 0600", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only %s (no temporary files left)", len(entries), FileName)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("type.googleapis.com/google.crypto.tink.AesGcmKey")) {
		t.Errorf("keyset file is not a Tink AES-GCM JSON keyset: %.80s", data)
	}
}

func TestSealRoundTrip(t *testing.T) {
	k, dir := openTemp(t)
	ad := []byte("signing-key\x00k1")
	for _, plain := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("secret"), 5000)} {
		c, err := k.Seal(plain, ad)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) >= 8 && bytes.Contains(c, plain) {
			t.Fatal("ciphertext contains the plaintext")
		}
		got, err := k.Unseal(c, ad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("Unseal = %q, want %q", got, plain)
		}
		// The same keyset opened again from disk opens it too.
		k2, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := k2.Unseal(c, ad); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("reopened keyring: Unseal = %q, %v", got, err)
		}
	}
	a, _ := k.Seal([]byte("same"), ad)
	b, _ := k.Seal([]byte("same"), ad)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are equal (nonce reuse)")
	}
}

func TestUnsealRefuses(t *testing.T) {
	k, _ := openTemp(t)
	other, _ := openTemp(t)
	ad := []byte("signing-key\x00k1")
	c, err := k.Seal([]byte("private key"), ad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		d := bytes.Clone(c)
		d[i] ^= 0x01
		return d
	}
	cases := []struct {
		name string
		c    []byte
		ad   []byte
	}{
		{"wrong associated data", c, []byte("signing-key\x00k2")},
		{"missing associated data", c, nil},
		{"tampered key id prefix", flip(1), ad},
		{"tampered nonce", flip(6), ad},
		{"tampered ciphertext body", flip(len(c) / 2), ad},
		{"tampered tag", flip(len(c) - 1), ad},
		{"truncated", c[:len(c)-1], ad},
		{"prefix only", c[:5], ad},
		{"empty", nil, ad},
		{"extended", append(bytes.Clone(c), 0), ad},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := k.Unseal(tc.c, tc.ad)
			if !errors.Is(err, ErrUnseal) || p != nil {
				t.Fatalf("Unseal = %q, %v; want nil, ErrUnseal", p, err)
			}
			if err.Error() != ErrUnseal.Error() {
				t.Errorf("error carries detail: %q", err)
			}
		})
	}
	t.Run("another keyring", func(t *testing.T) {
		if _, err := other.Unseal(c, ad); !errors.Is(err, ErrUnseal) {
			t.Fatalf("another keyring opened the ciphertext: %v", err)
		}
	})
}

func TestRotate(t *testing.T) {
	k, dir := openTemp(t)
	ad := []byte("ad")
	oldC, err := k.Seal([]byte("old"), ad)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the pre-rotation keyset to show that new seals need the new key.
	before := filepath.Join(t.TempDir(), "before")
	if err := os.Mkdir(before, 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(before, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := k.Rotate(); err != nil {
		t.Fatal(err)
	}
	newC, err := k.Seal([]byte("new"), ad)
	if err != nil {
		t.Fatal(err)
	}
	// A Tink ciphertext's first 5 bytes name the key that sealed it.
	if bytes.Equal(oldC[:5], newC[:5]) {
		t.Error("new seal uses the old key id")
	}
	if p, err := k.Unseal(oldC, ad); err != nil || string(p) != "old" {
		t.Errorf("old ciphertext after rotation: %q, %v", p, err)
	}
	old, err := Open(before)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Unseal(newC, ad); !errors.Is(err, ErrUnseal) {
		t.Errorf("pre-rotation keyset opened a new ciphertext: %v", err)
	}

	// The rotation is on disk: a fresh Open sees both keys and seals with the new one.
	re, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]byte{oldC, newC} {
		if _, err := re.Unseal(c, ad); err != nil {
			t.Errorf("reopened keyring: %v", err)
		}
	}
	c3, _ := re.Seal([]byte("x"), ad)
	if !bytes.Equal(c3[:5], newC[:5]) {
		t.Error("reopened keyring does not seal with the rotated primary key")
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("rotated file mode %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("rotation left %d entries in the directory", len(entries))
	}
}

func TestRotateConcurrentWithSeal(t *testing.T) {
	k, _ := openTemp(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				c, err := k.Seal([]byte("p"), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := k.Unseal(c, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 3 {
		if err := k.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func TestOpenRefusesPermissions(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o620} {
		_, dir := openTemp(t)
		path := filepath.Join(dir, FileName)
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); !errors.Is(err, ErrPermissions) {
			t.Errorf("mode %v: Open = %v, want ErrPermissions", mode, err)
		}
	}
	t.Run("directory in place of the file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); !errors.Is(err, ErrPermissions) {
			t.Errorf("Open = %v, want ErrPermissions", err)
		}
	})
}

func TestOpenRefusesCorrupt(t *testing.T) {
	// A valid keyset of the wrong key type (AES-128-GCM, then HMAC).
	aes128 := `{"primaryKeyId":42,"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.AesGcmKey","value":"GhAAAQIDBAUGBwgJCgsMDQ4P","keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":42,"outputPrefixType":"TINK"}]}`
	hmac := `{"primaryKeyId":42,"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.HmacKey","value":"EgIIAxogAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":42,"outputPrefixType":"TINK"}]}`
	cases := map[string]string{
		"empty":            "",
		"not json":         "not a keyset",
		"truncated":        `{"primaryKeyId":1,"key":[`,
		"no keys":          `{"primaryKeyId":1,"key":[]}`,
		"primary missing":  strings.Replace(aes128, `"primaryKeyId":42`, `"primaryKeyId":7`, 1),
		"aes-128 key":      aes128,
		"hmac key":         hmac,
		"bad key material": strings.Replace(aes128, "GhAAAQIDBAUGBwgJCgsMDQ4P", "AAAA", 1),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("a damaged real keyset", func(t *testing.T) {
		_, dir := openTemp(t)
		path := filepath.Join(dir, FileName)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data[:len(data)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
	})
}

func TestOpenNeedsDirectory(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}
