package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ory/fosite"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/smart"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/web"
)

// The stages of an interaction, in order.
const (
	stageLogin   = "login"
	stagePicker  = "picker"
	stageApprove = "approve"
)

// interactionLifetime bounds the whole sign-in, from the authorization
// request to the approval.
const interactionLifetime = 10 * time.Minute

// interactionCookie is the (web.SetCookie-prefixed) cookie carrying the
// sealed interaction.
const interactionCookie = "warden_authz"

// interactionPurpose binds the sealed cookie to its use.
const interactionPurpose = "authserver interaction v1"

// pickerLimit bounds the patients a practitioner's picker lists.
const pickerLimit = 50

// interaction is the state of one sign-in between the authorization
// request and the approval. It lives only in a sealed, short-lived cookie;
// its ID keys the CSRF tokens of its forms.
type interaction struct {
	ID       string         `json:"id"`
	Form     url.Values     `json:"form"` // the authorization request parameters
	ClientID string         `json:"client_id"`
	Stage    string         `json:"stage"`
	MFA      bool           `json:"mfa,omitempty"` // acr_values asked for a second factor
	Launch   *LaunchContext `json:"launch,omitempty"`
	UserID   string         `json:"user_id,omitempty"`
	AuthTime time.Time      `json:"auth_time,omitzero"`
	ACR      string         `json:"acr,omitempty"`
	AMR      []string       `json:"amr,omitempty"`
	Patient  string         `json:"patient,omitempty"`
	// BreakGlassReason is the reason a practitioner stated at the picker
	// for an emergency (break-the-glass) access; "" for none.
	BreakGlassReason string    `json:"break_glass,omitempty"`
	Expires          time.Time `json:"expires"`
}

// startInteraction gives st a fresh id and expiry and sets its cookie.
func (s *Server) startInteraction(w http.ResponseWriter, st *interaction) error {
	id, err := randomToken(16)
	if err != nil {
		return err
	}
	st.ID = id
	st.Expires = s.o.Now().Add(interactionLifetime)
	return s.saveInteraction(w, st)
}

func (s *Server) saveInteraction(w http.ResponseWriter, st *interaction) error {
	v, err := s.sealed.Seal(st, interactionLifetime)
	if err != nil {
		return err
	}
	web.SetCookie(w, interactionCookie, v, interactionLifetime)
	return nil
}

func (s *Server) clearInteraction(w http.ResponseWriter) {
	web.SetCookie(w, interactionCookie, "", -1)
}

// loadInteraction opens the interaction cookie of a form POST at stage and
// checks the form's CSRF token against it. Any failure is errInteraction.
func (s *Server) loadInteraction(r *http.Request, stage string) (*interaction, Client, error) {
	st, c, err := s.openInteraction(r, stage)
	if err != nil {
		return nil, Client{}, err
	}
	if !s.csrf.Valid(st.ID, r.PostForm.Get("csrf_token")) {
		return nil, Client{}, errInteraction
	}
	return st, c, nil
}

// openInteraction opens the interaction cookie of r, which must be at
// stage, unexpired, and for a client still allowed its redirect URI. It
// checks no CSRF token: the caller does, or (the upstream callback)
// checks another binding. Any failure is errInteraction.
func (s *Server) openInteraction(r *http.Request, stage string) (*interaction, Client, error) {
	raw, ok := web.ReadCookie(r, interactionCookie)
	if !ok || raw == "" {
		return nil, Client{}, errInteraction
	}
	var st interaction
	if err := s.sealed.Open(raw, &st); err != nil {
		return nil, Client{}, errInteraction
	}
	if st.ID == "" || !s.o.Now().Before(st.Expires) || st.Stage != stage {
		return nil, Client{}, errInteraction
	}
	c, err := s.registry.Get(r.Context(), st.ClientID)
	if err != nil || c.Disabled || !slices.Contains(c.RedirectURIs, st.Form.Get("redirect_uri")) {
		return nil, Client{}, errInteraction
	}
	return &st, c, nil
}

