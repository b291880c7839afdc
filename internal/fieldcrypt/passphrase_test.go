package fieldcrypt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPassphrase = "correct horse battery staple"

// testWorkFactor keeps scrypt cheap in tests; production uses 18.
const testWorkFactor = 10

func TestPassphraseKEK(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kek.age")
	kek, err := CreatePassphraseKEK(path, []byte(testPassphrase), testWorkFactor)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) || bytes.Contains(data, []byte("AesGcmKey")) {
		t.Fatalf("key file is not an armored age file: %.60s", data)
	}
	recs := newMemRecords()
	k, err := New(recs, kek, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := mustSeal(t, k, "PSY", "p1", obsAD, "note")

	// Reopened with the passphrase (a restart), the same records open.
	kek2, err := OpenPassphraseKEK(path, []byte(testPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := New(recs, kek2, Options{})
	mustOpen(t, k2, "PSY", "p1", obsAD, c, "note")

	if _, err := CreatePassphraseKEK(path, []byte(testPassphrase), testWorkFactor); err == nil {
		t.Error("CreatePassphraseKEK overwrote an existing key file")
	}

	t.Run("refusals", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name string, b []byte, mode os.FileMode) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, mode); err != nil {
				t.Fatal(err)
			}
			return p
		}
		body := bytes.Index(data, []byte("\n")) + 40
		tampered := bytes.Clone(data)
		if tampered[body] == 'A' {
			tampered[body] = 'B'
		} else {
			tampered[body] = 'A'
		}
		cases := []struct {
			name       string
			path       string
			passphrase string
			want       error
		}{
			{"wrong passphrase", path, "not the passphrase at all", ErrWrongPassphrase},
			{"empty passphrase", path, "", ErrWrongPassphrase},
			{"readable by others", write("open.age", data, 0o644), testPassphrase, ErrKEKPermissions},
			{"tampered file", write("tampered.age", tampered, 0o600), testPassphrase, nil},
			{"truncated file", write("short.age", data[:len(data)/2], 0o600), testPassphrase, ErrDamagedKEK},
			{"not age", write("junk.age", []byte("hello"), 0o600), testPassphrase, ErrDamagedKEK},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				kek, err := OpenPassphraseKEK(tc.path, []byte(tc.passphrase))
				if kek != nil || err == nil {
					t.Fatal("opened")
				}
				// A tampered header is ErrDamagedKEK, a tampered wrapped
				// file key ErrWrongPassphrase (age cannot tell it from a
				// wrong passphrase).
				if tc.want == nil && !errors.Is(err, ErrDamagedKEK) && !errors.Is(err, ErrWrongPassphrase) {
					t.Fatalf("err = %v", err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				if tc.passphrase != "" && strings.Contains(err.Error(), tc.passphrase) {
					t.Errorf("error contains the passphrase: %v", err)
				}
			})
		}
		if _, err := CreatePassphraseKEK(filepath.Join(dir, "weak.age"), []byte("short"), testWorkFactor); !errors.Is(err, ErrWeakPassphrase) {
			t.Errorf("weak passphrase: %v", err)
		}
	})

	t.Run("records under another passphrase KEK", func(t *testing.T) {
		otherPath := filepath.Join(t.TempDir(), "other.age")
		other, err := CreatePassphraseKEK(otherPath, []byte(testPassphrase), testWorkFactor)
		if err != nil {
			t.Fatal(err)
		}
		k3, _ := New(recs, other, Options{})
		if _, err := k3.Open(ctx, "PSY", "p1", obsAD, c); !errors.Is(err, ErrKeyUnwrap) {
			t.Fatalf("Open with another master key = %v, want ErrKeyUnwrap", err)
		}
	})
}

func TestPassphraseFromEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(file, []byte(testPassphrase+"\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	p, err := PassphraseFromEnv(env(map[string]string{PassphraseFileEnv: file, PassphraseEnv: "other"}))
	if err != nil || string(p) != testPassphrase {
		t.Errorf("from file: %q, %v", p, err)
	}
	p, err = PassphraseFromEnv(env(map[string]string{PassphraseEnv: "from the environment"}))
	if err != nil || string(p) != "from the environment" {
		t.Errorf("from env: %q, %v", p, err)
	}
	if _, err := PassphraseFromEnv(env(nil)); err == nil {
		t.Error("no passphrase configured, no error")
	}
	if _, err := PassphraseFromEnv(env(map[string]string{PassphraseFileEnv: file + ".missing"})); err == nil {
		t.Error("missing passphrase file, no error")
	}
}
