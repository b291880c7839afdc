// Package authserver owns Warden's SMART App Launch 2.2 authorization
// server: the client registry, the authorization endpoint with its login,
// patient-picker and approval forms, the token endpoint (authorization code
// with PKCE, refresh-token rotation, SMART Backend Services
// client_credentials with private_key_jwt), token introspection and
// revocation, and the discovery documents. The OAuth protocol machinery is
// ory/fosite's; access and id tokens are minted by internal/tokens, users
// are authenticated by internal/identity (with a password, or, when
// Options.Upstream is set, through an upstream OpenID Connect provider),
// scopes are narrowed by internal/smart.
//
// It never decides what a token allows on the FHIR API (internal/policy
// does), never stores a client secret, token or code in clear (records are
// keyed by hashes or signatures), and never puts a secret or PHI in an
// error or a log line.
package authserver

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"

	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/tokens"
	"github.com/wardenfhir/warden/internal/web"
)

// Defaults for Options.
const (
	DefaultAccessTokenLifetime  = 5 * time.Minute
	DefaultSensitiveLifetime    = 2 * time.Minute
	DefaultRefreshTokenLifetime = 90 * 24 * time.Hour
	DefaultOnlineLifetime       = 12 * time.Hour
	// AuthorizationCodeLifetime is how long a code can be redeemed
	// (SMART 2.2: "short-lived, usually expiring within around one minute").
	AuthorizationCodeLifetime = time.Minute
	// BackendTokenLifetime caps client_credentials tokens (SMART Backend
	// Services: 300 seconds or less).
	BackendTokenLifetime = 5 * time.Minute
)

// PatientDirectory answers the patient picker: labels for the patients a
// user may choose and, for practitioners, a search by name. The FHIR store
// implements it; labels are shown only to the signed-in user.
type PatientDirectory interface {
	// Label returns a human label ("Jane Doe, born 1970-01-01") for the
	// patient id, or an error wrapping store.ErrNotFound.
	Label(ctx context.Context, id string) (string, error)
	// Search returns at most limit patients whose name matches.
	Search(ctx context.Context, name string, limit int) ([]PatientChoice, error)
}

// PatientChoice is one row of the patient picker.
type PatientChoice struct {
	ID    string
	Label string
}

// Options configure New.
type Options struct {
	// Issuer is the FHIR base URL, e.g. https://127.0.0.1:8443/fhir; every
	// endpoint URL derives from its scheme and host.
	Issuer   string
	Records  store.Records
	Tokens   *tokens.Service
	Users    *identity.Directory
	Pages    *web.Pages
	Patients PatientDirectory
	// CookieKey (32 bytes) keys the CSRF tokens and the sealed
	// interaction state; the authorization-code HMAC key derives from it.
	CookieKey []byte
	// AccessTokenLifetime is the default access-token lifetime (5m); a
	// client's TokenLifetime overrides it.
	AccessTokenLifetime time.Duration
	// SensitiveScopes lists scopes (matched exactly) or resource types
	// (matching every scope on that type, and the wildcard type "*")
	// whose grant shortens the access token to SensitiveLifetime
	// (default 2m).
	SensitiveScopes   []string
	SensitiveLifetime time.Duration
	// RefreshTokenLifetime is the offline_access refresh-token lifetime
	// (default 90 days); online_access refresh tokens stop working
	// OnlineLifetime (default 12h) after the login.
	RefreshTokenLifetime time.Duration
	OnlineLifetime       time.Duration
	// HTTPClient fetches clients' jwks_uri (only from hosts registered for
	// the client); default http.DefaultClient.
	HTTPClient *http.Client
	Now        func() time.Time
	// Upstream, when set, offers on the sign-in page a sign-in through an
	// upstream OpenID Connect provider, at /auth/upstream with its
	// callback at /auth/upstream/callback (its RedirectURL must be
	// UpstreamRedirectURL(Issuer), registered at the provider).
	// UpstreamName labels it ("Hospital SSO"; default "single sign-on").
	Upstream     *identity.Upstream
	UpstreamName string
	// Certificates checks client certificates (the FHIR listener's
	// *mtls.Listener) for clients that authenticate with one (RFC 8705);
	// nil refuses tls_client_auth.
	Certificates CertificateChecker
	// DPoP verifies DPoP proofs at the token endpoint (RFC 9449 §5); nil
	// refuses requests that carry one.
	DPoP *dpop.Verifier
	// MTLSScopes are scope prefixes (e.g. "system/") whose tokens are
	// issued only over mutual TLS and bound to the client certificate.
	MTLSScopes []string
	// Grants, when set, records each patient's approvals as they are
	// made and serves the patient pages at /auth/portal (connected apps,
	// revoke, withhold a category); nil records nothing and serves none.
	Grants Grants
}

// Server is the authorization server.
type Server struct {
	o        Options
	base     *url.URL // the issuer, parsed
	urls     endpointURLs
	provider fosite.OAuth2Provider
	store    *fositeStorage
	registry *Registry
	auth     *clientAuthenticator
	strategy *coreStrategy
	csrf     *web.CSRF
	sealed   *web.Sealed
	// upstreamSealed seals the upstream sign-in cookie; nil without
	// Options.Upstream.
	upstreamSealed *web.Sealed
	portal         *web.Sealed // the patient pages' session cookie
}

