package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// UpstreamConfig describes an OpenID Connect provider users may sign in
// with instead of a local password, and Warden's registration there.
type UpstreamConfig struct {
	Issuer       string // the provider's issuer URL; its discovery document is fetched from it
	ClientID     string
	ClientSecret string
	RedirectURL  string   // Warden's callback, registered at the provider
	Scopes       []string // besides "openid"; none needed, the sub is enough
	// TrustMFA takes the provider's word for a second factor: an id_token
	// whose amr lists "mfa" then gives policy.ACRMultiFactor. Leave it off
	// unless the provider is under the same administration.
	TrustMFA bool
	// HTTPClient fetches discovery, keys and tokens (http.DefaultClient if
	// nil).
	HTTPClient *http.Client
}

// Upstream signs users in through an OpenID Connect provider with the
// authorization code flow and PKCE (OpenID Connect Core 1.0 §3.1, RFC 7636),
// verifies the id_token (signature, iss, aud, exp, nonce) and maps its
// issuer and sub to the local User linked to them with
// [Directory.LinkUpstream].
type Upstream struct {
	dir      *Directory
	issuer   string
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	client   *http.Client
	trustMFA bool
}

// UpstreamLogin is the state of one upstream sign-in between Start and
// Finish. The caller keeps it where the browser cannot change it (a
// sealed cookie, package web's Sealed) and passes it back on callback.
type UpstreamLogin struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // PKCE code_verifier
}

// Errors of upstream sign-in.
var (
	// ErrUpstreamState means the callback's state is not the one this
	// browser's sign-in started with (a forged or crossed callback,
	// OpenID Connect Core 1.0 §3.1.2.7 / RFC 6749 §10.12).
	ErrUpstreamState = errors.New("identity: upstream callback state mismatch")
	// ErrUpstreamToken means the provider's answer did not verify: the
	// code exchange failed, or the id_token is missing, badly signed, for
	// another audience or issuer, expired, or for another nonce.
	ErrUpstreamToken = errors.New("identity: upstream id_token refused")
	// ErrNotLinked means the provider vouched for a subject that no local
	// account is linked to.
	ErrNotLinked = errors.New("identity: no account linked to this upstream subject")
)

// kindUpstream indexes linked accounts: key issuer, NUL, sub; value user id.
const kindUpstream = "identity.upstream"

func upstreamKey(issuer, subject string) string { return issuer + "\x00" + subject }

// NewUpstream fetches the provider's discovery document (OpenID Connect
// Discovery 1.0 §4) and returns an Upstream that maps its users to d's.
func (d *Directory) NewUpstream(ctx context.Context, cfg UpstreamConfig) (*Upstream, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("identity: upstream needs an issuer, a client id and a redirect URL")
	}
	client := cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	// The provider keeps this context to fetch its keys later: it carries
	// the client, not ctx's deadline.
	p, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity: upstream discovery: %w", err)
	}
	return &Upstream{
		dir:    d,
		issuer: cfg.Issuer,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     p.Endpoint(),
			RedirectURL:  cfg.RedirectURL,
			Scopes:       append([]string{oidc.ScopeOpenID}, cfg.Scopes...),
		},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: d.now}),
		client:   client,
		trustMFA: cfg.TrustMFA,
	}, nil
}

// Issuer returns the provider's issuer URL.
func (u *Upstream) Issuer() string { return u.issuer }

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Start begins a sign-in: it returns the provider's authorization URL to
// redirect the browser to, with a fresh state, nonce (OpenID Connect Core
// 1.0 §3.1.2.1) and S256 code challenge (RFC 7636 §4.2), and the login
// state to keep until the callback.
func (u *Upstream) Start() (string, UpstreamLogin) {
	l := UpstreamLogin{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier()}
	url := u.oauth.AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier))
	return url, l
}

