package witness

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	if _, err := LoadOrCreateKey(dir, ""); !errors.Is(err, ErrKey) {
		t.Fatalf("first start without a name: %v, want ErrKey", err)
	}
	if _, err := LoadOrCreateKey(dir, "bad name"); !errors.Is(err, ErrKey) {
		t.Fatalf("name with a space: %v, want ErrKey", err)
	}
	k, err := LoadOrCreateKey(dir, "witness.partner.example")
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, PrivateKeyFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != mode {
			t.Fatalf("%s: mode %v, %v; want %v", path, fi.Mode(), err, mode)
		}
	}
	line := k.PolicyLine("https://witness.partner.example")
	if !strings.HasPrefix(line, "witness witness.partner.example witness.partner.example+") || !strings.HasSuffix(line, " https://witness.partner.example") {
		t.Fatalf("policy line %q", line)
	}
	again, err := LoadOrCreateKey(dir, "")
	if err != nil || again.CosignatureVKey != k.CosignatureVKey {
		t.Fatalf("reload: %v, key changed: %v", err, again.CosignatureVKey != k.CosignatureVKey)
	}
	if _, err := LoadOrCreateKey(dir, "another.example"); !errors.Is(err, ErrKey) {
		t.Fatalf("another name for an existing key: %v, want ErrKey", err)
	}
	// A public key file from another key pair is refused.
	other := filepath.Join(t.TempDir(), "o")
	if _, err := LoadOrCreateKey(other, "witness.partner.example"); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(other, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, PublicKeyFile), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir, ""); !errors.Is(err, ErrKey) {
		t.Fatalf("mismatched key files: %v, want ErrKey", err)
	}
}
