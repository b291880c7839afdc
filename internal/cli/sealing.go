package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/fieldcrypt/vaulttransit"
	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store"
)

// sealingPolicy is the sealing policy cfg describes; nil when sealing is
// disabled.
func sealingPolicy(cfg config.Config) *sealing.Policy {
	s := cfg.Sealing
	if s.Disabled {
		return nil
	}
	p := &sealing.Policy{Categories: map[string]sealing.Category{}}
	if s.WithoutClearance == "redact" {
		p.Without = sealing.Redact
	}
	for _, c := range s.Categories {
		p.Categories[c] = sealing.Category{}
	}
	for _, e := range s.Elements {
		cat, elem, _ := strings.Cut(e, ":")
		c := p.Categories[cat]
		c.Elements = append(c.Elements, elem)
		p.Categories[cat] = c
	}
	for _, cat := range s.StepUp {
		c := p.Categories[cat]
		c.StepUp = true
		p.Categories[cat] = c
	}
	for _, cat := range s.NoBreakGlass {
		c := p.Categories[cat]
		c.NoBreakGlass = true
		p.Categories[cat] = c
	}
	return p
}

// sealingKeys opens the field-encryption keys over records, wrapped by
// the key-encryption key cfg names (the master keyring kr by default).
func sealingKeys(cfg config.Config, records store.Records, kr *keyring.Keyring) (*fieldcrypt.Keys, error) {
	kek, err := sealingKEK(cfg, kr)
	if err != nil {
		return nil, err
	}
	return fieldcrypt.New(records, kek, fieldcrypt.Options{})
}

func sealingKEK(cfg config.Config, kr *keyring.Keyring) (fieldcrypt.KEK, error) {
	s := cfg.Sealing
	switch s.KEK {
	case "passphrase":
		pass, err := fieldcrypt.PassphraseFromEnv(os.Getenv)
		if err != nil {
			return nil, err
		}
		path := s.KEKFile
		if path == "" {
			path = filepath.Join(cfg.DataDir, "keys", "kek.age")
		}
		k, err := fieldcrypt.OpenPassphraseKEK(path, pass)
		if errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, err
			}
			return fieldcrypt.CreatePassphraseKEK(path, pass, 0)
		}
		return k, err
	case "vault":
		token, err := os.ReadFile(s.VaultTokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading sealing.vault_token_file: %w", err)
		}
		return vaulttransit.New(vaulttransit.Config{Address: s.VaultAddress, Mount: s.VaultMount, Key: s.VaultKey,
			Token: strings.TrimSpace(string(token))})
	default:
		if kr == nil {
			return nil, errors.New("sealing: no master keyring")
		}
		return fieldcrypt.KeyringKEK{Keyring: kr}, nil
	}
}

// keyAdmin is the key lifecycle for the admin API and `warden keys`:
// fieldcrypt.Keys for the configured tenant, each change published to
// every serving process (which then drop their unwrapped copies) before
// it returns.
type keyAdmin struct {
	keys    *fieldcrypt.Keys
	tenant  string
	publish func(ctx context.Context) error
}

func (k keyAdmin) Status(ctx context.Context) ([]fieldcrypt.KeyStatus, error) {
	return k.keys.Status(ctx)
}

func (k keyAdmin) Rotate(ctx context.Context, category string) (uint32, error) {
	id, err := k.keys.Rotate(ctx, category, k.tenant)
	if err != nil {
		return 0, err
	}
	return id, k.publish(ctx)
}

func (k keyAdmin) ShredCategory(ctx context.Context, category string) (fieldcrypt.ShredReport, error) {
	rep, err := k.keys.ShredCategory(ctx, category, k.tenant)
	if err != nil {
		return rep, err
	}
	return rep, k.publish(ctx)
}

func (k keyAdmin) ShredPatient(ctx context.Context, category, patient string) (fieldcrypt.ShredReport, error) {
	rep, err := k.keys.ShredPatient(ctx, category, k.tenant, patient)
	if err != nil {
		return rep, err
	}
	return rep, k.publish(ctx)
}

// withSealing sets the sealing of cfg on the options of an API that a
// command opens over records itself (import, labels): what it writes is
// sealed like the server's writes, and what it reads opens.
func withSealing(cfg config.Config, records store.Records, opts *fhirapi.Options) error {
	if opts.Sealing = sealingPolicy(cfg); opts.Sealing == nil {
		return nil
	}
	kr, err := keyring.Open(filepath.Join(cfg.DataDir, "keys"))
	if err != nil {
		return fmt.Errorf("opening the keyring: %w", err)
	}
	if opts.Keys, err = sealingKeys(cfg, records, kr); err != nil {
		return fmt.Errorf("opening the sealing keys: %w", err)
	}
	return nil
}
