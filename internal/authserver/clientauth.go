package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/wardenfhir/warden/internal/store"
)

// assertionType is the client_assertion_type of private_key_jwt
// (RFC 7523 §2.2).
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs are the only signature algorithms accepted on a client
// assertion (SMART App Launch 2.2 client-confidential-asymmetric).
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384}

// maxAssertionLifetime bounds how far ahead a client assertion's exp may
// lie (SMART Backend Services: "no more than five minutes in the future").
const maxAssertionLifetime = 5 * time.Minute

// assertionLeeway is the clock skew tolerated on exp, iat and nbf.
const assertionLeeway = 5 * time.Second

// Reasons a client authentication fails; they reach the client only as
// invalid_client (RFC 6749 §5.2) and are for logs and tests.
var (
	ErrAssertionMalformed = errors.New("authserver: client assertion malformed or algorithm not allowed")
	ErrAssertionClaims    = errors.New("authserver: client assertion claims invalid")
	ErrAssertionAudience  = errors.New("authserver: client assertion audience wrong")
	ErrAssertionExpiry    = errors.New("authserver: client assertion expired or lives too long")
	ErrAssertionReplay    = errors.New("authserver: client assertion jti replayed")
	ErrAssertionKey       = errors.New("authserver: no registered key verifies the client assertion")
	ErrClientSecret       = errors.New("authserver: client secret missing or wrong")
	ErrClientAuthMethod   = errors.New("authserver: client authentication method not allowed for this client")
)

// clientAuthenticator authenticates clients at the token, introspection
// and revocation endpoints (RFC 6749 §2.3): client_secret_basic,
// client_secret_post, private_key_jwt (RFC 7523 §2.2, with the SMART
// restrictions), and public clients by client_id alone. fosite's own
// strategy accepts any alg the client registers, no exp bound and no
// per-client JWKS host allow-list, so Warden plugs in this one.
type clientAuthenticator struct {
	registry   *Registry
	records    store.Records
	audiences  []string // accepted assertion aud values: the token URL and the issuer
	httpClient *http.Client
	now        func() time.Time
	certs      CertificateChecker

	mu    sync.Mutex
	cache map[string]cachedJWKS // jwks_uri → keys
}

type cachedJWKS struct {
	set     jose.JSONWebKeySet
	fetched time.Time
}

// jwksCacheFor is how long a fetched JWK Set is reused; jwksRefetchAfter
// is the least time between two fetches of one set, so that assertions
// naming unknown keys cannot make Warden hammer a client's server.
const (
	jwksCacheFor     = 5 * time.Minute
	jwksRefetchAfter = 30 * time.Second
)

// authenticate returns the authenticated client. The error matches
// ErrUnknownClient, ErrClientDisabled or one of the ErrAssertion…/
// ErrClient… reasons.
func (a *clientAuthenticator) authenticate(ctx context.Context, r *http.Request, form url.Values) (Client, error) {
	if form.Get("client_assertion_type") != "" || form.Get("client_assertion") != "" {
		if form.Get("client_assertion_type") != assertionType {
			return Client{}, fmt.Errorf("%w: client_assertion_type", ErrAssertionMalformed)
		}
		if _, _, ok := r.BasicAuth(); ok || form.Get("client_secret") != "" {
			return Client{}, ErrClientAuthMethod // RFC 6749 §2.3: one method per request
		}
		c, err := a.assertion(ctx, form.Get("client_assertion"), form.Get("client_id"))
		if err == nil && c.TLS.AuthMethod != "" {
			return Client{}, ErrClientAuthMethod // its certificate is its only credential
		}
		return c, err
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: the credentials are form-urlencoded first.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, ErrClientSecret
		}
		if form.Get("client_secret") != "" || (form.Get("client_id") != "" && form.Get("client_id") != id) {
			return Client{}, ErrClientAuthMethod
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return Client{}, ErrUnknownClient
	}
	c, err := a.client(ctx, id)
	if err != nil {
		return Client{}, err
	}
	if c.TLS.AuthMethod != "" {
		if basic || secret != "" {
			return Client{}, ErrClientAuthMethod
		}
		if err := a.authenticateTLS(r.TLS, c); err != nil {
			return Client{}, err
		}
		return c, nil
	}
	switch c.Type {
	case ClientConfidential:
		if secret == "" || !secretMatches(c.SecretHash, secret) {
			return Client{}, ErrClientSecret
		}
	case ClientPublic:
		if basic || secret != "" {
			return Client{}, ErrClientAuthMethod
		}
	default:
		return Client{}, ErrClientAuthMethod
	}
	return c, nil
}

func (a *clientAuthenticator) client(ctx context.Context, id string) (Client, error) {
	c, err := a.registry.Get(ctx, id)
	if err != nil {
		return Client{}, err
	}
	if c.Disabled {
		return Client{}, ErrClientDisabled
	}
	return c, nil
}

