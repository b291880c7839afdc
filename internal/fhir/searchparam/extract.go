package searchparam

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// maxCombinations bounds the entries one element yields for a composite
// parameter. Components are combined as a cross product (every code with
// every value), which a hostile resource could inflate (ten thousand
// codings times ten thousand values); real data has a handful.
const maxCombinations = 256

// maxComponents bounds the components of a composite parameter (R4 has at
// most three); the extractor keeps per-component state in fixed arrays.
const maxComponents = 8

var evaluators = sync.Pool{New: func() any { return new(evaluator) }}

// Extract returns the index entries of a resource of type resourceType
// for every supported search parameter of that type, its own and those
// defined on Resource (_id, _lastUpdated, _tag, _profile, _security,
// _source). res is the resource as decoded by encoding/json, with
// json.Decoder.UseNumber so that decimals keep their precision (a float64
// is accepted too, at the precision of its shortest form).
//
// Entries come grouped by parameter, in the order of Params, each group
// free of duplicates. Extract never fails: values it cannot read (a
// malformed date, a number where a string belongs) are skipped, so a
// resource should be validated before it is indexed.
func (r *Registry) Extract(resourceType string, res map[string]any) []Entry {
	return r.ExtractAppend(nil, resourceType, res)
}

// ExtractAppend is Extract appending the entries to dst, for a caller that
// keeps one buffer of entries for many resources; with dst nil, the
// result is exactly as long as the entries (nil without any).
func (r *Registry) ExtractAppend(dst []Entry, resourceType string, res map[string]any) []Entry {
	params := r.byResource[resourceType]
	if params == nil {
		params = r.byResource["Resource"]
	}
	ev := evaluators.Get().(*evaluator)
	ev.root = res
	out := ev.out[:0]
	for _, p := range params {
		x := p.compiled.(*extractor)
		start := len(out)
		out = x.extract(ev, out)
		out = dedup(out, start)
	}
	result := dst
	if len(out) > 0 {
		if dst == nil {
			result = make([]Entry, len(out))
			copy(result, out)
		} else {
			result = append(dst, out...)
		}
	}
	ev.out = out
	ev.reset()
	evaluators.Put(ev)
	return result
}

// maxPooledScratch is the largest scratch buffer kept for reuse; the
// buffers of an unusually large resource are left to the collector.
const maxPooledScratch = 1024

// reset drops every reference into the last resource, so that a pooled
// evaluator does not keep it alive. Only the parts of the buffers that
// were used are cleared: the rest is still zero from the last reset.
func (ev *evaluator) reset() {
	ev.root = nil
	clear(ev.items[:ev.itemsUsed])
	clear(ev.parts[:ev.partsUsed])
	clear(ev.out[:len(ev.out)]) // dedup clears what it drops
	ev.items, ev.parts, ev.out = ev.items[:0], ev.parts[:0], ev.out[:0]
	ev.itemsUsed, ev.partsUsed = 0, 0
	if cap(ev.items) > maxPooledScratch {
		ev.items = nil
	}
	if cap(ev.parts) > maxPooledScratch {
		ev.parts = nil
	}
	if cap(ev.out) > maxPooledScratch {
		ev.out = nil
	}
}

// extract appends the entries of one parameter.
func (x *extractor) extract(ev *evaluator, out []Entry) []Entry {
	e := Entry{Param: x.code, Type: x.typ}
	root := item{ev.root, x.root}
	switch {
	case x.test != nil:
		if val, ok := x.test.test(ev, root, x.root); ok {
			e.Code = strconv.FormatBool(val)
			out = append(out, e)
		}
		return out
	case x.components != nil:
		return x.extractComposite(ev, out)
	}
	mark := len(ev.items)
	for i := range x.paths {
		ev.eval(&x.paths[i], root, x.root)
	}
	for _, it := range ev.items[mark:] {
		if f := x.conv[it.t.kind]; f != nil {
			out = f(out, e, it.v)
		}
	}
	ev.items = ev.items[:mark]
	return out
}

