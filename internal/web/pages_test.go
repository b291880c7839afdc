package web_test

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/wardenfhir/warden/internal/web"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func newPages(t *testing.T) *web.Pages {
	t.Helper()
	p, err := web.NewPages()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// field is one form control of a parsed page.
type field struct {
	tag, typ, name, value string
	maxlength             string
	checked, required     bool
}

// form is one parsed form.
type form struct {
	method, action string
	fields         []field
}

func (f form) named(name string) []field {
	var out []field
	for _, x := range f.fields {
		if x.name == name {
			out = append(out, x)
		}
	}
	return out
}

// parseForms parses an HTML page and returns its forms.
func parseForms(t *testing.T, body string) []form {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var forms []form
	var walk func(n *html.Node, cur *form)
	walk = func(n *html.Node, cur *form) {
		if n.Type == html.ElementNode {
			attr := func(k string) (string, bool) {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val, true
					}
				}
				return "", false
			}
			switch n.Data {
			case "form":
				m, _ := attr("method")
				a, _ := attr("action")
				forms = append(forms, form{method: m, action: a})
				cur = &forms[len(forms)-1]
			case "input", "button", "select", "textarea":
				if cur == nil {
					t.Errorf("<%s> outside a form", n.Data)
					break
				}
				f := field{tag: n.Data}
				f.typ, _ = attr("type")
				f.name, _ = attr("name")
				f.value, _ = attr("value")
				f.maxlength, _ = attr("maxlength")
				_, f.checked = attr("checked")
				_, f.required = attr("required")
				cur.fields = append(cur.fields, f)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, cur)
			if cur != nil && n.Data != "form" && len(forms) > 0 {
				cur = &forms[len(forms)-1]
			}
		}
	}
	walk(doc, nil)
	return forms
}

// checkCSRF asserts that every form posts and carries the token.
func checkCSRF(t *testing.T, forms []form, token string) {
	t.Helper()
	if len(forms) == 0 {
		t.Fatal("no form")
	}
	for i, f := range forms {
		if f.method != "post" {
			t.Errorf("form %d: method %q", i, f.method)
		}
		c := f.named("csrf_token")
		if len(c) != 1 || c[0].typ != "hidden" || c[0].value != token {
			t.Errorf("form %d: csrf_token fields %+v", i, c)
		}
	}
}

func render(t *testing.T, f func(w http.ResponseWriter)) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	f(rec)
	return rec
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run with -update if intended):\n%s", name, got)
	}
}

const token = "tok-0123456789"

func TestLoginPage(t *testing.T) {
	p := newPages(t)
	rec := render(t, func(w http.ResponseWriter) {
		p.Login(w, web.LoginPage{Action: "/authorize/login", CSRF: token, ClientName: "Growth Chart", Username: "", Error: ""})
	})
	if rec.Code != 200 {
		t.Errorf("status %d", rec.Code)
	}
	golden(t, "login.html", rec.Body.String())
	forms := parseForms(t, rec.Body.String())
	checkCSRF(t, forms, token)
	f := forms[0]
	if f.action != "/authorize/login" {
		t.Errorf("action %q", f.action)
	}
	for name, typ := range map[string]string{"username": "text", "password": "password", "otp": "text"} {
		if x := f.named(name); len(x) != 1 || x[0].typ != typ {
			t.Errorf("field %s: %+v", name, x)
		}
	}
	if f.named("otp")[0].required {
		t.Error("otp required before it was asked for")
	}

	rec = render(t, func(w http.ResponseWriter) {
		p.Login(w, web.LoginPage{Action: "/authorize/login", CSRF: token, Username: "alice", Error: "Enter the code from your authenticator app.", AskOTP: true})
	})
	golden(t, "login-otp.html", rec.Body.String())
	f = parseForms(t, rec.Body.String())[0]
	if u := f.named("username"); u[0].value != "alice" {
		t.Errorf("username not prefilled: %+v", u)
	}
	if o := f.named("otp"); !o[0].required {
		t.Error("otp not required when asked for")
	}
	if !strings.Contains(rec.Body.String(), `role="alert">Enter the code`) {
		t.Error("error message missing")
	}
	if strings.Contains(rec.Body.String(), "<a ") {
		t.Error("upstream link without an UpstreamURL")
	}
}

