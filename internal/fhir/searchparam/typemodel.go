package searchparam

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/spec"
)

// fhirType is what the expression compiler knows about one FHIR type: a
// primitive ("dateTime"), a data type ("HumanName"), a resource
// ("Observation") or a backbone element, which has no name of its own and
// is known by its path ("Observation.component").
//
// Only the shape matters here: which elements a type has, under which JSON
// names, and of which types. Cardinality is not needed because the walker
// flattens JSON arrays wherever it meets them (FHIRPath collections are
// flat too).
type fhirType struct {
	name     string
	kind     valueKind
	elements map[string]*element // by element name, "value" for value[x]
}

// element is one child element of a type.
type element struct {
	name   string
	choice bool        // value[x]: the JSON key is name + capitalised type name
	types  []*fhirType // exactly one unless choice
}

// jsonKey is the JSON property under which element e holds a value of
// type t: "code" for a plain element, "valueQuantity" for value[x].
func (e *element) jsonKey(t *fhirType) string {
	if !e.choice {
		return e.name
	}
	return e.name + strings.ToUpper(t.name[:1]) + t.name[1:]
}

// valueKind says how a value of a type becomes index entries; see
// convert.go. Types that no search parameter type can index are kindOther.
type valueKind uint8

const (
	kindOther valueKind = iota
	kindString
	kindMarkdown
	kindCode
	kindID
	kindURI
	kindCanonical
	kindBoolean
	kindNumber
	kindDate // date, dateTime, instant
	kindCoding
	kindCodeableConcept
	kindIdentifier
	kindContactPoint
	kindHumanName
	kindAddress
	kindReference
	kindPeriod
	kindTiming
	kindQuantity // Quantity and its specialisations Age, Count, Distance, Duration
	kindMoney
	kindRange
	kindResource // resources, abstract Resource too (contained, Bundle.entry.resource)

	kindCount // the number of kinds
)

var kindByTypeName = map[string]valueKind{
	"string":          kindString,
	"markdown":        kindMarkdown,
	"code":            kindCode,
	"id":              kindID,
	"uri":             kindURI,
	"url":             kindURI,
	"oid":             kindURI,
	"uuid":            kindURI,
	"canonical":       kindCanonical,
	"boolean":         kindBoolean,
	"decimal":         kindNumber,
	"integer":         kindNumber,
	"positiveInt":     kindNumber,
	"unsignedInt":     kindNumber,
	"date":            kindDate,
	"dateTime":        kindDate,
	"instant":         kindDate,
	"Coding":          kindCoding,
	"CodeableConcept": kindCodeableConcept,
	"Identifier":      kindIdentifier,
	"ContactPoint":    kindContactPoint,
	"HumanName":       kindHumanName,
	"Address":         kindAddress,
	"Reference":       kindReference,
	"Period":          kindPeriod,
	"Timing":          kindTiming,
	"Quantity":        kindQuantity,
	"Age":             kindQuantity,
	"Count":           kindQuantity,
	"Distance":        kindQuantity,
	"Duration":        kindQuantity,
	"Money":           kindMoney,
	"Range":           kindRange,
	"Resource":        kindResource,
}

// typeModel holds every type of the embedded R4 StructureDefinitions.
type typeModel struct {
	types map[string]*fhirType
}

// lookup returns the named type or backbone path, or nil.
func (m *typeModel) lookup(name string) *fhirType { return m.types[name] }

// isResource reports whether name is a resource type (abstract ones too).
func (m *typeModel) isResource(name string) bool {
	t := m.types[name]
	return t != nil && t.kind == kindResource
}

// structureDefinitions is the part of a StructureDefinition bundle the
// model reads: each definition's snapshot, element paths and types.
type structureDefinitions struct {
	Entry []struct {
		Resource struct {
			ResourceType string          `json:"resourceType"`
			Kind         string          `json:"kind"`
			Type         json.RawMessage `json:"type"` // OperationDefinition.type is a boolean
			Derivation   string          `json:"derivation"`
			Snapshot     struct {
				Element []struct {
					Path             string `json:"path"`
					ContentReference string `json:"contentReference"`
					Type             []struct {
						Code      string `json:"code"`
						Extension []struct {
							URL      string `json:"url"`
							ValueURL string `json:"valueUrl"`
						} `json:"extension"`
					} `json:"type"`
				} `json:"element"`
			} `json:"snapshot"`
		} `json:"resource"`
	} `json:"entry"`
}

