package fhirapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// Origins tells which browser origins may call the API (CORS): the
// origins registered for OAuth clients. SMART App Launch 2.2 asks servers
// that support browser apps to allow a client's registered origins on
// the FHIR API, and nothing else.
type Origins interface {
	// ClientOrigins returns the origins registered for one client.
	ClientOrigins(ctx context.Context, clientID string) []string
	// Registered reports whether some client registered origin.
	Registered(ctx context.Context, origin string) bool
}

const (
	corsAllowMethods  = "GET, POST, PUT, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, DPoP"
	corsExposeHeaders = "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate, DPoP-Nonce"
)

// preflight answers a CORS preflight (Fetch standard §4.8): the methods
// and headers the API accepts, for registered origins only. It has no
// token to go by, so any client's origin passes here; the real request is
// then checked against the caller's own client.
func (a *API) preflight(w http.ResponseWriter, r *http.Request, public bool) {
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	switch {
	case public:
		h.Set("Access-Control-Allow-Origin", "*")
	case a.opts.Origins != nil && a.opts.Origins.Registered(r.Context(), origin):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	default:
		w.WriteHeader(http.StatusNoContent) // no grant: the browser refuses
		return
	}
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// allowOrigin sets the CORS headers of a response to origin: for public
// paths any origin; otherwise the caller's client's registered origins,
// or, before the caller is known (a 401), any registered origin so that
// the app can read the challenge.
func (a *API) allowOrigin(w http.ResponseWriter, r *http.Request, public bool, clientID string) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	ok := false
	switch {
	case public:
		h.Set("Access-Control-Allow-Origin", "*")
		return
	case a.opts.Origins == nil:
	case clientID == "":
		ok = a.opts.Origins.Registered(r.Context(), origin)
	default:
		ok = slices.Contains(a.opts.Origins.ClientOrigins(r.Context(), clientID), origin)
	}
	if ok && !strings.ContainsAny(origin, "\r\n") {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	}
}
