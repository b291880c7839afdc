package search

import (
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// includes handles _include and _revinclude, optionally with :iterate
// (FHIR R4 §3.1.1.5.4). Each value is SourceType:param[:TargetType], where
// param is a reference parameter defined by SourceType, or "*" for all of
// them (Include.Param nil). The parameters repeat rather than take comma
// lists.
//
// Without :iterate the join must start from the results: for _include the
// source type is the searched type; for _revinclude the parameter must be
// able to point at the searched type. With :iterate it may start from any
// included resource, so any source type is accepted.
func (p *parser) includes(name, code string, values []string) *Error {
	iterate := false
	switch name {
	case code:
	case code + ":iterate":
		iterate = true
	default:
		return fail(name, reasonIncludeModifier)
	}
	rev := code == "_revinclude"
	for _, v := range values {
		if v == "" {
			continue
		}
		inc, err := p.include(name, v, rev, iterate)
		if err != nil {
			return err
		}
		list := &p.q.Includes
		if rev {
			list = &p.q.RevIncludes
		}
		if slices.Contains(*list, inc) {
			continue
		}
		if len(p.q.Includes)+len(p.q.RevIncludes) == maxIncludes {
			return fail(name, reasonTooManyIncludes)
		}
		*list = append(*list, inc)
	}
	return nil
}

func (p *parser) include(name, v string, rev, iterate bool) (Include, *Error) {
	src, rest, ok := strings.Cut(v, ":")
	code, target, hasTarget := strings.Cut(rest, ":")
	if !ok || !isTypeName(src) || code != "*" && !isCode(code) || hasTarget && !isTypeName(target) {
		return Include{}, fail(name, reasonIncludeForm)
	}
	if !rev && !iterate && src != p.typ {
		return Include{}, fail(name, reasonIncludeSource)
	}
	inc := Include{SourceType: src, TargetType: target, Iterate: iterate}
	if code == "*" {
		if !p.anyReference(src, target, rev && !iterate) {
			return Include{}, fail(name, reasonIncludeWildcard)
		}
		return inc, nil
	}
	sp := p.reg.Param(src, code)
	if sp == nil || sp.Type != searchparam.Reference || sp.Base != src {
		return Include{}, fail(name, reasonIncludeParam)
	}
	if hasTarget && !canTarget(sp, target) {
		return Include{}, fail(name, reasonIncludeTarget)
	}
	if rev && !iterate && !canTarget(sp, p.typ) {
		return Include{}, fail(name, reasonRevIncludeTarget)
	}
	inc.Param = sp
	return inc, nil
}

// anyReference reports whether src defines a reference parameter that can
// point at target (if given) and, when toSearched, at the searched type.
// An unknown src defines none.
func (p *parser) anyReference(src, target string, toSearched bool) bool {
	for _, sp := range p.reg.Params(src) {
		if sp.Type != searchparam.Reference || sp.Base != src {
			continue
		}
		if target != "" && !canTarget(sp, target) || toSearched && !canTarget(sp, p.typ) {
			continue
		}
		return true
	}
	return false
}
