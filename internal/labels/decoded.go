package labels

import (
	"fmt"
	"strconv"
)

// LabelResource is Label of a resource already decoded as FHIR JSON
// (encoding/json into map[string]any, member names exact, as Warden's
// validating decoder gives it): the same result, without encoding the
// resource to read it again. A resource that fails validation may be
// labelled differently than Label would (Label also matches member
// names regardless of case); callers label only resources that passed
// it.
func (l *Labeller) LabelResource(res map[string]any) (Result, error) {
	rt, _ := res["resourceType"].(string)
	if rt == "" {
		return Result{}, fmt.Errorf("%w: no resourceType", ErrMalformedResource)
	}
	r, err := codedFromMap(res)
	if err != nil {
		if !scannedTypes[rt] {
			return l.classify(nil), nil // as Label: elements read differently elsewhere
		}
		return Result{}, fmt.Errorf("%w: %v", ErrMalformedResource, err)
	}
	var out []codedElement
	if err := collectDecoded(r, rt, &out, 0); err != nil {
		return Result{}, err
	}
	return l.classify(out), nil
}

// collectDecoded is collect with contained resources taken from the
// decoded map.
func collectDecoded(r *codedResource, base string, out *[]codedElement, depth int) error {
	contained := r.containedMaps
	r.Contained, r.containedMaps = nil, nil
	if err := collect(r, base, out, depth); err != nil {
		return err
	}
	if depth > 0 || !scannedTypes[r.ResourceType] {
		return nil
	}
	for i, m := range contained {
		c, err := codedFromMap(m)
		if err != nil {
			return fmt.Errorf("%w: contained[%d]: %v", ErrMalformedResource, i, err)
		}
		if err := collectDecoded(c, base+".contained["+strconv.Itoa(i)+"]", out, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// codedFromMap fills the targeted decode of a resource from its decoded
// map, failing where encoding/json would fail to decode its JSON into
// codedResource (an element of the wrong JSON type).
func codedFromMap(m map[string]any) (*codedResource, error) {
	r := &codedResource{}
	if v, ok := m["resourceType"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("resourceType: not a string")
		}
		r.ResourceType = s
	}
	var err error
	if r.Code, err = conceptAt(m, "code"); err != nil {
		return nil, err
	}
	if r.ValueCodeableConcept, err = conceptAt(m, "valueCodeableConcept"); err != nil {
		return nil, err
	}
	if r.MedicationCodeableConcept, err = conceptAt(m, "medicationCodeableConcept"); err != nil {
		return nil, err
	}
	if r.ReasonCode, err = conceptsAt(m, "reasonCode"); err != nil {
		return nil, err
	}
	if r.ConclusionCode, err = conceptsAt(m, "conclusionCode"); err != nil {
		return nil, err
	}
	if err := objects(m, "component", func(e map[string]any) error {
		var c componentElement
		var err error
		if c.Code, err = conceptAt(e, "code"); err != nil {
			return err
		}
		if c.ValueCodeableConcept, err = conceptAt(e, "valueCodeableConcept"); err != nil {
			return err
		}
		r.Component = append(r.Component, c)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := objects(m, "activity", func(e map[string]any) error {
		var a activityElement
		d, ok := e["detail"]
		if ok && d != nil {
			dm, ok := d.(map[string]any)
			if !ok {
				return fmt.Errorf("activity.detail: not an object")
			}
			a.Detail = &activityDetail{}
			var err error
			if a.Detail.Code, err = conceptAt(dm, "code"); err != nil {
				return err
			}
			if a.Detail.ReasonCode, err = conceptsAt(dm, "reasonCode"); err != nil {
				return err
			}
		}
		r.Activity = append(r.Activity, a)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, e := range [...]struct {
		array, field string
		add          func(*codeableConcept)
	}{
		{"item", "productOrService", func(c *codeableConcept) { r.Item = append(r.Item, itemElement{ProductOrService: c}) }},
		{"diagnosis", "diagnosisCodeableConcept", func(c *codeableConcept) {
			r.Diagnosis = append(r.Diagnosis, diagnosisElement{DiagnosisCodeableConcept: c})
		}},
		{"procedure", "procedureCodeableConcept", func(c *codeableConcept) {
			r.Procedure = append(r.Procedure, procedureElement{ProcedureCodeableConcept: c})
		}},
	} {
		if err := objects(m, e.array, func(o map[string]any) error {
			c, err := conceptAt(o, e.field)
			e.add(c)
			return err
		}); err != nil {
			return nil, err
		}
	}
	// type and category: a list or one concept, depending on the type
	// (addRaw reads them per type, and fails on the wrong shape where it
	// reads them, as it does for JSON).
	for _, f := range [...]struct {
		name string
		dst  *flexConcepts
	}{{"type", &r.Type}, {"category", &r.Category}} {
		v, ok := m[f.name]
		if !ok || v == nil {
			continue
		}
		f.dst.set = true
		switch v := v.(type) {
		case map[string]any:
			f.dst.one, _ = concept(v, f.name) // nil when malformed
		case []any:
			if cs, err := conceptList(v, f.name); err == nil {
				f.dst.list = cs
			}
		}
	}
	if err := objects(m, "contained", func(e map[string]any) error {
		r.containedMaps = append(r.containedMaps, e)
		return nil
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// conceptAt returns the CodeableConcept m[name], nil when absent.
func conceptAt(m map[string]any, name string) (*codeableConcept, error) {
	v, ok := m[name]
	if !ok || v == nil {
		return nil, nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not an object", name)
	}
	return concept(o, name)
}

// conceptsAt returns the CodeableConcept list m[name].
func conceptsAt(m map[string]any, name string) ([]codeableConcept, error) {
	v, ok := m[name]
	if !ok || v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: not an array", name)
	}
	return conceptList(a, name)
}

// conceptList reads a list of CodeableConcepts (empty, not nil, when a
// is: addRaw tells a list from a missing element by that).
func conceptList(a []any, name string) ([]codeableConcept, error) {
	out := make([]codeableConcept, 0, len(a))
	err := eachObject(a, name, func(o map[string]any) error {
		c, err := concept(o, name)
		if err == nil {
			out = append(out, *c)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// concept reads the codings of a CodeableConcept.
func concept(o map[string]any, name string) (*codeableConcept, error) {
	c := &codeableConcept{}
	v, ok := o["coding"]
	if !ok || v == nil {
		return c, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s.coding: not an array", name)
	}
	c.Coding = make([]jsonCoding, 0, len(a))
	for _, e := range a {
		var jc jsonCoding
		if e != nil {
			co, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s.coding: an element is not an object", name)
			}
			for _, f := range [...]struct {
				key string
				dst *string
			}{{"system", &jc.System}, {"code", &jc.Code}, {"display", &jc.Display}} {
				fv, ok := co[f.key]
				if !ok || fv == nil {
					continue
				}
				s, ok := fv.(string)
				if !ok {
					return nil, fmt.Errorf("%s.coding.%s: not a string", name, f.key)
				}
				*f.dst = s
			}
		}
		c.Coding = append(c.Coding, jc)
	}
	return c, nil
}

// objects calls fn on each object of the array m[name] (see eachObject).
func objects(m map[string]any, name string, fn func(map[string]any) error) error {
	v, ok := m[name]
	if !ok || v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: not an array", name)
	}
	return eachObject(a, name, fn)
}

// eachObject calls fn on each element of a, with an empty object for a
// null one (as encoding/json decodes null into a struct); an element
// that is not an object is an error.
func eachObject(a []any, name string, fn func(map[string]any) error) error {
	for _, e := range a {
		if e == nil {
			e = map[string]any{}
		}
		o, ok := e.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: an element is not an object", name)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}