type endpointURLs struct {
	authorize, token, introspect, revoke, jwks string
}

// endpointsFor is where the endpoints of the issuer base live: under
// /auth/ on its origin (Register mounts them there).
func endpointsFor(base *url.URL) endpointURLs {
	origin := base.Scheme + "://" + base.Host
	return endpointURLs{
		authorize:  origin + "/auth/authorize",
		token:      origin + "/auth/token",
		introspect: origin + "/auth/introspect",
		revoke:     origin + "/auth/revoke",
		jwks:       origin + "/auth/jwks",
	}
}

// Endpoints are the URLs of the authorization server of an issuer, for
// the FHIR API's CapabilityStatement (oauth-uris).
type Endpoints struct {
	Authorize, Token, Introspect, Revoke, JWKS string
}

// EndpointsFor returns the endpoint URLs the server of issuer serves.
func EndpointsFor(issuer string) (Endpoints, error) {
	base, err := url.Parse(strings.TrimSuffix(issuer, "/"))
	if err != nil || base.Host == "" {
		return Endpoints{}, errors.New("authserver: issuer must be an absolute URL")
	}
	u := endpointsFor(base)
	return Endpoints{Authorize: u.authorize, Token: u.token, Introspect: u.introspect, Revoke: u.revoke, JWKS: u.jwks}, nil
}

// New builds the server over o.
func New(ctx context.Context, o Options) (*Server, error) {
	_ = ctx
	if o.Records == nil || o.Tokens == nil || o.Users == nil || o.Pages == nil || o.Patients == nil {
		return nil, errors.New("authserver: Records, Tokens, Users, Pages and Patients are required")
	}
	if len(o.CookieKey) != 32 {
		return nil, errors.New("authserver: CookieKey must be 32 bytes")
	}
	base, err := url.Parse(strings.TrimSuffix(o.Issuer, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && base.Scheme != "http") || base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("authserver: Issuer must be an absolute URL without query or fragment")
	}
	o.Issuer = base.String()
	if o.AccessTokenLifetime == 0 {
		o.AccessTokenLifetime = DefaultAccessTokenLifetime
	}
	if o.SensitiveLifetime == 0 {
		o.SensitiveLifetime = DefaultSensitiveLifetime
	}
	if o.RefreshTokenLifetime == 0 {
		o.RefreshTokenLifetime = DefaultRefreshTokenLifetime
	}
	if o.OnlineLifetime == 0 {
		o.OnlineLifetime = DefaultOnlineLifetime
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{
		o:    o,
		base: base,
		urls: endpointsFor(base),
	}
	s.registry = NewRegistry(o.Records, o.Tokens, o.Now)
	s.store = &fositeStorage{records: o.Records, registry: s.registry, revoker: o.Tokens, grants: o.Grants}
	s.auth = &clientAuthenticator{
		registry: s.registry, records: o.Records, httpClient: o.HTTPClient, now: o.Now,
		audiences: []string{s.urls.token, o.Issuer}, certs: o.Certificates,
	}

	hmacKey, err := hkdf.Key(sha256.New, o.CookieKey, nil, "warden authserver code and refresh-token HMAC", 32)
	if err != nil {
		return nil, err
	}
	csrfKey, err := hkdf.Key(sha256.New, o.CookieKey, nil, "warden authserver CSRF", 32)
	if err != nil {
		return nil, err
	}
	sealKey, err := hkdf.Key(sha256.New, o.CookieKey, nil, "warden authserver interaction cookie", 32)
	if err != nil {
		return nil, err
	}
	if s.csrf, err = web.NewCSRF(csrfKey); err != nil {
		return nil, err
	}
	if s.sealed, err = web.NewSealed(sealKey, interactionPurpose); err != nil {
		return nil, err
	}
	portalKey, err := hkdf.Key(sha256.New, o.CookieKey, nil, "warden authserver portal cookie", 32)
	if err != nil {
		return nil, err
	}
	if s.portal, err = web.NewSealed(portalKey, portalPurpose); err != nil {
		return nil, err
	}
	if o.Upstream != nil {
		if s.o.UpstreamName == "" {
			s.o.UpstreamName = "single sign-on"
		}
		upKey, err := hkdf.Key(sha256.New, o.CookieKey, nil, "warden authserver upstream cookie", 32)
		if err != nil {
			return nil, err
		}
		if s.upstreamSealed, err = web.NewSealed(upKey, upstreamPurpose); err != nil {
			return nil, err
		}
	}
	cfg := &fosite.Config{
		AccessTokenLifespan:            o.AccessTokenLifetime,
		RefreshTokenLifespan:           o.RefreshTokenLifetime,
		AuthorizeCodeLifespan:          AuthorizationCodeLifetime,
		IDTokenIssuer:                  o.Issuer,
		AccessTokenIssuer:              o.Issuer,
		TokenURL:                       s.urls.token,
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		ScopeStrategy:                  acceptAnyScope, // the ceiling narrows (smart.Grant) rather than refuses
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		RefreshTokenScopes:             []string{"offline_access", "online_access"},
		MinParameterEntropy:            8,
		GlobalSecret:                   hmacKey,
		TokenEntropy:                   32,
		ClientAuthenticationStrategy:   s.auth.fositeStrategy,
		ClientSecretsHasher:            sha256Hasher{},
		RedirectSecureChecker:          secureRedirect,
		SendDebugMessagesToClients:     false,
		OmitRedirectScopeParam:         true,
	}
	hmacStrategy := oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: cfg}, cfg)
	s.strategy = &coreStrategy{
		AccessTokenStrategy:   &accessTokenStrategy{tokens: o.Tokens, now: o.Now},
		RefreshTokenStrategy:  hmacStrategy,
		AuthorizeCodeStrategy: hmacStrategy,
	}
	s.provider = compose.Compose(cfg, s.store, s.strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
	)
	return s, nil
}