// TestLoginPageUpstream: with an upstream provider the sign-in page keeps
// its form and adds a same-origin link, under the same CSP.
func TestLoginPageUpstream(t *testing.T) {
	p := newPages(t)
	rec := render(t, func(w http.ResponseWriter) {
		p.Login(w, web.LoginPage{Action: "/auth/login", CSRF: token, ClientName: "Growth Chart",
			UpstreamURL: "/auth/upstream?csrf_token=" + token + "&x=1", UpstreamName: "Hospital SSO"})
	})
	golden(t, "login-upstream.html", rec.Body.String())
	body := rec.Body.String()
	if !strings.Contains(body, `<a href="/auth/upstream?csrf_token=`+token+`&amp;x=1">Sign in with Hospital SSO</a>`) {
		t.Errorf("no upstream link:\n%s", body)
	}
	forms := parseForms(t, body)
	checkCSRF(t, forms, token)
	if len(forms) != 1 || len(forms[0].named("username")) != 1 || len(forms[0].named("password")) != 1 {
		t.Errorf("forms %+v", forms)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); csp != "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" {
		t.Errorf("CSP %q", csp)
	}
}

func TestPickerPage(t *testing.T) {
	p := newPages(t)
	rec := render(t, func(w http.ResponseWriter) {
		p.Picker(w, web.PickerPage{Action: "/authorize/patient", CSRF: token, ClientName: "Growth Chart",
			Patients: []web.PatientOption{{ID: "p1", Label: "Amy Shaw (2012-04-01)"}, {ID: "p2", Label: "Ben Shaw (2015-09-30)"}}})
	})
	golden(t, "picker.html", rec.Body.String())
	forms := parseForms(t, rec.Body.String())
	checkCSRF(t, forms, token)
	radios := forms[0].named("patient")
	if len(radios) != 2 || radios[0].typ != "radio" || radios[0].value != "p1" || radios[1].value != "p2" {
		t.Errorf("patient radios %+v", radios)
	}
	for _, r := range radios {
		if r.checked {
			t.Error("a patient is chosen by default")
		}
	}

	rec = render(t, func(w http.ResponseWriter) {
		p.Picker(w, web.PickerPage{Action: "/authorize/patient", CSRF: token, Search: true, Query: "shaw"})
	})
	golden(t, "picker-search.html", rec.Body.String())
	forms = parseForms(t, rec.Body.String())
	checkCSRF(t, forms, token)
	if q := forms[0].named("q"); len(q) != 1 || q[0].value != "shaw" || len(forms) != 1 {
		t.Errorf("search form %+v", forms)
	}
}

const breakGlassLabel = "Emergency access (break the glass): state why you need this record; the access is recorded and reviewed"

