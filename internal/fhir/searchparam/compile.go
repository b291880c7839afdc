package searchparam

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

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

// extractor is a compiled search parameter: how to find its values in a
// resource and how to turn them into index entries.
//
// Exactly one of paths, test and components describes the expression:
// paths for ordinary parameters (one path per branch of a union), test for
// a boolean-valued expression (Patient.deceased), components for a
// composite, whose paths then select the elements the components are
// evaluated on.
type extractor struct {
	code  string
	typ   Type
	root  *fhirType // the type the expression starts from (Param.Base)
	paths []path
	conv  *converterSet

	test       *cond
	components []componentExtractor

	// dropped lists union branches that were left out because no value
	// they reach can be indexed as this parameter's type (the
	// "(Observation.value as SampledData)" branch of value-quantity).
	dropped []string
}

// componentExtractor is one component of a composite parameter; its paths
// start at an element selected by the composite's expression.
type componentExtractor struct {
	code  string
	typ   Type
	paths []path
	conv  *converterSet
}

// errUnsupported marks expressions outside the FHIRPath subset the
// compiler understands, and parameters that have no index at all.
var errUnsupported = errors.New("unsupported")

// compile compiles the expression of p against the R4 type model. It
// returns an error wrapping errUnsupported when the expression cannot be
// compiled (or p is a special parameter or has no expression); the
// parameter is then not searchable.
//
// Compilation is type-directed: every step is resolved against the
// StructureDefinitions, so a choice element (Observation.value[x]) becomes
// the JSON keys of its types ("valueQuantity", "valueCodeableConcept", …),
// "as"/ofType() picks among them at compile time, and the type of every
// value reached is known when it is converted to entries.
func compile(p *Param, m *typeModel) (*extractor, error) {
	if p.Type == Special {
		return nil, fmt.Errorf("%w: special parameters have no index", errUnsupported)
	}
	if p.Expression == "" {
		return nil, fmt.Errorf("%w: no FHIRPath expression", errUnsupported)
	}
	root := m.lookup(p.Base)
	if root == nil || root.kind != kindResource {
		return nil, fmt.Errorf("%w: unknown base type %s", errUnsupported, p.Base)
	}
	ast, err := parseFHIRPath(p.Expression)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnsupported, err)
	}
	c := &compiler{model: m, root: root}
	x := &extractor{code: p.Code, typ: p.Type, root: root}

	if p.Type == Composite {
		return c.composite(p, ast, x)
	}
	if isCondition(ast) {
		if p.Type != Token {
			return nil, fmt.Errorf("%w: a boolean expression for a %s parameter", errUnsupported, p.Type)
		}
		x.test, err = c.cond(ast, []*fhirType{root})
		if err != nil {
			return nil, err
		}
		return x, nil
	}
	conv := converters[p.Type]
	if conv == nil {
		return nil, fmt.Errorf("%w: no index for %s parameters", errUnsupported, p.Type)
	}
	paths, err := c.collection(ast, []*fhirType{root})
	if err != nil {
		return nil, err
	}
	x.conv = conv
	x.paths, x.dropped = prune(paths, conv)
	if len(x.paths) == 0 {
		return nil, fmt.Errorf("%w: %s reaches only %s, which a %s parameter cannot index", errUnsupported, p.Expression, typeNames(allTypes(paths)), p.Type)
	}
	return x, nil
}

// composite compiles a composite parameter (FHIR R4 Search, "composite"): the
// expression selects elements and each component is compiled relative to
// them.
func (c *compiler) composite(p *Param, ast *expr, x *extractor) (*extractor, error) {
	if len(p.Components) == 0 || len(p.Components) > maxComponents {
		return nil, fmt.Errorf("%w: composite with %d components", errUnsupported, len(p.Components))
	}
	bases, err := c.collection(ast, []*fhirType{c.root})
	if err != nil {
		return nil, err
	}
	x.paths = bases
	in := allTypes(bases)
	for _, comp := range p.Components {
		conv := converters[comp.Type]
		if conv == nil {
			return nil, fmt.Errorf("%w: component %s has type %s", errUnsupported, comp.Code, comp.Type)
		}
		cast, err := parseFHIRPath(comp.Expression)
		if err != nil {
			return nil, fmt.Errorf("%w: component %s: %v", errUnsupported, comp.Code, err)
		}
		paths, err := c.collection(cast, in)
		if err != nil {
			return nil, fmt.Errorf("component %s: %w", comp.Code, err)
		}
		kept, dropped := prune(paths, conv)
		if len(kept) == 0 {
			return nil, fmt.Errorf("%w: component %s reaches only %s", errUnsupported, comp.Code, typeNames(allTypes(paths)))
		}
		x.dropped = append(x.dropped, dropped...)
		x.components = append(x.components, componentExtractor{code: comp.Code, typ: comp.Type, paths: kept, conv: conv})
	}
	return x, nil
}

// compiler holds what compilation of one parameter needs.
type compiler struct {
	model *typeModel
	root  *fhirType
}

