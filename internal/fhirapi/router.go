package fhirapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/sealing"
)

// ServeHTTP routes a request under the API prefix. There is one routing
// table and no method override: X-HTTP-Method-Override and friends are
// refused, paths are matched exactly (no case folding, no empty segments).
//
// With an audit sink every request is audited, allowed or refused, and
// its response is released only once its event is durable.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.opts.Audit != nil || a.opts.Detector != nil {
		a.serveAudited(w, r, a.segments(r))
		return
	}
	a.serve(w, r, nil)
}

// segments splits the path under the prefix, for naming the interaction
// in the audit event ("" segments and foreign paths give nil).
func (a *API) segments(r *http.Request) []string {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), a.prefix)
	rest = strings.TrimPrefix(rest, "/")
	if !ok || rest == "" {
		return nil
	}
	return strings.Split(rest, "/")
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, _ []string) {
	r = r.WithContext(context.WithValue(r.Context(), startKey{}, time.Now()))
	if r.Header.Get("X-HTTP-Method-Override") != "" || r.Header.Get("X-Method-Override") != "" || r.Header.Get("X-HTTP-Method") != "" {
		a.writeError(w, r, errorf(http.StatusBadRequest, "not-supported", "Method override headers are not accepted"))
		return
	}
	if err := negotiate(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, a.prefix) {
		a.writeError(w, r, errorf(http.StatusNotFound, "not-found", "Unknown path"))
		return
	}
	rest := strings.TrimPrefix(path[len(a.prefix):], "/")
	var seg []string
	if rest != "" {
		seg = strings.Split(rest, "/")
		for _, s := range seg {
			if s == "" || strings.ContainsAny(s, "%") {
				a.writeError(w, r, errorf(http.StatusNotFound, "not-found", "Unknown path"))
				return
			}
		}
	}
	public := len(seg) == 1 && seg[0] == "metadata"
	if r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		a.preflight(w, r, public)
		return
	}
	// A peer over its limit is refused before anything else (from this
	// process's memory of the refusal); a request that reaches no caller
	// check below is charged to its peer where it ends.
	if !a.peerAllowed(w, r) || !a.detectBefore(w, r, nil) {
		return
	}
	if !public && !a.opts.Unauthenticated {
		p, err := a.authenticate(r)
		if err != nil {
			if !a.limitPeer(w, r) {
				return
			}
			a.allowOrigin(w, r, false, "")
			a.writeError(w, r, err)
			return
		}
		r = r.WithContext(withPrincipal(a.withClearance(r.Context(), p), p))
		auditFrom(r.Context()).authenticated(p)
		a.allowOrigin(w, r, false, p.ClientID)
		if !a.detectBefore(w, r, p) {
			return
		}
	} else {
		if !a.limitPeer(w, r) {
			return
		}
		if a.opts.Unauthenticated {
			r = r.WithContext(sealing.WithClearance(r.Context(), sealing.All()))
		}
		a.allowOrigin(w, r, public, "")
	}
	h := a.route(r.Method, seg)
	if h == nil {
		if PrincipalFrom(r.Context()) != nil && !a.limitPeer(w, r) {
			return
		}
		a.writeError(w, r, errorf(http.StatusNotFound, "not-found", "Unknown path or method"))
		return
	}
	if a.opts.BeforeAuditEventRead != nil && mayReturnAuditEvents(r.Method, seg) {
		if err := a.opts.BeforeAuditEventRead(r.Context()); err != nil {
			a.log.LogAttrs(r.Context(), slog.LevelError, "the audit trail's searchable copy is behind", slog.String("error", err.Error()))
			a.writeError(w, r, errorf(http.StatusServiceUnavailable, "transient", "The audit trail cannot be searched right now; retry later"))
			return
		}
	}
	release, ok := a.limitCaller(w, r, PrincipalFrom(r.Context()), seg)
	if !ok {
		return
	}
	defer release()
	if err := h(w, r, seg); err != nil {
		a.writeError(w, r, err)
	}
}

// mayReturnAuditEvents reports whether a request can return AuditEvents:
// reads and searches of the type, a patient's compartment, $everything,
// and system-level searches and history.
func mayReturnAuditEvents(method string, seg []string) bool {
	if method != http.MethodGet && method != http.MethodPost {
		return false
	}
	switch n := len(seg); {
	case n == 0 && method == http.MethodGet:
		return true
	case n >= 1 && seg[0] == "AuditEvent":
		return true
	case n == 1 && seg[0] == "_history":
		return true
	case n == 3 && seg[0] == "Patient" && (seg[2] == "AuditEvent" || seg[2] == "$everything"):
		return true
	}
	return false
}

type handler func(w http.ResponseWriter, r *http.Request, seg []string) error

