// Package tokens mints and verifies Warden's JSON Web Tokens: RFC 9068
// access tokens (signed ES256) and OpenID Connect id_tokens (signed RS256).
// It owns the signing keys behind them (generated here, stored only sealed
// by the keyring, rotated, published as a JWK Set) and the revocation state
// every verification consults: revoked tokens, revoked grants and disabled
// clients, persisted in store.Records so that a restart or another replica
// sees them.
//
// Verify is on the path of every FHIR request. Its cold path parses and
// checks a token with go-jose; a bounded cache keyed by the token's SHA-256
// makes repeated presentations of one token cost a hash and three map
// lookups, and a cache hit still checks expiry, the signing key and the
// revocation sets.
//
// Its state lives in store.Records under four kinds:
//
//	signing-key      key id (RFC 7638 thumbprint) → {alg, created, retired,
//	                 sealed private JWK}; sealed with associated data
//	                 "signing-key" 0x00 key id; expires when the key is dropped
//	revoked-token    jti; expires when the token would have
//	revoked-grant    grant id; expires after GrantRevocationTTL (90 days)
//	disabled-client  client id; until EnableClient deletes it
//
// It never speaks HTTP, never stores or logs a private key in clear, and
// never puts token contents in its errors: an error says why a token was
// refused (ErrExpired, ErrSignature, …) and nothing about what it held.
package tokens

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// Defaults for Options.
const (
	DefaultRotateEvery  = 30 * 24 * time.Hour
	DefaultMaxLifetime  = time.Hour
	DefaultLifetime     = 5 * time.Minute // of an access or id token whose claims name none
	DefaultCacheEntries = 100_000
)

// clockSkew is the only leeway Verify grants on exp, iat and nbf.
const clockSkew = 5 * time.Second

// Sealer encrypts the signing keys at rest; *keyring.Keyring is one.
// Seal binds associatedData to the ciphertext; Unseal needs the same.
type Sealer interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Unseal(ciphertext, associatedData []byte) ([]byte, error)
}

// Options configure New.
type Options struct {
	// Issuer is the iss of every token: the FHIR base URL, e.g.
	// https://127.0.0.1:8443/fhir.
	Issuer string
	// Audience is what access tokens are for (their aud): the FHIR base
	// URL.
	Audience string
	// Records holds the sealed signing keys and the revocations.
	Records store.Records
	// Sealer seals the signing keys' private halves.
	Sealer Sealer
	// RotateEvery is how old the active signing key may grow before it is
	// replaced (default 30 days).
	RotateEvery time.Duration
	// MaxLifetime is the longest lifetime of an access or id token; a
	// retired key stays published and usable for verification this long
	// after its retirement (default 1 hour).
	MaxLifetime time.Duration
	// CacheEntries bounds the verified-token cache (default 100 000);
	// a negative value disables the cache.
	CacheEntries int
	// Changed, when set, is called after a revocation (token, grant,
	// client) has been stored here and in Records, and returns once every
	// other replica applies it (coherence.Member.Publish); its error is
	// the revoking call's.
	Changed func(ctx context.Context) error
	// Fresh, when set, is called by Verify before it consults the
	// in-memory revocations: it returns an error (coherence.ErrUnavailable)
	// when this process cannot confirm they are current, and Verify
	// returns that error as it is (a 503, not an invalid token).
	Fresh func(ctx context.Context) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service mints and verifies tokens. It is safe for concurrent use.
type Service struct {
	o Options

	keys      atomic.Pointer[keySet]
	keyMu     sync.Mutex   // serialises key loading and rotation
	keyReload atomic.Int64 // Now().UnixNano() of the last reload for an unknown kid

	rev   revocations
	cache *tokenCache // nil when disabled
}

// New returns a Service over o.Records. It loads the signing keys, creates
// an ES256 and an RS256 key when either has no active key, rotates a key
// older than o.RotateEvery, and loads the revocations.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Issuer == "" || o.Audience == "" {
		return nil, errors.New("tokens: Issuer and Audience are required")
	}
	if o.Records == nil || o.Sealer == nil {
		return nil, errors.New("tokens: Records and Sealer are required")
	}
	if o.RotateEvery < 0 || o.MaxLifetime < 0 {
		return nil, errors.New("tokens: negative RotateEvery or MaxLifetime")
	}
	if o.RotateEvery == 0 {
		o.RotateEvery = DefaultRotateEvery
	}
	if o.MaxLifetime == 0 {
		o.MaxLifetime = DefaultMaxLifetime
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{o: o}
	s.rev.revocationMaps = newRevocationMaps()
	if o.CacheEntries > 0 {
		s.cache = newTokenCache(o.CacheEntries)
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the signing keys and the revocations from Records, to
// pick up what another replica rotated or revoked; it also rotates a key
// that has grown older than RotateEvery. Replicas should call it
// periodically (every few seconds to a minute): until they do, a
// revocation made elsewhere is not seen here. Verify calls it by itself,
// at most once a second, when a token names a key it does not know.
func (s *Service) Reload(ctx context.Context) error {
	if err := s.ensureKeys(ctx, false); err != nil {
		return err
	}
	return s.loadRevocations(ctx)
}

// Rotate replaces both signing keys (ES256 and RS256) with fresh ones at
// once. The retired keys stay in the JWK Set, and tokens they signed keep
// verifying, for MaxLifetime.
func (s *Service) Rotate(ctx context.Context) error {
	return s.ensureKeys(ctx, true)
}

// Reasons a token is refused. Verify's errors match ErrInvalidToken and
// exactly one of these (errors.Is); callers log the reason and answer
// every one the same way (401 invalid_token).
var (
	ErrInvalidToken = errors.New("tokens: invalid token")

	ErrMalformed      = errors.New("not a compact JWS")            // JWE, JSON serialization, bad base64 or JSON, too long
	ErrAlgorithm      = errors.New("algorithm not allowed")        // alg other than ES256 (none, HS256, RS256, …)
	ErrType           = errors.New("not an access token")          // typ other than at+jwt (an id_token, …)
	ErrUnknownKey     = errors.New("unknown or dropped key")       // kid not among the published keys
	ErrSignature      = errors.New("bad signature")                // does not verify under the named key
	ErrIssuer         = errors.New("wrong issuer")                 // iss
	ErrAudience       = errors.New("wrong audience")               // aud lacks the FHIR base URL
	ErrExpired        = errors.New("expired")                      // exp passed
	ErrIssuedAt       = errors.New("issued in the future")         // iat ahead of the clock
	ErrNotYetValid    = errors.New("not yet valid")                // nbf ahead of the clock
	ErrLifetime       = errors.New("lifetime longer than allowed") // exp - iat over MaxLifetime
	ErrMissingClaim   = errors.New("required claim missing")       // exp, iat, jti, sub or client_id
	ErrRevoked        = errors.New("token revoked")                // its jti was revoked
	ErrGrantRevoked   = errors.New("grant revoked")                // the grant it came from was revoked
	ErrClientDisabled = errors.New("client disabled")              // its client was disabled
)

// invalidToken is a refusal: it matches ErrInvalidToken and its reason.
type invalidToken struct{ reason error }

func (e *invalidToken) Error() string   { return ErrInvalidToken.Error() + ": " + e.reason.Error() }
func (e *invalidToken) Unwrap() []error { return []error{ErrInvalidToken, e.reason} }

func invalid(reason error) error { return &invalidToken{reason: reason} }

// errNoKey is returned by the minting functions before any key exists.
var errNoKey = errors.New("tokens: no signing key")
