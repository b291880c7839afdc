package vaulttransit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/store"
)

// fakeTransit answers Vault Transit encrypt and decrypt requests the way
// Vault does (JSON bodies, base64 fields, "vault:v1:" ciphertexts), with
// a Tink AEAD standing in for the Transit key, and records what it got.
type fakeTransit struct {
	t     *testing.T
	token string
	key   tink.AEAD
	mu    sync.Mutex
	paths []string
}

func (f *fakeTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if r.Header.Get("X-Vault-Token") != f.token {
		http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
		return
	}
	var req map[string]string
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Method != http.MethodPut && r.Method != http.MethodPost {
		http.Error(w, `{"errors":["bad request"]}`, http.StatusBadRequest)
		return
	}
	if _, ok := req["context"]; ok {
		f.t.Errorf("request used the legacy context parameter: %v", req)
	}
	ad, err := base64.StdEncoding.DecodeString(req["associated_data"])
	if err != nil {
		http.Error(w, `{"errors":["bad associated_data"]}`, http.StatusBadRequest)
		return
	}
	var data map[string]string
	switch r.URL.Path {
	case "/v1/transit/encrypt/warden-kek":
		p, err := base64.StdEncoding.DecodeString(req["plaintext"])
		if err != nil {
			http.Error(w, `{"errors":["bad plaintext"]}`, http.StatusBadRequest)
			return
		}
		c, err := f.key.Encrypt(p, ad)
		if err != nil {
			http.Error(w, `{"errors":["encrypt"]}`, http.StatusInternalServerError)
			return
		}
		data = map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(c)}
	case "/v1/transit/decrypt/warden-kek":
		c, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(req["ciphertext"], "vault:v1:"))
		if err != nil {
			http.Error(w, `{"errors":["bad ciphertext"]}`, http.StatusBadRequest)
			return
		}
		p, err := f.key.Decrypt(c, ad)
		if err != nil {
			http.Error(w, `{"errors":["cipher: message authentication failed"]}`, http.StatusBadRequest)
			return
		}
		data = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(p)}
	default:
		http.Error(w, `{"errors":["no handler for route"]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

func newFake(t *testing.T) (*fakeTransit, *httptest.Server) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	a, err := aead.New(h)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTransit{t: t, token: "s.test-token", key: a}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func TestWrapUnwrapRequestShape(t *testing.T) {
	f, srv := newFake(t)
	k, err := New(Config{Address: srv.URL, Token: f.token, Key: "warden-kek", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte("warden/fieldcrypt/category-keyset/v1")
	c, err := k.Wrap([]byte("keyset bytes"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(c, []byte("vault:v1:")) {
		t.Errorf("wrapped key %q is not a Transit ciphertext", c)
	}
	p, err := k.Unwrap(c, ad)
	if err != nil || string(p) != "keyset bytes" {
		t.Fatalf("Unwrap = %q, %v", p, err)
	}
	want := []string{"PUT /v1/transit/encrypt/warden-kek", "PUT /v1/transit/decrypt/warden-kek"}
	if strings.Join(f.paths, ",") != strings.Join(want, ",") {
		t.Errorf("requests %v, want %v", f.paths, want)
	}

	for name, tc := range map[string]struct {
		c, ad []byte
	}{
		"other associated data": {c, []byte("other")},
		"tampered ciphertext":   {append([]byte("vault:v1:AAAA"), c[13:]...), ad},
		"not a ciphertext":      {[]byte("plain"), ad},
	} {
		if p, err := k.Unwrap(tc.c, tc.ad); !errors.Is(err, ErrUnwrap) || p != nil {
			t.Errorf("%s: Unwrap = %q, %v; want ErrUnwrap", name, p, err)
		}
	}
	bad, err := New(Config{Address: srv.URL, Token: "s.wrong", Key: "warden-kek", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Unwrap(c, ad); !errors.Is(err, ErrUnwrap) || strings.Contains(err.Error(), "s.wrong") {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := bad.Wrap([]byte("x"), ad); err == nil || strings.Contains(err.Error(), "s.wrong") {
		t.Errorf("wrong token Wrap: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []Config{
		{Token: "t", Key: "k"},
		{Address: "http://127.0.0.1:1", Key: "k"},
		{Address: "http://127.0.0.1:1", Token: "t"},
		{Address: "http://127.0.0.1:1", Token: "t", Key: "a/b"},
		{Address: "http://127.0.0.1:1", Token: "t", Key: "k", Mount: "../sys"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// memRecords is a minimal store.Records for the end-to-end test.
type memRecords struct {
	mu sync.Mutex
	m  map[string]store.Record
}

func (r *memRecords) PutRecord(_ context.Context, rec store.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[rec.Kind+"\x00"+rec.Key] = rec
	return nil
}
func (r *memRecords) InsertRecord(ctx context.Context, rec store.Record) error {
	r.mu.Lock()
	_, ok := r.m[rec.Kind+"\x00"+rec.Key]
	r.mu.Unlock()
	if ok {
		return store.ErrConflict
	}
	return r.PutRecord(ctx, rec)
}
func (r *memRecords) SwapRecord(_ context.Context, rec store.Record, old []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok := r.m[rec.Kind+"\x00"+rec.Key]
	if !ok {
		return store.ErrNotFound
	}
	if !bytes.Equal(cur.Value, old) {
		return store.ErrConflict
	}
	r.m[rec.Kind+"\x00"+rec.Key] = rec
	return nil
}
func (r *memRecords) GetRecord(_ context.Context, kind, key string) (*store.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.m[kind+"\x00"+key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &rec, nil
}
func (r *memRecords) DeleteRecord(_ context.Context, kind, key string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[kind+"\x00"+key]
	delete(r.m, kind+"\x00"+key)
	return ok, nil
}
func (r *memRecords) DeleteGroup(context.Context, string, string) (int, error) { return 0, nil }
func (r *memRecords) ListRecords(context.Context, string) ([]store.Record, error) {
	return nil, nil
}

// TestFieldcryptOverTransit runs sealing with the Transit KEK, against
// the fake, or against a real Vault when WARDEN_TEST_VAULT_ADDR and
// WARDEN_TEST_VAULT_TOKEN are set (with a transit engine at "transit"
// and an aes256-gcm96 key "warden-kek").
func TestFieldcryptOverTransit(t *testing.T) {
	cfg := Config{Key: "warden-kek"}
	if addr := os.Getenv("WARDEN_TEST_VAULT_ADDR"); addr != "" {
		cfg.Address, cfg.Token = addr, os.Getenv("WARDEN_TEST_VAULT_TOKEN")
	} else {
		f, srv := newFake(t)
		cfg.Address, cfg.Token, cfg.HTTPClient = srv.URL, f.token, srv.Client()
	}
	kek, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Vault binds the associated data: a wrapped key does not unwrap
	// with other associated data.
	w, err := kek.Wrap([]byte("keyset"), []byte("ad-1"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := kek.Unwrap(w, []byte("ad-1")); err != nil || string(p) != "keyset" {
		t.Fatalf("Unwrap = %q, %v", p, err)
	}
	if _, err := kek.Unwrap(w, []byte("ad-2")); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap with other associated data = %v, want ErrUnwrap", err)
	}
	ctx := context.Background()
	recs := &memRecords{m: map[string]store.Record{}}
	k, err := fieldcrypt.New(recs, kek, fieldcrypt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ad := fieldcrypt.AD{Type: "Observation", ID: "1", Version: 1, Path: "valueString"}
	c, err := k.Seal(ctx, "HIV", "p1", ad, []byte("positive"))
	if err != nil {
		t.Fatal(err)
	}
	// A restarted process unwraps through Vault.
	k2, _ := fieldcrypt.New(recs, kek, fieldcrypt.Options{})
	if p, err := k2.Open(ctx, "HIV", "p1", ad, c); err != nil || string(p) != "positive" {
		t.Fatalf("Open = %q, %v", p, err)
	}
	// With another Transit key (another Vault), the keysets do not unwrap.
	f2, srv2 := newFake(t)
	other, _ := New(Config{Address: srv2.URL, Token: f2.token, Key: "warden-kek", HTTPClient: srv2.Client()})
	k3, _ := fieldcrypt.New(recs, other, fieldcrypt.Options{})
	if _, err := k3.Open(ctx, "HIV", "p1", ad, c); !errors.Is(err, fieldcrypt.ErrKeyUnwrap) {
		t.Fatalf("Open under another Transit key = %v, want ErrKeyUnwrap", err)
	}
}
