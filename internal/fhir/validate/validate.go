// Package validate owns the checks a FHIR R4 resource body passes before
// it is stored: a bounded, strict JSON decoder (Decode) and a structural
// validator (Validate) driven by the R4 model of package model.
//
// Validate checks what the R4 JSON format (§2.6.2) and the base
// StructureDefinitions say: known resource type, known elements (including
// "_name" primitive extension siblings, extensions and contained
// resources), JSON types, array versus single value, primitive formats
// (the spec's regexes), cardinality, one type per choice element, codes of
// required bindings, and the form and target type of references. It does
// not evaluate FHIRPath invariants, profiles or terminology beyond the core
// value sets.
//
// Issues name the element (Expression) and the rule, and never contain the
// offending value: an OperationOutcome built from them echoes no PHI.
// The package performs no I/O and never imports net/http.
package validate

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/model"
)

// Issue is one problem found in a resource, shaped like an
// OperationOutcome.issue.
type Issue struct {
	Severity   string // "error", or "information" for the note that validation stopped early
	Code       string // FHIR IssueType: structure, required, value, code-invalid, invalid, invariant, too-long, …
	Expression string // FHIRPath-like location: "Patient.name[0].given[1]"
	Message    string // what is wrong, without the value
}

// MaxIssues is the number of issues after which validation stops.
const MaxIssues = 100

// Validate checks a decoded resource (see Decode) against the R4 model and
// returns its issues, nil when there are none. It accepts numbers as
// json.Number (what Decode produces), float64 or int.
func Validate(res map[string]any) []Issue {
	return ValidateType("", res)
}

// ValidateType is Validate for a body that must be a resource of type typ
// (the type in a request URL); an empty typ accepts any resource type.
func ValidateType(typ string, res map[string]any) []Issue {
	m, err := model.R4()
	if err != nil {
		return []Issue{{Severity: "fatal", Code: "exception", Message: "The FHIR R4 model is unavailable"}}
	}
	v := newValidator(m)
	if rt, _ := res["resourceType"].(string); typ != "" && rt != typ {
		v.add("invalid", "resourceType", "Resource type does not match the expected type "+typ)
		return v.issues
	}
	return v.run(res)
}

func newValidator(m *model.Model) *validator {
	return &validator{
		m:           m,
		path:        make([]byte, 0, 128),
		elementType: m.Type("Element"),
		id:          m.Type("id"),
		uuid:        m.Type("uuid"),
		oid:         m.Type("oid"),
		uri:         m.Type("uri"),
	}
}

// run checks the resource res and returns the issues, sorted by location.
func (v *validator) run(res map[string]any) []Issue {
	v.resource(res, false)
	return v.finish()
}

type validator struct {
	m      *model.Model
	issues []Issue
	full   bool   // MaxIssues reached
	path   []byte // location of the value being checked
	scope  *resourceScope
	bundle *bundleScope

	elementType, id, uuid, oid, uri *model.Type // looked up once
}

// resourceScope is what local references ("#id") in a resource and in its
// contained resources resolve to.
type resourceScope struct {
	typ       string            // the container's resource type
	contained map[string]string // contained resource id → resource type
}

// bundleScope is what references inside a Bundle's entries resolve to.
type bundleScope struct {
	transaction bool              // conditional references ("Type?query") are allowed
	fullURLs    map[string]string // entry.fullUrl → resource type
}

func (v *validator) add(code, expr, msg string) {
	if v.full {
		return
	}
	if len(v.issues) == MaxIssues {
		v.full = true
		return
	}
	v.issues = append(v.issues, Issue{Severity: "error", Code: code, Expression: expr, Message: msg})
}

// addHere records an issue at the current path.
func (v *validator) addHere(code, msg string) { v.add(code, string(v.path), msg) }

func (v *validator) finish() []Issue {
	sort.SliceStable(v.issues, func(i, j int) bool { return v.issues[i].Expression < v.issues[j].Expression })
	if v.full {
		v.issues = append(v.issues, Issue{Severity: "information", Code: "too-costly", Message: "Validation stopped after " + strconv.Itoa(MaxIssues) + " issues"})
	}
	return v.issues
}

// push appends ".name" (or "name" at the root) to the path and returns the
// length to restore.
func (v *validator) push(name string) int {
	n := len(v.path)
	if n > 0 {
		v.path = append(v.path, '.')
	}
	v.path = append(v.path, name...)
	return n
}

func (v *validator) pushIndex(i int) int {
	n := len(v.path)
	v.path = append(v.path, '[')
	v.path = strconv.AppendInt(v.path, int64(i), 10)
	v.path = append(v.path, ']')
	return n
}

func (v *validator) pop(n int) { v.path = v.path[:n] }