// TestPickerBreakGlass: the break_glass_reason field is on the patient
// form only when offered, bounded, optional, and its prefilled value comes
// back as text.
func TestPickerBreakGlass(t *testing.T) {
	p := newPages(t)
	patients := []web.PatientOption{{ID: "p1", Label: "Amy Shaw (2012-04-01)"}}
	for name, pg := range map[string]web.PickerPage{
		"not offered":           {Action: "/authorize/patient", CSRF: token, Search: true, Patients: patients},
		"not offered, reason":   {Action: "/authorize/patient", CSRF: token, Patients: patients, BreakGlassReason: "x"},
		"offered, no patient":   {Action: "/authorize/patient", CSRF: token, Search: true, OfferBreakGlass: true},
		"not offered, patients": {Action: "/authorize/patient", CSRF: token, Patients: patients},
	} {
		body := render(t, func(w http.ResponseWriter) { p.Picker(w, pg) }).Body.String()
		if strings.Contains(body, "break_glass_reason") || strings.Contains(body, "break the glass") {
			t.Errorf("%s: break-the-glass field shown:\n%s", name, body)
		}
	}

	rec := render(t, func(w http.ResponseWriter) {
		p.Picker(w, web.PickerPage{Action: "/authorize/patient", CSRF: token, ClientName: "Growth Chart", Search: true, Query: "shaw",
			Patients: patients, OfferBreakGlass: true, BreakGlassReason: "Unconscious in the ED, no care team yet"})
	})
	golden(t, "picker-breakglass.html", rec.Body.String())
	forms := parseForms(t, rec.Body.String())
	checkCSRF(t, forms, token)
	if len(forms) != 2 {
		t.Fatalf("forms %+v", forms)
	}
	if x := forms[0].named("break_glass_reason"); len(x) != 0 {
		t.Errorf("search form carries the reason: %+v", x)
	}
	x := forms[1].named("break_glass_reason")
	if len(x) != 1 || x[0].tag != "input" || x[0].typ != "text" || x[0].required ||
		x[0].value != "Unconscious in the ED, no care team yet" || x[0].maxlength != strconv.Itoa(web.BreakGlassReasonMax) {
		t.Errorf("break_glass_reason field %+v", x)
	}
	if web.BreakGlassReasonMax != 200 {
		t.Errorf("BreakGlassReasonMax %d", web.BreakGlassReasonMax)
	}
	if !strings.Contains(rec.Body.String(), `<label for="break_glass_reason">`+breakGlassLabel+`</label>`) {
		t.Error("label missing")
	}
	if len(forms[1].named("patient")) != 1 {
		t.Errorf("patient form %+v", forms[1])
	}

	// A hostile reason (the page echoes what was typed) stays a value.
	const evil = `"><script>alert(1)</script><input name="patient" value="p9`
	rec = render(t, func(w http.ResponseWriter) {
		p.Picker(w, web.PickerPage{Action: "/p", CSRF: token, Patients: patients, OfferBreakGlass: true, BreakGlassReason: evil})
	})
	body := rec.Body.String()
	if strings.Contains(body, "<script") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("reason not escaped:\n%s", body)
	}
	forms = parseForms(t, body)
	if x := forms[0].named("break_glass_reason"); len(x) != 1 || x[0].value != evil {
		t.Errorf("reason round trip %+v", x)
	}
	if r := forms[0].named("patient"); len(r) != 1 || r[0].value != "p1" {
		t.Errorf("hostile reason added a patient control: %+v", r)
	}
}

func TestApprovePage(t *testing.T) {
	p := newPages(t)
	pg := web.ApprovePage{Action: "/authorize/approve", CSRF: token, ClientName: "Growth Chart", ClientOwner: "Example Health",
		RedirectOrigin: "https://app.example:8443",
		Scopes: []web.ScopeOption{
			{Value: "launch/patient", Description: "Know which patient you chose", Checked: true},
			{Value: "patient/Observation.rs?category=laboratory", Description: "Read your lab results", Checked: true},
			{Value: "offline_access", Description: "Keep access when you are not using it", Checked: false},
		}}
	rec := render(t, func(w http.ResponseWriter) { p.Approve(w, pg) })
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	golden(t, "approve.html", rec.Body.String())
	forms := parseForms(t, rec.Body.String())
	checkCSRF(t, forms, token)
	boxes := forms[0].named("scope")
	if len(boxes) != 3 {
		t.Fatalf("scope checkboxes %+v", boxes)
	}
	for i, b := range boxes {
		if b.typ != "checkbox" || b.value != pg.Scopes[i].Value || b.checked != pg.Scopes[i].Checked {
			t.Errorf("checkbox %d: %+v", i, b)
		}
	}
	var decisions []string
	for _, d := range forms[0].named("decision") {
		if d.tag != "button" || d.typ != "submit" {
			t.Errorf("decision control %+v", d)
		}
		decisions = append(decisions, d.value)
	}
	// Deny comes first: pressing Enter submits the first button.
	if !slices.Equal(decisions, []string{"deny", "allow"}) {
		t.Errorf("decision buttons %v", decisions)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' https://app.example:8443;") {
		t.Errorf("CSP %q does not allow the redirect origin", csp)
	}
	if strings.Contains(rec.Body.String(), "break the glass") {
		t.Error("break-the-glass notice on an ordinary approval")
	}

	pg.BreakGlass = true
	pg.Scopes = pg.Scopes[:2]
	rec = render(t, func(w http.ResponseWriter) { p.Approve(w, pg) })
	golden(t, "approve-breakglass.html", rec.Body.String())
	if !strings.Contains(rec.Body.String(), `<p class="notice" role="note"><strong>Emergency access (break the glass).</strong>`) ||
		!strings.Contains(rec.Body.String(), "recorded and will be reviewed") {
		t.Errorf("break-the-glass notice missing:\n%s", rec.Body)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://app.example:8443;") {
		t.Errorf("CSP %q", csp)
	}
}

