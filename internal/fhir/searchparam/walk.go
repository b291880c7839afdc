package searchparam

import "encoding/json"

// This file is the run-time half of expression compilation: walking a
// resource decoded from JSON (map[string]any, []any, string, bool and
// json.Number, as json.Decoder.UseNumber produces) along compiled paths.
//
// A walk never allocates once its scratch buffer has grown: reached values
// are appended to evaluator.items, and nested evaluations (where()
// conditions, composite components) use the tail of the same buffer and
// truncate it when done.

// item is one value reached by a path together with its FHIR type, which
// the compiler knows statically for every step (for a choice element the
// JSON key says which of its types the value has).
type item struct {
	v any
	t *fhirType
}

// pathStart says where a path begins.
type pathStart uint8

const (
	startFocus pathStart = iota // the input of the expression: the resource, or the element a where() or a composite component looks at
	startRoot                   // the resource itself (%resource, or a path starting with the resource type's name)
)

// path is a compiled path expression without unions: a start and the
// steps that follow. types are the possible types of what it reaches.
type path struct {
	start pathStart
	steps []step
	types []*fhirType
}

// stepOp is what one step of a path does to each value it is given.
type stepOp uint8

const (
	opMember stepOp = iota // follow a child element
	opOfType               // keep values of some types only
	opWhere                // keep values for which a condition holds
)

type step struct {
	op    stepOp
	alts  []memberAlt // opMember
	types []*fhirType // opOfType
	cond  *cond       // opWhere
}

// memberAlt is one way of following an element: from a value of type in,
// the JSON property key holds values of type out. A plain element has one
// alternative per input type, a choice element one per allowed type.
type memberAlt struct {
	in  *fhirType
	key string
	out *fhirType
}

// evaluator is the scratch state of one extraction.
type evaluator struct {
	root  any     // the resource
	items []item  // values reached, used as a stack
	parts []Entry // composite component entries, one list per component
	out   []Entry // the entries of the resource, copied out when complete

	// itemsUsed and partsUsed are the high-water marks of items and
	// parts, up to which reset must clear them.
	itemsUsed, partsUsed int
}

// eval appends to ev.items the values p reaches from focus.
func (ev *evaluator) eval(p *path, focus item, root *fhirType) {
	if p.start == startRoot {
		focus = item{ev.root, root}
	}
	ev.walk(p.steps, focus, root)
	ev.itemsUsed = max(ev.itemsUsed, len(ev.items))
}

func (ev *evaluator) walk(steps []step, it item, root *fhirType) {
	if len(steps) == 0 {
		ev.items = append(ev.items, it)
		return
	}
	s, rest := &steps[0], steps[1:]
	switch s.op {
	case opMember:
		m, ok := it.v.(map[string]any)
		if !ok {
			return
		}
		for i := range s.alts {
			a := &s.alts[i]
			if a.in != it.t {
				continue
			}
			switch v := m[a.key].(type) {
			case nil:
			case []any:
				for _, x := range v {
					if x != nil {
						ev.walk(rest, item{x, a.out}, root)
					}
				}
			default:
				ev.walk(rest, item{v, a.out}, root)
			}
		}
	case opOfType:
		for _, t := range s.types {
			if t == it.t {
				ev.walk(rest, it, root)
				return
			}
		}
	case opWhere:
		if val, ok := s.cond.test(ev, it, root); ok && val {
			ev.walk(rest, it, root)
		}
	}
}

// condOp is the kind of a compiled boolean expression.
type condOp uint8

const (
	condConst     condOp = iota // lit
	condEq                      // any value of paths equals lit
	condNe                      // no value of paths equals lit
	condExists                  // paths reach something
	condEmpty                   // paths reach nothing
	condAnd                     // args[0] and args[1]
	condOr                      // args[0] or args[1]
	condResolveIs               // the focus is a Reference to a resource of type typeName
)

// cond is a compiled boolean FHIRPath expression. It follows FHIRPath's
// three-valued logic: test returns ok == false for the empty result
// (FHIRPath, "Boolean logic"), which where() treats as false.
type cond struct {
	op       condOp
	paths    []path
	lit      any // string, bool or int64
	args     [2]*cond
	typeName string
}

func (c *cond) test(ev *evaluator, focus item, root *fhirType) (val, ok bool) {
	switch c.op {
	case condConst:
		b, _ := c.lit.(bool)
		return b, true
	case condExists, condEmpty:
		mark := len(ev.items)
		for i := range c.paths {
			ev.eval(&c.paths[i], focus, root)
		}
		found := len(ev.items) > mark
		ev.items = ev.items[:mark]
		return found == (c.op == condExists), true
	case condEq, condNe:
		mark := len(ev.items)
		for i := range c.paths {
			ev.eval(&c.paths[i], focus, root)
		}
		if len(ev.items) == mark {
			return false, false
		}
		eq := false
		for _, it := range ev.items[mark:] {
			if equalLiteral(it.v, c.lit) {
				eq = true
				break
			}
		}
		ev.items = ev.items[:mark]
		return eq == (c.op == condEq), true
	case condAnd:
		a, aok := c.args[0].test(ev, focus, root)
		if aok && !a {
			return false, true
		}
		b, bok := c.args[1].test(ev, focus, root)
		switch {
		case bok && !b:
			return false, true
		case aok && bok:
			return true, true
		}
		return false, false
	case condOr:
		a, aok := c.args[0].test(ev, focus, root)
		if aok && a {
			return true, true
		}
		b, bok := c.args[1].test(ev, focus, root)
		switch {
		case bok && b:
			return true, true
		case aok && bok:
			return false, true
		}
		return false, false
	case condResolveIs:
		m, _ := focus.v.(map[string]any)
		ref, _ := m["reference"].(string)
		typ, _, _ := parseReference(ref)
		return typ == c.typeName, true
	}
	return false, false
}

// equalLiteral implements FHIRPath "=" between a JSON value and a literal
// of the expression. Values of different types are not equal.
func equalLiteral(v, lit any) bool {
	switch l := lit.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == l
	case bool:
		b, ok := v.(bool)
		return ok && b == l
	case int64:
		switch n := v.(type) {
		case json.Number:
			f, err := n.Float64()
			return err == nil && f == float64(l)
		case float64:
			return n == float64(l)
		}
	}
	return false
}