// extractComposite appends one entry per combination of component values
// for each element the composite's expression selects (FHIR R4 Search,
// "composite": the components of one match must come from the same
// element, so that code and value of one Observation.component pair up).
//
// Components are evaluated last to first: the later ones are the values
// (value.as(Quantity), …), which most elements lack, and an element with
// an empty component yields nothing, so the codes need not be read.
func (x *extractor) extractComposite(ev *evaluator, out []Entry) []Entry {
	root := item{ev.root, x.root}
	mark := len(ev.items)
	for i := range x.paths {
		ev.eval(&x.paths[i], root, x.root)
	}
	end := len(ev.items)
	// ev.parts holds the entries of all components for one element,
	// component c's in ev.parts[from[c]:to[c]].
	var from, to [maxComponents]int
	n := len(x.components)
	for i := mark; i < end; i++ {
		focus := ev.items[i]
		ev.parts = ev.parts[:0]
		complete := true
		for c := n - 1; c >= 0; c-- {
			comp := &x.components[c]
			cmark := len(ev.items)
			for p := range comp.paths {
				ev.eval(&comp.paths[p], focus, x.root)
			}
			from[c] = len(ev.parts)
			e := Entry{Param: comp.code, Type: comp.typ}
			for _, it := range ev.items[cmark:] {
				if f := comp.conv[it.t.kind]; f != nil {
					ev.parts = f(ev.parts, e, it.v)
				}
			}
			ev.items = ev.items[:cmark]
			ev.partsUsed = max(ev.partsUsed, len(ev.parts))
			ev.parts = dedup(ev.parts, from[c])
			to[c] = len(ev.parts)
			if to[c] == from[c] {
				complete = false
				break
			}
		}
		if complete {
			out = combine(out, Entry{Param: x.code, Type: Composite}, ev.parts, from[:n], to[:n])
		}
	}
	ev.items = ev.items[:mark]
	return out
}

// combine appends the cross product of the component entry lists
// parts[from[c]:to[c]], at most maxCombinations of them. The Components
// of all combinations share one allocation.
func combine(out []Entry, e Entry, parts []Entry, from, to []int) []Entry {
	n := len(from)
	total := 1
	for c := range n {
		total *= to[c] - from[c]
		if total >= maxCombinations {
			total = maxCombinations
			break
		}
	}
	backing := make([]Entry, total*n)
	var idx [maxComponents]int
	copy(idx[:n], from)
	for k := range total {
		comps := backing[k*n : (k+1)*n : (k+1)*n]
		for c := range n {
			comps[c] = parts[idx[c]]
		}
		e.Components = comps
		out = append(out, e)
		// Advance the last component fastest, like an odometer.
		for c := n - 1; c >= 0; c-- {
			if idx[c]++; idx[c] < to[c] {
				break
			}
			idx[c] = from[c]
		}
	}
	return out
}

// dedup removes duplicate entries from out[start:], keeping the first of
// each, and returns the shortened slice.
func dedup(out []Entry, start int) []Entry {
	group := out[start:]
	if len(group) < 2 {
		return out
	}
	kept := group[:0]
	if len(group) <= 16 {
		for _, e := range group {
			dup := false
			for _, k := range kept {
				if equalEntries(&e, &k) {
					dup = true
					break
				}
			}
			if !dup {
				kept = append(kept, e)
			}
		}
	} else {
		// Sorted (stably), equal entries are neighbours, the first of
		// each run first. An AuditEvent of a search lists dozens of
		// entities: building a key string for each was half of its
		// extraction, and hashing them into a map a third.
		order := make([]int, len(group))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return compareEntries(&group[a], &group[b]) })
		dup := make([]bool, len(group))
		for k := 1; k < len(order); k++ {
			if equalEntries(&group[order[k-1]], &group[order[k]]) {
				dup[order[k]] = true
			}
		}
		for i := range group {
			if !dup[i] {
				kept = append(kept, group[i])
			}
		}
	}
	clear(group[len(kept):])
	return out[:start+len(kept)]
}

func equalEntries(a, b *Entry) bool {
	if a.Param != b.Param || a.Type != b.Type || a.Text != b.Text || a.Exact != b.Exact ||
		a.System != b.System || a.Code != b.Code || a.RefType != b.RefType || a.RefID != b.RefID ||
		a.URL != b.URL || a.Lo != b.Lo || a.Hi != b.Hi || a.Num != b.Num || a.NumLo != b.NumLo ||
		a.NumHi != b.NumHi || len(a.Components) != len(b.Components) {
		return false
	}
	for i := range a.Components {
		if !equalEntries(&a.Components[i], &b.Components[i]) {
			return false
		}
	}
	return true
}

// compareEntries is a total order of entries in which equalEntries
// entries are equal (and entries with a NaN compare equal only when
// their NaNs are in the same places).
func compareEntries(a, b *Entry) int {
	for _, f := range [...][2]string{
		{a.Param, b.Param}, {string(a.Type), string(b.Type)}, {a.Text, b.Text}, {a.Exact, b.Exact},
		{a.System, b.System}, {a.Code, b.Code}, {a.RefType, b.RefType}, {a.RefID, b.RefID}, {a.URL, b.URL},
	} {
		if c := strings.Compare(f[0], f[1]); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.Lo, b.Lo); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Hi, b.Hi); c != 0 {
		return c
	}
	for _, f := range [...][2]float64{{a.Num, b.Num}, {a.NumLo, b.NumLo}, {a.NumHi, b.NumHi}} {
		if c := cmp.Compare(f[0], f[1]); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(len(a.Components), len(b.Components)); c != 0 {
		return c
	}
	for i := range a.Components {
		if c := compareEntries(&a.Components[i], &b.Components[i]); c != 0 {
			return c
		}
	}
	return 0
}
