package fhirapi

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/policy"
)

// Verifier checks an access token and returns who it speaks for
// (internal/tokens.Service).
type Verifier interface {
	Verify(ctx context.Context, raw string) (*policy.Principal, error)
}

// realm is the protection space of the FHIR API's challenges.
const realm = `realm="warden"`

// authenticate returns the caller of r. Only Bearer access tokens are
// accepted (RFC 6750 §2.1); Basic credentials, tokens in the query or the
// body, and several Authorization headers are refused.
func (a *API) authenticate(r *http.Request) (*policy.Principal, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return nil, &Error{Status: http.StatusUnauthorized, Challenge: "Bearer " + realm,
			Issues: []Issue{{Severity: "error", Code: "login", Diagnostics: "An access token is required (Authorization: Bearer)"}}}
	}
	scheme, token, ok := strings.Cut(hs[0], " ")
	if len(hs) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return nil, &Error{Status: http.StatusUnauthorized, Challenge: "Bearer " + realm + `, error="invalid_request", error_description="Send one access token as Authorization: Bearer"`,
			Issues: []Issue{{Severity: "error", Code: "login", Diagnostics: "Only Bearer access tokens are accepted"}}}
	}
	if r.URL.Query().Has("access_token") {
		return nil, &Error{Status: http.StatusBadRequest, Challenge: "Bearer " + realm + `, error="invalid_request"`,
			Issues: []Issue{{Severity: "error", Code: "security", Diagnostics: "Access tokens are not accepted in the query string"}}}
	}
	if a.opts.Verifier == nil {
		return nil, errorf(http.StatusServiceUnavailable, "transient", "Token verification is not configured")
	}
	p, err := a.opts.Verifier.Verify(r.Context(), token)
	if err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "access token refused", slog.String("reason", err.Error()))
		return nil, &Error{Status: http.StatusUnauthorized, Challenge: "Bearer " + realm + `, error="invalid_token", error_description="The access token is invalid, expired or revoked"`,
			Issues: []Issue{{Severity: "error", Code: "login", Diagnostics: "The access token is invalid, expired or revoked"}}}
	}
	if err := checkSenderConstraint(r, p); err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "access token refused", slog.String("reason", err.Diagnostics))
		return nil, &Error{Status: http.StatusUnauthorized, Challenge: "Bearer " + realm + `, error="invalid_token", error_description="` + err.Diagnostics + `"`,
			Issues: []Issue{*err}}
	}
	return p, nil
}

// checkSenderConstraint refuses a sender-constrained token presented
// without the key it is bound to: a certificate-bound token (RFC 8705
// §3, cnf x5t#S256) on a connection without that client certificate, and
// a DPoP-bound token (RFC 9449, cnf jkt) presented as a plain Bearer
// token. A stolen bound token is useless to its thief.
func checkSenderConstraint(r *http.Request, p *policy.Principal) *Issue {
	if p.CertThumbprint != "" {
		got := mtls.PeerThumbprint(r.TLS)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.CertThumbprint)) != 1 {
			return &Issue{Severity: "error", Code: "security", Diagnostics: "The access token is bound to a client certificate this connection did not present"}
		}
	}
	if p.JKT != "" {
		return &Issue{Severity: "error", Code: "security", Diagnostics: "The access token is bound to a DPoP key and cannot be used as a Bearer token"}
	}
	return nil
}

// stepUpError is the RFC 9470 §3 challenge for an action that needs a
// fresher or stronger login than the token's.
func (a *API) stepUpError() error {
	c := "Bearer " + realm + `, error="insufficient_user_authentication", error_description="A recent multi-factor login is required", acr_values="` + policy.ACRMultiFactor + `"`
	if age := a.opts.Policy.MaxAuthAge; age > 0 {
		c += `, max_age=` + strconv.Itoa(int(age.Seconds()))
	}
	return &Error{Status: http.StatusUnauthorized, Challenge: c,
		Issues: []Issue{{Severity: "error", Code: "security", Diagnostics: "This action needs a recent multi-factor login: authorize again with acr_values and max_age"}}}
}
