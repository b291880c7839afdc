package web_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/web"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func newCSRF(t testing.TB, key []byte) *web.CSRF {
	t.Helper()
	c, err := web.NewCSRF(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCSRFRefuses(t *testing.T) {
	c := newCSRF(t, testKey)
	other := newCSRF(t, bytes.Repeat([]byte{0x43}, 32))
	tok := c.Token("session-a")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, tc := range []struct{ name, session, token string }{
		{"missing token", "session-a", ""},
		{"other session's token", "session-b", tok},
		{"session id prefix", "session-", tok},
		{"session id extended", "session-ab", tok},
		{"empty session", "", tok},
		{"empty session, token of empty session", "", c.Token("")},
		{"other key", "session-a", other.Token("session-a")},
		{"nonce changed", "session-a", flip(tok, 0)},
		{"MAC changed", "session-a", flip(tok, len(tok)-1)},
		{"truncated", "session-a", tok[:len(tok)-1]},
		{"extended", "session-a", tok + "A"},
		{"padded", "session-a", tok + "=="},
		{"standard base64", "session-a", strings.NewReplacer("-", "+", "_", "/").Replace(urlSafeToken(c, "session-a"))},
		{"line break inside", "session-a", tok[:10] + "\n" + tok[11:]},
		{"garbage", "session-a", strings.Repeat("!", len(tok))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c.Valid(tc.session, tc.token) {
				t.Errorf("Valid(%q, %q) = true", tc.session, tc.token)
			}
		})
	}
	if !c.Valid("session-a", tok) {
		t.Error("a genuine token is refused")
	}
	if tok2 := c.Token("session-a"); tok2 == tok || !c.Valid("session-a", tok2) {
		t.Error("tokens of one session must differ and both be valid")
	}
	if _, err := web.NewCSRF(make([]byte, 31)); err == nil {
		t.Error("NewCSRF accepted a 31-byte key")
	}
}

// urlSafeToken returns a token of session that has a character in which
// base64url differs from standard base64.
func urlSafeToken(c *web.CSRF, session string) string {
	for {
		if tok := c.Token(session); strings.ContainsAny(tok, "-_") {
			return tok
		}
	}
}

// formHandler is what the authorization server does with a POST: read the
// session cookie and check the form's token against it.
func formHandler(c *web.CSRF) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid, ok := web.ReadCookie(r, "session")
		if !ok || !c.Valid(sid, r.PostFormValue("csrf_token")) {
			http.Error(w, "bad token", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func TestProtect(t *testing.T) {
	c := newCSRF(t, testKey)
	h := web.Protect(formHandler(c))
	good := c.Token("s1")
	post := func(token string, hdr map[string]string, cookie string) int {
		form := url.Values{"csrf_token": {token}, "decision": {"allow"}}
		req := httptest.NewRequest("POST", "https://warden.example/authorize/approve", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: cookie, Value: "s1"})
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	const ck = web.CookiePrefix + "session"
	sameSite := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "https://warden.example"}
	for _, tc := range []struct {
		name   string
		token  string
		hdr    map[string]string
		cookie string
	}{
		{"cross-site POST with a valid token", good, map[string]string{"Sec-Fetch-Site": "cross-site"}, ck},
		{"same-site other origin", good, map[string]string{"Sec-Fetch-Site": "same-site"}, ck},
		{"foreign Origin without Sec-Fetch-Site", good, map[string]string{"Origin": "https://evil.example"}, ck},
		{"no token", "", sameSite, ck},
		{"token of another session", c.Token("s2"), sameSite, ck},
		{"unprefixed session cookie", good, sameSite, "session"},
		{"no session cookie", good, sameSite, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := post(tc.token, tc.hdr, tc.cookie); code != http.StatusForbidden {
				t.Errorf("status %d, want 403", code)
			}
		})
	}
	if code := post(good, sameSite, ck); code != http.StatusNoContent {
		t.Errorf("same-origin POST with a valid token: %d", code)
	}
	// Protect's refusal carries the security headers too.
	req := httptest.NewRequest("POST", "https://warden.example/x", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("X-Frame-Options") != "DENY" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("refusal headers %v", rec.Header())
	}
}

// FuzzCSRFValid checks that Valid accepts nothing but tokens Token made
// for the session: no mutation of a genuine token passes.
func FuzzCSRFValid(f *testing.F) {
	c := newCSRF(f, testKey)
	genuine := map[string]bool{}
	for _, tok := range fuzzTokens {
		genuine[tok] = true
		f.Add("fuzz-session", tok)
	}
	f.Fuzz(func(t *testing.T, session, token string) {
		if c.Valid(session, token) && !(session == "fuzz-session" && genuine[token]) {
			t.Fatalf("Valid(%q, %q) = true for a token Token never made", session, token)
		}
	})
}

// fuzzTokens are tokens made with testKey for "fuzz-session". They are
// fixed (not made when the test starts) because each fuzzing worker
// process runs the setup again.
var fuzzTokens = []string{
	"cboIXVGhzEsN7Y18XvX_1siJgb4WBNW3Y4vD45kAu5luE-kik1MxJ6nB1CFnGv_P",
	"TaX6VvU-CxuxiSYzBGHKCK7g6M-H19csuyLTrS-tvkEErV3W2N0HDWzfp_gdmbk0",
}
