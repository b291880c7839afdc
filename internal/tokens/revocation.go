package tokens

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// Records kinds of the revocation state. Keys are the jti, the grant id
// and the client id.
const (
	kindRevokedToken   = "revoked-token"   // expires when the token would have
	kindRevokedGrant   = "revoked-grant"   // expires after GrantRevocationTTL
	kindDisabledClient = "disabled-client" // never expires; EnableClient deletes it
)

// GrantRevocationTTL is how long a revoked grant is remembered: longer
// than any token or refresh token of the grant can live.
const GrantRevocationTTL = 90 * 24 * time.Hour

// revocations is the in-memory copy of the revocation state that every
// verification reads.
type revocations struct {
	// write serialises changes and loads, so that a load never replaces
	// the maps with a state read before a change that is in flight.
	write sync.Mutex

	mu sync.RWMutex
	revocationMaps
	pruneAt int // prune expired token revocations when len(tokens) reaches it
}

type revocationMaps struct {
	tokens  map[string]time.Time // jti → when the revocation may be forgotten
	grants  map[string]time.Time // grant id → likewise
	clients map[string]struct{}
}

const minPruneAt = 1024

func newRevocationMaps() revocationMaps {
	return revocationMaps{
		tokens:  map[string]time.Time{},
		grants:  map[string]time.Time{},
		clients: map[string]struct{}{},
	}
}

// check refuses a token whose jti or grant was revoked or whose client is
// disabled.
func (r *revocations) check(jti, grant, client string) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.tokens[jti]; ok {
		return invalid(ErrRevoked)
	}
	if _, ok := r.grants[grant]; ok && grant != "" {
		return invalid(ErrGrantRevoked)
	}
	if _, ok := r.clients[client]; ok {
		return invalid(ErrClientDisabled)
	}
	return nil
}

// RevokeToken revokes one access token by its jti (RFC 7009 §2.1); exp is
// when the token expires, so the revocation can be forgotten after it
// (zero: MaxLifetime from now). It takes effect here at once, even when
// storing it fails (the error is returned); with Options.Changed it
// returns once every other replica applies it too.
func (s *Service) RevokeToken(ctx context.Context, jti string, exp time.Time) error {
	if jti == "" {
		return errors.New("tokens: revoke: empty jti")
	}
	now := s.o.Now()
	until := exp.Add(clockSkew + time.Second) // exp has whole seconds; Verify allows clockSkew
	if exp.IsZero() {
		until = now.Add(s.o.MaxLifetime + clockSkew)
	}
	if !until.After(now) {
		return nil // expired already: nothing to revoke
	}
	r := &s.rev
	r.write.Lock()
	r.mu.Lock()
	r.tokens[jti] = until
	if len(r.tokens) >= r.pruneAt {
		for k, t := range r.tokens {
			if t.Before(now) {
				delete(r.tokens, k)
			}
		}
		r.pruneAt = max(minPruneAt, 2*len(r.tokens))
	}
	r.mu.Unlock()
	if err := s.o.Records.PutRecord(ctx, store.Record{Kind: kindRevokedToken, Key: jti, Expires: until}); err != nil {
		r.write.Unlock()
		return fmt.Errorf("tokens: revoke token: %w", err)
	}
	// Not under r.write: telling the replicas reloads this one too.
	r.write.Unlock()
	return s.changed(ctx)
}

// RevokeGrant revokes every access token minted for grantID (AccessClaims
// GrantID), remembered for GrantRevocationTTL. Like RevokeToken it takes
// effect here at once.
func (s *Service) RevokeGrant(ctx context.Context, grantID string) error {
	if grantID == "" {
		return errors.New("tokens: revoke: empty grant id")
	}
	until := s.o.Now().Add(GrantRevocationTTL)
	r := &s.rev
	r.write.Lock()
	r.mu.Lock()
	r.grants[grantID] = until
	r.mu.Unlock()
	if err := s.o.Records.PutRecord(ctx, store.Record{Kind: kindRevokedGrant, Key: grantID, Expires: until}); err != nil {
		r.write.Unlock()
		return fmt.Errorf("tokens: revoke grant: %w", err)
	}
	// Not under r.write: telling the replicas reloads this one too.
	r.write.Unlock()
	return s.changed(ctx)
}

// DisableClient refuses every access token of clientID until
// EnableClient. Like RevokeToken it takes effect here at once.
func (s *Service) DisableClient(ctx context.Context, clientID string) error {
	if clientID == "" {
		return errors.New("tokens: disable: empty client id")
	}
	r := &s.rev
	r.write.Lock()
	r.mu.Lock()
	r.clients[clientID] = struct{}{}
	r.mu.Unlock()
	if err := s.o.Records.PutRecord(ctx, store.Record{Kind: kindDisabledClient, Key: clientID}); err != nil {
		r.write.Unlock()
		return fmt.Errorf("tokens: disable client: %w", err)
	}
	// Not under r.write: telling the replicas reloads this one too.
	r.write.Unlock()
	return s.changed(ctx)
}

// EnableClient undoes DisableClient: the client's unexpired, unrevoked
// tokens verify again. The record is deleted before the client is enabled
// here, so a failure leaves it disabled.
func (s *Service) EnableClient(ctx context.Context, clientID string) error {
	r := &s.rev
	r.write.Lock()
	if _, err := s.o.Records.DeleteRecord(ctx, kindDisabledClient, clientID); err != nil {
		r.write.Unlock()
		return fmt.Errorf("tokens: enable client: %w", err)
	}
	r.mu.Lock()
	delete(r.clients, clientID)
	r.mu.Unlock()
	// Not under r.write: telling the replicas reloads this one too.
	r.write.Unlock()
	return s.changed(ctx)
}

// loadRevocations refreshes the in-memory revocation state from Records:
// disabled clients are replaced (another replica may have enabled one),
// token and grant revocations are added to.
func (s *Service) loadRevocations(ctx context.Context) error {
	r := &s.rev
	r.write.Lock()
	defer r.write.Unlock()
	now := s.o.Now()
	next := newRevocationMaps()
	for _, kind := range []string{kindRevokedToken, kindRevokedGrant, kindDisabledClient} {
		recs, err := s.o.Records.ListRecords(ctx, kind)
		if err != nil {
			return fmt.Errorf("tokens: load revocations: %w", err)
		}
		for _, rec := range recs {
			switch kind {
			case kindRevokedToken:
				if rec.Expires.IsZero() || rec.Expires.After(now) {
					next.tokens[rec.Key] = rec.Expires
				}
			case kindRevokedGrant:
				next.grants[rec.Key] = rec.Expires
			case kindDisabledClient:
				next.clients[rec.Key] = struct{}{}
			}
		}
	}
	r.mu.Lock()
	// Token and grant revocations are never undone, so those held here
	// (one whose record failed to store, say) stay until they expire.
	for jti, until := range r.tokens {
		if _, ok := next.tokens[jti]; !ok && until.After(now) {
			next.tokens[jti] = until
		}
	}
	for g, until := range r.grants {
		if _, ok := next.grants[g]; !ok && until.After(now) {
			next.grants[g] = until
		}
	}
	r.revocationMaps = next
	r.pruneAt = max(minPruneAt, 2*len(r.tokens))
	r.mu.Unlock()
	return nil
}

// changed tells the other replicas (Options.Changed) that revocations
// changed and returns once they apply it.
func (s *Service) changed(ctx context.Context) error {
	if s.o.Changed != nil {
		if err := s.o.Changed(ctx); err != nil {
			return fmt.Errorf("tokens: the change is stored but not yet confirmed by every replica: %w", err)
		}
	}
	return nil
}
