package authserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/web"
)

// Sign-in through the upstream OpenID Connect provider (Options.Upstream).
// The sign-in page links to upstreamStartPath with its CSRF token; that
// starts an identity.UpstreamLogin, keeps it in a sealed cookie bound to
// the interaction, and sends the browser to the provider, which sends it
// back to upstreamCallbackPath. The callback checks the binding and the
// state, answers once, lets identity.Upstream verify the provider's answer
// and continues the interaction as a password sign-in does.
const (
	upstreamStartPath    = "/auth/upstream"
	upstreamCallbackPath = "/auth/upstream/callback"
	// upstreamCookie is the (web.SetCookie-prefixed) cookie carrying the
	// sealed upstreamLogin.
	upstreamCookie = "warden_upstream"
	// upstreamPurpose binds the sealed cookie to its use.
	upstreamPurpose = "upstream"
	// upstreamLifetime bounds the time spent at the provider.
	upstreamLifetime = 10 * time.Minute
)

// UpstreamRedirectURL is the callback URL of the upstream sign-in of a
// server whose Options.Issuer is issuer: the identity.UpstreamConfig
// RedirectURL, to register at the provider.
func UpstreamRedirectURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("authserver: the issuer must be an absolute http(s) URL")
	}
	return u.Scheme + "://" + u.Host + upstreamCallbackPath, nil
}

// upstreamLogin is the sealed state of one upstream sign-in: the
// provider-side state, nonce and PKCE verifier, and the interaction it
// belongs to.
type upstreamLogin struct {
	Login       identity.UpstreamLogin `json:"login"`
	Interaction string                 `json:"interaction"`
	Expires     time.Time              `json:"expires"`
}

// upstreamStateKey keys the record that marks an upstream sign-in answered.
func upstreamStateKey(state string) string {
	sum := sha256.Sum256([]byte("warden upstream state\x00" + state))
	return hex.EncodeToString(sum[:])
}

// handleUpstreamStart starts a sign-in through the upstream provider for
// the interaction of the sign-in page the link was on (its cookie, at the
// login stage, and the page's CSRF token), then redirects to the provider.
func (s *Server) handleUpstreamStart(w http.ResponseWriter, r *http.Request) {
	st, _, err := s.openInteraction(r, stageLogin)
	if err != nil || !s.csrf.Valid(st.ID, r.URL.Query().Get("csrf_token")) {
		s.errorPage(w, http.StatusBadRequest, "This sign-in expired or was not started here. Return to the application and try again.")
		return
	}
	authURL, login := s.o.Upstream.Start()
	exp := s.o.Now().Add(upstreamLifetime)
	if exp.After(st.Expires) {
		exp = st.Expires
	}
	v, err := s.upstreamSealed.Seal(upstreamLogin{Login: login, Interaction: st.ID, Expires: exp}, upstreamLifetime)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, "The sign-in could not be started.")
		return
	}
	web.SetCookie(w, upstreamCookie, v, upstreamLifetime)
	web.SecurityHeaders(w.Header(), "")
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// handleUpstreamCallback is where the provider sends the browser back. The
// upstream cookie is single-use and deleted whatever happens. Without the
// interaction there is nothing to continue (an error page); any other
// failure (the provider's error, a cookie of another interaction or none,
// a wrong state, a replay, a refused id_token, an unlinked subject, a
// disabled account) shows the sign-in page again with one generic message:
// the provider's own error text is never shown, and the message does not
// tell an unlinked subject from a disabled account.
func (s *Server) handleUpstreamCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	raw, hasCookie := web.ReadCookie(r, upstreamCookie)
	web.SetCookie(w, upstreamCookie, "", -1)
	st, c, err := s.openInteraction(r, stageLogin)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "This sign-in expired or was not started here. Return to the application and try again.")
		return
	}
	failed := func() {
		s.renderLogin(w, st, c, "", "Signing in with "+s.o.UpstreamName+" did not succeed. Try again, or sign in with your password.", false)
	}
	var ul upstreamLogin
	if !hasCookie || s.upstreamSealed.Open(raw, &ul) != nil || ul.Interaction == "" ||
		subtle.ConstantTimeCompare([]byte(ul.Interaction), []byte(st.ID)) != 1 || !s.o.Now().Before(ul.Expires) {
		failed()
		return
	}
	state := r.FormValue("state")
	if r.FormValue("error") != "" || ul.Login.State == "" || subtle.ConstantTimeCompare([]byte(state), []byte(ul.Login.State)) != 1 {
		failed()
		return
	}
	// One answer per upstream sign-in, whatever the browser replays.
	err = s.o.Records.InsertRecord(ctx, store.Record{Kind: recordKindUpstream, Key: upstreamStateKey(ul.Login.State), Value: []byte("1"), Expires: ul.Expires})
	if errors.Is(err, store.ErrConflict) {
		failed()
		return
	}
	if err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now.")
		return
	}
	u, authn, err := s.o.Upstream.Finish(ctx, ul.Login, state, r.FormValue("code"))
	switch {
	case errors.Is(err, identity.ErrUpstreamState), errors.Is(err, identity.ErrUpstreamToken),
		errors.Is(err, identity.ErrNotLinked), errors.Is(err, identity.ErrInvalidCredentials):
		failed()
		return
	case err != nil:
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now.")
		return
	}
	// The provider may vouch for a sign-in made long ago (its own single
	// sign-on session): an app's max_age (OpenID Connect Core 1.0
	// §3.1.2.1) then refuses it, as the provider was not asked to sign the
	// user in again. One second of slack covers auth_time's granularity.
	if ma := st.Form.Get("max_age"); ma != "" {
		if n, err := strconv.Atoi(ma); err == nil && s.o.Now().Sub(authn.Time) > time.Duration(n)*time.Second+time.Second {
			s.renderLogin(w, st, c, "", "This application needs a recent sign-in. Sign in with your password.", false)
			return
		}
	}
	if st.MFA && authn.ACR != policy.ACRMultiFactor {
		if u.HasTOTP() {
			s.renderLogin(w, st, c, "", "This application needs your one-time code: sign in with your password and code.", true)
			return
		}
		s.redirectError(w, r, st.Form.Get("redirect_uri"), st.Form.Get("state"),
			&authorizeError{code: "unmet_authentication_requirements", description: "A second factor is required and none is set up."})
		return
	}
	s.signedIn(w, r, st, c, u, authn)
}
