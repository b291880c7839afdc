package tokens

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

func TestRevocationsSurviveRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.svc
	revoked, jti := e.mint(t, s, AccessClaims{})
	ofGrant, _ := e.mint(t, s, AccessClaims{GrantID: "g1"})
	ofClient, _ := e.mint(t, s, AccessClaims{ClientID: "app-2"})
	fine, _ := e.mint(t, s, AccessClaims{GrantID: "g2"})
	if err := s.RevokeToken(ctx, jti, e.clock.Now().Add(DefaultLifetime)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeGrant(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableClient(ctx, "app-2"); err != nil {
		t.Fatal(err)
	}

	restarted := e.replica(t)
	for _, c := range []struct {
		tok  string
		want error
	}{{revoked, ErrRevoked}, {ofGrant, ErrGrantRevoked}, {ofClient, ErrClientDisabled}} {
		if _, err := restarted.Verify(ctx, c.tok); !errors.Is(err, c.want) {
			t.Errorf("after restart: Verify = %v, want %v", err, c.want)
		}
	}
	if _, err := restarted.Verify(ctx, fine); err != nil {
		t.Errorf("after restart, an unrevoked token: %v", err)
	}

	// Enabling on one replica reaches the other at its next Reload.
	if err := restarted.EnableClient(ctx, "app-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Verify(ctx, ofClient); err != nil {
		t.Errorf("re-enabled client: %v", err)
	}
	if _, err := s.Verify(ctx, ofClient); !errors.Is(err, ErrClientDisabled) {
		t.Errorf("other replica before Reload: %v", err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, ofClient); err != nil {
		t.Errorf("other replica after Reload: %v", err)
	}
}

func TestRevocationRecordsExpire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	exp := e.clock.Now().Add(DefaultLifetime)
	if err := e.svc.RevokeToken(ctx, "jti-1", exp); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeGrant(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DisableClient(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	r, err := e.records.GetRecord(ctx, kindRevokedToken, "jti-1")
	if err != nil {
		t.Fatal(err)
	}
	// Verify accepts up to clockSkew after exp: the revocation must outlive that.
	if !r.Expires.After(exp.Add(clockSkew)) || r.Expires.After(exp.Add(clockSkew+2*time.Second)) {
		t.Errorf("revoked token record expires %v, token at %v", r.Expires, exp)
	}
	r, err = e.records.GetRecord(ctx, kindRevokedGrant, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().Add(GrantRevocationTTL); !r.Expires.Equal(want) {
		t.Errorf("revoked grant record expires %v, want %v", r.Expires, want)
	}
	r, err = e.records.GetRecord(ctx, kindDisabledClient, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Expires.IsZero() {
		t.Errorf("disabled client record expires %v, want never", r.Expires)
	}

	// A token already expired needs no record.
	if err := e.svc.RevokeToken(ctx, "jti-old", e.clock.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.records.GetRecord(ctx, kindRevokedToken, "jti-old"); err == nil {
		t.Error("revoking an expired token stored a record")
	}
	// Unknown exp: remembered for MaxLifetime.
	if err := e.svc.RevokeToken(ctx, "jti-unknown", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if r, err := e.records.GetRecord(ctx, kindRevokedToken, "jti-unknown"); err != nil || r.Expires.Before(e.clock.Now().Add(DefaultMaxLifetime)) {
		t.Errorf("revocation without exp: %v, %v", r, err)
	}
	for _, err := range []error{
		e.svc.RevokeToken(ctx, "", exp), e.svc.RevokeGrant(ctx, ""), e.svc.DisableClient(ctx, ""),
	} {
		if err == nil {
			t.Error("an empty id was accepted")
		}
	}
}

func TestRevokedTokensPruned(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 10 {
		if err := e.svc.RevokeToken(ctx, "old-"+strconv.Itoa(i), e.clock.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	e.svc.rev.pruneAt = 11 // as if 11 were many
	e.clock.Advance(time.Minute)
	if err := e.svc.RevokeToken(ctx, "new", e.clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	e.svc.rev.mu.RLock()
	n := len(e.svc.rev.tokens)
	e.svc.rev.mu.RUnlock()
	if n != 1 {
		t.Errorf("%d revoked jtis kept in memory, want 1 (the expired ones pruned)", n)
	}
}

// failingRecords is a store that has stopped taking writes.
type failingRecords struct {
	store.Records
	fail atomic.Bool
}

func (f *failingRecords) PutRecord(ctx context.Context, r store.Record) error {
	if f.fail.Load() {
		return store.ErrUnavailable
	}
	return f.Records.PutRecord(ctx, r)
}

func (f *failingRecords) DeleteRecord(ctx context.Context, kind, key string) (bool, error) {
	if f.fail.Load() {
		return false, store.ErrUnavailable
	}
	return f.Records.DeleteRecord(ctx, kind, key)
}

// TestRevocationFailsClosed: when the store fails, a revocation still
// holds here (and survives Reload), and a client stays disabled.
func TestRevocationFailsClosed(t *testing.T) {
	e := newEnv(t)
	failing := &failingRecords{Records: e.records}
	e.records = failing
	s := e.replica(t)
	ctx := context.Background()
	tok, jti := e.mint(t, s, AccessClaims{GrantID: "g1", ClientID: "app"})
	tok2, _ := e.mint(t, s, AccessClaims{GrantID: "g2"})
	if err := s.DisableClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	failing.fail.Store(true)
	if err := s.RevokeToken(ctx, jti, e.clock.Now().Add(DefaultLifetime)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("RevokeToken on a failing store = %v", err)
	}
	if err := s.RevokeGrant(ctx, "g2"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("RevokeGrant on a failing store = %v", err)
	}
	if err := s.EnableClient(ctx, "app"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("EnableClient on a failing store = %v", err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("token revoked while the store failed: %v", err)
	}
	if _, err := s.Verify(ctx, tok2); !errors.Is(err, ErrGrantRevoked) {
		t.Errorf("grant revoked while the store failed: %v", err)
	}
	ofApp, _ := e.mint(t, s, AccessClaims{ClientID: "app"})
	if _, err := s.Verify(ctx, ofApp); !errors.Is(err, ErrClientDisabled) {
		t.Errorf("client whose enabling failed: %v", err)
	}
	failing.fail.Store(false)
	if err := s.EnableClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	tok3, _ := e.mint(t, s, AccessClaims{ClientID: "app"})
	if _, err := s.Verify(ctx, tok3); err != nil {
		t.Errorf("client enabled once the store recovered: %v", err)
	}
	if _, err := s.Verify(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("after the store recovered: %v", err)
	}
}
