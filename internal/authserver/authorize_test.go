package authserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/pquerna/otp/totp"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

const appScopes = "launch launch/patient launch/encounter openid fhirUser profile offline_access online_access patient/*.rs user/*.rs"

func TestAuthorizeRequestAdversarial(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	p := newPKCE()
	cases := []struct {
		name string
		mod  func(url.Values)
		// wantPage: refused on an error page, never redirected.
		wantPage  bool
		wantError string
	}{
		{name: "unknown client", mod: func(q url.Values) { q.Set("client_id", "nope") }, wantPage: true},
		{name: "wrong redirect URI", mod: func(q url.Values) { q.Set("redirect_uri", "https://evil.example/callback") }, wantPage: true},
		{name: "redirect URI with extra path", mod: func(q url.Values) { q.Set("redirect_uri", "https://app.example/callback/extra") }, wantPage: true},
		{name: "redirect URI prefix", mod: func(q url.Values) { q.Set("redirect_uri", "https://app.example/call") }, wantPage: true},
		{name: "redirect URI extra query", mod: func(q url.Values) { q.Set("redirect_uri", "https://app.example/callback?x=1") }, wantPage: true},
		{name: "redirect URI case-folded path", mod: func(q url.Values) { q.Set("redirect_uri", "https://app.example/Callback") }, wantPage: true},
		{name: "redirect URI with fragment", mod: func(q url.Values) { q.Set("redirect_uri", "https://app.example/callback#x") }, wantPage: true},
		{name: "redirect URI http downgrade", mod: func(q url.Values) { q.Set("redirect_uri", "http://app.example/callback") }, wantPage: true},
		{name: "redirect URI missing", mod: func(q url.Values) { q.Del("redirect_uri") }, wantPage: true},
		{name: "two redirect URIs", mod: func(q url.Values) { q.Add("redirect_uri", "https://evil.example/") }, wantPage: true},
		{name: "PKCE missing", mod: func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, wantError: "invalid_request"},
		{name: "PKCE plain", mod: func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", p.verifier) }, wantError: "invalid_request"},
		{name: "PKCE method missing (means plain)", mod: func(q url.Values) { q.Del("code_challenge_method") }, wantError: "invalid_request"},
		{name: "PKCE challenge malformed", mod: func(q url.Values) { q.Set("code_challenge", "short") }, wantError: "invalid_request"},
		{name: "wrong aud", mod: func(q url.Values) { q.Set("aud", "https://evil.example/fhir") }, wantError: "invalid_request"},
		{name: "aud missing", mod: func(q url.Values) { q.Del("aud") }, wantError: "invalid_request"},
		{name: "aud of another path", mod: func(q url.Values) { q.Set("aud", e.ts.URL+"/other") }, wantError: "invalid_request"},
		{name: "state missing", mod: func(q url.Values) { q.Del("state") }, wantError: "invalid_state"},
		{name: "response_type token", mod: func(q url.Values) { q.Set("response_type", "token") }, wantError: "unsupported_response_type"},
		{name: "response_mode form_post", mod: func(q url.Values) { q.Set("response_mode", "form_post") }, wantError: "unsupported_response_mode"},
		{name: "scope entirely outside the ceiling", mod: func(q url.Values) { q.Set("scope", "system/*.cruds user/Observation.c") }, wantError: "invalid_scope"},
		{name: "prompt none", mod: func(q url.Values) { q.Set("prompt", "none") }, wantError: "login_required"},
		{name: "unknown launch", mod: func(q url.Values) { q.Set("launch", "forged") }, wantError: "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser(t)
			u, q := e.authorizeURL(c, "launch/patient patient/*.rs", p, tc.mod)
			pg := b.get(t, u)
			if tc.wantPage {
				if pg.status != http.StatusBadRequest || pg.location != nil {
					t.Fatalf("got %d location %v", pg.status, pg.location)
				}
				return
			}
			params := redirectParams(t, pg, c)
			if params.Get("error") != tc.wantError || params.Get("iss") != e.issuer || params.Get("code") != "" {
				t.Fatalf("params %v", params)
			}
			if q.Get("state") != "" && params.Get("state") != q.Get("state") {
				t.Fatalf("state not echoed: %v", params)
			}
		})
	}
	// POST works like GET (SMART 2.2 authorize-post).
	_, q := e.authorizeURL(c, "launch/patient patient/*.rs", p, nil)
	b := e.browser(t)
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/auth/authorize", strings.NewReader(q.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if pg := b.do(t, req); pg.status != http.StatusOK || len(pg.inputs("username")) != 1 {
		t.Fatalf("POST authorize: %d", pg.status)
	}
}

