// Package smart owns the SMART App Launch scope grammar (v1 and v2) and
// launch context: parsing scope strings into typed scopes, narrowing a
// request to what a client's ceiling allows, and describing scopes in plain
// language for the approval page. It is pure: no I/O, no net/http.
//
// It never decides whether a request is allowed (package policy does, from
// the scopes parsed here), never stores grants and never widens: every
// function that derives scopes from others ([Grant], [Scopes.Without])
// yields a subset of its input.
//
// The grammar is SMART App Launch 2.2.0, "Scopes and Launch Context"
// (https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html).
package smart

import (
	"net/url"
	"slices"
	"strings"
)

// Context is the first segment of a resource scope.
type Context uint8

const (
	ContextPatient Context = iota + 1 // patient/: the launch patient's compartment
	ContextUser                       // user/: what the signed-in user may see
	ContextSystem                     // system/: what the backend client is registered for
)

// String returns the scope prefix without its slash: "patient", "user" or
// "system"; "" for the zero Context.
func (c Context) String() string {
	switch c {
	case ContextPatient:
		return "patient"
	case ContextUser:
		return "user"
	case ContextSystem:
		return "system"
	}
	return ""
}

// Perm is a set of SMART v2 permission letters, c r u d s.
type Perm uint8

const (
	PermCreate Perm = 1 << iota // c
	PermRead                    // r: read and vread (and history of a known instance)
	PermUpdate                  // u
	PermDelete                  // d
	PermSearch                  // s: type and system search, type history

	// PermAll is every permission: v2 .cruds, v1 .*.
	PermAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
)

// permLetters lists the v2 letters in the order the grammar requires them.
var permLetters = [...]struct {
	letter byte
	perm   Perm
}{{'c', PermCreate}, {'r', PermRead}, {'u', PermUpdate}, {'d', PermDelete}, {'s', PermSearch}}

// String returns the v2 letters of p in "cruds" order ("rs", "cud");
// bits outside PermAll are not shown.
func (p Perm) String() string {
	var b [len(permLetters)]byte
	n := 0
	for _, l := range permLetters {
		if p&l.perm != 0 {
			b[n] = l.letter
			n++
		}
	}
	return string(b[:n])
}

// ResourceScope is one resource-level scope such as
// patient/Observation.rs?category=laboratory.
type ResourceScope struct {
	Context Context
	Type    string     // a resource type, or "*" for all
	Perms   Perm       // v1 read = r|s, v1 write = c|u|d, v1 * = all
	Query   url.Values // granular constraint (v2 only); nil when none; values of a key sorted
	V1      bool       // written in the v1 form (.read, .write, .*)
	// Raw is the scope exactly as written in the parsed string, empty for a
	// scope this package derived (Grant writes narrowed scopes in v2 form).
	Raw string
}

// String returns the scope in the canonical v2 form, whatever form it was
// written in: context "/" type "." letters, then "?" and the granular
// query with keys and values sorted, escaped only where the scope-token
// syntax (RFC 6749 §3.3) or query syntax needs it:
// patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory.
func (r ResourceScope) String() string {
	var b strings.Builder
	b.WriteString(r.Context.String())
	b.WriteByte('/')
	b.WriteString(r.Type)
	b.WriteByte('.')
	b.WriteString(r.Perms.String())
	if len(r.Query) > 0 {
		b.WriteByte('?')
		writeQuery(&b, r.Query)
	}
	return b.String()
}

// text is the scope as it is answered to the client: as written when it
// was parsed, otherwise in v2 form.
func (r ResourceScope) text() string {
	if r.Raw != "" {
		return r.Raw
	}
	return r.String()
}

// Scopes is a parsed scope string.
type Scopes struct {
	Resources []ResourceScope
	// Other holds the non-resource scopes (openid, fhirUser, profile,
	// launch, launch/patient, launch/encounter, offline_access,
	// online_access), sorted, without duplicates.
	Other []string
}

// String returns the scope string to answer with (the "scope" parameter
// of a token response, RFC 6749 §5.1): space-separated, resource scopes
// first in their order, each as written (Raw) if it was parsed, in v2
// form otherwise, then the other scopes.
func (s Scopes) String() string {
	parts := make([]string, 0, len(s.Resources)+len(s.Other))
	for _, r := range s.Resources {
		parts = append(parts, r.text())
	}
	parts = append(parts, s.Other...)
	return strings.Join(parts, " ")
}

// Matching returns the resource scopes, of any context, whose Type is typ
// or "*" and whose Perms contain every bit of p, in request order. The
// caller applies their Context and Query: a scope with a Query allows only
// what its query matches (SMART 2.2 "finer-grained resource constraints
// using search parameters"). A zero p or an empty typ matches nothing.
func (s Scopes) Matching(p Perm, typ string) []ResourceScope {
	if p == 0 || typ == "" {
		return nil
	}
	var out []ResourceScope
	for _, r := range s.Resources {
		if (r.Type == typ || r.Type == "*") && r.Perms&p == p {
			out = append(out, r)
		}
	}
	return out
}

// Has reports whether the non-resource scope other (openid,
// offline_access, launch/patient, …) is among s.Other.
func (s Scopes) Has(other string) bool {
	return slices.Contains(s.Other, other)
}
