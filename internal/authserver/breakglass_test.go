package authserver

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/wardenfhir/warden/internal/web"
)

const breakGlassNotice = "Emergency access (break the glass)."

func TestBreakGlassReasonValidation(t *testing.T) {
	max := strings.Repeat("é", web.BreakGlassReasonMax)
	for _, tc := range []struct {
		name   string
		values []string
		want   string
		ok     bool
	}{
		{"absent", nil, "", true},
		{"empty", []string{""}, "", true},
		{"only spaces", []string{" \t "}, "", true},
		{"trimmed", []string{"  Unconscious in the ED \n"}, "Unconscious in the ED", true},
		{"at the limit", []string{"  " + max + "  "}, max, true},
		{"one over the limit", []string{max + "x"}, "", false},
		{"NUL", []string{"need\x00it"}, "", false},
		{"line break inside", []string{"first\nsecond"}, "", false},
		{"tab inside", []string{"a\tb"}, "", false},
		{"escape", []string{"a\x1b[31mred"}, "", false},
		{"DEL", []string{"a\x7fb"}, "", false},
		{"C1 control", []string{"a\u0085b"}, "", false},
		{"bidi override", []string{"reason \u202egnp.exe"}, "", false},
		{"zero-width space", []string{"a\u200bb"}, "", false},
		{"no-break space", []string{"a\u00a0b"}, "", false},
		{"line separator", []string{"a\u2028b"}, "", false},
		{"invalid UTF-8", []string{"a\xffb"}, "", false},
		{"two values", []string{"one", "two"}, "", false},
	} {
		got, ok := breakGlassReason(tc.values)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %q %v, want %q %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// practitionerPicker signs a practitioner in and returns the picker.
func (e *env) practitionerPicker(t *testing.T, c Client, u testUser, scope string, p pkce) (*browser, page) {
	t.Helper()
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, scope, p, nil)
	pg := b.login(t, b.get(t, authURL), u, "")
	if len(pg.inputs("patient")) == 0 || len(pg.inputs("break_glass_reason")) != 1 {
		t.Fatalf("practitioner's picker without patients or break-the-glass field: %s", pg.body)
	}
	return b, pg
}

// TestBreakGlassRefusedReasons: an unusable reason re-renders the picker
// with an error and without echoing it; the interaction stays usable.
func TestBreakGlassRefusedReasons(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "dr-who", "Practitioner/pr1", nil, false)
	p := newPKCE()
	b, pg := e.practitionerPicker(t, c, u, "launch/patient offline_access user/*.rs", p)
	for name, reason := range map[string][]string{
		"too long":       {strings.Repeat("x", web.BreakGlassReasonMax+1)},
		"NUL":            {"urgent\x00"},
		"line break":     {"urgent\r\nSet-Cookie: x=y"},
		"escape":         {"\x1b[2Jurgent"},
		"bidi override":  {"urgent \u202e"},
		"invalid UTF-8":  {"urgent \xc3"},
		"two reasons":    {"urgent", "also urgent"},
		"html, too long": {strings.Repeat("<b>", 70)},
	} {
		pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p3"}, "break_glass_reason": reason})
		if pg.status != http.StatusOK || len(pg.inputs("scope")) > 0 || len(pg.inputs("patient")) == 0 {
			t.Fatalf("%s: not refused: %d %.300s", name, pg.status, pg.body)
		}
		if !strings.Contains(pg.body, `role="alert">State the emergency access reason`) {
			t.Fatalf("%s: no error shown", name)
		}
		if v := pg.inputs("break_glass_reason"); len(v) != 1 || v[0] != "" {
			t.Fatalf("%s: refused reason echoed: %q", name, v)
		}
	}
	// A reason at the limit, which JSON escapes to six bytes a character,
	// still fits the sealed interaction cookie.
	reason := strings.Repeat("<", web.BreakGlassReasonMax)
	pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p3"}, "break_glass_reason": {reason}})
	if !strings.Contains(pg.body, breakGlassNotice) || len(pg.inputs("scope")) == 0 {
		t.Fatalf("reason at the limit: %d %.300s", pg.status, pg.body)
	}
	params := redirectParams(t, b.approve(t, pg, nil), c)
	st, tok, _ := e.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, tok)
	}
	pr, err := e.tokens.Verify(e.ctx, tok["access_token"].(string))
	if err != nil || pr.BreakGlassReason != reason {
		t.Fatalf("principal %+v, %v", pr, err)
	}
}

