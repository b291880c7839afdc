package mtls

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
)

// ErrBadRouteRule is every invalid RouteRule.
var ErrBadRouteRule = errors.New("mtls: invalid client-certificate route rule")

// Who may pass a route.
const (
	// AllowAnyVerified: any client certificate that chains to the trusted
	// client CAs (not a self-signed one).
	AllowAnyVerified = "any"
	// AllowIdentities: a verified certificate with one of the listed
	// identities.
	AllowIdentities = "identities"
)

// RouteRule says which client certificates may use the requests whose path
// is Prefix or below it (Prefix "/admin" covers "/admin" and "/admin/x",
// not "/administrator"), optionally only for some methods.
type RouteRule struct {
	Prefix string `yaml:"prefix"`
	// Methods limits the rule to these HTTP methods; empty is all.
	Methods []string `yaml:"methods"`
	// Allow is AllowAnyVerified or AllowIdentities.
	Allow string `yaml:"allow"`
	// Identities, for AllowIdentities, each one of "dn:<subject DN as
	// RFC 4514, e.g. CN=lab,O=Partner>", "dns:<SAN DNS name>",
	// "uri:<SAN URI, e.g. a SPIFFE ID>" or "sha256:<thumbprint,
	// base64url as x5t#S256>".
	Identities []string `yaml:"identities"`
}

// Identifier checks a connection's client certificate (the Listener).
type Identifier interface {
	Identify(cs *tls.ConnectionState) (Identity, error)
}

// RouteGuard refuses requests on routes that need a client certificate
// when the connection did not present a suitable one: 403 with a FHIR
// OperationOutcome. Only certificates verified against the trusted client
// CAs count; a self-signed certificate, which the Listener accepts for
// key binding (RFC 8705 §2.2), never passes a route rule.
type RouteGuard struct {
	id    Identifier
	rules []routeRule // longest prefix first
	next  http.Handler
}

type routeRule struct {
	prefix  string
	methods []string
	any     bool
	ids     []identityMatch
}

type identityMatch struct{ kind, value string }

// RequireClientCert builds a RouteGuard in front of next; the rules are
// checked here: a prefix is an absolute clean path ("/", "/admin"; no
// trailing slash, "..", query or wildcard), methods are upper-case tokens,
// allow is "any" or "identities" (the latter with a non-empty list of
// well-formed identities, the former with none), and no two rules share
// a prefix for a method.
func RequireClientCert(id Identifier, rules []RouteRule, next http.Handler) (*RouteGuard, error) {
	if id == nil || next == nil {
		return nil, fmt.Errorf("%w: no identifier or handler", ErrBadRouteRule)
	}
	g := &RouteGuard{id: id, next: next}
	for i, r := range rules {
		rr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rule %d (%q): %w", i, r.Prefix, err)
		}
		for _, o := range g.rules {
			if o.prefix == rr.prefix && (len(o.methods) == 0 || len(rr.methods) == 0 ||
				slices.ContainsFunc(o.methods, func(m string) bool { return slices.Contains(rr.methods, m) })) {
				return nil, fmt.Errorf("rule %d (%q): %w: another rule has the same prefix and method", i, r.Prefix, ErrBadRouteRule)
			}
		}
		g.rules = append(g.rules, rr)
	}
	slices.SortStableFunc(g.rules, func(a, b routeRule) int { return len(b.prefix) - len(a.prefix) })
	return g, nil
}

