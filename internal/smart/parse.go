package smart

import (
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/model"
)

// otherScopes are the non-resource scopes Warden knows (SMART 2.2
// "Scopes for requesting context data", "Scopes for requesting identity
// data", "Scopes for requesting a refresh token").
var otherScopes = []string{
	"fhirUser",
	"launch",
	"launch/encounter",
	"launch/patient",
	"offline_access",
	"online_access",
	"openid",
	"profile",
}

// SensitivePrefix starts Warden's scopes for sealed sensitive data:
// "sensitive/HIV" lets a token open resources sealed under the HIV
// category, "sensitive/*" under every category (package sealing).
const SensitivePrefix = "sensitive/"

// sensitiveScope reports whether tok is a sensitive-data scope: the
// prefix, then "*" or a category code of 1 to 32 letters, digits, "_"
// or "-".
func sensitiveScope(tok string) bool {
	cat, ok := strings.CutPrefix(tok, SensitivePrefix)
	if !ok || cat == "" || len(cat) > 32 {
		return false
	}
	if cat == "*" {
		return true
	}
	for _, c := range cat {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ParseScopes parses a scope parameter (RFC 6749 §3.3: scope tokens
// separated by spaces, each of the characters %x21 / %x23-5B / %x5D-7E)
// into the scopes Warden understands, and returns every other token, in
// order and without duplicates, in unknown. It never fails: the caller
// decides whether an unknown scope is ignored or refused (SMART 2.2 lets
// servers do either).
//
// A resource scope is, per SMART 2.2 "Scopes for requesting FHIR
// resources":
//
//	( "patient" | "user" | "system" ) "/" ( resource-type | "*" ) "." permissions [ "?" query ]
//
// where permissions is either a non-empty subset of the v2 letters c r u d
// s written in that order (".rs" but never ".sr"), or one of the v1 forms
// "read" (r s), "write" (c u d) and "*" (all). resource-type must be a
// concrete FHIR R4 resource type. The query (v2 only, and only on a named
// type) is URL query syntax naming search parameters, such as
// ?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory;
// every key must be a search-parameter name (letters, digits and "-_.:")
// with a non-empty value, and no pair may be empty. Scope requests with
// undefined or out-of-order interactions are unknown (SMART 2.2 lets
// servers reject them).
//
// Resource scopes keep their request order; two that mean the same access
// (patient/Observation.read and patient/Observation.rs) collapse into the
// first. Other scopes come back sorted.
//
// Resource types are checked against [model.R4], which the first call
// builds (a few hundred milliseconds); if it cannot be built, no concrete
// type is known and only "*" scopes parse.
func ParseScopes(s string) (sc Scopes, unknown []string) {
	types, err := model.R4()
	if err != nil {
		types = nil // fail closed: no concrete type is known
	}
	var seen seenSet
	for tok := range strings.SplitSeq(s, " ") {
		if tok == "" {
			continue // tolerate repeated spaces
		}
		if r, ok := parseResourceScope(tok, types); ok {
			if !seen.resource(sc.Resources, r) {
				sc.Resources = append(sc.Resources, r)
			}
			continue
		}
		if seen.token(sc.Other, unknown, tok) {
			continue
		}
		if _, known := slices.BinarySearch(otherScopes, tok); known || sensitiveScope(tok) {
			sc.Other = append(sc.Other, tok)
		} else {
			unknown = append(unknown, tok)
		}
	}
	slices.Sort(sc.Other)
	return sc, unknown
}

// seenSet finds duplicates while parsing. A typical request holds a
// handful of scopes, which are compared one by one without allocating;
// past linearLimit it switches to a map, so a long hostile scope string
// costs linear time, not quadratic.
type seenSet struct {
	resources map[string]bool // canonical forms, once past linearLimit
	tokens    map[string]bool // other and unknown tokens, once past linearLimit
}

const linearLimit = 16

// resource reports whether rs already holds a scope with r's access, and
// remembers r.
func (s *seenSet) resource(rs []ResourceScope, r ResourceScope) bool {
	if len(rs) < linearLimit {
		return slices.ContainsFunc(rs, func(x ResourceScope) bool { return sameAccess(x, r) })
	}
	if s.resources == nil {
		s.resources = make(map[string]bool, 2*len(rs))
		for _, x := range rs {
			s.resources[x.String()] = true
		}
	}
	key := r.String()
	dup := s.resources[key]
	s.resources[key] = true
	return dup
}

// token reports whether other or unknown already holds tok, and
// remembers tok.
func (s *seenSet) token(other, unknown []string, tok string) bool {
	if len(other)+len(unknown) < linearLimit {
		return slices.Contains(other, tok) || slices.Contains(unknown, tok)
	}
	if s.tokens == nil {
		s.tokens = make(map[string]bool, 2*(len(other)+len(unknown)))
		for _, t := range other {
			s.tokens[t] = true
		}
		for _, t := range unknown {
			s.tokens[t] = true
		}
	}
	dup := s.tokens[tok]
	s.tokens[tok] = true
	return dup
}

// sameAccess reports whether a and b allow the same thing, whatever their
// written form.
func sameAccess(a, b ResourceScope) bool {
	return a.Context == b.Context && a.Type == b.Type && a.Perms == b.Perms && queryEqual(a.Query, b.Query)
}

// parseResourceScope parses one token as a resource scope; ok is false if
// it is not one, or not a valid one.
func parseResourceScope(tok string, types *model.Model) (ResourceScope, bool) {
	if !isScopeToken(tok) {
		return ResourceScope{}, false
	}
	r := ResourceScope{Raw: tok}
	prefix, rest, ok := strings.Cut(tok, "/")
	if !ok {
		return ResourceScope{}, false
	}
	switch prefix {
	case "patient":
		r.Context = ContextPatient
	case "user":
		r.Context = ContextUser
	case "system":
		r.Context = ContextSystem
	default:
		return ResourceScope{}, false
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return ResourceScope{}, false
	}
	if typ != "*" && (types == nil || !types.IsResourceType(typ)) {
		return ResourceScope{}, false
	}
	r.Type = typ
	switch perms {
	case "read":
		r.Perms, r.V1 = PermRead|PermSearch, true
	case "write":
		r.Perms, r.V1 = PermCreate|PermUpdate|PermDelete, true
	case "*":
		r.Perms, r.V1 = PermAll, true
	default:
		if r.Perms, ok = parsePerms(perms); !ok {
			return ResourceScope{}, false
		}
	}
	if hasQuery {
		if r.V1 || typ == "*" {
			return ResourceScope{}, false
		}
		if r.Query, ok = parseQuery(query); !ok {
			return ResourceScope{}, false
		}
	}
	return r, true
}

// parsePerms parses v2 permission letters: a non-empty subset of c r u d
// s, each at most once, in that order.
func parsePerms(s string) (Perm, bool) {
	var p Perm
	next := 0 // index in permLetters of the next letter allowed
	for i := 0; i < len(s); i++ {
		j := next
		for j < len(permLetters) && permLetters[j].letter != s[i] {
			j++
		}
		if j == len(permLetters) {
			return 0, false // unknown, repeated or out of order
		}
		p |= permLetters[j].perm
		next = j + 1
	}
	return p, p != 0
}

// isScopeToken reports whether s is a non-empty RFC 6749 §3.3 scope-token:
// %x21 / %x23-5B / %x5D-7E, that is printable ASCII except space, '"' and
// '\'.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isScopeByte(s[i]) {
			return false
		}
	}
	return true
}

func isScopeByte(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
}
