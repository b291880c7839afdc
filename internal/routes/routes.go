// Package routes is the API inventory: the routes and FHIR interactions
// Warden serves are declared (a built-in default declares what Warden
// implements; a site's file narrows it), each with an owner and, when
// it is meant to end, an expiry; deprecated routes say so in headers.
// The listener serves only what is declared: an undeclared route is
// answered like an unknown one, an expired one with 410 Gone and an
// alert. `warden routes` prints the live inventory.
//
// It owns matching and the answers; it does not classify FHIR requests
// (the FHIR API does: Classifier) and never logs request details.
package routes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error in an inventory file.
var ErrInvalid = errors.New("routes: invalid inventory")

// Request is what a route matches: the method and path, and for a FHIR
// request its interaction, resource type and operation.
type Request struct {
	Method, Path string
	// FHIR is set for a request under the FHIR base, with the
	// interaction ("read", "search-type", "operation", …; "" when the
	// path is no FHIR interaction), the resource type ("" for
	// system-level) and the operation ("$everything").
	FHIR                  bool
	Interaction, Type, Op string
}

// Route is one declaration.
type Route struct {
	Name  string `yaml:"name" json:"name,omitempty"`
	Owner string `yaml:"owner" json:"owner,omitempty"`
	Link  string `yaml:"link" json:"link,omitempty"`
	// Paths are path prefixes (non-FHIR routes: "/auth/"); a prefix
	// ending without "/" matches that exact path only.
	Paths []string `yaml:"paths" json:"paths,omitempty"`
	// Methods narrow Paths (empty: any method).
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Interactions, Types and Operations declare FHIR requests: each list
	// empty or "*" matches anything.
	Interactions []string `yaml:"interactions" json:"interactions,omitempty"`
	Types        []string `yaml:"types" json:"types,omitempty"`
	Operations   []string `yaml:"operations" json:"operations,omitempty"`
	// Expires: after it the route answers 410 Gone and raises an alert.
	Expires time.Time `yaml:"expires" json:"expires,omitzero"`
	// Deprecated: from then on responses carry Deprecation (RFC 9745)
	// and, when set, Sunset (RFC 8594) and a Link to Link.
	Deprecated time.Time `yaml:"deprecated" json:"deprecated,omitzero"`
	Sunset     time.Time `yaml:"sunset" json:"sunset,omitzero"`
}

// fhir reports whether the route declares FHIR requests.
func (r *Route) fhir() bool {
	return len(r.Interactions) > 0 || len(r.Types) > 0 || len(r.Operations) > 0
}

// matches reports whether the route declares req.
func (r *Route) matches(req Request) bool {
	if req.FHIR {
		if !r.fhir() || req.Interaction == "" {
			return false
		}
		if !anyOf(r.Interactions, req.Interaction) || (req.Type != "" && !anyOf(r.Types, req.Type)) {
			return false
		}
		return req.Op == "" || anyOf(r.Operations, req.Op)
	}
	if len(r.Paths) == 0 || (len(r.Methods) > 0 && !slices.Contains(r.Methods, req.Method)) {
		return false
	}
	for _, p := range r.Paths {
		if p == req.Path || (strings.HasSuffix(p, "/") && strings.HasPrefix(req.Path, p)) {
			return true
		}
	}
	return false
}

func anyOf(list []string, v string) bool {
	return len(list) == 0 || slices.Contains(list, "*") || slices.Contains(list, v)
}

// Status is a route's state at a time.
type Status string

const (
	Active      Status = "active"
	Deprecated  Status = "deprecated"
	Expired     Status = "expired"
	notDeclared Status = ""
)

// StatusAt is the route's status at t.
func (r *Route) StatusAt(t time.Time) Status {
	switch {
	case !r.Expires.IsZero() && !t.Before(r.Expires):
		return Expired
	case !r.Deprecated.IsZero() && !t.Before(r.Deprecated):
		return Deprecated
	}
	return Active
}

// Inventory is a checked list of routes; the first that matches a
// request declares it.
type Inventory struct {
	Routes []Route `yaml:"routes"`
}

// Match returns the route declaring req, or nil.
func (inv *Inventory) Match(req Request) *Route {
	for i := range inv.Routes {
		if inv.Routes[i].matches(req) {
			return &inv.Routes[i]
		}
	}
	return nil
}

