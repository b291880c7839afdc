package smart

import (
	"net/url"
	"slices"
)

// Grant returns what may be granted of requested under ceiling, the
// scopes a client is registered for: the part of the request the ceiling
// allows. It implements the server side of SMART 2.2 "scopes ultimately
// granted may differ from the scopes requested" and Backend Services
// "Evaluate requested access" (the server SHALL assure the scope requested
// is within the scope pre-authorized to the client); ARCHITECTURE.md's
// "a client can never be granted more than its registered ceiling".
//
// Each requested resource scope is narrowed against every ceiling scope of
// the same context whose type covers it: a ceiling "*" covers any type, and
// a requested "*" against a concrete ceiling type becomes that type (one
// granted scope per ceiling type). Perms are intersected; an empty
// intersection grants nothing. Granular queries are combined so the
// result is within both: the granted scope carries every constraint of
// the ceiling scope and of the requested one, and if both constrain the
// same search parameter with different values that pair grants nothing
// (deciding whether one value set implies another would need the
// parameter's semantics; refusing never widens).
//
// A scope granted unchanged keeps its Raw text, so a v1 request granted
// whole is answered in v1 form (SMART 2.2: servers SHOULD return v1 scopes
// when v1 scopes are requested and granted); a narrowed one is written in
// v2 form with an empty Raw. Other scopes are kept if the ceiling lists
// them. The result has no duplicates and shares no maps with the inputs.
//
// Grant never allows an access (context × type × permission × query) that
// ceiling does not allow, nor one that requested does not ask for.
func Grant(requested, ceiling Scopes) Scopes {
	var out Scopes
	seen := make(map[string]bool)
	for _, r := range requested.Resources {
		for _, c := range ceiling.Resources {
			g, ok := narrow(r, c)
			if !ok {
				continue
			}
			key := g.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			out.Resources = append(out.Resources, g)
		}
	}
	for _, o := range requested.Other {
		if ceiling.Has(o) && !slices.Contains(out.Other, o) {
			out.Other = append(out.Other, o)
		}
	}
	slices.Sort(out.Other)
	return out
}

// narrow returns the part of the requested scope r that the ceiling scope
// c allows; ok is false if there is none.
func narrow(r, c ResourceScope) (ResourceScope, bool) {
	if r.Context == 0 || r.Context != c.Context {
		return ResourceScope{}, false
	}
	var typ string
	switch {
	case c.Type == "*":
		typ = r.Type
	case r.Type == "*" || r.Type == c.Type:
		typ = c.Type
	default:
		return ResourceScope{}, false
	}
	if typ == "" {
		return ResourceScope{}, false
	}
	perms := r.Perms & c.Perms & PermAll
	if perms == 0 {
		return ResourceScope{}, false
	}
	query := cloneQuery(r.Query)
	for k, cv := range c.Query {
		if rv, both := query[k]; both {
			if !sameValues(rv, cv) {
				return ResourceScope{}, false
			}
			continue
		}
		if query == nil {
			query = make(url.Values)
		}
		query[k] = sortedValues(cv)
	}
	if typ == r.Type && perms == r.Perms && queryEqual(query, r.Query) {
		g := r
		g.Query = query
		return g, true
	}
	return ResourceScope{Context: r.Context, Type: typ, Perms: perms, Query: query}, true
}

// Without returns s without the scopes the user deselected on the approval
// page: every resource scope whose text as written (Raw) or canonical v2
// form (String) is one of deselected, and every other scope named in
// deselected. s itself is not modified.
func (s Scopes) Without(deselected []string) Scopes {
	drop := make(map[string]bool, len(deselected))
	for _, d := range deselected {
		drop[d] = true
	}
	var out Scopes
	for _, r := range s.Resources {
		if drop[r.String()] || (r.Raw != "" && drop[r.Raw]) {
			continue
		}
		r.Query = cloneQuery(r.Query)
		out.Resources = append(out.Resources, r)
	}
	for _, o := range s.Other {
		if !drop[o] {
			out.Other = append(out.Other, o)
		}
	}
	return out
}
