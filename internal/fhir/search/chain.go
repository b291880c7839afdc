package search

import (
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// chain resolves a chained name ref[:Type].code[:modifier] (FHIR R4
// §3.1.1.4.15), one level deep. ref must be a reference parameter; the
// only modifier it may carry is a resource type among its targets.
//
// Without a type, code must be defined on at least one type ref can point
// to. When exactly one such type exists it becomes the TargetType;
// otherwise TargetType stays empty, meaning "any target type that defines
// code", and the definitions on those types must read values alike (else
// the client must name the type, as §3.1.1.4.15 advises).
func (p *parser) chain(name string, sp *searchparam.Param, mod, tail string) (*shape, *Error) {
	if sp.Type != searchparam.Reference {
		return nil, fail(name, reasonChainNotReference)
	}
	head := &shape{param: sp}
	if mod != "" {
		if !isTypeName(mod) {
			return nil, fail(name, reasonChainModifier)
		}
		if !canTarget(sp, mod) {
			return nil, fail(name, reasonTypeModifier)
		}
		head.mod, head.target = ModType, mod
	}
	code, tmod, ok := cutModifier(tail)
	if !ok {
		return nil, fail(name, reasonEmptyModifier)
	}
	if !isCode(code) {
		return nil, fail(name, reasonChainName)
	}
	if code == "_has" {
		return nil, fail(name, reasonChainHas)
	}

	var found *searchparam.Param
	foundType, matches := "", 0
	for _, t := range sp.Targets {
		if head.target != "" && t != head.target || !canTarget(sp, t) {
			continue
		}
		tp := p.reg.Param(t, code)
		if tp == nil {
			continue
		}
		if found == nil {
			found, foundType = tp, t
		} else if !sameKind(found, tp) {
			return nil, fail(name, reasonChainAmbiguous)
		}
		matches++
	}
	if found == nil {
		return nil, fail(name, reasonChainUnknown)
	}
	if found.Type == searchparam.Special {
		return nil, fail(name, reasonSpecial)
	}
	if matches == 1 {
		head.target = foundType
	}
	inner, err := p.shape(name, found, tmod)
	if err != nil {
		return nil, err
	}
	head.chain = inner
	return head, nil
}

// has handles reverse chaining, _has:Type:ref:code[:modifier]=value
// (FHIR R4 §3.1.1.4.16): resources of the searched type referred to,
// through Type's reference parameter ref, by a Type resource matching
// code=value. Nested _has and chains inside _has are not supported.
func (p *parser) has(name string, values []string) *Error {
	spec, ok := strings.CutPrefix(name, "_has:")
	if !ok {
		return fail(name, reasonHasForm)
	}
	typ, rest, _ := strings.Cut(spec, ":")
	refCode, inner, _ := strings.Cut(rest, ":")
	if !isTypeName(typ) || !isCode(refCode) || inner == "" {
		return fail(name, reasonHasForm)
	}
	if inner == "_has" || strings.HasPrefix(inner, "_has:") {
		return fail(name, reasonHasNested)
	}
	if strings.Contains(inner, ".") {
		return fail(name, reasonHasChain)
	}
	ref := p.reg.Param(typ, refCode)
	if ref == nil || ref.Type != searchparam.Reference || ref.Base != typ {
		return fail(name, reasonHasRef)
	}
	if !canTarget(ref, p.typ) {
		return fail(name, reasonHasTarget)
	}
	code, mod, ok := cutModifier(inner)
	if !ok {
		return fail(name, reasonEmptyModifier)
	}
	ip := p.reg.Param(typ, code)
	if ip == nil {
		return fail(name, reasonHasUnknown)
	}
	if ip.Type == searchparam.Special {
		return fail(name, reasonSpecial)
	}
	sh, err := p.shape(name, ip, mod)
	if err != nil {
		return err
	}
	for _, raw := range values {
		if raw == "" {
			continue
		}
		c, err := p.clause(name, sh, raw)
		if err != nil {
			return err
		}
		if err := p.addClause(name, Clause{Has: &Has{Type: typ, Ref: ref, Clause: c}}); err != nil {
			return err
		}
	}
	return nil
}
