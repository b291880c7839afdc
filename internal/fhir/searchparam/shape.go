package searchparam

// A Shape is the part of a resource's JSON that Extract reads for one
// resource type: the members of an object that it follows, each with the
// Shape of its value (the elements of an array share the array's). A nil
// *Shape is the whole value. A decoder that builds only what a Shape
// holds gives Extract the same entries for less work.
type Shape struct {
	Members map[string]*Shape
}

// Member returns whether Extract reads member name of an object of shape
// s, and the shape of its value (nil: all of it).
func (s *Shape) Member(name string) (sub *Shape, ok bool) {
	if s == nil {
		return nil, true
	}
	sub, ok = s.Members[name]
	return sub, ok
}

// Cut returns the decoded JSON value v without what s leaves out: maps
// and slices are copied where s leaves something out, other values
// shared.
func (s *Shape) Cut(v any) any {
	if s == nil {
		return v
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(s.Members))
		for k, e := range v {
			if sub, ok := s.Member(k); ok {
				out[k] = sub.Cut(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = s.Cut(e)
		}
		return out
	}
	return v
}

// Shape returns what Extract(resourceType, res) reads of res: leaving out
// of res every member the Shape does not hold, at any level, does not
// change the entries. It is nil (all of it) when an expression may read
// anything.
//
// Every compiled path of the type's parameters is followed member by
// member from the resource; where it stops being a chain of members (a
// where(), an ofType(), its end), the value it reached is kept whole, for
// the conditions and conversions that read inside it.
func (r *Registry) Shape(resourceType string) *Shape {
	params := r.byResource[resourceType]
	if params == nil {
		params = r.byResource["Resource"]
	}
	root := &shapeNode{}
	for _, p := range params {
		x, _ := p.compiled.(*extractor)
		if x == nil || x.test != nil {
			return nil
		}
		for i := range x.components {
			for j := range x.components[i].paths {
				if readsRoot(&x.components[i].paths[j]) {
					return nil
				}
			}
		}
		for i := range x.paths {
			if !root.add(&x.paths[i]) {
				return nil
			}
		}
	}
	return root.shape()
}

// shapeNode is a Shape being built; whole marks a value kept whole.
type shapeNode struct {
	whole   bool
	members map[string]*shapeNode
}

// add adds the members that path p follows from the resource, and reports
// whether it could (false: p reads from elsewhere than the resource and
// its members).
func (n *shapeNode) add(p *path) bool {
	if readsRoot(p) {
		return false
	}
	cur := []*shapeNode{n}
	for i := range p.steps {
		st := &p.steps[i]
		if st.op != opMember {
			break // the values reached are kept whole
		}
		var next []*shapeNode
		for _, c := range cur {
			if c.whole {
				continue
			}
			for _, alt := range st.alts {
				next = append(next, c.child(alt.key))
			}
		}
		cur = next
	}
	for _, c := range cur {
		c.whole, c.members = true, nil
	}
	return true
}

func (n *shapeNode) child(key string) *shapeNode {
	if n.members == nil {
		n.members = map[string]*shapeNode{}
	}
	c := n.members[key]
	if c == nil {
		c = &shapeNode{}
		n.members[key] = c
	}
	return c
}

func (n *shapeNode) shape() *Shape {
	if n.whole {
		return nil
	}
	s := &Shape{Members: make(map[string]*Shape, len(n.members))}
	for k, c := range n.members {
		s.Members[k] = c.shape()
	}
	return s
}

// readsRoot reports whether a condition within p (or p's own later
// steps' conditions) reads a path from the resource root: what it reads
// is then not under the value the condition looks at.
func readsRoot(p *path) bool {
	for i := range p.steps {
		if c := p.steps[i].cond; c != nil && condReadsRoot(c) {
			return true
		}
	}
	return false
}

func condReadsRoot(c *cond) bool {
	for i := range c.paths {
		if c.paths[i].start == startRoot || readsRoot(&c.paths[i]) {
			return true
		}
	}
	for _, a := range c.args {
		if a != nil && condReadsRoot(a) {
			return true
		}
	}
	return false
}