// assertion verifies a private_key_jwt client assertion (RFC 7523 §3,
// SMART Backend Services "Authenticating to the token endpoint").
func (a *clientAuthenticator) assertion(ctx context.Context, raw, formClientID string) (Client, error) {
	tok, err := josejwt.ParseSigned(raw, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return Client{}, ErrAssertionMalformed
	}
	var unverified josejwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return Client{}, ErrAssertionMalformed
	}
	if unverified.Issuer == "" || unverified.Issuer != unverified.Subject {
		return Client{}, fmt.Errorf("%w: iss and sub must both be the client id", ErrAssertionClaims)
	}
	if formClientID != "" && formClientID != unverified.Issuer {
		return Client{}, fmt.Errorf("%w: client_id differs from iss", ErrAssertionClaims)
	}
	c, err := a.client(ctx, unverified.Issuer)
	if err != nil {
		return Client{}, err
	}
	if c.JWKS == "" && c.JWKSURL == "" {
		return Client{}, ErrClientAuthMethod
	}
	keys, err := a.keysFor(ctx, c, false)
	if err != nil {
		return Client{}, err
	}
	var claims josejwt.Claims
	verified := verifyWith(tok, keys, &claims)
	if !verified && c.JWKS == "" {
		// The client may have rotated its keys since the set was cached.
		if keys, err = a.keysFor(ctx, c, true); err != nil {
			return Client{}, err
		}
		verified = verifyWith(tok, keys, &claims)
	}
	if !verified {
		return Client{}, ErrAssertionKey
	}
	now := a.now()
	if claims.Expiry == nil {
		return Client{}, fmt.Errorf("%w: exp missing", ErrAssertionExpiry)
	}
	exp := claims.Expiry.Time()
	if !now.Before(exp.Add(assertionLeeway)) {
		return Client{}, fmt.Errorf("%w: expired", ErrAssertionExpiry)
	}
	if exp.After(now.Add(maxAssertionLifetime + assertionLeeway)) {
		return Client{}, fmt.Errorf("%w: exp more than 5 minutes ahead", ErrAssertionExpiry)
	}
	if claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(assertionLeeway)) {
		return Client{}, fmt.Errorf("%w: not yet valid", ErrAssertionExpiry)
	}
	if claims.IssuedAt != nil && claims.IssuedAt.Time().After(now.Add(assertionLeeway)) {
		return Client{}, fmt.Errorf("%w: issued in the future", ErrAssertionExpiry)
	}
	if !slices.ContainsFunc(a.audiences, func(aud string) bool { return claims.Audience.Contains(aud) }) {
		return Client{}, ErrAssertionAudience
	}
	if claims.ID == "" {
		return Client{}, fmt.Errorf("%w: jti missing", ErrAssertionClaims)
	}
	// Atomic first use of (client, jti), remembered until the assertion
	// could no longer be accepted anyway.
	err = a.records.InsertRecord(ctx, store.Record{
		Kind: recordKindJTI, Key: c.ID + " " + claims.ID, Value: []byte("1"),
		Expires: exp.Add(assertionLeeway + time.Second),
	})
	if errors.Is(err, store.ErrConflict) {
		return Client{}, ErrAssertionReplay
	}
	if err != nil {
		return Client{}, err
	}
	return c, nil
}

// verifyWith verifies tok under the key its kid names (every key when it
// names none) among those whose use and alg allow it, and decodes the
// claims into claims.
func verifyWith(tok *josejwt.JSONWebToken, keys jose.JSONWebKeySet, claims *josejwt.Claims) bool {
	h := tok.Headers[0]
	for _, k := range keys.Keys {
		if h.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, claims); err == nil {
			return true
		}
	}
	return false
}

// keysFor returns the client's registered public keys: the inline JWKS, or
// the JWKS URL fetched only when its host is registered for the client.
// A fetched set is reused for jwksCacheFor; refresh asks for a new fetch,
// which happens at most once per jwksRefetchAfter.
func (a *clientAuthenticator) keysFor(ctx context.Context, c Client, refresh bool) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if c.JWKS != "" {
		if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
			return set, ErrAssertionKey
		}
		return set, nil
	}
	u, err := url.Parse(c.JWKSURL)
	if err != nil || u.Scheme != "https" || !slices.Contains(c.JWKSHosts, u.Host) {
		return set, fmt.Errorf("%w: jwks_url host not registered", ErrAssertionKey)
	}
	a.mu.Lock()
	cached, ok := a.cache[c.JWKSURL]
	a.mu.Unlock()
	if ok {
		age := a.now().Sub(cached.fetched)
		if age < jwksRefetchAfter || (!refresh && age < jwksCacheFor) {
			return cached.set, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.JWKSURL, nil)
	if err != nil {
		return set, ErrAssertionKey
	}
	req.Header.Set("Accept", "application/json")
	hc := *a.httpClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return set, fmt.Errorf("%w: jwks_url unreachable", ErrAssertionKey)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("%w: jwks_url answered %d", ErrAssertionKey, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || json.Unmarshal(body, &set) != nil {
		return set, fmt.Errorf("%w: jwks_url content", ErrAssertionKey)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return jose.JSONWebKeySet{}, fmt.Errorf("%w: jwks_url holds a private key", ErrAssertionKey)
		}
	}
	a.mu.Lock()
	if a.cache == nil {
		a.cache = map[string]cachedJWKS{}
	}
	a.cache[c.JWKSURL] = cachedJWKS{set: set, fetched: a.now()}
	a.mu.Unlock()
	return set, nil
}

// fositeStrategy adapts authenticate to fosite.ClientAuthenticationStrategy;
// every failure is invalid_client (RFC 6749 §5.2).
func (a *clientAuthenticator) fositeStrategy(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	c, err := a.authenticate(ctx, r, form)
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return nil, fosite.ErrServerError.WithWrap(err)
		}
		return nil, fosite.ErrInvalidClient.WithWrap(err).WithHint("Client authentication failed.")
	}
	return &fositeClient{Client: c}, nil
}
