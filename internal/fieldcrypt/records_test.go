package fieldcrypt

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/store"
)

// memRecords is a plain in-memory store.Records for tests, with a hook
// to fail calls.
type memRecords struct {
	mu   sync.Mutex
	m    map[string]store.Record // kind + "\x00" + key
	fail func(op, kind, key string) error
}

func newMemRecords() *memRecords { return &memRecords{m: map[string]store.Record{}} }

func (r *memRecords) check(op, kind, key string) error {
	if r.fail != nil {
		return r.fail(op, kind, key)
	}
	return nil
}

func (r *memRecords) PutRecord(_ context.Context, rec store.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check("put", rec.Kind, rec.Key); err != nil {
		return err
	}
	rec.Value = bytes.Clone(rec.Value)
	r.m[rec.Kind+"\x00"+rec.Key] = rec
	return nil
}

func (r *memRecords) InsertRecord(_ context.Context, rec store.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check("insert", rec.Kind, rec.Key); err != nil {
		return err
	}
	if _, ok := r.m[rec.Kind+"\x00"+rec.Key]; ok {
		return store.ErrConflict
	}
	rec.Value = bytes.Clone(rec.Value)
	r.m[rec.Kind+"\x00"+rec.Key] = rec
	return nil
}

func (r *memRecords) SwapRecord(_ context.Context, rec store.Record, old []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check("swap", rec.Kind, rec.Key); err != nil {
		return err
	}
	cur, ok := r.m[rec.Kind+"\x00"+rec.Key]
	if !ok {
		return store.ErrNotFound
	}
	if !bytes.Equal(cur.Value, old) {
		return store.ErrConflict
	}
	rec.Value = bytes.Clone(rec.Value)
	r.m[rec.Kind+"\x00"+rec.Key] = rec
	return nil
}

func (r *memRecords) GetRecord(_ context.Context, kind, key string) (*store.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check("get", kind, key); err != nil {
		return nil, err
	}
	rec, ok := r.m[kind+"\x00"+key]
	if !ok {
		return nil, store.ErrNotFound
	}
	rec.Value = bytes.Clone(rec.Value)
	return &rec, nil
}

func (r *memRecords) DeleteRecord(_ context.Context, kind, key string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check("delete", kind, key); err != nil {
		return false, err
	}
	_, ok := r.m[kind+"\x00"+key]
	delete(r.m, kind+"\x00"+key)
	return ok, nil
}

func (r *memRecords) DeleteGroup(_ context.Context, kind, group string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	if group == "" {
		return 0, nil
	}
	for k, rec := range r.m {
		if rec.Kind == kind && rec.Group == group {
			delete(r.m, k)
			n++
		}
	}
	return n, nil
}

func (r *memRecords) ListRecords(_ context.Context, kind string) ([]store.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []store.Record
	for _, rec := range r.m {
		if rec.Kind == kind {
			rec.Value = bytes.Clone(rec.Value)
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b store.Record) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// edit changes a stored record's value in place, as an attacker with
// write access to the database would.
func (r *memRecords) edit(t *testing.T, kind, key string, f func([]byte) []byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.m[kind+"\x00"+key]
	if !ok {
		t.Fatalf("no record %s %s", kind, key)
	}
	rec.Value = f(bytes.Clone(rec.Value))
	r.m[kind+"\x00"+key] = rec
}

var errInjected = errors.New("injected failure")

// testKeyring opens a fresh master keyring in a temporary directory.
func testKeyring(tb testing.TB) *keyring.Keyring {
	tb.Helper()
	kr, err := keyring.Open(filepath.Join(tb.TempDir(), "keys"))
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// newTestKeys returns Keys over fresh in-memory records and a fresh
// keyring KEK.
func newTestKeys(tb testing.TB) (*Keys, *memRecords, KEK) {
	tb.Helper()
	recs := newMemRecords()
	kek := KeyringKEK{Keyring: testKeyring(tb)}
	k, err := New(recs, kek, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return k, recs, kek
}
