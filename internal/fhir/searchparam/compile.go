package searchparam

import "strings"

// restrictExpression keeps the branches of a union expression that apply
// to base ("AllergyIntolerance.patient | CarePlan.subject…" restricted to
// CarePlan is "CarePlan.subject…"). Expressions on Resource and
// DomainResource apply to every type and are kept whole.
func restrictExpression(expr, base string) string {
	if expr == "" {
		return ""
	}
	parts := splitUnion(expr)
	var kept []string
	for _, p := range parts {
		s := strings.TrimLeft(p, "(")
		if strings.HasPrefix(s, base+".") || s == base || strings.HasPrefix(s, "Resource.") || strings.HasPrefix(s, "DomainResource.") {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, " | ")
}

// splitUnion splits a FHIRPath expression at its top-level "|" operators.
func splitUnion(expr string) []string {
	var parts []string
	depth, start := 0, 0
	inStr := false
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case c == '\'':
			inStr = !inStr
		case inStr:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			parts = append(parts, strings.TrimSpace(expr[start:i]))
			start = i + 1
		}
	}
	return append(parts, strings.TrimSpace(expr[start:]))
}

// compile is a placeholder until expression compilation lands: every
// parameter with an expression counts as supported.
func compile(p *Param) any {
	if p.Expression == "" {
		return nil
	}
	return p.Expression
}