// TestBreakGlassNotOfferedToOthers: patients, related persons and a
// practitioner account that lists its own patients see no break-the-glass
// field, and a forged break_glass_reason (even an invalid one) is ignored.
func TestBreakGlassNotOfferedToOthers(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	n := 0
	for _, fhirUser := range []string{"Patient/p1", "RelatedPerson/r1", "Practitioner/pr9"} {
		for _, forged := range []string{"Unconscious in the ED", "bad\x00reason"} {
			n++
			t.Run(fhirUser, func(t *testing.T) {
				u := e.addUser(t, "user"+strconv.Itoa(n), fhirUser, []string{"p1", "p2"}, false)
				p := newPKCE()
				b := e.browser(t)
				authURL, _ := e.authorizeURL(c, "launch/patient offline_access patient/*.rs", p, nil)
				pg := b.login(t, b.get(t, authURL), u, "")
				if len(pg.inputs("patient")) != 2 || len(pg.inputs("break_glass_reason")) != 0 || strings.Contains(pg.body, "break the glass") {
					t.Fatalf("picker: %s", pg.body)
				}
				pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p2"}, "break_glass_reason": {forged}})
				if len(pg.inputs("scope")) == 0 || strings.Contains(pg.body, breakGlassNotice) {
					t.Fatalf("approval page: %d %.400s", pg.status, pg.body)
				}
				if !slices.Contains(pg.inputs("scope"), "offline_access") {
					t.Fatalf("offline_access not offered: %v", pg.inputs("scope"))
				}
				params := redirectParams(t, b.approve(t, pg, nil), c)
				st, tok, _ := e.exchange(t, c, "", params.Get("code"), p.verifier)
				if st != http.StatusOK || tok["patient"] != "p2" || tok["refresh_token"] == nil {
					t.Fatalf("%d %v", st, tok)
				}
				if _, ok := jwtClaims(t, tok["access_token"].(string))["break_glass"]; ok {
					t.Fatal("break_glass claim in a non-practitioner's token")
				}
				if pr, err := e.tokens.Verify(e.ctx, tok["access_token"].(string)); err != nil || pr.BreakGlassReason != "" {
					t.Fatalf("principal %+v, %v", pr, err)
				}
			})
		}
	}
}