func TestTokenExchangeAdversarial(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	other, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	scope := "launch/patient openid fhirUser offline_access patient/*.rs"

	t.Run("missing verifier", func(t *testing.T) {
		p := newPKCE()
		code := e.standaloneCode(t, c, u, scope, "", p)
		if st, body, _ := e.exchange(t, c, "", code, ""); st != http.StatusBadRequest || body["access_token"] != nil {
			t.Fatalf("%d %v", st, body)
		}
	})
	t.Run("wrong verifier", func(t *testing.T) {
		code := e.standaloneCode(t, c, u, scope, "", newPKCE())
		if st, body, _ := e.exchange(t, c, "", code, newPKCE().verifier); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("%d %v", st, body)
		}
	})
	t.Run("code from another client", func(t *testing.T) {
		p := newPKCE()
		code := e.standaloneCode(t, c, u, scope, "", p)
		if st, body, _ := e.exchange(t, other, "", code, p.verifier); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("%d %v", st, body)
		}
	})
	t.Run("redirect_uri differs at the token endpoint", func(t *testing.T) {
		p := newPKCE()
		code := e.standaloneCode(t, c, u, scope, "", p)
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example/other"}, "code_verifier": {p.verifier}, "client_id": {c.ID}}
		if st, body, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusBadRequest || body["access_token"] != nil {
			t.Fatalf("%d %v", st, body)
		}
	})
	t.Run("invalid code", func(t *testing.T) {
		if st, body, _ := e.exchange(t, c, "", "ory_ac_forged.forged", newPKCE().verifier); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("%d %v", st, body)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		p := newPKCE()
		code := e.standaloneCode(t, c, u, scope, "", p)
		// Age every stored code past its lifetime.
		recs, err := e.records.ListRecords(e.ctx, recordKindCode)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			var sr storedRequest
			if err := json.Unmarshal(rec.Value, &sr); err != nil {
				t.Fatal(err)
			}
			sr.Session.SetExpiresAt(fosite.AuthorizeCode, time.Now().Add(-time.Second))
			rec.Value, _ = json.Marshal(sr)
			if err := e.records.PutRecord(e.ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		if st, body, _ := e.exchange(t, c, "", code, p.verifier); st != http.StatusBadRequest || body["access_token"] != nil {
			t.Fatalf("%d %v", st, body)
		}
	})
	t.Run("code reuse revokes what the first use issued", func(t *testing.T) {
		p := newPKCE()
		code := e.standaloneCode(t, c, u, scope, "", p)
		st, first, _ := e.exchange(t, c, "", code, p.verifier)
		if st != http.StatusOK {
			t.Fatalf("%d %v", st, first)
		}
		if _, err := e.tokens.Verify(e.ctx, first["access_token"].(string)); err != nil {
			t.Fatal(err)
		}
		if st, body, _ := e.exchange(t, c, "", code, p.verifier); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("reuse: %d %v", st, body)
		}
		if _, err := e.tokens.Verify(e.ctx, first["access_token"].(string)); err == nil {
			t.Fatal("the first access token survived code reuse")
		}
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}, "client_id": {c.ID}}
		if st, body, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusBadRequest {
			t.Fatalf("refresh after code reuse: %d %v", st, body)
		}
	})
	t.Run("wrong grant type", func(t *testing.T) {
		f := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}, "client_id": {c.ID}}
		if st, body, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusBadRequest || body["access_token"] != nil {
			t.Fatalf("%d %v", st, body)
		}
	})
	t.Run("public client cannot use client_credentials", func(t *testing.T) {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "scope": {"system/*.rs"}}
		if st, body, _ := e.postForm(t, "/auth/token", f, "", ""); st < 400 || body["access_token"] != nil {
			t.Fatalf("%d %v", st, body)
		}
	})
}

