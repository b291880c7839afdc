package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/store"
)

// countingRecords counts ListRecords calls on a real store.
type countingRecords struct {
	store.Records
	lists atomic.Int64
}

func (c *countingRecords) ListRecords(ctx context.Context, kind string) ([]store.Record, error) {
	c.lists.Add(1)
	return c.Records.ListRecords(ctx, kind)
}

func kids(t testing.TB, s *Service) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range jwks(t, s).Keys {
		out[k.KeyID] = k.Algorithm
	}
	return out
}

func TestRotationKeepsRetiredKeysUntilTheirTokensExpire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.svc
	oldKeys := kids(t, s)
	oldAccess := s.keys.Load().access.kid
	oldTok, _ := e.mint(t, s, AccessClaims{Lifetime: time.Hour})
	oldID, err := s.MintID(ctx, IDClaims{Subject: "u", ClientID: "app"})
	if err != nil {
		t.Fatal(err)
	}

	if err := s.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	newKeys := kids(t, s)
	if len(newKeys) != 4 {
		t.Fatalf("JWKS after rotation has %d keys, want 4 (2 active, 2 retired)", len(newKeys))
	}
	for kid := range oldKeys {
		if _, ok := newKeys[kid]; !ok {
			t.Errorf("retired key %s left the JWKS at once", kid)
		}
	}
	newTok, _ := e.mint(t, s, AccessClaims{})
	if kid := segment(t, newTok, 0)["kid"]; kid == oldAccess {
		t.Error("new tokens are still signed with the retired key")
	}
	newID, _ := s.MintID(ctx, IDClaims{Subject: "u", ClientID: "app"})
	if segment(t, newID, 0)["kid"] == segment(t, oldID, 0)["kid"] {
		t.Error("new id_tokens are still signed with the retired key")
	}

	e.clock.Advance(30 * time.Minute)
	if _, err := s.Verify(ctx, oldTok); err != nil {
		t.Errorf("token of the retired key, still alive: %v", err)
	}
	// A restarted replica sees the same: retired keys come from Records.
	if got := kids(t, e.replica(t)); len(got) != 4 {
		t.Errorf("restarted replica publishes %d keys, want 4", len(got))
	}

	e.clock.Advance(30*time.Minute + clockSkew)
	got := kids(t, s)
	if len(got) != 2 {
		t.Errorf("JWKS after the retired keys' tokens expired has %d keys, want 2", len(got))
	}
	for kid := range oldKeys {
		if _, ok := got[kid]; ok {
			t.Errorf("retired key %s still published after MaxLifetime", kid)
		}
	}
	if _, err := s.Verify(ctx, oldTok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token of a dropped key: %v, want ErrUnknownKey", err)
	}
	if got := kids(t, e.replica(t)); len(got) != 2 {
		t.Errorf("restarted replica publishes %d keys after the drop, want 2", len(got))
	}
}

func TestKeysRotateWhenOld(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RotateEvery = 24 * time.Hour })
	ctx := context.Background()
	first := e.svc.keys.Load().access.kid

	e.clock.Advance(23 * time.Hour)
	if s := e.replica(t, func(o *Options) { o.RotateEvery = 24 * time.Hour }); s.keys.Load().access.kid != first {
		t.Fatal("New rotated a key younger than RotateEvery")
	}
	e.clock.Advance(time.Hour)
	s := e.replica(t, func(o *Options) { o.RotateEvery = 24 * time.Hour })
	second := s.keys.Load().access.kid
	if second == first {
		t.Fatal("New kept a key older than RotateEvery")
	}
	if _, ok := kids(t, s)[first]; !ok {
		t.Error("the rotated key left the JWKS at once")
	}

	// The first replica, not reloaded, rotates (or adopts the new key)
	// when it next signs: it never signs with a key past its age.
	tok, _ := e.mint(t, e.svc, AccessClaims{})
	if kid := segment(t, tok, 0)["kid"]; kid == first {
		t.Error("MintAccess signed with a key older than RotateEvery")
	}
	if err := e.svc.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.svc.keys.Load().access.kid; got == first {
		t.Error("Reload kept signing with the old key")
	}
}

func TestReplicaSeesRotationAndRevocation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.svc, e.replica(t)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	tok, jti := e.mint(t, a, AccessClaims{})
	// b does not know the new key: an unknown kid makes it reload once.
	if _, err := b.Verify(ctx, tok); err != nil {
		t.Fatalf("replica refused a token of a key rotated elsewhere: %v", err)
	}
	if err := a.RevokeToken(ctx, jti, e.clock.Now().Add(DefaultLifetime)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoking replica: %v", err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("other replica after Reload: %v", err)
	}
}

func TestKeysSealedAtRest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	recs, err := e.records.ListRecords(ctx, kindSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d signing-key records, want 2", len(recs))
	}
	for _, r := range recs {
		var rec keyRecord
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			t.Fatal(err)
		}
		for _, private := range []string{`"d"`, `"p"`, `"q"`, `"kty"`} {
			if bytes.Contains(r.Value, []byte(private)) {
				t.Errorf("record %s holds %s in clear", r.Key, private)
			}
		}
		if _, err := e.ring.Unseal(rec.Sealed, sealAD(r.Key)); err != nil {
			t.Errorf("record %s: not sealed with kind+kid: %v", r.Key, err)
		}
		if _, err := e.ring.Unseal(rec.Sealed, sealAD("other")); !errors.Is(err, keyring.ErrUnseal) {
			t.Errorf("record %s: opens under another key id", r.Key)
		}
	}

	t.Run("a sealed key moved to another record", func(t *testing.T) {
		var r0, r1 keyRecord
		json.Unmarshal(recs[0].Value, &r0)
		json.Unmarshal(recs[1].Value, &r1)
		r0.Sealed, r1.Sealed = r1.Sealed, r0.Sealed
		for i, rec := range []keyRecord{r0, r1} {
			v, _ := json.Marshal(rec)
			if err := e.records.PutRecord(ctx, store.Record{Kind: kindSigningKey, Key: recs[i].Key, Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		o := Options{Issuer: testIssuer, Audience: testAudience, Records: e.records, Sealer: e.ring, Now: e.clock.Now}
		if _, err := New(ctx, o); err == nil {
			t.Fatal("New loaded keys sealed for other records")
		}
	})
}

func TestNewRefusesAnotherMasterKey(t *testing.T) {
	e := newEnv(t)
	other, err := keyring.Open(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Issuer: testIssuer, Audience: testAudience, Records: e.records, Sealer: other, Now: e.clock.Now}
	if _, err := New(context.Background(), o); !errors.Is(err, keyring.ErrUnseal) {
		t.Fatalf("New with another master key = %v, want ErrUnseal", err)
	}
}
