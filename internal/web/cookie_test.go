package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/web"
)

func TestSetCookie(t *testing.T) {
	for _, tc := range []struct {
		maxAge time.Duration
		want   string
	}{
		{10 * time.Minute, "__Host-sid=abc; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax"},
		{1500 * time.Millisecond, "__Host-sid=abc; Path=/; Max-Age=2; HttpOnly; Secure; SameSite=Lax"},
		{0, "__Host-sid=abc; Path=/; HttpOnly; Secure; SameSite=Lax"},
		{-1, "__Host-sid=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"},
	} {
		rec := httptest.NewRecorder()
		web.SetCookie(rec, "sid", "abc", tc.maxAge)
		if got := rec.Header().Get("Set-Cookie"); got != tc.want {
			t.Errorf("maxAge %v: Set-Cookie %q, want %q", tc.maxAge, got, tc.want)
		}
	}
}

func TestReadCookie(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: "sid", Value: "unprefixed"})
	if v, ok := web.ReadCookie(req, "sid"); ok {
		t.Errorf("an unprefixed cookie was read: %q", v)
	}
	req.AddCookie(&http.Cookie{Name: "__Host-sid", Value: "v1"})
	if v, ok := web.ReadCookie(req, "sid"); !ok || v != "v1" {
		t.Errorf("ReadCookie = %q, %v", v, ok)
	}
	if _, ok := web.ReadCookie(req, "other"); ok {
		t.Error("ReadCookie found a cookie that is not there")
	}
}