func TestErrorPage(t *testing.T) {
	p := newPages(t)
	rec := render(t, func(w http.ResponseWriter) { p.Error(w, http.StatusBadRequest, "The request is missing <client_id>.") })
	if rec.Code != 400 {
		t.Errorf("status %d", rec.Code)
	}
	golden(t, "error.html", rec.Body.String())
	if !strings.Contains(rec.Body.String(), "missing &lt;client_id&gt;.") {
		t.Error("message not escaped")
	}
}

// TestSecurityHeaders checks every page kind for the headers.
func TestSecurityHeaders(t *testing.T) {
	p := newPages(t)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"Content-Type":            "text/html; charset=utf-8",
	}
	for name, f := range map[string]func(http.ResponseWriter){
		"login":  func(w http.ResponseWriter) { p.Login(w, web.LoginPage{CSRF: token}) },
		"picker": func(w http.ResponseWriter) { p.Picker(w, web.PickerPage{CSRF: token}) },
		"approve": func(w http.ResponseWriter) {
			p.Approve(w, web.ApprovePage{CSRF: token, RedirectOrigin: "https://a.example"})
		},
		"error": func(w http.ResponseWriter) { p.Error(w, 500, "x") },
	} {
		rec := render(t, f)
		for k, v := range want {
			got := rec.Header().Get(k)
			if name == "approve" && k == "Content-Security-Policy" {
				v = strings.Replace(v, "form-action 'self'", "form-action 'self' https://a.example", 1)
			}
			if got != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got, v)
			}
		}
	}
}

// TestApproveRedirectOrigin lists origins that must not reach the CSP:
// each could widen form-action or inject a directive.
func TestApproveRedirectOrigin(t *testing.T) {
	p := newPages(t)
	for _, origin := range []string{
		"",
		"*",
		"https:",
		"http:",
		"javascript:",
		"data:",
		"https://*.example",
		"https://app.example/callback",
		"https://app.example; script-src *",
		"https://app.example 'unsafe-inline'",
		"https://app.example,https://evil.example",
		"https://user@app.example",
		"https://app.example?x=1",
		"https://app.example#f",
		"https://app.example:",
		"https://app.example:99999",
		"ftp://app.example",
		"//app.example",
		"app.example",
		"myapp:",
		"com.example.app:/callback",
		"'self'",
		"https://app.example\n",
	} {
		rec := render(t, func(w http.ResponseWriter) {
			p.Approve(w, web.ApprovePage{CSRF: token, ClientName: "x", RedirectOrigin: origin})
		})
		csp := rec.Header().Get("Content-Security-Policy")
		if rec.Code != 500 || !strings.Contains(csp, "form-action 'self';") || strings.Contains(rec.Body.String(), `name="decision"`) {
			t.Errorf("origin %q: status %d, CSP %q", origin, rec.Code, csp)
		}
	}
	for origin, src := range map[string]string{
		"https://app.example":      "https://app.example",
		"HTTPS://App.Example:8443": "https://app.example:8443",
		"http://localhost:3000":    "http://localhost:3000",
		"http://127.0.0.1:9":       "http://127.0.0.1:9",
		"http://[::1]:8080":        "http://[::1]:8080",
		"com.example.app:":         "com.example.app:",
	} {
		rec := render(t, func(w http.ResponseWriter) {
			p.Approve(w, web.ApprovePage{CSRF: token, ClientName: "x", RedirectOrigin: origin})
		})
		if csp := rec.Header().Get("Content-Security-Policy"); rec.Code != 200 || !strings.Contains(csp, "form-action 'self' "+src+";") {
			t.Errorf("origin %q: status %d, CSP %q", origin, rec.Code, csp)
		}
	}
}

