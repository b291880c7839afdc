// Package model owns the structural model of FHIR R4 resources and data
// types: for every resource type and data type, the elements it may carry
// under their JSON names, their types, cardinalities, reference targets and
// required value-set bindings, and the lexical rules of the primitive types.
//
// The model is built once from the official StructureDefinition snapshots,
// ValueSets and CodeSystems embedded in package spec, so every R4 resource
// type is covered and nothing is hand-picked. It describes; it never
// validates (package validate does), performs no I/O beyond reading the
// embedded definitions and never imports net/http.
//
// A Model and everything reachable from it are shared and read-only.
package model

import (
	"slices"
	"sync"
)

// Model is the structure of one FHIR version's resources and data types.
type Model struct {
	types      map[string]*Type // resources (also abstract), data types, SimpleQuantity/MoneyQuantity
	resources  []string         // sorted names of the concrete resource types
	valueSets  map[string]*ValueSet
	unexpanded []string // required-binding value sets that could not be expanded
}

var (
	r4Once  sync.Once
	r4Model *Model
	r4Err   error
)

// R4 returns the model of FHIR R4 (4.0.1). It is built on first use from
// the embedded definitions (a few hundred milliseconds) and shared
// afterwards; it must not be modified.
func R4() (*Model, error) {
	r4Once.Do(func() { r4Model, r4Err = buildR4() })
	return r4Model, r4Err
}

// IsResourceType reports whether name is a concrete R4 resource type
// ("Patient", "Observation"); the abstract Resource and DomainResource are
// not.
func (m *Model) IsResourceType(name string) bool {
	t := m.types[name]
	return t != nil && t.Kind == ResourceKind && !t.Abstract
}

// ResourceTypes returns the names of the concrete resource types, sorted.
// The caller owns the returned slice.
func (m *Model) ResourceTypes() []string { return slices.Clone(m.resources) }

// Type returns the named resource type (abstract ones included), data type
// or primitive type, or nil. Besides the base types it knows the two
// Quantity profiles that base definitions use as element types,
// SimpleQuantity and MoneyQuantity.
func (m *Model) Type(name string) *Type { return m.types[name] }

// Resource returns the concrete resource type called name, or nil.
func (m *Model) Resource(name string) *Type {
	if !m.IsResourceType(name) {
		return nil
	}
	return m.types[name]
}

// IsSummary reports whether the top-level element called name (a JSON
// property name such as "birthDate", "valueQuantity" or "_birthDate") of
// the resource type is part of the summary view (_summary=true; R4 §3.1.1.5.7).
func (m *Model) IsSummary(resourceType, name string) bool {
	e := m.topElement(resourceType, name)
	return e != nil && e.Summary
}

// IsMandatory reports whether the top-level element called name of the
// resource type has a minimum cardinality of at least one (the elements
// that _summary=text keeps besides text, id and meta).
func (m *Model) IsMandatory(resourceType, name string) bool {
	e := m.topElement(resourceType, name)
	if e == nil {
		return false
	}
	if e.Choice != nil {
		return e.Choice.Min > 0
	}
	return e.Min > 0
}

func (m *Model) topElement(resourceType, name string) *Element {
	t := m.Resource(resourceType)
	if t == nil {
		return nil
	}
	if len(name) > 1 && name[0] == '_' {
		name = name[1:]
	}
	return t.Element(name)
}

// ValueSet returns the expansion of a value set used by a required binding
// (canonical URL, with or without a "|version" suffix), or nil when no
// required binding uses it or it could not be expanded.
func (m *Model) ValueSet(url string) *ValueSet { return m.valueSets[stripVersion(url)] }

// Unexpanded lists, sorted, the value sets that required bindings name but
// that cannot be expanded from the embedded definitions (their code systems
// are external, such as UCUM, BCP 13 MIME types or ISO 4217 currencies, or
// the value set is not part of the core package). Codes bound to them are
// not checked.
func (m *Model) Unexpanded() []string { return slices.Clone(m.unexpanded) }