// resource checks a resource at the current path (empty for the body
// itself). contained is true for DomainResource.contained entries.
func (v *validator) resource(obj map[string]any, contained bool) {
	rt, ok := obj["resourceType"].(string)
	t := v.m.Resource(rt)
	if t == nil {
		n := v.push("resourceType")
		if _, present := obj["resourceType"]; !present {
			v.addHere("required", "A resource needs a resourceType")
		} else if !ok {
			v.addHere("structure", "resourceType must be a string")
		} else {
			v.addHere("invalid", "Unknown resource type")
		}
		v.pop(n)
		return
	}
	root := len(v.path) == 0
	if root {
		v.path = append(v.path, rt...)
	}

	if contained {
		v.containedRules(obj)
	} else {
		saved := v.scope
		v.scope = newResourceScope(rt, obj)
		defer func() { v.scope = saved }()
	}
	if rt == "Bundle" {
		saved := v.bundle
		v.bundle = newBundleScope(obj)
		defer func() { v.bundle = saved }()
	}
	v.object(t, obj, true)
	if root {
		v.path = v.path[:0]
	}
}

func newResourceScope(rt string, obj map[string]any) *resourceScope {
	s := &resourceScope{typ: rt}
	list, _ := obj["contained"].([]any)
	for _, c := range list {
		c, _ := c.(map[string]any)
		id, _ := c["id"].(string)
		typ, _ := c["resourceType"].(string)
		if id != "" && typ != "" {
			if s.contained == nil {
				s.contained = map[string]string{}
			}
			s.contained[id] = typ
		}
	}
	return s
}

func newBundleScope(obj map[string]any) *bundleScope {
	typ, _ := obj["type"].(string)
	s := &bundleScope{transaction: typ == "transaction", fullURLs: map[string]string{}}
	entries, _ := obj["entry"].([]any)
	for _, e := range entries {
		e, _ := e.(map[string]any)
		url, _ := e["fullUrl"].(string)
		res, _ := e["resource"].(map[string]any)
		if rt, _ := res["resourceType"].(string); url != "" && rt != "" {
			s.fullURLs[url] = rt
		}
	}
	return s
}

// containedRules checks the R4 invariants on contained resources
// (DomainResource dom-2, dom-4, dom-5).
func (v *validator) containedRules(obj map[string]any) {
	if _, ok := obj["contained"]; ok {
		n := v.push("contained")
		v.addHere("invariant", "A contained resource must not contain resources (dom-2)")
		v.pop(n)
	}
	meta, _ := obj["meta"].(map[string]any)
	if _, ok := meta["versionId"]; ok {
		v.add("invariant", string(v.path)+".meta.versionId", "A contained resource must not have a versionId (dom-4)")
	}
	if _, ok := meta["lastUpdated"]; ok {
		v.add("invariant", string(v.path)+".meta.lastUpdated", "A contained resource must not have a lastUpdated (dom-4)")
	}
	if _, ok := meta["security"]; ok {
		v.add("invariant", string(v.path)+".meta.security", "A contained resource must not have security labels (dom-5)")
	}
}

// object checks the properties of a JSON object of type t at the current
// path.
func (v *validator) object(t *model.Type, obj map[string]any, isResource bool) {
	if len(obj) == 0 {
		v.addHere("structure", "An object must not be empty")
		return
	}
	var seen [8]*model.Choice
	nseen := 0
	for k, val := range obj {
		if v.full {
			return
		}
		if isResource && k == "resourceType" {
			continue
		}
		name, ext := k, false
		if len(k) > 1 && k[0] == '_' {
			name, ext = k[1:], true
		}
		el := t.Element(name)
		if el == nil || ext && el.ExtensionName() == "" || ext && !el.Type.IsPrimitive() {
			v.unknown(t, k)
			continue
		}
		if ext {
			if _, both := obj[name]; both {
				continue // checked with the value
			}
			v.element(el, nil, false, val, true)
		} else {
			var extVal any
			hasExt := false
			if el.ExtensionName() != "" {
				extVal, hasExt = obj[el.ExtensionName()]
			}
			v.element(el, val, true, extVal, hasExt)
		}
		if c := el.Choice; c != nil {
			dup := false
			for _, s := range seen[:nseen] {
				dup = dup || s == c
			}
			switch {
			case dup:
				n := v.push(c.Name + "[x]")
				v.addHere("structure", "Only one type of "+c.Name+"[x] may be present")
				v.pop(n)
			case nseen < len(seen):
				seen[nseen] = c
				nseen++
			}
		}
	}
	for _, el := range t.Required {
		if !present(obj, el) {
			n := v.push(el.Name)
			v.addHere("required", "Missing required element "+el.Name+" (minimum cardinality "+strconv.Itoa(el.Min)+")")
			v.pop(n)
		}
	}
	for _, c := range t.Choices {
		if c.Min == 0 {
			continue
		}
		found := false
		for _, el := range c.Elements {
			found = found || present(obj, el)
		}
		if !found {
			n := v.push(c.Name + "[x]")
			v.addHere("required", "Missing required element "+c.Name+"[x]")
			v.pop(n)
		}
	}
}