// TestBreakGlassPractitioner: without a reason the grant is ordinary; with
// one every access token carries it, the grant has no refresh token even
// when the approval form is forged to ask for one, and the token lives at
// most the sensitive lifetime.
func TestBreakGlassPractitioner(t *testing.T) {
	const sensitive = 90 * time.Second
	e := newEnv(t, func(o *Options) { o.SensitiveLifetime = sensitive })
	c, secret := e.appClient(t, ClientConfidential, appScopes)
	u := e.addUser(t, "dr-who", "Practitioner/pr1", nil, false)
	const scope = "launch/patient openid fhirUser offline_access online_access user/*.rs"

	t.Run("no reason", func(t *testing.T) {
		p := newPKCE()
		b, pg := e.practitionerPicker(t, c, u, scope, p)
		pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p3"}, "break_glass_reason": {"   "}})
		if strings.Contains(pg.body, breakGlassNotice) || !slices.Contains(pg.inputs("scope"), "offline_access") {
			t.Fatalf("approval page: %.400s", pg.body)
		}
		params := redirectParams(t, b.approve(t, pg, nil), c)
		st, tok, _ := e.exchange(t, c, secret, params.Get("code"), p.verifier)
		if st != http.StatusOK || tok["refresh_token"] == nil {
			t.Fatalf("%d %v", st, tok)
		}
		if exp := tok["expires_in"].(float64); exp <= sensitive.Seconds() {
			t.Fatalf("ordinary grant shortened: expires_in %v", exp)
		}
		pr, err := e.tokens.Verify(e.ctx, tok["access_token"].(string))
		if err != nil || pr.BreakGlassReason != "" {
			t.Fatalf("principal %+v, %v", pr, err)
		}
	})

	t.Run("with reason", func(t *testing.T) {
		p := newPKCE()
		b, pg := e.practitionerPicker(t, c, u, scope, p)
		// A wrong patient keeps the (valid) reason typed.
		pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"nobody"}, "break_glass_reason": {"Unconscious in the ED"}})
		if v := pg.inputs("break_glass_reason"); len(v) != 1 || v[0] != "Unconscious in the ED" || len(pg.inputs("scope")) > 0 {
			t.Fatalf("wrong patient: %q %.300s", v, pg.body)
		}
		pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p3"}, "break_glass_reason": {"  Unconscious in the ED, no care team  "}})
		if !strings.Contains(pg.body, breakGlassNotice) {
			t.Fatalf("no emergency notice on the approval page: %.600s", pg.body)
		}
		offered := pg.inputs("scope")
		if slices.Contains(offered, "offline_access") || slices.Contains(offered, "online_access") || !slices.Contains(offered, "launch/patient") {
			t.Fatalf("offered %v", offered)
		}
		// A forged approval asks for the refresh scopes anyway.
		params := redirectParams(t, b.approve(t, pg, append(offered, "offline_access", "online_access")), c)
		st, tok, _ := e.exchange(t, c, secret, params.Get("code"), p.verifier)
		if st != http.StatusOK || tok["patient"] != "p3" {
			t.Fatalf("%d %v", st, tok)
		}
		if _, ok := tok["refresh_token"]; ok {
			t.Fatalf("break-the-glass grant got a refresh token: %v", tok)
		}
		if sc := strings.Fields(tok["scope"].(string)); slices.Contains(sc, "offline_access") || slices.Contains(sc, "online_access") {
			t.Fatalf("scope %v", sc)
		}
		if exp := tok["expires_in"].(float64); exp <= 0 || exp > sensitive.Seconds() {
			t.Fatalf("expires_in %v, want at most %v", exp, sensitive.Seconds())
		}
		pr, err := e.tokens.Verify(e.ctx, tok["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if pr.BreakGlassReason != "Unconscious in the ED, no care team" || pr.FHIRUser != "Practitioner/pr1" || pr.Patient != "p3" {
			t.Fatalf("principal %+v", pr)
		}
		if d := pr.Expires.Sub(pr.IssuedAt); d > sensitive {
			t.Fatalf("token lifetime %v", d)
		}
		// The interaction is over: the reason cannot be replayed onto
		// another approval.
		if pg := b.approve(t, pg, nil); pg.location != nil {
			t.Fatalf("replayed approval redirected: %v", pg.location)
		}
	})

	t.Run("refresh refused", func(t *testing.T) {
		// No break-the-glass grant has a refresh token; should a stored
		// one exist, the refresh grant still refuses it.
		req := fosite.NewAccessRequest(&Session{Subject: u.ID, Username: u.Username, BreakGlassReason: "urgent"})
		req.GrantTypes = fosite.Arguments{GrantRefreshToken}
		req.GrantedScope = fosite.Arguments{"offline_access", "user/*.rs"}
		req.Client = &fositeClient{Client: c}
		req.Form = url.Values{}
		err := e.srv.shapeAccessRequest(e.ctx, req)
		if !errors.Is(err, fosite.ErrInvalidGrant) {
			t.Fatalf("refresh of a break-the-glass grant: %v", err)
		}
	})
}
