package web

import (
	"net/http"
	"time"
)

// CookiePrefix starts the name of every cookie SetCookie writes. Browsers
// accept a "__Host-" cookie only if it is Secure, has Path=/ and no Domain,
// so it cannot be set or shadowed by a sibling subdomain or over plain HTTP
// (RFC 6265bis §4.1.3.2).
const CookiePrefix = "__Host-"

// SetCookie sets the cookie CookiePrefix+name: Secure, HttpOnly,
// SameSite=Lax, Path=/, no Domain. maxAge > 0 sets Max-Age (rounded up to
// a second); 0 makes a session cookie; < 0 deletes the cookie.
//
// Lax, not Strict: the authorization request arrives by a top-level
// cross-site navigation from the app, and its cookies must come with it.
func SetCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     CookiePrefix + name,
		Value:    value,
		Path:     "/",
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge < 0:
		c.Value = ""
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int((maxAge + time.Second - 1) / time.Second)
	}
	http.SetCookie(w, c)
}

// ReadCookie returns the value of the cookie CookiePrefix+name, and false
// if the request has none (a cookie without the prefix never counts).
func ReadCookie(r *http.Request, name string) (string, bool) {
	c, err := r.Cookie(CookiePrefix + name)
	if err != nil {
		return "", false
	}
	return c.Value, true
}
