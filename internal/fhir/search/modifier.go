package search

import (
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// shape is what a parameter name resolved to, before any value is read:
// the parameter, its modifier and, for references, the target type.
type shape struct {
	param  *searchparam.Param
	mod    Modifier
	target string // Clause.TargetType
	chain  *shape // the chained parameter (§3.1.1.4.15)

	// components of a composite parameter, as parameters of their own.
	components []*searchparam.Param
}

// shape resolves the modifier of sp (FHIR R4 §3.1.1.4.4). Supported:
//
//   - :missing on every type but composite ("Modifiers are not used on
//     composite parameters", §3.1.1.4.17);
//   - :exact and :contains on string (§3.1.1.4.8);
//   - :not and :text on token (§3.1.1.4.10);
//   - :identifier and :[Type] on reference (§3.1.1.4.12), the type being
//     one the parameter can point to.
//
// Anything else — :above, :below, :in, :not-in, :of-type, :text on
// strings — is rejected, as §3.1.1.4.4 requires of unsupported modifiers.
func (p *parser) shape(name string, sp *searchparam.Param, mod string) (*shape, *Error) {
	sh := &shape{param: sp}
	switch {
	case mod == "":
	case mod == "missing" && sp.Type != searchparam.Composite:
		sh.mod = ModMissing
	case (mod == "exact" || mod == "contains") && sp.Type == searchparam.String:
		sh.mod = Modifier(mod)
	case (mod == "not" || mod == "text") && sp.Type == searchparam.Token:
		sh.mod = Modifier(mod)
	case mod == "identifier" && sp.Type == searchparam.Reference:
		sh.mod = ModIdentifier
	case sp.Type == searchparam.Reference && isTypeName(mod):
		if !canTarget(sp, mod) {
			return nil, fail(name, reasonTypeModifier)
		}
		sh.mod, sh.target = ModType, mod
	default:
		return nil, fail(name, reasonModifier)
	}
	if sp.Type == searchparam.Composite {
		if len(sp.Components) == 0 {
			return nil, fail(name, reasonNoComponents)
		}
		sh.components = make([]*searchparam.Param, len(sp.Components))
		for i, c := range sp.Components {
			if c.Type == searchparam.Composite || c.Type == searchparam.Special {
				return nil, fail(name, reasonComposite)
			}
			sh.components[i] = &searchparam.Param{Code: c.Code, URL: c.Definition, Type: c.Type, Base: sp.Base, Expression: c.Expression}
		}
	}
	return sh, nil
}

// canTarget reports whether reference parameter sp can point at resources
// of type t. Some R4 definitions declare more targets than their
// expression allows: Observation "patient" lists Patient and Group but is
// Observation.subject.where(resolve() is Patient). The restriction wins,
// so that "patient=123" means Patient/123 (§3.1.1.4.12: with the patient
// parameter "there is no need to specify :Patient … as this must always
// be true").
func canTarget(sp *searchparam.Param, t string) bool {
	if !slices.Contains(sp.Targets, t) {
		return false
	}
	restricted, allowed := resolveRestriction(sp.Expression, t)
	return !restricted || allowed
}

// singleTarget returns the one type sp can point at, or "".
func singleTarget(sp *searchparam.Param) string {
	one := ""
	for _, t := range sp.Targets {
		if !canTarget(sp, t) {
			continue
		}
		if one != "" {
			return ""
		}
		one = t
	}
	return one
}

// resolveRestriction reports whether every branch of the FHIRPath union
// expr ends in ".where(resolve() is T)", and whether t is one of those T.
func resolveRestriction(expr, t string) (restricted, allowed bool) {
	const marker = ".where(resolve() is "
	if expr == "" {
		return false, false
	}
	for rest := expr; rest != ""; {
		branch, after, _ := strings.Cut(rest, " | ")
		rest = after
		i := strings.LastIndex(branch, marker)
		if i < 0 || branch[len(branch)-1] != ')' {
			return false, false
		}
		ty := branch[i+len(marker) : len(branch)-1]
		if !isTypeName(ty) {
			return false, false
		}
		allowed = allowed || ty == t
	}
	return true, allowed
}

// sameKind reports whether two parameters found on different target types
// of a chain read values the same way, so one parsed Clause serves both.
func sameKind(a, b *searchparam.Param) bool {
	if a == b {
		return true
	}
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case searchparam.Reference:
		for _, t := range a.Targets {
			if canTarget(a, t) != canTarget(b, t) {
				return false
			}
		}
		for _, t := range b.Targets {
			if canTarget(a, t) != canTarget(b, t) {
				return false
			}
		}
	case searchparam.Composite:
		if len(a.Components) != len(b.Components) {
			return false
		}
		for i := range a.Components {
			if a.Components[i].Type != b.Components[i].Type {
				return false
			}
		}
	}
	return true
}