func compileRule(r RouteRule) (routeRule, error) {
	p := r.Prefix
	if p == "" || p[0] != '/' || strings.ContainsAny(p, "?#*%\\ \t") || path.Clean(p) != p {
		return routeRule{}, fmt.Errorf("%w: prefix must be an absolute clean path without a trailing slash", ErrBadRouteRule)
	}
	rr := routeRule{prefix: p}
	for _, m := range r.Methods {
		if m == "" || m != strings.ToUpper(m) || strings.ContainsAny(m, " \t/") {
			return routeRule{}, fmt.Errorf("%w: method %q", ErrBadRouteRule, m)
		}
		if !slices.Contains(rr.methods, m) {
			rr.methods = append(rr.methods, m)
		}
	}
	switch r.Allow {
	case AllowAnyVerified:
		if len(r.Identities) > 0 {
			return routeRule{}, fmt.Errorf("%w: allow %q takes no identities", ErrBadRouteRule, r.Allow)
		}
		rr.any = true
	case AllowIdentities:
		if len(r.Identities) == 0 {
			return routeRule{}, fmt.Errorf("%w: allow %q needs at least one identity", ErrBadRouteRule, r.Allow)
		}
		for _, s := range r.Identities {
			m, err := parseIdentity(s)
			if err != nil {
				return routeRule{}, err
			}
			rr.ids = append(rr.ids, m)
		}
	default:
		return routeRule{}, fmt.Errorf("%w: allow must be %q or %q", ErrBadRouteRule, AllowAnyVerified, AllowIdentities)
	}
	return rr, nil
}

// parseIdentity parses one identity of a rule ("dn:", "dns:", "uri:"
// or "sha256:" and a non-empty value).
func parseIdentity(s string) (identityMatch, error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok || value == "" || strings.TrimSpace(value) != value {
		return identityMatch{}, fmt.Errorf("%w: identity must be dn:, dns:, uri: or sha256: and a value", ErrBadRouteRule)
	}
	switch kind {
	case "dn", "uri":
	case "dns":
		value = strings.ToLower(value)
	case "sha256":
		if len(value) != 43 || strings.Trim(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return identityMatch{}, fmt.Errorf("%w: sha256 identity must be a base64url SHA-256 thumbprint", ErrBadRouteRule)
		}
	default:
		return identityMatch{}, fmt.Errorf("%w: identity must be dn:, dns:, uri: or sha256: and a value", ErrBadRouteRule)
	}
	return identityMatch{kind, value}, nil
}

func (m identityMatch) matches(id Identity) bool {
	switch m.kind {
	case "dn":
		return id.SubjectDN == m.value
	case "dns":
		return slices.ContainsFunc(id.DNSNames, func(n string) bool { return strings.ToLower(n) == m.value })
	case "uri":
		return slices.Contains(id.URIs, m.value)
	case "sha256":
		return id.Thumbprint == m.value
	}
	return false
}

// covers: the path is the prefix or below it.
func (r routeRule) covers(p, method string) bool {
	if len(r.methods) > 0 && !slices.Contains(r.methods, method) {
		return false
	}
	return r.prefix == "/" || p == r.prefix || strings.HasPrefix(p, r.prefix+"/")
}

// Rule is the prefix of the rule that applies to a request with this path
// and method (longest prefix among the rules for the method), or "" when
// none does. Paths are cleaned first ("/fhir/../admin" is "/admin").
func (g *RouteGuard) Rule(p, method string) string {
	if r := g.match(p, method); r != nil {
		return r.prefix
	}
	return ""
}

func (g *RouteGuard) match(p, method string) *routeRule {
	if p == "" {
		p = "/"
	}
	p = path.Clean("/" + p)
	for i := range g.rules {
		if g.rules[i].covers(p, method) {
			return &g.rules[i]
		}
	}
	return nil
}

func (g *RouteGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rule := g.match(r.URL.Path, r.Method)
	if rule == nil {
		g.next.ServeHTTP(w, r)
		return
	}
	id, err := g.id.Identify(r.TLS)
	switch {
	case err != nil, id.Thumbprint == "":
		forbidden(w, "This route requires a client certificate issued by a trusted CA.")
		return
	case !id.Verified:
		forbidden(w, "This route requires a client certificate issued by a trusted CA; a self-signed certificate does not qualify.")
		return
	case !rule.any && !slices.ContainsFunc(rule.ids, func(m identityMatch) bool { return m.matches(id) }):
		forbidden(w, "The client certificate is not among those allowed on this route.")
		return
	}
	g.next.ServeHTTP(w, r)
}

// forbidden answers 403 with an OperationOutcome (FHIR R4 §3.1.0.1.5 style,
// issue code "forbidden"); msg is a fixed text naming nothing of the
// request.
func forbidden(w http.ResponseWriter, msg string) {
	body, _ := json.Marshal(map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]string{{"severity": "error", "code": "forbidden", "diagnostics": msg}},
	})
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	w.Write(body)
}