// isRootName reports whether an identifier at the start of a path names
// the resource the expression is evaluated on ("Observation" in
// "Observation.code", "Resource" in "Resource.meta.tag").
func (c *compiler) isRootName(name string) bool {
	return name == c.root.name || name == "Resource" || name == "DomainResource"
}

// collection compiles an expression whose value is a collection of
// elements into one path per branch of its unions. in are the possible
// types of the focus.
func (c *compiler) collection(e *expr, in []*fhirType) ([]path, error) {
	switch e.kind {
	case exResource:
		return []path{{start: startRoot, types: []*fhirType{c.root}}}, nil
	case exMember:
		var bases []path
		switch {
		case e.target != nil:
			var err error
			if bases, err = c.collection(e.target, in); err != nil {
				return nil, err
			}
		case c.isRootName(e.name):
			return []path{{start: startRoot, types: []*fhirType{c.root}}}, nil
		default:
			bases = []path{{start: startFocus, types: in}}
		}
		return eachPath(bases, func(p path) (path, error) { return member(p, e.name) })
	case exUnion:
		left, err := c.collection(e.args[0], in)
		if err != nil {
			return nil, err
		}
		right, err := c.collection(e.args[1], in)
		if err != nil {
			return nil, err
		}
		return append(left, right...), nil
	case exAs:
		bases, err := c.collection(e.target, in)
		if err != nil {
			return nil, err
		}
		return eachPath(bases, func(p path) (path, error) { return narrow(p, e.name) })
	case exCall:
		bases := []path{{start: startFocus, types: in}}
		if e.target != nil {
			var err error
			if bases, err = c.collection(e.target, in); err != nil {
				return nil, err
			}
		}
		return c.call(e, bases)
	}
	return nil, fmt.Errorf("%w: %s is not a path", errUnsupported, e)
}

// call compiles the functions that filter a collection.
func (c *compiler) call(e *expr, bases []path) ([]path, error) {
	switch e.name {
	case "as", "ofType": // FHIRPath, as(type) and ofType(type)
		if len(e.args) != 1 || e.args[0].kind != exMember || e.args[0].target != nil {
			return nil, fmt.Errorf("%w: %s takes a type name", errUnsupported, e)
		}
		return eachPath(bases, func(p path) (path, error) { return narrow(p, e.args[0].name) })
	case "where": // FHIRPath, where(criteria)
		if len(e.args) != 1 {
			return nil, fmt.Errorf("%w: %s takes one criterion", errUnsupported, e)
		}
		return eachPath(bases, func(p path) (path, error) {
			cd, err := c.cond(e.args[0], p.types)
			if err != nil {
				return path{}, err
			}
			return addStep(p, step{op: opWhere, cond: cd}, p.types), nil
		})
	case "extension": // FHIR's FHIRPath extension: extension(url) is extension.where(url = …)
		if len(e.args) != 1 || e.args[0].kind != exString {
			return nil, fmt.Errorf("%w: %s takes a URL string", errUnsupported, e)
		}
		byURL := &expr{kind: exEq, args: []*expr{{kind: exMember, name: "url"}, e.args[0]}}
		return eachPath(bases, func(p path) (path, error) {
			p, err := member(p, "extension")
			if err != nil {
				return path{}, err
			}
			cd, err := c.cond(byURL, p.types)
			if err != nil {
				return path{}, err
			}
			return addStep(p, step{op: opWhere, cond: cd}, p.types), nil
		})
	}
	return nil, fmt.Errorf("%w: function %s()", errUnsupported, e.name)
}

// isCondition reports whether e is boolean-valued.
func isCondition(e *expr) bool {
	switch e.kind {
	case exAnd, exOr, exEq, exNe, exIs, exBool:
		return true
	case exCall:
		return (e.name == "exists" || e.name == "empty") && len(e.args) == 0
	}
	return false
}

