package authserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/smart"
	"github.com/wardenfhir/warden/internal/store"
)

// Client types (SMART App Launch 2.2 §"Client types"; RFC 6749 §2.1).
const (
	ClientPublic       = "public"       // a browser or native app: no secret, PKCE only
	ClientConfidential = "confidential" // a server-side app holding a client secret
	ClientBackend      = "backend"      // SMART Backend Services: client_credentials with private_key_jwt
)

// Grant types a client may be registered for.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// recordKindClient is the store.Records kind holding registered clients.
const recordKindClient = "client"

// Registry errors; test with errors.Is.
var (
	ErrUnknownClient  = errors.New("authserver: unknown client")
	ErrInvalidClient  = errors.New("authserver: invalid client registration")
	ErrClientDisabled = errors.New("authserver: client disabled")
)

// Client is one registered OAuth client. Its secret is never stored:
// SecretHash holds its SHA-256 (the secret is 256 random bits, so a slow
// password hash would add latency and no strength).
type Client struct {
	ID            string        `json:"id"`
	Name          string        `json:"name"`
	Type          string        `json:"type"`
	RedirectURIs  []string      `json:"redirect_uris,omitempty"`
	Scopes        string        `json:"scopes"` // the ceiling: nothing outside it is ever granted
	GrantTypes    []string      `json:"grant_types"`
	TokenLifetime time.Duration `json:"token_lifetime,omitempty"` // 0: the server default
	Owner         string        `json:"owner,omitempty"`
	Contact       string        `json:"contact,omitempty"`
	Origins       []string      `json:"origins,omitempty"` // CORS origins allowed on the token endpoint
	JWKS          string        `json:"jwks,omitempty"`    // inline JWK Set (RFC 7517 §5)
	JWKSURL       string        `json:"jwks_url,omitempty"`
	JWKSHosts     []string      `json:"jwks_hosts,omitempty"` // hosts JWKSURL may be fetched from
	SecretHash    []byte        `json:"secret_hash,omitempty"`
	Disabled      bool          `json:"disabled,omitempty"`
	// TLS is the client's mutual-TLS authentication (RFC 8705), if any.
	TLS ClientTLS `json:"tls,omitzero"`
	// DPoPBound requires a DPoP proof at every token request, so that all
	// the client's tokens are DPoP-bound (RFC 9449 §5.2
	// dpop_bound_access_tokens); without it a proof is optional and binds
	// the grant when present.
	DPoPBound bool      `json:"dpop_bound_access_tokens,omitempty"`
	Created   time.Time `json:"created"`
}

// Client authentication methods by certificate (RFC 8705 §2).
const (
	// TLSClientAuth: the certificate chains to a CA the server trusts for
	// client certificates and names the registered subject (§2.1).
	TLSClientAuth = "tls_client_auth"
	// SelfSignedTLSClientAuth: the certificate's key is one of the client's
	// registered JWKs (§2.2).
	SelfSignedTLSClientAuth = "self_signed_tls_client_auth"
)