func TestScopeCeilingAndDeselection(t *testing.T) {
	e := newEnv(t)
	// The scheduling app: whatever it asks, it never gets lab results.
	c, _ := e.appClient(t, ClientPublic, "launch/patient openid fhirUser patient/Appointment.rs patient/Slot.rs patient/Schedule.rs")
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	p := newPKCE()
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient openid fhirUser patient/Observation.rs patient/Appointment.rs patient/Slot.rs patient/*.cruds", p, nil)
	pg := b.login(t, b.get(t, authURL), u, "")
	offered := pg.inputs("scope")
	for _, sc := range offered {
		if strings.Contains(sc, "Observation") || strings.Contains(sc, ".c") || strings.Contains(sc, "*") {
			t.Fatalf("approval page offers %q beyond the ceiling: %v", sc, offered)
		}
	}
	if !slices.Contains(offered, "patient/Appointment.rs") || !slices.Contains(offered, "patient/Slot.rs") {
		t.Fatalf("offered %v", offered)
	}
	// The user unticks Slot; a forged checkbox asks for Observation.
	keep := []string{"launch/patient", "openid", "fhirUser", "patient/Appointment.rs", "patient/Observation.rs", "patient/*.cruds"}
	params := redirectParams(t, b.approve(t, pg, keep), c)
	st, body, _ := e.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, body)
	}
	scope := body["scope"].(string)
	if strings.Contains(scope, "Observation") || strings.Contains(scope, "Slot") || strings.Contains(scope, "*") {
		t.Fatalf("granted %q", scope)
	}
	if !strings.Contains(scope, "patient/Appointment.rs") {
		t.Fatalf("granted %q", scope)
	}
	pr, err := e.tokens.Verify(e.ctx, body["access_token"].(string))
	if err != nil || pr.Scope != scope {
		t.Fatalf("token scope %q vs response %q (%v)", pr.Scope, scope, err)
	}
	if _, ok := body["refresh_token"]; ok {
		t.Fatal("refresh token without offline_access or online_access")
	}
}

func TestInteractionCSRF(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	p := newPKCE()
	victim := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient patient/*.rs", p, nil)
	loginPage := victim.get(t, authURL)
	attacker := e.browser(t)
	attackerPage := attacker.get(t, authURL)

	cases := []struct {
		name string
		form url.Values
		hdr  func(*http.Request)
	}{
		{name: "csrf token missing", form: url.Values{"username": {u.Username}, "password": {u.password}}},
		{name: "csrf token of another session", form: url.Values{"csrf_token": {attackerPage.csrf(t)}, "username": {u.Username}, "password": {u.password}}},
		{name: "csrf token garbage", form: url.Values{"csrf_token": {"AAAA"}, "username": {u.Username}, "password": {u.password}}},
		{name: "cross-origin POST", form: url.Values{"csrf_token": {loginPage.csrf(t)}, "username": {u.Username}, "password": {u.password}},
			hdr: func(r *http.Request) {
				r.Header.Set("Origin", "https://evil.example")
				r.Header.Set("Sec-Fetch-Site", "cross-site")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/auth/login", strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.hdr != nil {
				tc.hdr(req)
			}
			pg := victim.do(t, req)
			if pg.status != http.StatusForbidden || pg.location != nil || len(pg.inputs("scope")) > 0 {
				t.Fatalf("got %d %v", pg.status, pg.location)
			}
		})
	}
	t.Run("approval without the interaction cookie", func(t *testing.T) {
		// The attacker replays the victim's approval form from its own
		// browser: no cookie, no consent.
		pg := victim.login(t, loginPage, u, "")
		if len(pg.inputs("scope")) == 0 {
			t.Fatalf("no approval page: %d", pg.status)
		}
		got := attacker.post(t, "/auth/approve", url.Values{"csrf_token": {pg.csrf(t)}, "scope": pg.inputs("scope"), "decision": {"allow"}})
		if got.status != http.StatusForbidden || got.location != nil {
			t.Fatalf("got %d %v", got.status, got.location)
		}
		// The victim can still finish, once: replaying the approval with
		// the same interaction cookie gets no second code.
		base, _ := url.Parse(e.ts.URL)
		cookies := victim.client.Jar.Cookies(base)
		redirectParams(t, victim.approve(t, pg, nil), c)
		replay := e.browser(t)
		replay.client.Jar.SetCookies(base, cookies)
		replayed := replay.approve(t, pg, nil)
		if len(cookies) == 0 || replayed.status != http.StatusForbidden || replayed.location != nil || !strings.Contains(replayed.body, "already completed") {
			t.Fatalf("replayed approval: %d %v (%d cookies)", replayed.status, replayed.location, len(cookies))
		}
	})
}

func TestDenyReturnsAccessDenied(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	b := e.browser(t)
	authURL, q := e.authorizeURL(c, "launch/patient patient/*.rs", newPKCE(), nil)
	pg := b.login(t, b.get(t, authURL), u, "")
	got := b.post(t, "/auth/approve", url.Values{"csrf_token": {pg.csrf(t)}, "scope": pg.inputs("scope"), "decision": {"deny"}})
	params := redirectParams(t, got, c)
	if params.Get("error") != "access_denied" || params.Get("state") != q.Get("state") || params.Get("iss") != e.issuer || params.Get("code") != "" {
		t.Fatalf("%v", params)
	}
}

func TestNothingApprovedIsDenied(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient patient/*.rs", newPKCE(), nil)
	pg := b.login(t, b.get(t, authURL), u, "")
	params := redirectParams(t, b.approve(t, pg, []string{}), c)
	if params.Get("error") != "access_denied" || params.Get("code") != "" {
		t.Fatalf("%v", params)
	}
}

func TestLoginFailures(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient patient/*.rs", newPKCE(), nil)
	pg := b.get(t, authURL)
	bad := u
	bad.password = "wrong password entirely"
	pg = b.login(t, pg, bad, "")
	if pg.status != http.StatusOK || len(pg.inputs("password")) != 1 || !strings.Contains(pg.body, "wrong") {
		t.Fatalf("wrong password: %d %s", pg.status, pg.body)
	}
	if strings.Contains(pg.body, bad.password) {
		t.Fatal("the page echoes the password")
	}
	// The same interaction still completes with the right password.
	pg = b.login(t, pg, u, "")
	redirectParams(t, b.approve(t, pg, nil), c)
}

func TestStepUpMFA(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "dr-mfa", "Practitioner/pr1", nil, true)
	plain := e.addUser(t, "dr-plain", "Practitioner/pr2", nil, false)
	scope := "openid fhirUser user/*.rs"

	// Without acr_values a TOTP account still needs its code.
	b := e.browser(t)
	p := newPKCE()
	authURL, _ := e.authorizeURL(c, scope, p, func(q url.Values) { q.Set("acr_values", policy.ACRMultiFactor); q.Set("max_age", "0") })
	pg := b.get(t, authURL)
	if !strings.Contains(pg.body, `name="otp"`) {
		t.Fatal("no otp field")
	}
	pg = b.login(t, pg, u, "")
	if pg.status != http.StatusOK || len(pg.inputs("scope")) > 0 {
		t.Fatalf("logged in without the second factor: %d", pg.status)
	}
	code, err := totp.GenerateCode(u.totpSecret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	pg = b.login(t, pg, u, code)
	params := redirectParams(t, b.approve(t, pg, nil), c)
	st, body, _ := e.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, body)
	}
	pr, err := e.tokens.Verify(e.ctx, body["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if pr.ACR != policy.ACRMultiFactor || pr.AuthTime.IsZero() || e.clock.Now().Sub(pr.AuthTime) > time.Minute {
		t.Fatalf("acr %q auth_time %v", pr.ACR, pr.AuthTime)
	}

	// An account without a second factor cannot satisfy acr_values mfa.
	b = e.browser(t)
	authURL, _ = e.authorizeURL(c, scope, newPKCE(), func(q url.Values) { q.Set("acr_values", policy.ACRMultiFactor) })
	pg = b.login(t, b.get(t, authURL), plain, "")
	params = redirectParams(t, pg, c)
	if params.Get("error") != "unmet_authentication_requirements" || params.Get("iss") != e.issuer {
		t.Fatalf("%v", params)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t)
	c, secret := e.appClient(t, ClientConfidential, appScopes)
	other, otherSecret := e.appClient(t, ClientConfidential, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	p := newPKCE()
	code := e.standaloneCode(t, c, u, "launch/patient openid fhirUser offline_access patient/Observation.rs patient/Patient.rs", "", p)
	st, tok, _ := e.exchange(t, c, secret, code, p.verifier)
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, tok)
	}
	rt1 := tok["refresh_token"].(string)
	refresh := func(rt, scope, id, sec string) (int, map[string]any) {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			f.Set("scope", scope)
		}
		st, body, h := e.postForm(t, "/auth/token", f, id, sec)
		if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Fatalf("refresh headers %v", h)
		}
		return st, body
	}
	if st, body := refresh(rt1, "", other.ID, otherSecret); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh by another client: %d %v", st, body)
	}
	if st, body := refresh(rt1, "", c.ID, "wrong secret"); st != http.StatusUnauthorized {
		t.Fatalf("refresh with a wrong secret: %d %v", st, body)
	}
	if st, body := refresh(rt1, "patient/*.cruds", c.ID, secret); st != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("widening refresh: %d %v", st, body)
	}
	st, r2 := refresh(rt1, "", c.ID, secret)
	if st != http.StatusOK || r2["scope"] != tok["scope"] || r2["patient"] != "p1" {
		t.Fatalf("refresh: %d %v", st, r2)
	}
	rt2 := r2["refresh_token"].(string)
	if rt2 == rt1 {
		t.Fatal("refresh token not rotated")
	}
	// Narrowing is allowed.
	st, r3 := refresh(rt2, "patient/Observation.rs offline_access", c.ID, secret)
	if st != http.StatusOK || r3["scope"] != "offline_access patient/Observation.rs" {
		t.Fatalf("narrowing refresh: %d %v", st, r3)
	}
	newest := r3["access_token"].(string)
	if _, err := e.tokens.Verify(e.ctx, newest); err != nil {
		t.Fatal(err)
	}
	// Reusing a rotated refresh token kills the whole grant.
	if st, body := refresh(rt1, "", c.ID, secret); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", st, body)
	}
	if _, err := e.tokens.Verify(e.ctx, newest); err == nil {
		t.Fatal("the newest access token survived refresh-token reuse")
	}
	if st, body := refresh(r3["refresh_token"].(string), "", c.ID, secret); st != http.StatusBadRequest {
		t.Fatalf("the newest refresh token survived reuse: %d %v", st, body)
	}
}

func TestOnlineAccessEnds(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.OnlineLifetime = time.Hour })
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	p := newPKCE()
	code := e.standaloneCode(t, c, u, "launch/patient online_access patient/*.rs", "", p)
	st, tok, _ := e.exchange(t, c, "", code, p.verifier)
	if st != http.StatusOK || tok["refresh_token"] == nil {
		t.Fatalf("%d %v", st, tok)
	}
	// fhirclient refreshes public clients without client_id.
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}
	st, r2, _ := e.postForm(t, "/auth/token", f, "", "")
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, r2)
	}
	e.clock.Advance(2 * time.Hour)
	f.Set("refresh_token", r2["refresh_token"].(string))
	if st, body, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("online access after its end: %d %v", st, body)
	}
}

// TestStandaloneLaunchPatient is the full standalone launch of a patient
// user who may see two patients (a parent): picker, approval, token,
// id_token, refresh.
func TestStandaloneLaunchPatient(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "parent", "RelatedPerson/r1", []string{"p1", "p2"}, false)
	p := newPKCE()
	b := e.browser(t)
	authURL, q := e.authorizeURL(c, "launch/patient openid fhirUser profile offline_access patient/*.rs", p, func(q url.Values) { q.Set("nonce", "n-0S6_WzA2Mj") })
	pg := b.login(t, b.get(t, authURL), u, "")
	if got := pg.inputs("patient"); !slices.Equal(got, []string{"p1", "p2"}) {
		t.Fatalf("picker offers %v", got)
	}
	if !strings.Contains(pg.body, "Bob Example") {
		t.Fatal("picker lacks the patient labels")
	}
	// A patient outside the user's list is refused.
	pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p3"}})
	if len(pg.inputs("patient")) != 2 || len(pg.inputs("scope")) > 0 {
		t.Fatalf("picked p3: %d", pg.status)
	}
	pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p2"}})
	if csp := pg.header.Get("Content-Security-Policy"); !strings.Contains(csp, "https://app.example") {
		t.Fatalf("approval CSP %q", csp)
	}
	params := redirectParams(t, b.approve(t, pg, nil), c)
	if params.Get("state") != q.Get("state") || params.Get("iss") != e.issuer {
		t.Fatalf("%v", params)
	}
	st, tok, h := e.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK {
		t.Fatalf("%d %v", st, tok)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
		t.Fatalf("headers %v", h)
	}
	if tok["token_type"] != "Bearer" || tok["patient"] != "p2" || tok["need_patient_banner"] != true || tok["refresh_token"] == nil || tok["id_token"] == nil {
		t.Fatalf("token response %v", tok)
	}
	if exp, _ := tok["expires_in"].(float64); exp <= 0 || exp > 300 {
		t.Fatalf("expires_in %v", tok["expires_in"])
	}
	pr, err := e.tokens.Verify(e.ctx, tok["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Patient != "p2" || pr.FHIRUser != "RelatedPerson/r1" || pr.Subject != u.ID || pr.ClientID != c.ID || pr.Scope != tok["scope"] {
		t.Fatalf("principal %+v", pr)
	}
	claims := jwtClaims(t, tok["id_token"].(string))
	if claims["fhirUser"] != e.issuer+"/RelatedPerson/r1" || claims["aud"] != c.ID || claims["nonce"] != "n-0S6_WzA2Mj" || claims["iss"] != e.issuer || claims["name"] != "User parent" {
		t.Fatalf("id_token claims %v", claims)
	}
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {c.ID}}
	st, r2, _ := e.postForm(t, "/auth/token", f, "", "")
	if st != http.StatusOK || r2["patient"] != "p2" || r2["scope"] != tok["scope"] || r2["access_token"] == tok["access_token"] {
		t.Fatalf("refresh: %d %v", st, r2)
	}
}

// TestStandaloneLaunchSinglePatient: a patient user with one patient
// skips the picker.
func TestStandaloneLaunchSinglePatient(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	p := newPKCE()
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient patient/*.rs", p, nil)
	pg := b.login(t, b.get(t, authURL), u, "")
	if len(pg.inputs("patient")) > 0 || len(pg.inputs("scope")) == 0 {
		t.Fatalf("expected the approval page")
	}
	params := redirectParams(t, b.approve(t, pg, nil), c)
	st, tok, _ := e.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK || tok["patient"] != "p1" {
		t.Fatalf("%d %v", st, tok)
	}
}

// TestStandaloneLaunchPractitioner: a practitioner searches the patient
// directory, picks, approves, and refreshes.
func TestStandaloneLaunchPractitioner(t *testing.T) {
	e := newEnv(t)
	c, secret := e.appClient(t, ClientConfidential, appScopes)
	u := e.addUser(t, "dr-who", "Practitioner/pr1", nil, false)
	p := newPKCE()
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient openid fhirUser offline_access user/*.rs patient/*.rs", p, nil)
	pg := b.login(t, b.get(t, authURL), u, "")
	if len(pg.inputs("q")) != 1 {
		t.Fatalf("no search field on the practitioner's picker: %s", pg.body)
	}
	pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "q": {"carol"}, "search": {"1"}})
	if got := pg.inputs("patient"); !slices.Equal(got, []string{"p3"}) {
		t.Fatalf("search found %v", got)
	}
	pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"unknown-patient"}})
	if len(pg.inputs("scope")) > 0 {
		t.Fatal("an unknown patient was accepted")
	}
	pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {"p3"}})
	params := redirectParams(t, b.approve(t, pg, nil), c)
	st, tok, _ := e.exchange(t, c, secret, params.Get("code"), p.verifier)
	if st != http.StatusOK || tok["patient"] != "p3" || tok["id_token"] == nil {
		t.Fatalf("%d %v", st, tok)
	}
	if claims := jwtClaims(t, tok["id_token"].(string)); claims["fhirUser"] != e.issuer+"/Practitioner/pr1" {
		t.Fatalf("id_token %v", claims)
	}
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}
	if st, r2, _ := e.postForm(t, "/auth/token", f, c.ID, secret); st != http.StatusOK || r2["patient"] != "p3" {
		t.Fatalf("refresh: %d %v", st, r2)
	}
	// Confidential clients must authenticate to refresh.
	f.Set("client_id", c.ID)
	if st, _, _ := e.postForm(t, "/auth/token", f, "", ""); st != http.StatusUnauthorized {
		t.Fatalf("unauthenticated confidential refresh: %d", st)
	}
}

func TestEHRLaunch(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "dr-who", "Practitioner/pr1", nil, false)
	someoneElse := e.addUser(t, "dr-no", "Practitioner/pr2", nil, false)
	launch, err := e.srv.MintLaunch(e.ctx, LaunchContext{Patient: "p2", Encounter: "e1", FHIRUser: "Practitioner/pr1",
		FHIRContext: []map[string]any{{"reference": "Appointment/a1"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := newPKCE()
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch openid fhirUser patient/*.rs", p, func(q url.Values) { q.Set("launch", launch) })
	pg := b.login(t, b.get(t, authURL), u, "")
	if len(pg.inputs("patient")) > 0 || len(pg.inputs("q")) > 0 {
		t.Fatal("EHR launch showed the picker")
	}
	params := redirectParams(t, b.approve(t, pg, nil), c)
	st, tok, _ := e.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK || tok["patient"] != "p2" || tok["encounter"] != "e1" || tok["need_patient_banner"] != false {
		t.Fatalf("%d %v", st, tok)
	}
	if fc, _ := tok["fhirContext"].([]any); len(fc) != 1 {
		t.Fatalf("fhirContext %v", tok["fhirContext"])
	}
	// A launch is redeemable once.
	authURL, _ = e.authorizeURL(c, "launch patient/*.rs", newPKCE(), func(q url.Values) { q.Set("launch", launch) })
	if params := redirectParams(t, e.browser(t).get(t, authURL), c); params.Get("error") != "invalid_request" {
		t.Fatalf("reused launch: %v", params)
	}
	// An expired launch is refused.
	expired, err := e.srv.MintLaunch(e.ctx, LaunchContext{Patient: "p2", Expires: e.clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	authURL, _ = e.authorizeURL(c, "launch patient/*.rs", newPKCE(), func(q url.Values) { q.Set("launch", expired) })
	if params := redirectParams(t, e.browser(t).get(t, authURL), c); params.Get("error") != "invalid_request" {
		t.Fatalf("expired launch: %v", params)
	}
	// A launch for one user cannot be used by another.
	other, err := e.srv.MintLaunch(e.ctx, LaunchContext{Patient: "p2", FHIRUser: "Practitioner/pr1"})
	if err != nil {
		t.Fatal(err)
	}
	b = e.browser(t)
	authURL, _ = e.authorizeURL(c, "launch patient/*.rs", newPKCE(), func(q url.Values) { q.Set("launch", other) })
	if params := redirectParams(t, b.login(t, b.get(t, authURL), someoneElse, ""), c); params.Get("error") != "access_denied" {
		t.Fatalf("launch of another user: %v", params)
	}
	// A patient user cannot take over a launch for another patient.
	patientUser := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	forP2, err := e.srv.MintLaunch(e.ctx, LaunchContext{Patient: "p2"})
	if err != nil {
		t.Fatal(err)
	}
	b = e.browser(t)
	authURL, _ = e.authorizeURL(c, "launch patient/*.rs", newPKCE(), func(q url.Values) { q.Set("launch", forP2) })
	if params := redirectParams(t, b.login(t, b.get(t, authURL), patientUser, ""), c); params.Get("error") != "access_denied" {
		t.Fatalf("launch for another patient: %v", params)
	}
	if _, err := e.records.GetRecord(e.ctx, recordKindLaunch, launchKey(other)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("launch record still there: %v", err)
	}
}

// jwtClaims decodes a JWT's payload without verifying it (the token
// service's own tests verify signatures).
func jwtClaims(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
