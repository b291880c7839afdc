// Package vaulttransit provides a fieldcrypt key-encryption key held in
// HashiCorp Vault's Transit secrets engine: the key never leaves Vault,
// which encrypts and decrypts the wrapped keysets on request. It uses
// Tink's HashiCorp Vault integration (tink-go-hcvault) over Vault's Go
// API client.
//
// It owns only the connection settings and the request shape; it never
// logs, and never puts the token or plaintext in an error.
package vaulttransit

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go-hcvault/v2/integration/hcvault"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Config says which Vault and which Transit key to use.
type Config struct {
	// Address is Vault's base URL: "https://vault.example:8200".
	Address string
	// Token is a Vault token allowed to update
	// MOUNT/encrypt/KEY and MOUNT/decrypt/KEY (read it from a file or
	// the environment, never from a flag).
	Token string
	// Mount is the Transit engine's mount path; "" means "transit".
	Mount string
	// Key is the name of the Transit key: type aes256-gcm96, not
	// derived (associated data is sent as Transit's associated_data
	// parameter, which Vault binds for AES-GCM keys).
	Key string
	// HTTPClient, if set, is the client used to reach Vault (TLS
	// settings, timeouts); nil means a client with a 30 s timeout and
	// the system's roots. VAULT_* TLS variables are never consulted.
	HTTPClient *http.Client
}

// namePattern: path segments that cannot be "." or "..".
var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$`)

// ErrUnwrap is returned for every failed Unwrap, with no detail: Vault's
// answer may quote the request.
var ErrUnwrap = errors.New("vaulttransit: Vault did not decrypt the wrapped key")

// KEK is a key-encryption key in Vault Transit. It implements
// fieldcrypt.KEK.
type KEK struct{ aead tink.AEAD }

// New connects to Vault (lazily: the first Wrap or Unwrap makes the
// first request).
func New(c Config) (*KEK, error) {
	if c.Address == "" || c.Token == "" || c.Key == "" {
		return nil, errors.New("vaulttransit: address, token and key are required")
	}
	if c.Mount == "" {
		c.Mount = "transit"
	}
	c.Mount = strings.Trim(c.Mount, "/")
	if !namePattern.MatchString(c.Mount) || !namePattern.MatchString(c.Key) || strings.Contains(c.Key, "/") {
		return nil, errors.New("vaulttransit: invalid mount or key name")
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vaulttransit: %w", cfg.Error)
	}
	cfg.Address = c.Address
	// Our own client, so that TLS settings read from VAULT_* variables
	// by DefaultConfig are not used.
	cfg.HttpClient = c.HTTPClient
	if cfg.HttpClient == nil {
		cfg.HttpClient = &http.Client{Timeout: 30 * time.Second}
	}
	cfg.MaxRetries = 2
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: %w", err)
	}
	client.SetToken(c.Token)
	// Do not pick up VAULT_* settings from the environment behind the
	// caller's back: everything comes from Config.
	client.SetNamespace("")
	a, err := hcvault.NewAEAD("/"+c.Mount+"/keys/"+c.Key, client.Logical())
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: %w", err)
	}
	return &KEK{aead: a}, nil
}

// Wrap asks Vault to encrypt plaintext with the Transit key, binding ad
// (POST /v1/MOUNT/encrypt/KEY with plaintext and associated_data, both
// base64).
func (k *KEK) Wrap(plaintext, ad []byte) ([]byte, error) {
	c, err := k.aead.Encrypt(plaintext, ad)
	if err != nil {
		return nil, errors.New("vaulttransit: Vault did not encrypt the key")
	}
	return c, nil
}

// Unwrap asks Vault to decrypt what Wrap made, with the same ad.
func (k *KEK) Unwrap(ciphertext, ad []byte) ([]byte, error) {
	p, err := k.aead.Decrypt(ciphertext, ad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return p, nil
}