// Clients returns the client registry.
func (s *Server) Clients() *Registry { return s.registry }

// Register mounts every route of the authorization server on mux.
func (s *Server) Register(mux *http.ServeMux) {
	bp := s.base.Path
	mux.HandleFunc("GET /auth/authorize", s.handleAuthorize)
	mux.HandleFunc("POST /auth/authorize", s.handleAuthorize)
	mux.Handle("POST /auth/login", web.Protect(http.HandlerFunc(s.handleLogin)))
	mux.Handle("POST /auth/picker", web.Protect(http.HandlerFunc(s.handlePicker)))
	mux.Handle("POST /auth/approve", web.Protect(http.HandlerFunc(s.handleApprove)))
	s.registerPortal(mux)
	if s.o.Upstream != nil {
		mux.HandleFunc("GET "+upstreamStartPath, s.handleUpstreamStart)
		mux.HandleFunc("GET "+upstreamCallbackPath, s.handleUpstreamCallback)
	}
	mux.Handle("GET /auth/style.css", s.o.Pages.Stylesheet())
	mux.Handle("GET "+web.StylesheetPath, s.o.Pages.Stylesheet())
	mux.HandleFunc("/auth/token", s.handleToken)
	mux.HandleFunc("/auth/introspect", s.handleIntrospect)
	mux.HandleFunc("/auth/revoke", s.handleRevoke)
	mux.HandleFunc("/auth/jwks", s.handleJWKS)
	mux.HandleFunc(bp+"/.well-known/smart-configuration", s.handleSMARTConfiguration)
	mux.HandleFunc(bp+"/.well-known/openid-configuration", s.handleOpenIDConfiguration)
	mux.HandleFunc("/.well-known/oauth-authorization-server"+bp, s.handleOAuthMetadata)
}

// RoutePrefixes are the URL path prefixes (ServeMux patterns without a
// method) under which Register serves every route, for a caller that puts
// a handler in front of them all; base is the FHIR base URL.
func RoutePrefixes(base string) []string {
	bp := ""
	if u, err := url.Parse(base); err == nil {
		bp = strings.TrimRight(u.Path, "/")
	}
	return []string{"/auth/", bp + "/.well-known/", "/.well-known/oauth-authorization-server" + bp}
}

// AuditAction names the audit action (audit.Record.Action) of a request
// to one of the routes Register serves.
func AuditAction(r *http.Request) string {
	switch p := r.URL.Path; p {
	case "/auth/token":
		return "token"
	case "/auth/introspect":
		return "introspect"
	case "/auth/revoke":
		return "revoke"
	case "/auth/login", upstreamStartPath, upstreamCallbackPath:
		return "login"
	case "/auth/authorize", "/auth/picker", "/auth/approve":
		return "authorize"
	}
	return "discovery"
}

// coreStrategy combines the JWT access-token strategy with fosite's HMAC
// strategy for authorization codes and refresh tokens (URL-safe, opaque,
// stored only by their HMAC signature).
type coreStrategy struct {
	oauth2.AccessTokenStrategy
	oauth2.RefreshTokenStrategy
	oauth2.AuthorizeCodeStrategy
}

// acceptAnyScope is fosite's ScopeStrategy: every scope passes fosite, and
// the token endpoint and the approval step grant only what smart.Grant
// allows under the client's ceiling.
func acceptAnyScope([]string, string) bool { return true }

// secureRedirect allows https redirect URIs and http only on loopback
// (RFC 8252 §7.3); registration enforces the same.
func secureRedirect(_ context.Context, u *url.URL) bool {
	return u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname()))
}

// sha256Hasher is fosite's ClientSecretsHasher: client secrets are 256
// random bits, stored as their SHA-256 and compared in constant time.
type sha256Hasher struct{}

func (sha256Hasher) Compare(_ context.Context, hash, data []byte) error {
	if !secretMatches(hash, string(data)) {
		return fmt.Errorf("authserver: secret mismatch")
	}
	return nil
}

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return hashSecret(string(data)), nil
}