// ClientTLS is a client's certificate authentication and binding.
type ClientTLS struct {
	// AuthMethod is TLSClientAuth or SelfSignedTLSClientAuth; "" when the
	// client authenticates otherwise. With it, the certificate is the
	// client's only credential.
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// For TLSClientAuth, exactly one of these names the certificate
	// (RFC 8705 §2.1.2): its subject DN (RFC 4514 string), or a DNS or
	// URI (e.g. SPIFFE ID) subject alternative name.
	SubjectDN string `json:"tls_client_auth_subject_dn,omitempty"`
	SANDNS    string `json:"tls_client_auth_san_dns,omitempty"`
	SANURI    string `json:"tls_client_auth_san_uri,omitempty"`
	// BoundTokens binds every access token to the certificate the client
	// presented at the token endpoint (RFC 8705 §3, cnf x5t#S256); always
	// true with an AuthMethod.
	BoundTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`
}

// NewClient is what an administrator registers; Add fills in the rest.
type NewClient struct {
	Name          string
	Type          string
	RedirectURIs  []string
	Scopes        string
	GrantTypes    []string // empty: the defaults for Type
	TokenLifetime time.Duration
	Owner         string
	Contact       string
	Origins       []string
	JWKS          string
	JWKSURL       string
	JWKSHosts     []string // empty with JWKSURL set: the JWKSURL's own host
	TLS           ClientTLS
	DPoPBound     bool
}

// ClientTokens kills the tokens of a disabled client at once and lets a
// re-enabled client's new tokens through; *tokens.Service implements it.
type ClientTokens interface {
	DisableClient(ctx context.Context, clientID string) error
	EnableClient(ctx context.Context, clientID string) error
	RevokeGrant(ctx context.Context, grantID string) error
}

// Registry holds the registered clients in store.Records kind "client".
type Registry struct {
	records store.Records
	tokens  ClientTokens
	now     func() time.Time
}

// NewRegistry returns a Registry over records. tokens (required) is told
// when a client is disabled or enabled.
func NewRegistry(records store.Records, tokens ClientTokens, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{records: records, tokens: tokens, now: now}
}

// Add validates and registers a client. For confidential clients it returns
// the generated 256-bit secret, the only time it is ever visible.
func (r *Registry) Add(ctx context.Context, n NewClient) (Client, string, error) {
	c := Client{
		Name: n.Name, Type: n.Type, RedirectURIs: slices.Clone(n.RedirectURIs),
		Scopes: n.Scopes, GrantTypes: slices.Clone(n.GrantTypes), TokenLifetime: n.TokenLifetime,
		Owner: n.Owner, Contact: n.Contact, Origins: slices.Clone(n.Origins),
		JWKS: n.JWKS, JWKSURL: n.JWKSURL, JWKSHosts: slices.Clone(n.JWKSHosts),
		TLS: n.TLS, DPoPBound: n.DPoPBound, Created: r.now().UTC(),
	}
	if c.TLS.AuthMethod != "" {
		c.TLS.BoundTokens = true
	}
	if len(c.GrantTypes) == 0 {
		switch c.Type {
		case ClientBackend:
			c.GrantTypes = []string{GrantClientCredentials}
		default:
			c.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
		}
	}
	if c.JWKSURL != "" && len(c.JWKSHosts) == 0 {
		if u, err := url.Parse(c.JWKSURL); err == nil {
			c.JWKSHosts = []string{u.Host}
		}
	}
	if err := validateClient(c); err != nil {
		return Client{}, "", err
	}
	id, err := newClientID()
	if err != nil {
		return Client{}, "", err
	}
	c.ID = id
	var secret string
	if c.Type == ClientConfidential && c.TLS.AuthMethod == "" {
		if secret, err = randomToken(32); err != nil {
			return Client{}, "", err
		}
		c.SecretHash = hashSecret(secret)
	}
	if err := r.put(ctx, c, true); err != nil {
		return Client{}, "", err
	}
	return c, secret, nil
}

// Get returns the client with id (disabled ones too), or ErrUnknownClient.
func (r *Registry) Get(ctx context.Context, id string) (Client, error) {
	rec, err := r.records.GetRecord(ctx, recordKindClient, id)
	if errors.Is(err, store.ErrNotFound) {
		return Client{}, ErrUnknownClient
	}
	if err != nil {
		return Client{}, err
	}
	var c Client
	if err := json.Unmarshal(rec.Value, &c); err != nil {
		return Client{}, fmt.Errorf("authserver: client record %q: %w", id, err)
	}
	return c, nil
}

// List returns every registered client ordered by id.
func (r *Registry) List(ctx context.Context) ([]Client, error) {
	recs, err := r.records.ListRecords(ctx, recordKindClient)
	if err != nil {
		return nil, err
	}
	out := make([]Client, 0, len(recs))
	for _, rec := range recs {
		var c Client
		if err := json.Unmarshal(rec.Value, &c); err != nil {
			return nil, fmt.Errorf("authserver: client record %q: %w", rec.Key, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Disable marks the client disabled: it can no longer authenticate, start
// an authorization or refresh, and every token it holds dies at once. Its
// refresh tokens are deleted and their grants revoked for good, so that
// Enable does not bring them back.
func (r *Registry) Disable(ctx context.Context, id string) error {
	c, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := r.tokens.DisableClient(ctx, id); err != nil {
		return err
	}
	c.Disabled = true
	if err := r.put(ctx, c, false); err != nil {
		return err
	}
	return r.revokeGrantsOf(ctx, id)
}

// revokeGrantsOf revokes every grant of the client that still has a
// refresh token.
func (r *Registry) revokeGrantsOf(ctx context.Context, clientID string) error {
	recs, err := r.records.ListRecords(ctx, recordKindRefresh)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		var sr struct {
			ClientID string `json:"client_id"`
		}
		if json.Unmarshal(rec.Value, &sr) != nil || sr.ClientID != clientID || rec.Group == "" {
			continue
		}
		if err := r.tokens.RevokeGrant(ctx, rec.Group); err != nil {
			return err
		}
		if _, err := r.records.DeleteGroup(ctx, recordKindRefresh, rec.Group); err != nil {
			return err
		}
	}
	return nil
}

// Enable lifts Disable for new tokens. Refresh tokens and their grants
// were revoked by Disable and stay dead; access tokens minted before
// Disable without a refresh token (client_credentials tokens, at most
// 5 minutes; others at most the client's lifetime) verify again until
// they expire.
func (r *Registry) Enable(ctx context.Context, id string) error {
	c, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	c.Disabled = false
	if err := r.put(ctx, c, false); err != nil {
		return err
	}
	return r.tokens.EnableClient(ctx, id)
}

func (r *Registry) put(ctx context.Context, c Client, insert bool) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	rec := store.Record{Kind: recordKindClient, Key: c.ID, Value: b}
	if insert {
		return r.records.InsertRecord(ctx, rec)
	}
	return r.records.PutRecord(ctx, rec)
}

// validateClient applies the registration rules: redirect URIs absolute
// https (http only on loopback, RFC 8252 §7.3), no fragments (RFC 6749
// §3.1.2); backend clients have keys and no redirect URIs.
func validateClient(c Client) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidClient, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(c.Name) == "" {
		return bad("a name is required")
	}
	switch c.Type {
	case ClientPublic, ClientConfidential, ClientBackend:
	default:
		return bad("type must be public, confidential or backend")
	}
	if _, unknown := smart.ParseScopes(c.Scopes); len(unknown) > 0 || strings.TrimSpace(c.Scopes) == "" {
		return bad("scope ceiling must be a non-empty list of valid SMART scopes")
	}
	for _, g := range c.GrantTypes {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken:
			if c.Type == ClientBackend {
				return bad("backend clients use client_credentials only")
			}
		case GrantClientCredentials:
			if c.Type == ClientPublic {
				return bad("public clients cannot use client_credentials")
			}
		default:
			return bad("unsupported grant type %q", g)
		}
	}
	if c.TokenLifetime < 0 || c.TokenLifetime > time.Hour {
		return bad("token lifetime must be between 0 and 1h")
	}
	if c.Type == ClientBackend {
		if len(c.RedirectURIs) > 0 {
			return bad("backend clients have no redirect URIs")
		}
	} else if slices.Contains(c.GrantTypes, GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return bad("at least one redirect URI is required")
	}
	for _, u := range c.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return bad("redirect URI %q: %v", u, err)
		}
	}
	for _, o := range c.Origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
			return bad("origin %q must be scheme://host[:port]", o)
		}
	}
	if err := validateClientTLS(c); err != nil {
		return bad("%v", err)
	}
	if c.JWKS != "" {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil || len(set.Keys) == 0 {
			return bad("jwks must be a JWK Set with at least one key")
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				return bad("jwks must hold public keys only")
			}
		}
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("jwks_url must be an absolute https URL")
		}
		if !slices.Contains(c.JWKSHosts, u.Host) {
			return bad("jwks_url host must be one of the registered JWKS hosts")
		}
	}
	switch c.Type {
	case ClientBackend:
		if c.JWKS == "" && c.JWKSURL == "" && c.TLS.AuthMethod == "" {
			return bad("backend clients need jwks or jwks_url (private_key_jwt) or a certificate (tls_client_auth)")
		}
	case ClientPublic:
		if len(c.SecretHash) > 0 {
			return bad("public clients have no secret")
		}
	}
	return nil
}

func validateRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if !u.IsAbs() || u.Host == "" {
		return errors.New("not absolute")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("has a fragment")
	}
	if u.User != nil {
		return errors.New("has user info")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return errors.New("http only on loopback")
		}
	default:
		return errors.New("scheme must be https")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hashSecret is the stored form of a client secret.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// secretMatches compares in constant time.
func secretMatches(hash []byte, secret string) bool {
	if len(hash) != sha256.Size {
		return false
	}
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(hash, h[:]) == 1
}

// newClientID returns a random client id, 128 bits in base64url, that
// does not begin with '-' or '_': operators pass it on the command line
// (`warden clients disable ID`), where a leading '-' reads as a flag.
func newClientID() (string, error) {
	for {
		id, err := randomToken(16)
		if err != nil || (id[0] != '-' && id[0] != '_') {
			return id, err
		}
	}
}

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// validateClientTLS checks a client's RFC 8705 registration.
func validateClientTLS(c Client) error {
	t := c.TLS
	named := 0
	for _, v := range []string{t.SubjectDN, t.SANDNS, t.SANURI} {
		if v != "" {
			named++
		}
	}
	switch t.AuthMethod {
	case "":
		if named > 0 {
			return errors.New("a certificate subject needs tls_client_auth")
		}
		if t.BoundTokens && c.Type == ClientPublic {
			return errors.New("public clients cannot bind tokens to a certificate (use DPoP)")
		}
		return nil
	case TLSClientAuth:
		if named != 1 {
			return errors.New("tls_client_auth needs exactly one of subject DN, SAN DNS or SAN URI")
		}
		if t.SANURI != "" {
			if u, err := url.Parse(t.SANURI); err != nil || u.Scheme == "" {
				return errors.New("the SAN URI must be an absolute URI")
			}
		}
		if t.SubjectDN != "" {
			if _, err := parseDN(t.SubjectDN); err != nil {
				return err
			}
		}
	case SelfSignedTLSClientAuth:
		if named > 0 {
			return errors.New("self_signed_tls_client_auth binds the key, not a subject")
		}
		if c.JWKS == "" {
			return errors.New("self_signed_tls_client_auth needs the client's public keys (jwks)")
		}
	default:
		return fmt.Errorf("unsupported certificate authentication %q", t.AuthMethod)
	}
	if c.Type == ClientPublic {
		return errors.New("public clients do not authenticate (use DPoP)")
	}
	return nil
}
