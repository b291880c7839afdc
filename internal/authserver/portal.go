package authserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/smart"
	"github.com/wardenfhir/warden/internal/web"
)

// Grant is what a patient approved for an app on the approval page: the
// grant behind the app's tokens, kept as a FHIR Consent by the Grants
// ledger (issue 6: app grants are consents).
type Grant struct {
	ID       string // the grant id: the authorization request's, shared by its tokens
	Patient  string // the Patient id whose record it opens
	UserID   string // who approved it (the patient, or a person acting for them)
	ClientID string
	Scopes   []string
	Granted  time.Time
	Active   bool
	// Blocked are the sensitivity labels (v3 ActCode: PSY, ETH, HIV, ...)
	// the patient withholds from this app.
	Blocked []string
	// LastAccess is when the app last read the record (from the audit
	// trail); zero when never.
	LastAccess time.Time
}

// Grants is the ledger of what patients approved. The authorization
// server records each approval and lets patients see, narrow and revoke
// theirs on the patient pages.
type Grants interface {
	// Record stores an approval. When it fails, no code is issued.
	Record(ctx context.Context, g Grant) error
	// ForPatient lists the grants of patient's record, newest first,
	// with their last access.
	ForPatient(ctx context.Context, patient string) ([]Grant, error)
	// Deactivate marks grant id revoked (its tokens are revoked by the
	// caller); an id that is no patient's grant is no error.
	Deactivate(ctx context.Context, id string) error
	// Block withholds data labelled label from the grant's app.
	Block(ctx context.Context, patient, id, label string) error
}

// Portal routes.
const (
	portalPath       = "/auth/portal"
	portalLoginPath  = "/auth/portal/login"
	portalRevokePath = "/auth/portal/revoke"
	portalBlockPath  = "/auth/portal/block"
	portalLogoutPath = "/auth/portal/logout"
)

// portalCookie carries the sealed portal session; portalLifetime bounds
// it from sign-in (no sliding renewal: a shared computer forgets it).
const (
	portalCookie   = "warden_portal"
	portalPurpose  = "authserver portal v1"
	portalLifetime = 15 * time.Minute
)

// portalSession is a patient's sign-in to the patient pages; before the
// sign-in, only ID is set (it keys the login form's CSRF token).
type portalSession struct {
	ID       string    `json:"id"`
	UserID   string    `json:"user_id,omitempty"`
	Name     string    `json:"name,omitempty"`
	Patients []string  `json:"patients,omitempty"`
	Expires  time.Time `json:"expires"`
}

// Categories a patient may withhold from an app, as the page names them
// (HL7 v3 ActCode sensitivity codes).
var portalCategories = []web.PortalCategory{
	{Code: "PSY", Name: "Mental health"},
	{Code: "ETH", Name: "Substance use treatment"},
	{Code: "HIV", Name: "HIV status"},
	{Code: "SEX", Name: "Sexual and reproductive health"},
	{Code: "SDV", Name: "Sexual and domestic violence"},
	{Code: "GDIS", Name: "Genetic conditions"},
}

func categoryName(code string) string {
	for _, c := range portalCategories {
		if c.Code == code {
			return c.Name
		}
	}
	return code
}

// registerPortal mounts the patient pages (when a Grants ledger is set).
func (s *Server) registerPortal(mux *http.ServeMux) {
	if s.o.Grants == nil {
		return
	}
	mux.HandleFunc("GET "+portalPath, s.handlePortal)
	mux.Handle("POST "+portalLoginPath, web.Protect(http.HandlerFunc(s.handlePortalLogin)))
	mux.Handle("POST "+portalRevokePath, web.Protect(http.HandlerFunc(s.handlePortalRevoke)))
	mux.Handle("POST "+portalBlockPath, web.Protect(http.HandlerFunc(s.handlePortalBlock)))
	mux.Handle("POST "+portalLogoutPath, web.Protect(http.HandlerFunc(s.handlePortalLogout)))
}

func (s *Server) openPortal(r *http.Request) (*portalSession, bool) {
	raw, ok := web.ReadCookie(r, portalCookie)
	if !ok || raw == "" {
		return nil, false
	}
	var ps portalSession
	if err := s.portal.Open(raw, &ps); err != nil || ps.ID == "" || !s.o.Now().Before(ps.Expires) {
		return nil, false
	}
	return &ps, true
}