// readPost parses a page's form POST; the interaction pages accept only
// same-origin form posts (web.Protect wraps them in Register).
func readPost(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	return r.ParseForm() == nil
}

func (s *Server) renderLogin(w http.ResponseWriter, st *interaction, c Client, username, msg string, askOTP bool) {
	pg := web.LoginPage{
		Action: "/auth/login", CSRF: s.csrf.Token(st.ID), ClientName: c.Name,
		Username: username, Error: msg, AskOTP: askOTP || st.MFA,
	}
	if s.o.Upstream != nil {
		pg.UpstreamURL = upstreamStartPath + "?" + url.Values{"csrf_token": {s.csrf.Token(st.ID)}}.Encode()
		pg.UpstreamName = s.o.UpstreamName
	}
	s.o.Pages.Login(w, pg)
}

// handleLogin checks the credentials (identity.Directory throttles and
// locks out), asks for the one-time code when the account has one or
// acr_values demand it (RFC 9470 step-up), then moves to the picker or the
// approval.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !readPost(w, r) {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	st, c, err := s.loadInteraction(r, stageLogin)
	if err != nil {
		s.errorPage(w, http.StatusForbidden, "This sign-in expired or was not started here. Return to the application and try again.")
		return
	}
	username := r.PostForm.Get("username")
	u, authn, err := s.o.Users.Authenticate(ctx, identity.Attempt{
		Username: username, Password: r.PostForm.Get("password"), OTP: r.PostForm.Get("otp"), Remote: remoteAddr(r),
	})
	switch {
	case errors.Is(err, identity.ErrOTPRequired):
		s.renderLogin(w, st, c, username, "", true)
		return
	case errors.Is(err, identity.ErrLocked):
		audit.AnnotationsFrom(ctx).Denied("account-locked")
		s.renderLogin(w, st, c, username, "Too many failed attempts. Try again later.", false)
		return
	case errors.Is(err, identity.ErrInvalidCredentials):
		audit.AnnotationsFrom(ctx).Denied("invalid-credentials")
		s.renderLogin(w, st, c, username, "The username, password or code is wrong.", false)
		return
	case err != nil:
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now.")
		return
	}
	if st.MFA && authn.ACR != policy.ACRMultiFactor {
		if u.HasTOTP() {
			s.renderLogin(w, st, c, username, "This application needs your one-time code too.", true)
			return
		}
		s.redirectError(w, r, st.Form.Get("redirect_uri"), st.Form.Get("state"),
			&authorizeError{code: "unmet_authentication_requirements", description: "A second factor is required and none is set up."})
		return
	}
	s.signedIn(w, r, st, c, u, authn)
}

// signedIn continues an interaction once u has signed in (with a password
// or through the upstream provider) as authn says: an EHR launch must be
// u's, then the interaction records the user and how they signed in (the
// grant's auth_time, acr and amr) and moves to the picker or the approval.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, st *interaction, c Client, u *identity.User, authn identity.Authn) {
	if l := st.Launch; l != nil {
		// An EHR launch is for the user who launched the app, and its
		// patient must be one that user may choose.
		if (l.FHIRUser != "" && l.FHIRUser != u.FHIRUser) ||
			(l.Patient != "" && !isPractitioner(u) && !slices.Contains(u.Patients, l.Patient)) {
			s.redirectError(w, r, st.Form.Get("redirect_uri"), st.Form.Get("state"),
				&authorizeError{code: "access_denied", description: "This launch belongs to another user."})
			return
		}
	}
	audit.AnnotationsFrom(r.Context()).User(u.ID, u.FHIRUser)
	st.UserID, st.AuthTime, st.ACR, st.AMR = u.ID, authn.Time, authn.ACR, authn.AMR
	if st.AuthTime.IsZero() {
		st.AuthTime = s.o.Now()
	}
	s.nextStage(w, r, st, c, u)
}

