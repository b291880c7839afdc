// Package web owns the HTML pages of the authorization flow (sign-in,
// patient picker, approval, error) and the browser-facing protections
// around them: strict security headers and Content-Security-Policy, CSRF
// tokens, hardened cookies, and a sealed cookie codec for the state of an
// interaction.
//
// The pages are plain HTML forms that work without JavaScript, rendered
// with html/template from embedded templates and one embedded stylesheet.
// Their field names are a stable interface that scripts and tests drive:
// sign-in username, password, otp; picker radio patient and, when
// offered, text break_glass_reason; approval
// checkboxes scope and a submit button decision (allow or deny); every form
// carries a hidden csrf_token.
//
// It never decides anything: which user, patient or scopes are valid is the
// caller's business (package authserver); it never logs, and never puts a
// secret into a page other than the CSRF token it is given.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/warden.css
var stylesheet []byte

// StylesheetPath is where the pages load their stylesheet from: mount
// [Pages.Stylesheet] there.
const StylesheetPath = "/static/warden.css"

// Pages renders the authorization pages. It is safe for concurrent use.
type Pages struct {
	login, picker, approve, portal, errorPage *template.Template
	stylesheetURL                             string // StylesheetPath with a version query that changes with the content
	stylesheetETag                            string
}

// LoginPage is the sign-in form. It posts username, password, otp and
// csrf_token to Action; with UpstreamURL it also links to the sign-in
// through an upstream provider (a plain link, the page's CSP unchanged).
type LoginPage struct {
	Action     string // form target (same origin)
	CSRF       string // token for the csrf_token field
	ClientName string // the app the user is signing in to; "" for none
	Username   string // prefilled username (after a failed attempt)
	Error      string // a public message: "Invalid username or password."
	AskOTP     bool   // the password was right and a one-time code is needed
	// UpstreamURL, when set, adds below the form a link "Sign in with
	// UpstreamName" to this same-origin URL, which starts a sign-in
	// through an upstream OpenID Connect provider; "" shows none.
	UpstreamURL  string
	UpstreamName string // the provider as users know it: "Hospital SSO"
}

// PickerPage is the patient picker. It posts patient (one of Patients' IDs)
// and csrf_token to Action, and with OfferBreakGlass break_glass_reason;
// with Search, a second form posts q and csrf_token (and search=1) to
// Action.
type PickerPage struct {
	Action, CSRF, ClientName string
	Patients                 []PatientOption
	Search                   bool   // show a search form (a practitioner's picker)
	Query                    string // the search text shown in it
	Error                    string
	// OfferBreakGlass adds to the patient form an optional text field
	// break_glass_reason (at most BreakGlassReasonMax characters) where
	// a practitioner states why they need a record outside their care.
	OfferBreakGlass bool
	// BreakGlassReason prefills that field (after an error).
	BreakGlassReason string
}

// BreakGlassReasonMax is the maxlength of the picker's break_glass_reason
// field; the server must enforce it too.
const BreakGlassReasonMax = 200

// PatientOption is one choice of the picker.
type PatientOption struct {
	ID    string // FHIR Patient id: the value of the patient field
	Label string // what the user sees: name, birth date
}

// ApprovePage is the approval (consent) form. It posts the scope values
// left ticked, decision=allow or decision=deny, and csrf_token to Action.
type ApprovePage struct {
	Action, CSRF, ClientName, ClientOwner string
	Scopes                                []ScopeOption
	// RedirectOrigin is the origin of the app's redirect URI
	// ("https://app.example:8443"), or its private-use scheme
	// ("com.example.app:", RFC 8252 §7.1). The page's CSP form-action
	// allows it, because browsers apply form-action to the redirect that
	// follows the form's POST.
	RedirectOrigin string
	// BreakGlass shows a notice that this is an emergency
	// (break-the-glass) access, recorded and reviewed.
	BreakGlass bool
}

// ScopeOption is one scope checkbox.
type ScopeOption struct {
	Value       string // the scope string, the checkbox value
	Description string // plain-language meaning
	Checked     bool
}

// PortalPage is the patient's page of connected apps. Its forms post
// csrf_token and grant to RevokeAction, and also label (one of
// Categories' codes) to BlockAction; the sign-out form posts csrf_token
// to LogoutAction.
type PortalPage struct {
	RevokeAction, BlockAction, LogoutAction, CSRF string
	UserName                                      string
	Notice, Error                                 string // public messages
	Apps                                          []PortalApp
	Categories                                    []PortalCategory
}

// PortalApp is one app with access to the patient's record.
type PortalApp struct {
	ID, Name   string
	Active     bool
	Since      string   // when access was granted, as shown
	LastAccess string   // when the app last read the record, or "never"
	May        []string // what it may do, in plain language
	Blocked    []string // the categories withheld from it, as shown
}

// PortalCategory is a kind of sensitive data a patient can withhold.
type PortalCategory struct{ Code, Name string }