// Finish completes a sign-in from the callback's state and code: it checks
// the state against l, exchanges the code with the PKCE verifier, verifies
// the id_token (signature against the provider's keys, iss, aud = client
// id, exp: OpenID Connect Core 1.0 §3.1.3.7; nonce: §3.1.3.7 step 11;
// at_hash when present: §3.1.3.8) and returns the linked local user.
// A disabled user gets ErrInvalidCredentials, as with a password.
func (u *Upstream) Finish(ctx context.Context, l UpstreamLogin, state, code string) (*User, Authn, error) {
	if l.State == "" || l.Nonce == "" || l.Verifier == "" ||
		subtle.ConstantTimeCompare([]byte(state), []byte(l.State)) != 1 {
		return nil, Authn{}, ErrUpstreamState
	}
	if code == "" {
		return nil, Authn{}, ErrUpstreamToken
	}
	tok, err := u.oauth.Exchange(oidc.ClientContext(ctx, u.client), code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return nil, Authn{}, fmt.Errorf("%w: code exchange failed", ErrUpstreamToken)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, Authn{}, fmt.Errorf("%w: no id_token", ErrUpstreamToken)
	}
	idt, err := u.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, Authn{}, fmt.Errorf("%w: %v", ErrUpstreamToken, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.Nonce)) != 1 {
		return nil, Authn{}, fmt.Errorf("%w: nonce mismatch", ErrUpstreamToken)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, Authn{}, fmt.Errorf("%w: at_hash mismatch", ErrUpstreamToken)
		}
	}
	var claims struct {
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
	}
	if err := idt.Claims(&claims); err != nil {
		return nil, Authn{}, fmt.Errorf("%w: claims: %v", ErrUpstreamToken, err)
	}
	user, err := u.dir.ByUpstream(ctx, idt.Issuer, idt.Subject)
	if err != nil {
		return nil, Authn{}, err
	}
	if user.Disabled {
		return nil, Authn{}, ErrInvalidCredentials
	}
	now := u.dir.now()
	authn := Authn{ACR: policy.ACRPassword, AMR: registeredAMR(claims.AMR), Time: now.UTC().Truncate(time.Second)}
	if at := time.Unix(claims.AuthTime, 0); claims.AuthTime > 0 && !at.After(now) {
		authn.Time = at.UTC()
	}
	if u.trustMFA && slices.Contains(authn.AMR, "mfa") {
		authn.ACR = policy.ACRMultiFactor
	}
	return user, authn, nil
}

// registeredAMR keeps the amr values registered by RFC 8176 §2, so that a
// provider's private values do not reach Warden's tokens.
func registeredAMR(in []string) []string {
	var out []string
	for _, v := range in {
		switch v {
		case "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin",
			"pwd", "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia":
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// LinkUpstream links the account username to the subject sub of the
// provider issuer, so that signing in there signs in as this account. A
// subject links to one account (ErrExists if it is linked to another);
// linking an account again replaces its previous link.
func (d *Directory) LinkUpstream(ctx context.Context, username, issuer, subject string) error {
	if issuer == "" || subject == "" {
		return errors.New("identity: an upstream link needs an issuer and a subject")
	}
	u, err := d.ByUsername(ctx, username)
	if err != nil {
		return err
	}
	key := upstreamKey(issuer, subject)
	err = d.records.InsertRecord(ctx, store.Record{Kind: kindUpstream, Key: key, Value: []byte(u.ID)})
	if errors.Is(err, store.ErrConflict) {
		cur, gerr := d.records.GetRecord(ctx, kindUpstream, key)
		if gerr != nil || string(cur.Value) != u.ID {
			return ErrExists
		}
	} else if err != nil {
		return fmt.Errorf("identity: link upstream: %w", err)
	}
	var previous string
	err = d.update(ctx, username, func(u *User) error {
		if u.UpstreamIssuer != "" && (u.UpstreamIssuer != issuer || u.UpstreamSubject != subject) {
			previous = upstreamKey(u.UpstreamIssuer, u.UpstreamSubject)
		}
		u.UpstreamIssuer, u.UpstreamSubject = issuer, subject
		return nil
	})
	if err != nil {
		return err
	}
	if previous != "" {
		if _, err := d.records.DeleteRecord(ctx, kindUpstream, previous); err != nil {
			return fmt.Errorf("identity: unlink previous upstream: %w", err)
		}
	}
	return nil
}

// ByUpstream returns the account linked to subject at issuer, or
// ErrNotLinked.
func (d *Directory) ByUpstream(ctx context.Context, issuer, subject string) (*User, error) {
	r, err := d.records.GetRecord(ctx, kindUpstream, upstreamKey(issuer, subject))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotLinked
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read upstream link: %w", err)
	}
	u, _, err := d.getUser(ctx, string(r.Value))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotLinked
	}
	if err != nil {
		return nil, err
	}
	if u.UpstreamIssuer != issuer || u.UpstreamSubject != subject {
		return nil, ErrNotLinked // a stale index entry
	}
	return u, nil
}