// nextStage shows the patient picker when a patient context is wanted and
// not yet known, else the approval page.
func (s *Server) nextStage(w http.ResponseWriter, r *http.Request, st *interaction, c Client, u *identity.User) {
	ctx := r.Context()
	cands := candidateScopes(st.Form.Get("scope"), c)
	if cands.WantsPatientContext() && st.Patient == "" {
		if st.Launch != nil && st.Launch.Patient != "" {
			st.Patient = st.Launch.Patient
		} else if len(u.Patients) == 1 {
			st.Patient = u.Patients[0]
		} else {
			choices, err := s.patientChoices(ctx, u, "")
			if err != nil || (len(choices) == 0 && !isPractitioner(u)) {
				s.redirectError(w, r, st.Form.Get("redirect_uri"), st.Form.Get("state"),
					&authorizeError{code: "access_denied", description: "No patient is available to this user."})
				return
			}
			st.Stage = stagePicker
			if err := s.saveInteraction(w, st); err != nil {
				s.errorPage(w, http.StatusInternalServerError, "The sign-in could not continue.")
				return
			}
			s.renderPicker(w, st, c, u, choices, "", "", "")
			return
		}
	}
	st.Stage = stageApprove
	if err := s.saveInteraction(w, st); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "The sign-in could not continue.")
		return
	}
	s.renderApprove(w, st, c)
}

// patientChoices lists what the user may pick: their own patients, or for
// a practitioner the result of a name search.
func (s *Server) patientChoices(ctx context.Context, u *identity.User, query string) ([]PatientChoice, error) {
	if len(u.Patients) > 0 {
		out := make([]PatientChoice, 0, len(u.Patients))
		for _, id := range u.Patients {
			label, err := s.o.Patients.Label(ctx, id)
			if err != nil {
				label = "Patient " + id
			}
			out = append(out, PatientChoice{ID: id, Label: label})
		}
		return out, nil
	}
	if isPractitioner(u) && s.o.Patients != nil {
		return s.o.Patients.Search(ctx, query, pickerLimit)
	}
	return nil, nil
}

// renderPicker shows the picker; a practitioner's has the patient search
// and the break-the-glass reason field (prefilled with reason).
func (s *Server) renderPicker(w http.ResponseWriter, st *interaction, c Client, u *identity.User, choices []PatientChoice, query, reason, msg string) {
	opts := make([]web.PatientOption, len(choices))
	for i, ch := range choices {
		opts[i] = web.PatientOption{ID: ch.ID, Label: ch.Label}
	}
	pr := isPractitioner(u)
	if !pr {
		reason = ""
	}
	s.o.Pages.Picker(w, web.PickerPage{
		Action: "/auth/picker", CSRF: s.csrf.Token(st.ID), ClientName: c.Name, Patients: opts,
		Search: pr, Query: query, Error: msg,
		OfferBreakGlass: pr, BreakGlassReason: reason,
	})
}

// breakGlassReason checks a break_glass_reason as posted: spaces around it
// trimmed, at most web.BreakGlassReasonMax characters, printable text only
// (no control, format or bidirectional-override characters, no line
// breaks: the reason is shown to reviewers as is). "" means no emergency
// access; ok is false when the reason is unusable.
func breakGlassReason(values []string) (reason string, ok bool) {
	if len(values) == 0 {
		return "", true
	}
	if len(values) > 1 {
		return "", false
	}
	reason = strings.TrimSpace(values[0])
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > web.BreakGlassReasonMax {
		return "", false
	}
	for _, r := range reason {
		if !unicode.IsPrint(r) {
			return "", false
		}
	}
	return reason, true
}

// isPractitioner reports whether the user's picker searches the patient
// directory instead of listing the user's own patients.
func isPractitioner(u *identity.User) bool {
	return len(u.Patients) == 0 && strings.HasPrefix(u.FHIRUser, "Practitioner/")
}

