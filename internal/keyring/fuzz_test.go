package keyring

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

// FuzzUnseal feeds Unseal arbitrary ciphertexts and associated data,
// starting from real ciphertexts and the seeds in testdata/fuzz/FuzzUnseal.
// Properties: it never panics; it opens only the exact ciphertexts Seal
// made, with their exact associated data, to their plaintext; every other
// input is ErrUnseal.
func FuzzUnseal(f *testing.F) {
	k, err := Open(filepath.Join(f.TempDir(), "keys"))
	if err != nil {
		f.Fatal(err)
	}
	type sealed struct{ plain, ad []byte }
	made := map[string]sealed{}
	for _, s := range []sealed{{[]byte("private key"), []byte("signing-key\x00k1")}, {nil, nil}, {[]byte("x"), []byte("ad")}} {
		c, err := k.Seal(s.plain, s.ad)
		if err != nil {
			f.Fatal(err)
		}
		made[string(c)] = s
		f.Add(c, s.ad)
	}
	f.Fuzz(func(t *testing.T, c, ad []byte) {
		p, err := k.Unseal(c, ad)
		s, ok := made[string(c)]
		if ok && bytes.Equal(s.ad, ad) {
			if err != nil || !bytes.Equal(p, s.plain) {
				t.Fatalf("Unseal of a real ciphertext = %q, %v", p, err)
			}
			return
		}
		if err == nil || !errors.Is(err, ErrUnseal) || p != nil {
			t.Fatalf("Unseal of a forged or mismatched ciphertext = %q, %v", p, err)
		}
	})
}