// route is the routing table of the FHIR REST API (FHIR R4 §3.1.0).
func (a *API) route(method string, seg []string) handler {
	n := len(seg)
	isType := func(i int) bool { return i < n && a.model.IsResourceType(seg[i]) }
	switch {
	case n == 0:
		if method == http.MethodPost {
			return a.bundle
		}
	case n == 1 && seg[0] == "metadata":
		if method == http.MethodGet {
			return a.capabilities
		}
	case n == 1 && seg[0] == "_history":
		if method == http.MethodGet {
			return a.history
		}
	case n == 1 && isType(0):
		switch method {
		case http.MethodGet:
			return a.search
		case http.MethodPost:
			return a.create
		case http.MethodPut:
			return a.conditionalUpdate
		case http.MethodDelete:
			return a.conditionalDelete
		}
	case n == 2 && isType(0) && seg[1] == "_search":
		if method == http.MethodPost {
			return a.search
		}
	case n == 2 && isType(0) && seg[1] == "_history":
		if method == http.MethodGet {
			return a.history
		}
	case n == 2 && isType(0) && validID(seg[1]):
		switch method {
		case http.MethodGet:
			return a.read
		case http.MethodPut:
			return a.update
		case http.MethodDelete:
			return a.delete
		}
	case n == 3 && seg[0] == "Consent" && validID(seg[1]) && seg[2] == "$revoke":
		if method == http.MethodPost {
			return a.revokeConsent
		}
	case n == 3 && seg[0] == "Patient" && validID(seg[1]) && seg[2] == "$everything":
		if method == http.MethodGet {
			return a.everything
		}
	case n == 3 && isType(0) && validID(seg[1]) && seg[2] == "_history":
		if method == http.MethodGet {
			return a.history
		}
	case n == 3 && seg[0] == "Patient" && validID(seg[1]) && isType(2):
		if method == http.MethodGet {
			return a.search
		}
	case n == 4 && isType(0) && validID(seg[1]) && seg[2] == "_history" && validID(seg[3]):
		if method == http.MethodGet {
			return a.vread
		}
	}
	return nil
}

// negotiate enforces JSON-only content negotiation (FHIR R4 §3.1.0.1.10):
// an Accept or _format that asks for XML or anything but JSON gets 406.
func negotiate(r *http.Request) error {
	if r.URL.RawQuery != "" {
		if f := r.URL.Query().Get("_format"); f != "" && !jsonMime(f) && f != "json" {
			return errorf(http.StatusNotAcceptable, "not-supported", "Only JSON is supported (_format=json or application/fhir+json)")
		}
	}
	if acc := r.Header.Get("Accept"); acc != "" && !acceptsJSON(acc) {
		return errorf(http.StatusNotAcceptable, "not-supported", "Only application/fhir+json is supported; XML is not")
	}
	// Compressed request bodies are refused rather than inflated: a few
	// kilobytes of gzip can expand to gigabytes (a decompression bomb).
	if ce := strings.TrimSpace(r.Header.Get("Content-Encoding")); ce != "" && !strings.EqualFold(ce, "identity") {
		return errorf(http.StatusUnsupportedMediaType, "not-supported", "Compressed request bodies (Content-Encoding) are not accepted; send the body uncompressed")
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			return nil
		}
		mt := strings.TrimSpace(strings.SplitN(ct, ";", 2)[0])
		if strings.Contains(mt, "xml") {
			return errorf(http.StatusUnsupportedMediaType, "not-supported", "Only JSON request bodies are supported; XML is not")
		}
		if !jsonMime(mt) && mt != "application/x-www-form-urlencoded" {
			return errorf(http.StatusUnsupportedMediaType, "not-supported", "Request body must be application/fhir+json")
		}
	}
	return nil
}

func jsonMime(s string) bool {
	s = strings.TrimSpace(strings.SplitN(s, ";", 2)[0])
	return s == "application/fhir+json" || s == "application/json" || s == "application/json+fhir"
}

func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
		if jsonMime(mt) || mt == "*/*" || mt == "application/*" {
			return true
		}
	}
	return false
}

// Classify names the FHIR interaction of a request for the API
// inventory (package routes): ok is false when the path is not under
// the base; interaction is "" when the path is no interaction at all
// (empty or escaped segments, an unknown shape).
func (a *API) Classify(r *http.Request) (interaction, typ, op string, ok bool) {
	p := r.URL.EscapedPath()
	if p != a.prefix && !strings.HasPrefix(p, a.prefix+"/") {
		return "", "", "", false
	}
	var seg []string
	if rest := strings.TrimPrefix(p[len(a.prefix):], "/"); rest != "" {
		if strings.HasPrefix(rest, ".well-known/") {
			return "", "", "", false // the authorization server's discovery, not a FHIR interaction
		}
		seg = strings.Split(rest, "/")
		for _, s := range seg {
			if s == "" || s == "." || s == ".." || strings.Contains(s, "%") {
				return "", "", "", true
			}
		}
	}
	interaction = routeInteraction(r.Method, seg, a)
	if len(seg) > 0 && seg[0] != "metadata" && !strings.HasPrefix(seg[0], "_") && !strings.HasPrefix(seg[0], "$") {
		typ = seg[0]
	}
	for _, s := range seg {
		if strings.HasPrefix(s, "$") {
			op = s
		}
	}
	if interaction == "operation" && op == "" {
		interaction = ""
	}
	return interaction, typ, op, true
}

// routeInteraction is interaction, with HEAD and OPTIONS named as the
// GET they stand for.
func routeInteraction(method string, seg []string, a *API) string {
	if method == http.MethodHead || method == http.MethodOptions {
		method = http.MethodGet
	}
	return interaction(method, seg, a)
}
