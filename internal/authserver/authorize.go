package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ory/fosite"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/smart"
)

// codeChallengeS256 matches an RFC 7636 §4.2 S256 code_challenge: the
// base64url (no padding) SHA-256 of the verifier, 43 characters.
var codeChallengeS256 = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// authorizeError is an error answered to the app at its redirect URI
// (RFC 6749 §4.1.2.1), with RFC 9207's iss.
type authorizeError struct {
	code, description string
}

func (e *authorizeError) Error() string { return e.code + ": " + e.description }

func errInvalidRequest(desc string) *authorizeError {
	return &authorizeError{code: "invalid_request", description: desc}
}

// handleAuthorize is the authorization endpoint (RFC 6749 §3.1, GET and
// POST as SMART 2.2 requires). It validates the request in full before any
// page is shown: the client and its exact redirect URI (errors about those
// are never redirected, §4.1.2.1), then through fosite the response type,
// state and scope, then Warden's SMART rules: PKCE S256 (RFC 7636 §4.3;
// plain refused), aud equal to the FHIR base URL, an EHR launch redeemed.
// It then starts the interaction: login, patient picker, approval.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The authorization request could not be read.")
		return
	}
	c, ok := s.checkClientAndRedirect(ctx, w, r.Form)
	if !ok {
		return
	}
	redirectURI, state := r.Form.Get("redirect_uri"), r.Form.Get("state")
	if _, err := s.provider.NewAuthorizeRequest(ctx, r); err != nil {
		s.redirectError(w, r, redirectURI, state, fositeAuthorizeError(err))
		return
	}
	if aerr := s.checkSMARTRequest(r.Form); aerr != nil {
		s.redirectError(w, r, redirectURI, state, aerr)
		return
	}
	if cands := candidateScopes(r.Form.Get("scope"), c); len(cands.Resources) == 0 && len(cands.Other) == 0 {
		s.redirectError(w, r, redirectURI, state, &authorizeError{code: "invalid_scope", description: "None of the requested scopes is allowed for this application."})
		return
	}
	st := &interaction{Form: authorizeParams(r.Form), ClientID: c.ID, Stage: stageLogin}
	if acr := r.Form.Get("acr_values"); slices.Contains(strings.Fields(acr), policy.ACRMultiFactor) {
		st.MFA = true
	}
	if id := r.Form.Get("launch"); id != "" {
		l, err := s.redeemLaunch(ctx, id)
		if err != nil {
			s.redirectError(w, r, redirectURI, state, errInvalidRequest("The launch parameter is unknown, expired or already used."))
			return
		}
		st.Launch = &l
	}
	if err := s.startInteraction(w, st); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "The sign-in could not be started.")
		return
	}
	s.renderLogin(w, st, c, "", "", false)
}

// checkClientAndRedirect checks what must hold before anything may be
// sent to the redirect URI: a known, enabled, interactive client, and a
// redirect_uri equal, byte for byte, to one it registered (no prefix, no
// case folding, no extra query; RFC 9700 §4.1.3 exact matching). The
// failures are shown on an error page.
func (s *Server) checkClientAndRedirect(ctx context.Context, w http.ResponseWriter, form url.Values) (Client, bool) {
	c, err := s.registry.Get(ctx, form.Get("client_id"))
	if err != nil || c.Disabled || c.Type == ClientBackend || !slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
		s.errorPage(w, http.StatusBadRequest, "This application is not registered here.")
		return Client{}, false
	}
	if ru := form["redirect_uri"]; len(ru) != 1 || !slices.Contains(c.RedirectURIs, ru[0]) {
		s.errorPage(w, http.StatusBadRequest, "The application's redirect address is not registered.")
		return Client{}, false
	}
	return c, true
}

// checkSMARTRequest applies the SMART rules fosite does not know.
func (s *Server) checkSMARTRequest(form url.Values) *authorizeError {
	// RFC 7636 §4.3, SMART 2.2 "Considerations for PKCE support": S256
	// only, on every request; a missing method means plain.
	if form.Get("code_challenge_method") != "S256" {
		return errInvalidRequest("PKCE with code_challenge_method S256 is required.")
	}
	if !codeChallengeS256.MatchString(form.Get("code_challenge")) {
		return errInvalidRequest("The code_challenge must be an S256 challenge.")
	}
	// SMART 2.2 "Request": aud is the FHIR base URL of the resource server
	// the app wants to reach; the server refuses anything else.
	if aud := form.Get("aud"); strings.TrimSuffix(aud, "/") != s.o.Issuer {
		return errInvalidRequest("The aud parameter must be this server's FHIR base URL.")
	}
	if slices.Contains(strings.Fields(form.Get("prompt")), "none") {
		// No single sign-on session exists: every authorization signs in.
		return &authorizeError{code: "login_required", description: "Sign-in is required."}
	}
	if rm := form.Get("response_mode"); rm != "" && rm != "query" {
		return errInvalidRequest("Only response_mode query is supported.")
	}
	if form.Get("request") != "" || form.Get("request_uri") != "" {
		return &authorizeError{code: "request_not_supported", description: "Request objects are not supported."}
	}
	if ma := form.Get("max_age"); ma != "" {
		if n, err := strconv.Atoi(ma); err != nil || n < 0 {
			return errInvalidRequest("max_age must be a non-negative integer.")
		}
	}
	return nil
}

// authorizeParams keeps the authorization request parameters, the only
// thing the interaction carries from the first request to the last.
func authorizeParams(form url.Values) url.Values {
	keep := url.Values{}
	for _, k := range []string{
		"response_type", "client_id", "redirect_uri", "scope", "state", "aud", "launch",
		"code_challenge", "code_challenge_method", "nonce", "max_age", "acr_values", "prompt", "response_mode",
	} {
		if v, ok := form[k]; ok {
			keep[k] = slices.Clone(v)
		}
	}
	return keep
}

// fositeAuthorizeError turns a fosite error into the RFC 6749 §4.1.2.1
// error code and its public description.
func fositeAuthorizeError(err error) *authorizeError {
	rfc := fosite.ErrorToRFC6749Error(err)
	desc := rfc.DescriptionField
	if rfc.HintField != "" {
		desc += " " + rfc.HintField
	}
	return &authorizeError{code: rfc.ErrorField, description: desc}
}

// redirectError sends the error to the app's (already validated) redirect
// URI with state and, per RFC 9207 §2, iss.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *authorizeError) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "The application's redirect address is not usable.")
		return
	}
	q := u.Query()
	q.Set("error", e.code)
	if e.description != "" {
		q.Set("error_description", e.description)
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.o.Issuer)
	u.RawQuery = q.Encode()
	s.clearInteraction(w)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// candidateScopes is what the approval page may offer: the requested
// scopes the client's ceiling allows (smart.Grant), as scope strings.
func candidateScopes(requested string, c Client) smart.Scopes {
	req, _ := smart.ParseScopes(requested)
	ceiling, _ := smart.ParseScopes(c.Scopes)
	return smart.Grant(req, ceiling)
}

// scopeTokens lists each scope of sc as its own string.
func scopeTokens(sc smart.Scopes) []string {
	return strings.Fields(sc.String())
}

var errInteraction = errors.New("authserver: interaction state missing, expired or tampered")