func (s *Server) savePortal(w http.ResponseWriter, ps *portalSession) error {
	v, err := s.portal.Seal(ps, portalLifetime)
	if err != nil {
		return err
	}
	web.SetCookie(w, portalCookie, v, portalLifetime)
	return nil
}

// handlePortal shows the connected apps of a signed-in patient, or the
// sign-in form.
func (s *Server) handlePortal(w http.ResponseWriter, r *http.Request) {
	ps, ok := s.openPortal(r)
	if !ok || ps.UserID == "" {
		s.renderPortalLogin(w, "", "", false)
		return
	}
	audit.AnnotationsFrom(r.Context()).User(ps.UserID, "")
	s.renderPortal(w, r, ps, portalNotice(r.URL.Query().Get("done")), "")
}

func portalNotice(done string) string {
	switch done {
	case "revoked":
		return "Access revoked. The app can no longer read your record."
	case "blocked":
		return "Done. That kind of information is no longer shared with the app."
	}
	return ""
}

func (s *Server) renderPortalLogin(w http.ResponseWriter, username, msg string, askOTP bool) {
	id, err := randomToken(16)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, "The page could not be shown.")
		return
	}
	if err := s.savePortal(w, &portalSession{ID: id, Expires: s.o.Now().Add(portalLifetime)}); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "The page could not be shown.")
		return
	}
	s.o.Pages.Login(w, web.LoginPage{Action: portalLoginPath, CSRF: s.csrf.Token(id), ClientName: "your connected apps",
		Username: username, Error: msg, AskOTP: askOTP})
}

func (s *Server) renderPortal(w http.ResponseWriter, r *http.Request, ps *portalSession, notice, msg string) {
	ctx := r.Context()
	pg := web.PortalPage{RevokeAction: portalRevokePath, BlockAction: portalBlockPath, LogoutAction: portalLogoutPath,
		CSRF: s.csrf.Token(ps.ID), UserName: ps.Name, Notice: notice, Error: msg, Categories: portalCategories}
	for _, patient := range ps.Patients {
		grants, err := s.o.Grants.ForPatient(ctx, patient)
		if err != nil {
			s.errorPage(w, http.StatusServiceUnavailable, "Your connected apps cannot be shown right now.")
			return
		}
		for _, g := range grants {
			name := g.ClientID
			if c, err := s.registry.Get(ctx, g.ClientID); err == nil && c.Name != "" {
				name = c.Name
			}
			app := web.PortalApp{ID: g.ID, Name: name, Active: g.Active, Since: g.Granted.Format("2 January 2006"), LastAccess: "never"}
			if !g.LastAccess.IsZero() {
				app.LastAccess = g.LastAccess.Format("2 January 2006 15:04 MST")
			}
			for _, sc := range g.Scopes {
				if d := smart.Describe(sc); d != "" && !strings.HasPrefix(d, "An unrecognised") {
					app.May = append(app.May, d)
				}
			}
			for _, b := range g.Blocked {
				app.Blocked = append(app.Blocked, categoryName(b))
			}
			pg.Apps = append(pg.Apps, app)
		}
	}
	s.o.Pages.Portal(w, pg)
}

// handlePortalLogin signs a patient in to the patient pages, with the
// same checks, throttles and second factor as an app sign-in. Only
// people with patient records (patients, people acting for them) may.
func (s *Server) handlePortalLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !readPost(w, r) {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	pre, ok := s.openPortal(r)
	if !ok || !s.csrf.Valid(pre.ID, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "This sign-in expired. Open the page again.")
		return
	}
	username := r.PostForm.Get("username")
	u, _, err := s.o.Users.Authenticate(ctx, identity.Attempt{
		Username: username, Password: r.PostForm.Get("password"), OTP: r.PostForm.Get("otp"), Remote: remoteAddr(r),
	})
	switch {
	case errors.Is(err, identity.ErrOTPRequired):
		s.renderPortalLogin(w, username, "", true)
		return
	case errors.Is(err, identity.ErrLocked):
		audit.AnnotationsFrom(ctx).Denied("account-locked")
		s.renderPortalLogin(w, username, "Too many failed attempts. Try again later.", false)
		return
	case errors.Is(err, identity.ErrInvalidCredentials):
		audit.AnnotationsFrom(ctx).Denied("invalid-credentials")
		s.renderPortalLogin(w, username, "The username, password or code is wrong.", false)
		return
	case err != nil:
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now.")
		return
	}
	audit.AnnotationsFrom(ctx).User(u.ID, u.FHIRUser)
	if isPractitioner(u) || len(u.Patients) == 0 {
		audit.AnnotationsFrom(ctx).Denied("not-a-patient")
		s.errorPage(w, http.StatusForbidden, "These pages are for patients and the people who look after their records.")
		return
	}
	id, err := randomToken(16)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, "Sign-in could not complete.")
		return
	}
	name := u.Name
	if name == "" {
		name = u.Username
	}
	ps := &portalSession{ID: id, UserID: u.ID, Name: name, Patients: slices.Clone(u.Patients), Expires: s.o.Now().Add(portalLifetime)}
	if err := s.savePortal(w, ps); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "Sign-in could not complete.")
		return
	}
	http.Redirect(w, r, portalPath, http.StatusSeeOther)
}