func present(obj map[string]any, el *model.Element) bool {
	if _, ok := obj[el.Name]; ok {
		return true
	}
	if el.ExtensionName() == "" {
		return false
	}
	_, ok := obj[el.ExtensionName()]
	return ok
}

func (v *validator) unknown(t *model.Type, k string) {
	n := v.push(k)
	defer v.pop(n)
	switch {
	case k == "fhir_comments" || k == "_fhir_comments":
		v.addHere("structure", "fhir_comments is not allowed in FHIR R4 JSON")
		return
	case k == "resourceType":
		v.addHere("structure", "Only a resource has a resourceType")
		return
	case len(k) > 1 && k[0] == '_' && t.Element(k[1:]) != nil:
		v.addHere("structure", "A \"_\" extension property is allowed only for a primitive element (not for an id or url attribute)")
		return
	}
	for _, c := range t.Choices {
		if strings.HasPrefix(k, c.Name) {
			v.addHere("structure", "Unknown element: not one of the types allowed for "+c.Name+"[x]")
			return
		}
	}
	v.addHere("structure", "Unknown element")
}

// element checks one element: its value (if hasVal) and, for primitives,
// its "_name" extension sibling (if hasExt).
func (v *validator) element(el *model.Element, val any, hasVal bool, ext any, hasExt bool) {
	n := v.push(el.Name)
	defer v.pop(n)
	if el.Max == 0 {
		v.addHere("structure", "Element is not allowed here")
		return
	}
	if !el.Array {
		v.single(el, val, hasVal, ext, hasExt)
		return
	}
	items, ok := val.([]any)
	if hasVal && !ok {
		v.addHere("structure", "Element must be an array (maximum cardinality "+maxText(el.Max)+")")
		return
	}
	exts, ok := ext.([]any)
	if hasExt && !ok {
		v.addHere("structure", "Extension property of an array element must be an array")
		return
	}
	if hasVal && len(items) == 0 || hasExt && len(exts) == 0 {
		v.addHere("structure", "An array must not be empty")
		return
	}
	if hasVal && hasExt && len(items) != len(exts) {
		v.addHere("structure", "Value array and its \"_\" extension array must have the same length")
		return
	}
	count := max(len(items), len(exts))
	if el.Max != model.Unbounded && count > el.Max {
		v.addHere("structure", "Too many items (maximum cardinality "+maxText(el.Max)+")")
	}
	for i := 0; i < count && !v.full; i++ {
		var item, extItem any
		if hasVal {
			item = items[i]
		}
		if hasExt {
			extItem = exts[i]
		}
		m := v.pushIndex(i)
		switch {
		case item == nil && extItem == nil:
			v.addHere("structure", "Array item must not be null")
		case !el.Type.IsPrimitive():
			v.complexValue(el, item)
		default:
			if item != nil {
				v.primitive(el, item)
			}
			if extItem != nil {
				v.primitiveExtension(extItem)
			}
		}
		v.pop(m)
	}
}

func (v *validator) single(el *model.Element, val any, hasVal bool, ext any, hasExt bool) {
	if _, isArray := val.([]any); isArray {
		v.addHere("structure", "Element must not be an array (maximum cardinality 1)")
		return
	}
	if hasVal && val == nil {
		v.addHere("structure", "Element must not be null")
		return
	}
	if !el.Type.IsPrimitive() {
		v.complexValue(el, val)
		return
	}
	if hasVal {
		v.primitive(el, val)
	}
	if hasExt {
		if _, isArray := ext.([]any); isArray {
			v.addHere("structure", "Extension property of a single element must not be an array")
			return
		}
		v.primitiveExtension(ext)
	}
}

// primitiveExtension checks the object of a "_name" property: an id and
// extensions (R4 §2.6.2.3).
func (v *validator) primitiveExtension(val any) {
	obj, ok := val.(map[string]any)
	if !ok {
		v.addHere("structure", "Extension property of a primitive must be an object")
		return
	}
	v.object(v.elementType, obj, false)
}

