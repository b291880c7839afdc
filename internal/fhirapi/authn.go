package fhirapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardenfhir/warden/internal/coherence"
	"github.com/wardenfhir/warden/internal/dpop"
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

// authenticate returns the caller of r. Access tokens come as
// "Authorization: Bearer" (RFC 6750 §2.1) or, bound to a DPoP key, as
// "Authorization: DPoP" with a DPoP proof (RFC 9449 §7); Basic
// credentials, tokens in the query or the body, and several Authorization
// headers are refused. A sender-constrained token works only with its key:
// a certificate-bound token (RFC 8705 §3) only over a connection with
// that certificate, a DPoP-bound token only with a proof signed by its key.
func (a *API) authenticate(r *http.Request) (*policy.Principal, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return nil, &Error{Status: http.StatusUnauthorized, Challenge: a.challenge(""),
			Issues: []Issue{{Severity: "error", Code: "login", Diagnostics: "An access token is required (Authorization: Bearer)"}}}
	}
	scheme, token, ok := strings.Cut(hs[0], " ")
	isDPoP := strings.EqualFold(scheme, "DPoP")
	if len(hs) != 1 || !ok || !(strings.EqualFold(scheme, "Bearer") || isDPoP) || token == "" || strings.ContainsAny(token, " \t") {
		return nil, &Error{Status: http.StatusUnauthorized, Challenge: a.challenge(`error="invalid_request", error_description="Send one access token as Authorization: Bearer or DPoP"`),
			Issues: []Issue{{Severity: "error", Code: "login", Diagnostics: "Only Bearer and DPoP access tokens are accepted"}}}
	}
	if r.URL.Query().Has("access_token") {
		return nil, &Error{Status: http.StatusBadRequest, Challenge: a.challenge(`error="invalid_request"`),
			Issues: []Issue{{Severity: "error", Code: "security", Diagnostics: "Access tokens are not accepted in the query string"}}}
	}
	if a.opts.Verifier == nil {
		return nil, errorf(http.StatusServiceUnavailable, "transient", "Token verification is not configured")
	}
	refuse := func(reason, oauthError, description string) error {
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "access token refused", slog.String("reason", reason))
		return &Error{Status: http.StatusUnauthorized, Challenge: a.challenge(`error="` + oauthError + `", error_description="` + description + `"`),
			Issues: []Issue{{Severity: "error", Code: "login", Diagnostics: description}}}
	}
	p, err := a.opts.Verifier.Verify(r.Context(), token)
	if errors.Is(err, coherence.ErrUnavailable) {
		// Whether the token was revoked cannot be told: fail closed, and
		// say it is not the client's fault.
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "token not checked: revocation state unconfirmed", slog.String("error", err.Error()))
		return nil, errorf(http.StatusServiceUnavailable, "transient", "Access cannot be checked right now; retry later")
	}
	if err != nil {
		return nil, refuse(err.Error(), "invalid_token", "The access token is invalid, expired or revoked")
	}
	var proof *dpop.Proof
	if isDPoP {
		if a.opts.DPoP == nil {
			return nil, refuse("DPoP is not configured", "invalid_token", "DPoP-bound tokens are not accepted here")
		}
		pr, err := a.opts.DPoP.VerifyContext(r.Context(), firstHeader(r, "DPoP"), r.Method, a.opts.Origin+r.URL.EscapedPath(), token, a.now())
		if err != nil {
			if errors.Is(err, dpop.ErrReplayCheck) {
				return nil, errorf(http.StatusServiceUnavailable, "transient", "DPoP proofs cannot be checked right now; retry later")
			}
			if errors.Is(err, dpop.ErrUseNonce) {
				return nil, &Error{Status: http.StatusUnauthorized, DPoPNonce: a.opts.DPoP.Nonce(a.now()),
					Challenge: a.challenge(`error="use_dpop_nonce", error_description="Resend the request with a DPoP proof carrying the DPoP-Nonce"`),
					Issues:    []Issue{{Severity: "error", Code: "login", Diagnostics: "The DPoP proof needs the server's nonce (DPoP-Nonce header)"}}}
			}
			return nil, refuse(err.Error(), "invalid_dpop_proof", "The DPoP proof is invalid, replayed or not for this request")
		}
		if p.JKT == "" {
			return nil, refuse("DPoP scheme with an unbound token", "invalid_token", "The access token is not bound to a DPoP key: send it as Bearer")
		}
		proof = &pr
	}
	cnf := dpop.Confirmation{JKT: p.JKT, X5tS256: p.CertThumbprint}
	if err := dpop.CheckBinding(cnf, proof, mtls.PeerThumbprint(r.TLS)); err != nil {
		return nil, refuse(err.Error(), "invalid_token", "The access token is bound to a key or certificate this request did not prove")
	}
	return p, nil
}

// challenge is the WWW-Authenticate value: both schemes the API takes,
// with params (an RFC 6750 §3 error) on each.
func (a *API) challenge(params string) string {
	c := "Bearer " + realm
	if params != "" {
		c += ", " + params
	}
	if a.opts.DPoP != nil {
		c += ", DPoP " + realm + `, algs="` + strings.Join(a.opts.DPoP.Algorithms(), " ") + `"`
		if params != "" {
			c += ", " + params
		}
	}
	return c
}

// firstHeader is the only value of header h, or "" when it is missing or
// repeated (DPoP allows exactly one proof).
func firstHeader(r *http.Request, h string) string {
	if vs := r.Header.Values(h); len(vs) == 1 {
		return vs[0]
	}
	return ""
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