// portalAction opens the session of a portal form post and finds the
// grant it names among the patient's own: a grant of anyone else's record
// is answered as unknown.
func (s *Server) portalAction(w http.ResponseWriter, r *http.Request) (*portalSession, *Grant, bool) {
	if !readPost(w, r) {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return nil, nil, false
	}
	ps, ok := s.openPortal(r)
	if !ok || ps.UserID == "" || !s.csrf.Valid(ps.ID, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "Your session expired. Sign in again.")
		return nil, nil, false
	}
	audit.AnnotationsFrom(r.Context()).User(ps.UserID, "")
	id := r.PostForm.Get("grant")
	for _, patient := range ps.Patients {
		grants, err := s.o.Grants.ForPatient(r.Context(), patient)
		if err != nil {
			s.errorPage(w, http.StatusServiceUnavailable, "Your connected apps cannot be changed right now.")
			return nil, nil, false
		}
		for i := range grants {
			if grants[i].ID == id && id != "" {
				audit.AnnotationsFrom(r.Context()).Patient(patient)
				audit.AnnotationsFrom(r.Context()).Client(grants[i].ClientID)
				return ps, &grants[i], true
			}
		}
	}
	audit.AnnotationsFrom(r.Context()).Denied("unknown-grant")
	s.errorPage(w, http.StatusNotFound, "That app is not connected to your record.")
	return nil, nil, false
}

// handlePortalRevoke revokes a grant: its refresh tokens are deleted, its
// access tokens refused in every Warden process, and its Consent marked
// inactive, all before the page answers.
func (s *Server) handlePortalRevoke(w http.ResponseWriter, r *http.Request) {
	_, g, ok := s.portalAction(w, r)
	if !ok {
		return
	}
	if err := s.RevokeGrant(r.Context(), g.ID); err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "The app's access could not be revoked right now. Try again.")
		return
	}
	http.Redirect(w, r, portalPath+"?done=revoked", http.StatusSeeOther)
}

// handlePortalBlock withholds a category of sensitive data from an app.
func (s *Server) handlePortalBlock(w http.ResponseWriter, r *http.Request) {
	_, g, ok := s.portalAction(w, r)
	if !ok {
		return
	}
	label := r.PostForm.Get("label")
	if !slices.ContainsFunc(portalCategories, func(c web.PortalCategory) bool { return c.Code == label }) {
		s.errorPage(w, http.StatusBadRequest, "Choose one of the listed kinds of information.")
		return
	}
	if err := s.o.Grants.Block(r.Context(), g.Patient, g.ID, label); err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "The change could not be saved right now. Try again.")
		return
	}
	http.Redirect(w, r, portalPath+"?done=blocked", http.StatusSeeOther)
}

func (s *Server) handlePortalLogout(w http.ResponseWriter, r *http.Request) {
	if !readPost(w, r) {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	if ps, ok := s.openPortal(r); !ok || !s.csrf.Valid(ps.ID, r.PostForm.Get("csrf_token")) {
		s.errorPage(w, http.StatusForbidden, "Your session expired.")
		return
	}
	web.SetCookie(w, portalCookie, "", -1)
	http.Redirect(w, r, portalPath, http.StatusSeeOther)
}

// RevokeGrant revokes a grant everywhere: its refresh tokens are
// deleted, its access tokens refused by every Warden process (the call
// returns once they all apply it), and the ledger marks it inactive. The
// FHIR API's $revoke and the patient pages use it.
func (s *Server) RevokeGrant(ctx context.Context, id string) error {
	return s.store.RevokeRefreshToken(ctx, id)
}