// handlePicker records the chosen patient: one of the user's own, or for a
// practitioner one the directory knows, with the break-the-glass reason the
// practitioner may state (see breakGlassReason and offeredScopes).
func (s *Server) handlePicker(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !readPost(w, r) {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	st, c, err := s.loadInteraction(r, stagePicker)
	if err != nil {
		s.errorPage(w, http.StatusForbidden, "This sign-in expired or was not started here. Return to the application and try again.")
		return
	}
	u, err := s.o.Users.Get(ctx, st.UserID)
	if err != nil || u.Disabled {
		s.errorPage(w, http.StatusForbidden, "This account cannot sign in.")
		return
	}
	if r.PostForm.Get("search") != "" && isPractitioner(u) {
		q := r.PostForm.Get("q")
		choices, err := s.patientChoices(ctx, u, q)
		if err != nil {
			s.errorPage(w, http.StatusServiceUnavailable, "The patient search is unavailable right now.")
			return
		}
		s.renderPicker(w, st, c, u, choices, q, "", "")
		return
	}
	// Break the glass: only a practitioner is offered it; anyone else's
	// break_glass_reason is ignored.
	reason := ""
	if isPractitioner(u) {
		var ok bool
		if reason, ok = breakGlassReason(r.PostForm["break_glass_reason"]); !ok {
			choices, _ := s.patientChoices(ctx, u, "")
			s.renderPicker(w, st, c, u, choices, "", "",
				fmt.Sprintf("State the emergency access reason in at most %d characters of plain text, on one line.", web.BreakGlassReasonMax))
			return
		}
	}
	pick := r.PostForm.Get("patient")
	allowed := pick != "" && slices.Contains(u.Patients, pick)
	if !allowed && pick != "" && isPractitioner(u) {
		_, lerr := s.o.Patients.Label(ctx, pick)
		allowed = lerr == nil
	}
	if !allowed {
		choices, _ := s.patientChoices(ctx, u, "")
		s.renderPicker(w, st, c, u, choices, "", reason, "Choose one of the patients listed.")
		return
	}
	st.Patient = pick
	st.BreakGlassReason = reason
	s.nextStage(w, r, st, c, u)
}

// refreshScopes are the scopes that ask for a refresh token.
var refreshScopes = []string{"offline_access", "online_access"}

// offeredScopes is what the approval page offers and may grant: the
// candidate scopes, less offline_access and online_access for a
// break-the-glass grant. An emergency access gets no refresh token at all:
// it lasts one short-lived access token (SensitiveLifetime at most), and
// any further access means signing in and stating a reason again.
func offeredScopes(st *interaction, c Client) smart.Scopes {
	cands := candidateScopes(st.Form.Get("scope"), c)
	if st.BreakGlassReason != "" {
		cands = cands.Without(refreshScopes)
	}
	return cands
}

func (s *Server) renderApprove(w http.ResponseWriter, st *interaction, c Client) {
	cands := scopeTokens(offeredScopes(st, c))
	opts := make([]web.ScopeOption, len(cands))
	for i, sc := range cands {
		opts[i] = web.ScopeOption{Value: sc, Description: smart.Describe(sc), Checked: true}
	}
	redirectOrigin := ""
	if u, err := url.Parse(st.Form.Get("redirect_uri")); err == nil {
		redirectOrigin = u.Scheme + "://" + u.Host
	}
	s.o.Pages.Approve(w, web.ApprovePage{
		Action: "/auth/approve", CSRF: s.csrf.Token(st.ID), ClientName: c.Name, ClientOwner: c.Owner,
		Scopes: opts, RedirectOrigin: redirectOrigin, BreakGlass: st.BreakGlassReason != "",
	})
}

// handleApprove ends the interaction: deny answers access_denied; allow
// grants the checked scopes among those offered (never anything else),
// then fosite issues the code (RFC 6749 §4.1.2) and the redirect carries
// state and iss (RFC 9207 §2).
func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !readPost(w, r) {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	st, c, err := s.loadInteraction(r, stageApprove)
	if err != nil {
		s.errorPage(w, http.StatusForbidden, "This sign-in expired or was not started here. Return to the application and try again.")
		return
	}
	redirectURI, state := st.Form.Get("redirect_uri"), st.Form.Get("state")
	// An interaction is answered once: a replayed approval (the back
	// button, a copied cookie) gets no second code.
	err = s.o.Records.InsertRecord(ctx, store.Record{Kind: recordKindDone, Key: st.ID, Value: []byte("1"), Expires: st.Expires})
	if errors.Is(err, store.ErrConflict) {
		s.errorPage(w, http.StatusForbidden, "This sign-in was already completed. Return to the application.")
		return
	}
	if err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "The authorization could not be completed.")
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		s.redirectError(w, r, redirectURI, state, &authorizeError{code: "access_denied", description: "The user denied the request."})
		return
	}
	u, err := s.o.Users.Get(ctx, st.UserID)
	if err != nil || u.Disabled {
		s.errorPage(w, http.StatusForbidden, "This account cannot sign in.")
		return
	}
	cands := offeredScopes(st, c)
	checked := r.PostForm["scope"]
	var deselected []string
	for _, sc := range scopeTokens(cands) {
		if !slices.Contains(checked, sc) {
			deselected = append(deselected, sc)
		}
	}
	granted := scopeTokens(cands.Without(deselected))
	if len(granted) == 0 {
		s.redirectError(w, r, redirectURI, state, &authorizeError{code: "access_denied", description: "The user approved no access."})
		return
	}

	// Re-validate the stored request through fosite, exactly as if the
	// app had sent it now.
	areq, err := http.NewRequestWithContext(ctx, http.MethodGet, s.urls.authorize+"?"+st.Form.Encode(), nil)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, "The authorization could not be completed.")
		return
	}
	ar, err := s.provider.NewAuthorizeRequest(ctx, areq)
	if err != nil {
		s.redirectError(w, r, redirectURI, state, fositeAuthorizeError(err))
		return
	}
	for _, sc := range granted {
		ar.GrantScope(sc)
	}
	sess := &Session{
		Subject: u.ID, Username: u.Username, Name: u.Name, FHIRUser: u.FHIRUser,
		Patient: st.Patient, AuthTime: st.AuthTime, ACR: st.ACR, AMR: st.AMR,
		Nonce: st.Form.Get("nonce"), NeedPatientBanner: true,
	}
	if isPractitioner(u) {
		sess.BreakGlassReason = st.BreakGlassReason
	}
	if l := st.Launch; l != nil {
		sess.Encounter, sess.FHIRContext, sess.NeedPatientBanner = l.Encounter, l.FHIRContext, l.NeedPatientBanner
	}
	grantedScopes := fosite.Arguments(granted)
	if !grantedScopes.Has("launch/patient") && !grantedScopes.Has("launch") {
		sess.Patient = ""
	}
	if !grantedScopes.Has("launch/encounter") && !grantedScopes.Has("launch") {
		sess.Encounter = ""
	}
	if grantedScopes.Has("online_access") && !grantedScopes.Has("offline_access") {
		sess.OnlineUntil = st.AuthTime.Add(s.o.OnlineLifetime)
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.redirectError(w, r, redirectURI, state, fositeAuthorizeError(err))
		return
	}
	// A patient's approval is a consent (issue 6): recorded before the
	// app gets its code, or the app gets none.
	if s.o.Grants != nil && sess.Patient != "" && !isPractitioner(u) {
		g := Grant{ID: ar.GetID(), Patient: sess.Patient, UserID: u.ID, ClientID: c.ID,
			Scopes: granted, Granted: s.o.Now(), Active: true}
		if err := s.o.Grants.Record(ctx, g); err != nil {
			s.errorPage(w, http.StatusServiceUnavailable, "The authorization could not be recorded. Try again.")
			return
		}
	}
	resp.AddParameter("iss", s.o.Issuer)
	s.clearInteraction(w)
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	s.o.Pages.Error(w, status, msg)
}

// remoteAddr is the client's address for login throttling.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}