// complexValue checks one value of a complex or resource element.
func (v *validator) complexValue(el *model.Element, val any) {
	obj, ok := val.(map[string]any)
	if !ok {
		v.addHere("structure", "Element must be an object of type "+el.Type.Name)
		return
	}
	if el.Type.Kind == model.ResourceKind {
		v.resource(obj, el.Name == "contained")
		return
	}
	v.object(el.Type, obj, false)
	switch el.Type.Name {
	case "Reference":
		if ref, ok := obj["reference"].(string); ok {
			n := v.push("reference")
			v.reference(el, ref)
			v.pop(n)
		}
	case "CodeableConcept":
		if el.Binding != nil {
			v.codeableConcept(el, obj)
		}
	case "Coding":
		if el.Binding != nil {
			v.coding(el, obj)
		}
	case "Narrative":
		if div, ok := obj["div"].(string); ok {
			if msg := checkNarrative(div); msg != "" {
				n := v.push("div")
				v.addHere("value", msg)
				v.pop(n)
			}
		}
	case "Extension":
		if _, hasExt := obj["extension"]; hasExt {
			for k := range obj {
				if strings.HasPrefix(k, "value") {
					v.addHere("invariant", "An extension must have either extensions or a value, not both (ext-1)")
					break
				}
			}
		}
	}
}

func (v *validator) codeableConcept(el *model.Element, obj map[string]any) {
	codings, _ := obj["coding"].([]any)
	for _, c := range codings {
		c, _ := c.(map[string]any)
		system, _ := c["system"].(string)
		code, _ := c["code"].(string)
		if el.Binding.Contains(system, code) {
			return
		}
	}
	if len(codings) == 0 {
		if _, hasText := obj["text"]; !hasText {
			return // extensions only, such as data-absent-reason
		}
	}
	v.addHere("code-invalid", "No coding is from the required value set "+el.Binding.URL)
}

func (v *validator) coding(el *model.Element, obj map[string]any) {
	system, _ := obj["system"].(string)
	code, ok := obj["code"].(string)
	if ok && !el.Binding.Contains(system, code) {
		v.addHere("code-invalid", "Coding is not from the required value set "+el.Binding.URL)
	}
}

// primitive checks one primitive value: JSON type, format, length, range
// and required binding.
func (v *validator) primitive(el *model.Element, val any) {
	t := el.Type
	switch t.JSON {
	case model.JSONBoolean:
		if _, ok := val.(bool); !ok {
			v.addHere("structure", "Element must be a JSON boolean ("+t.Name+")")
		}
	case model.JSONNumber:
		text, ok := numberText(val)
		if !ok {
			v.addHere("structure", "Element must be a JSON number ("+t.Name+")")
			return
		}
		if !t.MatchString(text) {
			v.addHere("value", "Value is not a valid "+t.Name)
			return
		}
		if t.MaxValue != 0 {
			n, err := strconv.ParseInt(text, 10, 64)
			if err != nil || n < t.MinValue || n > t.MaxValue {
				v.addHere("value", "Value is out of range for "+t.Name)
			}
		}
	default:
		s, ok := val.(string)
		if !ok {
			v.addHere("structure", "Element must be a JSON string ("+t.Name+")")
			return
		}
		switch {
		case t.MaxLength > 0 && len(s) > t.MaxLength:
			v.addHere("too-long", "Value is longer than "+strconv.Itoa(t.MaxLength)+" bytes")
		case isBlank(s):
			v.addHere("value", "Value must not be empty or only whitespace")
		case !t.MatchString(s):
			v.addHere("value", "Value is not a valid "+t.Name)
		case (t.Name == "date" || t.Name == "dateTime" || t.Name == "instant") && !realDay(s):
			v.addHere("value", "Value is not a calendar date")
		case el.Binding != nil && !el.Binding.ContainsCode(s):
			v.addHere("code-invalid", "Code is not in the required value set "+el.Binding.URL)
		}
	}
}

// realDay reports whether the day of a date, dateTime or instant that
// matches its regex exists (the regex allows 2019-02-29 and 2020-04-31).
func realDay(s string) bool {
	if len(s) < len("2006-01-02") {
		return true // year or year-month only
	}
	year, _ := strconv.Atoi(s[:4])
	month, _ := strconv.Atoi(s[5:7])
	day, _ := strconv.Atoi(s[8:10])
	return day <= time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// isBlank reports a string that R4 JSON does not allow: empty or only
// whitespace (R4 §2.6.2.3).
func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

func numberText(val any) (string, bool) {
	switch n := val.(type) {
	case json.Number:
		return string(n), true
	case float64:
		return strconv.FormatFloat(n, 'f', -1, 64), true
	case int:
		return strconv.Itoa(n), true
	case int64:
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

func maxText(m int) string {
	if m == model.Unbounded {
		return "*"
	}
	return strconv.Itoa(m)
}