// cond compiles a boolean expression evaluated on a focus of types in.
func (c *compiler) cond(e *expr, in []*fhirType) (*cond, error) {
	switch e.kind {
	case exBool:
		return &cond{op: condConst, lit: e.name == "true"}, nil
	case exAnd, exOr:
		a, err := c.cond(e.args[0], in)
		if err != nil {
			return nil, err
		}
		b, err := c.cond(e.args[1], in)
		if err != nil {
			return nil, err
		}
		op := condAnd
		if e.kind == exOr {
			op = condOr
		}
		return &cond{op: op, args: [2]*cond{a, b}}, nil
	case exEq, exNe:
		operand, lit := e.args[0], literal(e.args[1])
		if lit == nil {
			operand, lit = e.args[1], literal(e.args[0])
		}
		if lit == nil {
			return nil, fmt.Errorf("%w: %s compares two paths", errUnsupported, e)
		}
		paths, err := c.collection(operand, in)
		if err != nil {
			return nil, err
		}
		op := condEq
		if e.kind == exNe {
			op = condNe
		}
		return &cond{op: op, paths: paths, lit: lit}, nil
	case exIs:
		// resolve() is T (FHIR R4 FHIRPath, "resolve()"): the focus is a
		// Reference whose literal reference names a resource of type T.
		t := e.target
		if t.kind != exCall || t.name != "resolve" || t.target != nil || len(t.args) != 0 {
			return nil, fmt.Errorf("%w: %s", errUnsupported, e)
		}
		if !slices.ContainsFunc(in, func(t *fhirType) bool { return t.kind == kindReference }) {
			return nil, fmt.Errorf("%w: resolve() on %s", errUnsupported, typeNames(in))
		}
		if !c.model.isResource(e.name) {
			return nil, fmt.Errorf("%w: %s is not a resource type", errUnsupported, e.name)
		}
		return &cond{op: condResolveIs, typeName: e.name}, nil
	case exCall:
		if (e.name == "exists" || e.name == "empty") && len(e.args) == 0 {
			paths := []path{{start: startFocus, types: in}}
			if e.target != nil {
				var err error
				if paths, err = c.collection(e.target, in); err != nil {
					return nil, err
				}
			}
			op := condExists
			if e.name == "empty" {
				op = condEmpty
			}
			return &cond{op: op, paths: paths}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not a supported condition", errUnsupported, e)
}

// literal returns the value of a literal node, or nil.
func literal(e *expr) any {
	switch e.kind {
	case exString:
		return e.name
	case exBool:
		return e.name == "true"
	case exInt:
		return int64(e.index)
	}
	return nil
}

// member follows the element name from every type p reaches.
func member(p path, name string) (path, error) {
	var alts []memberAlt
	var out []*fhirType
	for _, t := range p.types {
		el := t.elements[name]
		if el == nil {
			continue
		}
		for _, et := range el.types {
			alts = append(alts, memberAlt{in: t, key: el.jsonKey(et), out: et})
			if !slices.Contains(out, et) {
				out = append(out, et)
			}
		}
	}
	if len(alts) == 0 {
		return path{}, fmt.Errorf("%w: %s has no element %q", errUnsupported, typeNames(p.types), name)
	}
	return addStep(p, step{op: opMember, alts: alts}, out), nil
}

// narrow implements "as T" and ofType(T). On a choice element it is
// resolved at compile time by keeping only the JSON keys of type T; after
// other steps it becomes a type test. Type names compare without regard
// to case because R4 expressions write both dateTime and DateTime.
func narrow(p path, typeName string) (path, error) {
	var match []*fhirType
	for _, t := range p.types {
		if strings.EqualFold(t.name, typeName) {
			match = append(match, t)
		}
	}
	switch {
	case len(match) == 0:
		return path{}, fmt.Errorf("%w: %s is never a %s", errUnsupported, typeNames(p.types), typeName)
	case len(match) == len(p.types):
		return p, nil
	}
	if n := len(p.steps); n > 0 && p.steps[n-1].op == opMember {
		last := p.steps[n-1]
		var alts []memberAlt
		for _, a := range last.alts {
			if slices.Contains(match, a.out) {
				alts = append(alts, a)
			}
		}
		steps := slices.Clone(p.steps)
		steps[n-1] = step{op: opMember, alts: alts}
		return path{start: p.start, steps: steps, types: match}, nil
	}
	return addStep(p, step{op: opOfType, types: match}, match), nil
}

// prune keeps the paths that reach at least one type conv can index and,
// where a path ends in an element, drops the alternatives it cannot. It
// returns the kept paths and a description of the dropped ones.
func prune(paths []path, conv *converterSet) (kept []path, dropped []string) {
	for _, p := range paths {
		var ok []*fhirType
		for _, t := range p.types {
			if conv[t.kind] != nil {
				ok = append(ok, t)
			}
		}
		switch {
		case len(ok) == 0:
			dropped = append(dropped, typeNames(p.types))
			continue
		case len(ok) < len(p.types):
			if n := len(p.steps); n > 0 && p.steps[n-1].op == opMember {
				last := p.steps[n-1]
				var alts []memberAlt
				for _, a := range last.alts {
					if conv[a.out.kind] != nil {
						alts = append(alts, a)
					}
				}
				steps := slices.Clone(p.steps)
				steps[n-1] = step{op: opMember, alts: alts}
				p = path{start: p.start, steps: steps, types: ok}
			}
		}
		kept = append(kept, p)
	}
	return kept, dropped
}

func addStep(p path, s step, types []*fhirType) path {
	return path{start: p.start, steps: append(slices.Clip(p.steps), s), types: types}
}

func eachPath(in []path, f func(path) (path, error)) ([]path, error) {
	out := make([]path, 0, len(in))
	for _, p := range in {
		q, err := f(p)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

func allTypes(paths []path) []*fhirType {
	var out []*fhirType
	for _, p := range paths {
		for _, t := range p.types {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

func typeNames(ts []*fhirType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.name
	}
	return strings.Join(names, "|")
}