// TestHostileText renders attacker-chosen text (a client registers its own
// name) in every field: it must come out as text, never markup, and never
// as a script URL.
func TestHostileText(t *testing.T) {
	p := newPages(t)
	const evil = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	for name, f := range map[string]func(http.ResponseWriter){
		"login": func(w http.ResponseWriter) {
			p.Login(w, web.LoginPage{Action: "javascript:alert(3)", CSRF: evil, ClientName: evil, Username: evil, Error: evil,
				UpstreamURL: "javascript:alert(4)", UpstreamName: evil})
		},
		"picker": func(w http.ResponseWriter) {
			p.Picker(w, web.PickerPage{Action: "/p", CSRF: token, ClientName: evil, Search: true, Query: evil,
				Patients: []web.PatientOption{{ID: evil, Label: evil}}, Error: evil,
				OfferBreakGlass: true, BreakGlassReason: evil})
		},
		"approve": func(w http.ResponseWriter) {
			p.Approve(w, web.ApprovePage{Action: "/a", CSRF: token, ClientName: evil, ClientOwner: evil, RedirectOrigin: "https://a.example",
				Scopes: []web.ScopeOption{{Value: evil, Description: evil}}})
		},
		"error": func(w http.ResponseWriter) { p.Error(w, 400, evil) },
	} {
		body := render(t, f).Body.String()
		for _, bad := range []string{"<script", "<img", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: output contains %q:\n%s", name, bad, body)
			}
		}
		doc, err := html.Parse(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for n := range doc.Descendants() {
			if n.Type != html.ElementNode {
				continue
			}
			if n.Data == "script" || n.Data == "img" {
				t.Errorf("%s: hostile text became a <%s> element", name, n.Data)
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("%s: hostile text became an attribute %s", name, a.Key)
				}
			}
		}
		if !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("%s: hostile text not shown escaped", name)
		}
	}
}

func TestStylesheet(t *testing.T) {
	p := newPages(t)
	h := p.Stylesheet()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", web.StylesheetPath, nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/css; charset=utf-8" ||
		rec.Header().Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(rec.Body.String(), "main {") {
		t.Errorf("GET: %d %v", rec.Code, rec.Header())
	}
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest("GET", web.StylesheetPath, nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("conditional GET: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", web.StylesheetPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
	// The pages link the stylesheet at its path.
	page := render(t, func(w http.ResponseWriter) { p.Error(w, 404, "x") }).Body.String()
	if !strings.Contains(page, `<link rel="stylesheet" href="`+web.StylesheetPath+`?v=`) {
		t.Error("page does not link the stylesheet")
	}
}

func TestPortalPage(t *testing.T) {
	p := newPages(t)
	rec := render(t, func(w http.ResponseWriter) {
		p.Portal(w, web.PortalPage{RevokeAction: "/auth/portal/revoke", BlockAction: "/auth/portal/block", LogoutAction: "/auth/portal/logout",
			CSRF: token, UserName: "<Ana & Bo>", Notice: "Access revoked.",
			Apps: []web.PortalApp{
				{ID: "g1", Name: "Growth <Chart>", Active: true, Since: "1 March 2026", LastAccess: "never", May: []string{"Read your observations"}, Blocked: []string{"Mental health"}},
				{ID: "g2", Name: "Old App", Since: "1 January 2026", LastAccess: "2 January 2026"},
			},
			Categories: []web.PortalCategory{{"PSY", "Mental health"}, {"ETH", "Substance use treatment"}}})
	})
	if rec.Code != 200 {
		t.Errorf("status %d", rec.Code)
	}
	golden(t, "portal.html", rec.Body.String())
	body := rec.Body.String()
	if strings.Contains(body, "<Chart>") || strings.Contains(body, "<Ana") {
		t.Error("names are not escaped")
	}
	forms := parseForms(t, body)
	checkCSRF(t, forms, token)
	// Sign-out, then revoke and block for the active app only.
	if len(forms) != 3 || forms[1].action != "/auth/portal/revoke" || forms[2].action != "/auth/portal/block" {
		t.Fatalf("forms: %+v", forms)
	}
	if g := forms[1].named("grant"); len(g) != 1 || g[0].value != "g1" {
		t.Errorf("revoke form grant: %+v", g)
	}
	if l := forms[2].named("label"); len(l) == 0 {
		t.Errorf("block form has no label field: %+v", forms[2])
	}
}
