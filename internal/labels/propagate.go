package labels

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Propagates reports whether resources of type typ inherit labels
// through references (the policy names paths for it).
func (l *Labeller) Propagates(typ string) bool { return len(l.via[typ]) > 0 }

// Propagate returns the sensitivity labels resource inherits through the
// reference elements named by the policy's PropagateVia for its type:
// for each reference found there, labelsOf(reference) returns the labels
// of the referenced resource (the caller resolves references; Propagate
// does no I/O), and every sensitivity label among them (any system other
// than v3-Confidentiality) is inherited. The confidentiality coding is
// the highest level of the inherited categories (a category this labeller
// does not know counts as R), or N when nothing is inherited. Combine the
// result with Label's using Merge.
//
// References are passed to labelsOf exactly as written
// ("Condition/123", "urn:uuid:…", "#contained-id").
func (l *Labeller) Propagate(resource []byte, labelsOf func(ref string) []Coding) (Result, error) {
	if err := checkMembers(resource); err != nil {
		return Result{}, err
	}
	// One decode of the top level (the resource is read once: every
	// write of a propagating type comes here).
	var root map[string]json.RawMessage
	if err := json.Unmarshal(resource, &root); err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrMalformedResource, err)
	}
	if root == nil {
		return Result{}, fmt.Errorf("%w: not an object", ErrMalformedResource)
	}
	var typ string
	if err := resourceTypeOf(root, &typ); err != nil {
		return Result{}, err
	}
	if typ == "" {
		return Result{}, fmt.Errorf("%w: no resourceType", ErrMalformedResource)
	}
	paths := l.via[typ]
	if len(paths) == 0 || labelsOf == nil {
		return Result{Security: []Coding{Confidentiality("N")}}, nil
	}
	var why []Reason
	inherited := map[string]Coding{}
	for _, p := range paths {
		refs, err := referencesAt(root, p, typ)
		if err != nil {
			return Result{}, err
		}
		for _, ref := range refs {
			for _, c := range labelsOf(ref.ref) {
				if c.System == ConfidentialitySystem || c.Code == "" {
					continue
				}
				why = append(why, Reason{Category: c.Code, Path: ref.path, System: c.System, Code: c.Code,
					Display: c.Display, Match: "propagated", Ref: ref.ref})
				if _, ok := inherited[c.Code]; !ok {
					inherited[c.Code] = Coding{System: c.System, Code: c.Code, Display: c.Display}
				}
			}
		}
	}
	res := l.result(why)
	// Keep the inherited codings' own systems (a site category from
	// another labeller keeps its system).
	for i, c := range res.Security {
		if in, ok := inherited[c.Code]; ok && c.System != ConfidentialitySystem {
			if _, known := l.conf[c.Code]; !known {
				res.Security[i] = in
			}
		}
	}
	return res, nil
}

// resourceTypeOf reads the resourceType member of a decoded top level as
// encoding/json would into a field of that name: the exact name, else one
// equal but for case (checkMembers has ruled out two such members).
func resourceTypeOf(root map[string]json.RawMessage, out *string) error {
	raw, ok := root["resourceType"]
	if !ok {
		for k, v := range root {
			if strings.EqualFold(k, "resourceType") {
				raw, ok = v, true
				break
			}
		}
	}
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedResource, err)
	}
	return nil
}

type foundRef struct{ path, ref string }

// referencesAt walks elements (arrays are flattened) and returns the
// Reference.reference strings at the end of the path.
func referencesAt(root map[string]json.RawMessage, elems []string, base string) ([]foundRef, error) {
	type node struct {
		path string
		raw  json.RawMessage
	}
	cur := []node{{path: base, raw: nil}}
	obj := []map[string]json.RawMessage{root}
	for _, e := range elems {
		var next []node
		var nextObj []map[string]json.RawMessage
		for k, o := range obj {
			raw, ok := o[e]
			if !ok {
				continue
			}
			p := cur[k].path + "." + e
			raw = json.RawMessage(strings.TrimSpace(string(raw)))
			var items []json.RawMessage
			if len(raw) > 0 && raw[0] == '[' {
				if err := json.Unmarshal(raw, &items); err != nil {
					return nil, fmt.Errorf("%w: %s: %v", ErrMalformedResource, p, err)
				}
				for i, it := range items {
					next = append(next, node{path: p + "[" + strconv.Itoa(i) + "]", raw: it})
				}
			} else {
				next = append(next, node{path: p, raw: raw})
			}
		}
		kept := next[:0]
		for _, n := range next {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(n.raw, &m); err != nil || m == nil {
				continue // not an object: nothing to follow
			}
			kept = append(kept, n)
			nextObj = append(nextObj, m)
		}
		cur, obj = kept, nextObj
	}
	var out []foundRef
	for k, o := range obj {
		raw, ok := o["reference"]
		if !ok {
			continue
		}
		var ref string
		if err := json.Unmarshal(raw, &ref); err != nil {
			return nil, fmt.Errorf("%w: %s.reference: %v", ErrMalformedResource, cur[k].path, err)
		}
		if ref != "" {
			out = append(out, foundRef{path: cur[k].path, ref: ref})
		}
	}
	return out, nil
}