const fhirTypeExtension = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

// systemTypes maps the FHIRPath system types that R4 snapshots use for
// the value of primitives and for ids (when no structuredefinition-fhir-type
// extension names the FHIR type) to FHIR primitive types.
var systemTypes = map[string]string{
	"http://hl7.org/fhirpath/System.String":   "string",
	"http://hl7.org/fhirpath/System.Boolean":  "boolean",
	"http://hl7.org/fhirpath/System.Integer":  "integer",
	"http://hl7.org/fhirpath/System.Decimal":  "decimal",
	"http://hl7.org/fhirpath/System.Date":     "date",
	"http://hl7.org/fhirpath/System.DateTime": "dateTime",
	"http://hl7.org/fhirpath/System.Time":     "time",
}

// loadTypeModel reads the data types and resources of the embedded R4
// definitions. Constraint profiles (SimpleQuantity, MoneyQuantity) are
// skipped: elements name their base type, Quantity.
func loadTypeModel() (*typeModel, error) {
	m := &typeModel{types: map[string]*fhirType{}}
	get := func(name string) *fhirType {
		t := m.types[name]
		if t == nil {
			t = &fhirType{name: name, kind: kindByTypeName[name], elements: map[string]*element{}}
			m.types[name] = t
		}
		return t
	}
	for _, file := range []string{spec.ProfilesTypes, spec.ProfilesResources} {
		raw, err := spec.R4(file)
		if err != nil {
			return nil, err
		}
		var bundle structureDefinitions
		if err := json.Unmarshal(raw, &bundle); err != nil {
			return nil, fmt.Errorf("searchparam: decoding %s: %w", file, err)
		}
		for _, e := range bundle.Entry {
			sd := &e.Resource
			if sd.ResourceType != "StructureDefinition" || sd.Derivation == "constraint" {
				continue
			}
			switch sd.Kind {
			case "primitive-type", "complex-type", "resource":
			default:
				continue
			}
			var typeName string
			if err := json.Unmarshal(sd.Type, &typeName); err != nil || typeName == "" {
				return nil, fmt.Errorf("searchparam: %s: StructureDefinition without a type", file)
			}
			root := get(typeName)
			if sd.Kind == "resource" {
				root.kind = kindResource
			}
			if sd.Kind == "primitive-type" {
				continue // its only children are id, extension and the System value
			}
			for _, el := range sd.Snapshot.Element {
				dot := strings.LastIndexByte(el.Path, '.')
				if dot < 0 {
					continue // the root element
				}
				owner := get(el.Path[:dot])
				name := el.Path[dot+1:]
				elem := &element{name: strings.TrimSuffix(name, "[x]"), choice: strings.HasSuffix(name, "[x]")}
				if ref, ok := strings.CutPrefix(el.ContentReference, "#"); ok {
					elem.types = []*fhirType{get(ref)}
				}
				for _, t := range el.Type {
					code := t.Code
					if sys, ok := systemTypes[code]; ok {
						code = sys
						for _, x := range t.Extension {
							if x.URL == fhirTypeExtension && x.ValueURL != "" {
								code = x.ValueURL
							}
						}
					}
					if code == "BackboneElement" || code == "Element" {
						code = el.Path // the backbone's children follow under this path
					}
					elem.types = append(elem.types, get(code))
				}
				if len(elem.types) == 0 || (!elem.choice && len(elem.types) > 1) {
					return nil, fmt.Errorf("searchparam: %s: element %s has %d types", file, el.Path, len(elem.types))
				}
				owner.elements[elem.name] = elem
			}
		}
	}
	return m, nil
}