// Interactions are the FHIR interactions the classifier names (audit
// action names: R4 RESTful API §3.1.0).
var Interactions = []string{"read", "vread", "update", "patch", "delete", "create", "search-type", "search-system",
	"history-instance", "history-type", "history-system", "capabilities", "operation", "batch", "transaction"}

// Default declares everything Warden implements: every FHIR interaction
// on every type and every operation, the authorization server and its
// discovery documents, the patient pages, the health check and the
// transparency log's public tiles (for witnesses and monitors). fhirBase
// is the FHIR base path ("/fhir").
func Default(fhirBase string) Inventory {
	b := strings.TrimRight(fhirBase, "/")
	return Inventory{Routes: []Route{
		{Name: "fhir", Owner: "warden", Interactions: []string{"*"}, Types: []string{"*"}, Operations: []string{"*"}},
		{Name: "smart-discovery", Owner: "warden", Paths: []string{b + "/.well-known/", "/.well-known/"}, Methods: []string{"GET", "HEAD", "OPTIONS"}},
		{Name: "authorization-server", Owner: "warden", Paths: []string{"/auth/"}},
		{Name: "health", Owner: "warden", Paths: []string{"/healthz"}, Methods: []string{"GET", "HEAD"}},
		{Name: "audit-log", Owner: "warden", Paths: []string{"/audit/log/"}, Methods: []string{"GET", "HEAD"}},
	}}
}

// Parse reads an inventory file (YAML: routes: [...]); unknown fields
// are errors.
func Parse(data []byte) (Inventory, error) {
	var inv Inventory
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&inv); err != nil && !errors.Is(err, io.EOF) {
		return Inventory{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return inv, inv.Validate()
}

// Validate checks every route: a name, unique; either paths or FHIR
// lists, not both; known interactions and methods; sensible dates.
func (inv *Inventory) Validate() error {
	seen := map[string]bool{}
	if len(inv.Routes) == 0 {
		return fmt.Errorf("%w: no routes: nothing would be served", ErrInvalid)
	}
	for i, r := range inv.Routes {
		where := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			return fmt.Errorf("%w: %s: a name is required", ErrInvalid, where)
		case seen[r.Name]:
			return fmt.Errorf("%w: %s: the name %q is used twice", ErrInvalid, where, r.Name)
		case r.fhir() && len(r.Paths) > 0:
			return fmt.Errorf("%w: %s (%s): declare paths or FHIR interactions, not both", ErrInvalid, where, r.Name)
		case !r.fhir() && len(r.Paths) == 0:
			return fmt.Errorf("%w: %s (%s): declares nothing (no paths, no interactions)", ErrInvalid, where, r.Name)
		case !r.Sunset.IsZero() && r.Deprecated.IsZero():
			return fmt.Errorf("%w: %s (%s): a sunset needs a deprecation date", ErrInvalid, where, r.Name)
		case !r.Sunset.IsZero() && r.Sunset.Before(r.Deprecated):
			return fmt.Errorf("%w: %s (%s): the sunset is before the deprecation", ErrInvalid, where, r.Name)
		}
		seen[r.Name] = true
		for _, it := range r.Interactions {
			if it != "*" && !slices.Contains(Interactions, it) {
				return fmt.Errorf("%w: %s (%s): unknown interaction %q (want one of %s)", ErrInvalid, where, r.Name, it, strings.Join(Interactions, ", "))
			}
		}
		for _, op := range r.Operations {
			if op != "*" && !strings.HasPrefix(op, "$") {
				return fmt.Errorf("%w: %s (%s): an operation starts with $: %q", ErrInvalid, where, r.Name, op)
			}
		}
		for _, p := range r.Paths {
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") || strings.Contains(p, "//") {
				return fmt.Errorf("%w: %s (%s): a path starts with / and holds no .. or //: %q", ErrInvalid, where, r.Name, p)
			}
		}
		for _, m := range r.Methods {
			if m != strings.ToUpper(m) || m == "" {
				return fmt.Errorf("%w: %s (%s): methods are upper case: %q", ErrInvalid, where, r.Name, m)
			}
		}
	}
	return nil
}