// NewPages parses the embedded templates.
func NewPages() (*Pages, error) {
	base, err := template.New("layout").ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	page := func(name string) (*template.Template, error) {
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, "templates/"+name); err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", name, err)
		}
		return t, nil
	}
	p := &Pages{}
	for _, x := range []struct {
		t    **template.Template
		name string
	}{{&p.login, "login.html"}, {&p.picker, "picker.html"}, {&p.approve, "approve.html"}, {&p.portal, "portal.html"}, {&p.errorPage, "error.html"}} {
		if *x.t, err = page(x.name); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256(stylesheet)
	p.stylesheetETag = `"` + hex.EncodeToString(sum[:8]) + `"`
	p.stylesheetURL = StylesheetPath + "?v=" + hex.EncodeToString(sum[:4])
	return p, nil
}

// view is what the layout renders: the page and the stylesheet's URL.
type view struct {
	Stylesheet string
	P          any
}

// Login writes the sign-in page. Its status is 200 also after a failed
// attempt: a 401 would need a WWW-Authenticate challenge (RFC 9110 §15.5.2)
// that a form cannot answer.
func (p *Pages) Login(w http.ResponseWriter, pg LoginPage) {
	p.render(w, http.StatusOK, p.login, pg, "")
}

// Picker writes the patient picker.
func (p *Pages) Picker(w http.ResponseWriter, pg PickerPage) {
	p.render(w, http.StatusOK, p.picker, pg, "")
}

// Approve writes the approval page. Its CSP form-action allows
// pg.RedirectOrigin; an origin that is not a plain origin or private-use
// scheme gets an error page instead, since the redirect could not work.
func (p *Pages) Approve(w http.ResponseWriter, pg ApprovePage) {
	src, ok := cspSource(pg.RedirectOrigin)
	if !ok {
		p.Error(w, http.StatusInternalServerError, "This app's redirect address cannot be used.")
		return
	}
	p.render(w, http.StatusOK, p.approve, pg, src)
}

// Portal writes the patient's page of connected apps.
func (p *Pages) Portal(w http.ResponseWriter, pg PortalPage) {
	p.render(w, http.StatusOK, p.portal, pg, "")
}

// Error writes an error page with status and message. The message is shown
// to the user as is (escaped): it must be public text, never an internal
// error.
func (p *Pages) Error(w http.ResponseWriter, status int, message string) {
	title := http.StatusText(status)
	if title == "" {
		title = "Error"
	}
	p.render(w, status, p.errorPage, struct{ Title, Message string }{title, message}, "")
}

// render executes t into a buffer, so that a template error never leaves
// half a page, then writes headers and body.
func (p *Pages) render(w http.ResponseWriter, status int, t *template.Template, pg any, formAction string) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", view{Stylesheet: p.stylesheetURL, P: pg}); err != nil {
		SecurityHeaders(w.Header(), "")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("internal error\n"))
		return
	}
	SecurityHeaders(w.Header(), formAction)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// SecurityHeaders sets the headers every page carries: a CSP that allows
// only the stylesheet and images from this origin, no framing, no base
// URL, and form posts to this origin and formAction (a CSP source
// expression, "" for none); no referrer, no caching, no MIME sniffing.
func SecurityHeaders(h http.Header, formAction string) {
	fa := "'self'"
	if formAction != "" {
		fa += " " + formAction
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action "+fa+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// cspSource turns a redirect origin into a CSP source expression (CSP
// Level 3 §2.3.1): "scheme://host[:port]" for http and https origins,
// "scheme:" for a private-use URI scheme, which RFC 8252 §7.1 requires to
// contain a period. Anything else, including a path, a wildcard, or a
// character that could end the directive (space, semicolon, comma,
// quote), is refused.
func cspSource(origin string) (string, bool) {
	if origin == "" || len(origin) > 512 {
		return "", false
	}
	for i := 0; i < len(origin); i++ {
		c := origin[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-+:/[]", c) >= 0) {
			return "", false
		}
	}
	if s, ok := strings.CutSuffix(origin, ":"); ok && !strings.Contains(s, ":") && !strings.Contains(s, "/") {
		s = strings.ToLower(s)
		if strings.Contains(s, ".") && s[0] >= 'a' && s[0] <= 'z' && !strings.Contains(s, "[") && !strings.Contains(s, "]") {
			return s + ":", true
		}
		return "", false
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.Hostname() == "" {
		return "", false
	}
	src := u.Scheme + "://" + strings.ToLower(u.Host)
	if src != strings.ToLower(origin) {
		return "", false
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", false
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", false
	}
	return src, true
}

// Stylesheet serves the embedded stylesheet (mount it at StylesheetPath).
func (p *Pages) Stylesheet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Type", "text/css; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=86400")
		h.Set("ETag", p.stylesheetETag)
		if r.Header.Get("If-None-Match") == p.stylesheetETag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		w.Write(stylesheet)
	})
}
