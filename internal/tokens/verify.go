package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/smart"
)

// maxTokenLen bounds the tokens Verify reads. Warden's access tokens are
// well under 2 KiB even with a fhirContext.
const maxTokenLen = 8 << 10

// keyReloadEvery rate-limits the reloads an unknown kid triggers.
const keyReloadEvery = time.Second

// strictBase64 is base64url without padding: no trailing bits set, so
// that one token has exactly one encoding.
var strictBase64 = base64.RawURLEncoding.Strict()

// header is the JOSE header of a compact JWS as Verify reads it.
type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// Verify checks an access token presented to the FHIR API and returns the
// Principal it describes. In order (RFC 9068 §4, RFC 8725 §3): the token
// is a JWS in compact serialization (RFC 7515 §7.1; no JWE, no JSON
// serialization, strict base64url); alg is exactly ES256 (none, HS*, RS*
// are refused, so an HMAC keyed with a public key cannot pass); typ is
// at+jwt; kid names a published key (an unknown kid triggers one Reload,
// at most once a second); the signature verifies; iss is the Issuer; aud
// contains the Audience; exp is in the future, iat and nbf are not, with
// 5 s of leeway, and exp - iat is at most MaxLifetime; jti, sub and
// client_id are present. Then revocation: the jti, the grant, the client.
//
// Every refusal matches ErrInvalidToken and one reason (ErrExpired, …);
// the one other error is Options.Fresh's (the revocations cannot be
// confirmed current: answer 503).
// A token verified before is found in the cache by its SHA-256; a cache
// hit still checks the key, exp and the revocations. The Principal is the
// caller's own copy, but its Scopes share memory with the cache: read
// them, never modify them.
func (s *Service) Verify(ctx context.Context, raw string) (*policy.Principal, error) {
	if len(raw) == 0 || len(raw) > maxTokenLen {
		return nil, invalid(ErrMalformed)
	}
	if s.o.Fresh != nil {
		if err := s.o.Fresh(ctx); err != nil {
			return nil, err
		}
	}
	now := s.o.Now()
	var sum [sha256.Size]byte
	if s.cache != nil {
		sum = sha256.Sum256([]byte(raw))
		if e := s.cache.get(sum); e != nil {
			if err := s.recheck(e, now); err != nil {
				if errors.Is(err, ErrExpired) || errors.Is(err, ErrUnknownKey) {
					s.cache.delete(sum) // it can never verify again
				}
				return nil, err
			}
			p := e.principal
			return &p, nil
		}
	}
	p, kid, err := s.verifyCold(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if err := s.rev.check(p.TokenID, p.GrantID, p.ClientID); err != nil {
		return nil, err
	}
	if s.cache != nil {
		s.cache.put(sum, &cacheEntry{principal: *p, kid: kid})
	}
	return p, nil
}

// recheck is what a cache hit still checks, in Verify's order: the key,
// expiry, revocation.
func (s *Service) recheck(e *cacheEntry, now time.Time) error {
	if k := s.keys.Load().byKID[e.kid]; k == nil || !s.usable(k, now) {
		return invalid(ErrUnknownKey)
	}
	if !now.Before(e.principal.Expires.Add(clockSkew)) {
		return invalid(ErrExpired)
	}
	return s.rev.check(e.principal.TokenID, e.principal.GrantID, e.principal.ClientID)
}

// verifyCold checks a token that is not in the cache, up to and excluding
// revocation, and returns its Principal and key id.
func (s *Service) verifyCold(ctx context.Context, raw string, now time.Time) (*policy.Principal, string, error) {
	// Only the base64url alphabet and the two dots of a compact JWS: this
	// refuses JSON serialization, whitespace and the 4 dots of a JWE.
	dots := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return nil, "", invalid(ErrMalformed)
		}
	}
	if dots != 2 {
		return nil, "", invalid(ErrMalformed)
	}
	h64, rest, _ := strings.Cut(raw, ".")
	p64, sig64, _ := strings.Cut(rest, ".")
	hdrJSON, err := strictBase64.DecodeString(h64)
	if err != nil {
		return nil, "", invalid(ErrMalformed)
	}
	if _, err := strictBase64.DecodeString(p64); err != nil {
		return nil, "", invalid(ErrMalformed)
	}
	if _, err := strictBase64.DecodeString(sig64); err != nil {
		return nil, "", invalid(ErrMalformed)
	}
	var h header
	if err := josejson.Unmarshal(hdrJSON, &h); err != nil {
		return nil, "", invalid(ErrMalformed)
	}
	if h.Alg != string(jose.ES256) {
		return nil, "", invalid(ErrAlgorithm)
	}
	// RFC 9068 §4: "at+jwt" or "application/at+jwt"; media types compare
	// without regard to case (RFC 7515 §4.1.9).
	if !strings.EqualFold(h.Typ, string(accessTokenType)) && !strings.EqualFold(h.Typ, "application/"+string(accessTokenType)) {
		return nil, "", invalid(ErrType)
	}
	k := s.key(ctx, h.Kid, now)
	if k == nil {
		return nil, "", invalid(ErrUnknownKey)
	}
	if k.alg != jose.ES256 {
		return nil, "", invalid(ErrAlgorithm)
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "", invalid(ErrMalformed)
	}
	// go-jose read the same header; refuse any disagreement.
	if ph := jws.Signatures[0].Protected; ph.KeyID != h.Kid || ph.Algorithm != h.Alg {
		return nil, "", invalid(ErrMalformed)
	}
	payload, err := jws.Verify(k.public)
	if err != nil {
		return nil, "", invalid(ErrSignature)
	}
	var c accessClaims
	if err := josejson.Unmarshal(payload, &c); err != nil {
		return nil, "", invalid(ErrMalformed)
	}
	if c.Issuer != s.o.Issuer {
		return nil, "", invalid(ErrIssuer)
	}
	if !c.Audience.Contains(s.o.Audience) {
		return nil, "", invalid(ErrAudience)
	}
	if c.Expiry == nil || c.IssuedAt == nil {
		return nil, "", invalid(ErrMissingClaim)
	}
	exp, iat := c.Expiry.Time(), c.IssuedAt.Time()
	if !now.Before(exp.Add(clockSkew)) {
		return nil, "", invalid(ErrExpired)
	}
	if iat.After(now.Add(clockSkew)) {
		return nil, "", invalid(ErrIssuedAt)
	}
	if c.NotBefore != nil && c.NotBefore.Time().After(now.Add(clockSkew)) {
		return nil, "", invalid(ErrNotYetValid)
	}
	if exp.Sub(iat) > s.o.MaxLifetime {
		return nil, "", invalid(ErrLifetime)
	}
	if c.ID == "" || c.Subject == "" || c.ClientID == "" {
		return nil, "", invalid(ErrMissingClaim)
	}
	p := &policy.Principal{
		TokenID:          c.ID,
		GrantID:          c.GrantID,
		ClientID:         c.ClientID,
		Subject:          c.Subject,
		FHIRUser:         c.FHIRUser,
		Patient:          c.Patient,
		Encounter:        c.Encounter,
		Scope:            c.Scope,
		AuthTime:         c.AuthTime.Time(),
		ACR:              c.ACR,
		IssuedAt:         iat,
		BreakGlassReason: c.BreakGlass,
		Expires:          exp,
	}
	p.Scopes, _ = smart.ParseScopes(c.Scope)
	if c.Cnf != nil {
		p.CertThumbprint = c.Cnf.X5tS256
		p.JKT = c.Cnf.JKT
	}
	return p, k.kid, nil
}

// key returns the usable key kid names. For a kid it does not know it
// reloads the keys once, at most once per keyReloadEvery across all
// callers, so that keys another replica created are found while random
// kids cannot make it hammer the store.
func (s *Service) key(ctx context.Context, kid string, now time.Time) *signingKey {
	if kid == "" {
		return nil
	}
	if k := s.keys.Load().byKID[kid]; k != nil {
		if s.usable(k, now) {
			return k
		}
		return nil
	}
	last := s.keyReload.Load()
	if now.UnixNano()-last < int64(keyReloadEvery) || !s.keyReload.CompareAndSwap(last, now.UnixNano()) {
		return nil
	}
	if err := s.Reload(ctx); err != nil {
		return nil
	}
	if k := s.keys.Load().byKID[kid]; k != nil && s.usable(k, now) {
		return k
	}
	return nil
}
