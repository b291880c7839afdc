package model

import (
	"regexp"
)

// Kind says what sort of type a Type is.
type Kind uint8

// The kinds of types.
const (
	PrimitiveKind Kind = iota + 1 // string, date, boolean, …: a JSON scalar plus an optional "_name" sibling
	ComplexKind                   // a data type such as HumanName or Reference
	ResourceKind                  // a resource type; Resource and DomainResource are abstract
	BackboneKind                  // an element defined inline (Observation.component); named by its path
)

// JSONKind is the JSON representation of a primitive type's value (R4 §2.6.2).
type JSONKind uint8

// The JSON kinds of primitive values.
const (
	JSONString  JSONKind = iota + 1 // most primitives
	JSONNumber                      // integer, positiveInt, unsignedInt, decimal
	JSONBoolean                     // boolean
)

// Unbounded is Element.Max for a maximum cardinality of "*".
const Unbounded = -1

// Type is a resource type, data type, primitive type or backbone element.
type Type struct {
	Name     string // "Patient", "HumanName", "date", "Observation.component"
	Kind     Kind
	Abstract bool // Resource, DomainResource, Element, BackboneElement

	// Primitive types only.
	JSON      JSONKind
	Pattern   *regexp.Regexp // the spec's regex (StructureDefinition extension "regex"), anchored at both ends; nil for xhtml
	MaxLength int            // in bytes; 0 when unlimited (string and its specialisations: 1 MiB)
	MinValue  int64          // integers: the smallest allowed value
	MaxValue  int64          // integers: the largest allowed value (2^31-1)

	// Elements in definition order, choice elements expanded to one
	// Element per type (valueQuantity, valueString, …).
	Elements []*Element
	// Required are the elements (not in a choice) with Min ≥ 1.
	Required []*Element
	// Choices are the choice elements (value[x]), in definition order.
	Choices []*Choice

	byName map[string]*Element
	match  func(string) bool
}

// Element returns the element whose JSON property name is name
// ("valueQuantity", not "value[x]"), or nil.
func (t *Type) Element(name string) *Element { return t.byName[name] }

// IsPrimitive reports whether t is a primitive type.
func (t *Type) IsPrimitive() bool { return t.Kind == PrimitiveKind }

// MatchString reports whether s matches the primitive type's spec regex
// (always true for types without one). It gives the same answer as
// t.Pattern.MatchString, faster for the patterns every resource uses.
func (t *Type) MatchString(s string) bool {
	if t.match != nil {
		return t.match(s)
	}
	return t.Pattern == nil || t.Pattern.MatchString(s)
}

// Element is one element of a Type, under one JSON property name.
type Element struct {
	Path  string // the definition's path: "Observation.value[x]", "Observation.status"
	Name  string // the JSON property name: "valueQuantity", "status"
	Min   int
	Max   int  // Unbounded for "*"; 0 when a profile forbids the element
	Array bool // represented as a JSON array (the base definition allows more than one)
	Type  *Type

	// Targets lists the resource types a Reference may point to, from the
	// type's targetProfile; nil when any resource is allowed.
	Targets []string
	// Binding is the expanded value set of a required binding, nil if the
	// element has none or it could not be expanded (then BindingURL is
	// still set).
	Binding    *ValueSet
	BindingURL string

	Choice   *Choice // the choice element this is one type of, or nil
	Summary  bool    // isSummary
	Modifier bool    // isModifier

	extName   string // "_" + Name; empty for attributes
	attribute bool   // Element.id, Extension.url
}

// ExtensionName is the JSON name of the element's primitive extension
// sibling: "_" + Name (R4 §2.6.2.3). It is empty for the two elements that
// are attributes in the XML form and so take no extensions: Element.id
// (the id of any data type or backbone element) and Extension.url.
func (e *Element) ExtensionName() string { return e.extName }

// AllowsTarget reports whether a Reference element may point to a resource
// of type typ.
func (e *Element) AllowsTarget(typ string) bool {
	if e.Targets == nil {
		return true
	}
	for _, t := range e.Targets {
		if t == typ {
			return true
		}
	}
	return false
}

// Choice is a choice element ("value[x]"): at most one of its Elements may
// be present, and at least one when Min ≥ 1.
type Choice struct {
	Path     string // "Observation.value[x]"
	Name     string // "value"
	Min      int
	Elements []*Element
}
