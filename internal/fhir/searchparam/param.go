// Package searchparam owns the FHIR R4 search parameters: which parameters
// exist for each resource type (from the official definitions embedded in
// package spec), their types, and the extraction of index entries from a
// resource's JSON. It also owns the value normalisation that the index and
// the search parser must agree on (strings, date ranges, number ranges),
// and the Patient compartment membership that follows from a resource's
// references.
//
// Extraction is compiled: each parameter's FHIRPath expression is resolved
// once, against the R4 StructureDefinitions, into paths of JSON keys
// (compile.go); Extract walks them over the decoded resource (walk.go) and
// converts what it reaches by parameter type and FHIR type (convert.go).
// Parameters whose expression cannot be compiled are not searchable and
// are not advertised (see testdata/unsupported.golden).
//
// It is pure: no I/O besides reading the embedded definitions, no net/http,
// no SQL.
package searchparam

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/wardenfhir/warden/internal/fhir/spec"
)

// Type is a search parameter type (FHIR R4 §3.1.1.4 "search parameter types").
type Type string

// The search parameter types of FHIR R4.
const (
	String    Type = "string"
	Token     Type = "token"
	Reference Type = "reference"
	Date      Type = "date"
	Number    Type = "number"
	Quantity  Type = "quantity"
	URI       Type = "uri"
	Composite Type = "composite"
	Special   Type = "special"
)

// Param is one search parameter as it applies to one resource type.
// A spec SearchParameter with several bases (for example "patient" on
// AllergyIntolerance, CarePlan, …) becomes one Param per base, each with
// only the expression branches that concern that base.
type Param struct {
	Code       string   // the name used in queries: "subject", "_id"
	URL        string   // canonical URL of the definition
	Type       Type     //
	Base       string   // the resource type this Param applies to ("Resource" for _id etc.)
	Expression string   // FHIRPath from the definition, restricted to Base
	Targets    []string // reference parameters: allowed target resource types
	Components []Component

	// compiled extraction; nil when the expression is not supported, in
	// which case the parameter is not searchable (and not advertised).
	compiled any
	// notIndexed: Warden does not index this parameter (notIndexed).
	notIndexed bool
}

// supported reports whether the parameter is indexed and searchable.
func (p *Param) supported() bool { return p.compiled != nil && !p.notIndexed }

// Component is one part of a composite search parameter.
type Component struct {
	Definition string // canonical URL of the component's SearchParameter
	Code       string // that parameter's code
	Type       Type
	Expression string // relative to the composite's expression
}

// Registry is the set of search parameters of a FHIR version.
type Registry struct {
	byType map[string]map[string]*Param // base resource type → code → param
	byURL  map[string]*Param

	// byResource lists the supported parameters of each resource type
	// (its own and the inherited ones) as Params returns them; key
	// "Resource" holds those of Resource alone, for unknown types.
	byResource map[string][]*Param
	// patientParams are the parameters of the Patient compartment.
	patientParams map[string][]string
}

var (
	r4Once sync.Once
	r4Reg  *Registry
	r4Err  error
)

// R4 returns the registry of the FHIR R4 search parameters. It is built
// once and shared; it must not be modified.
func R4() (*Registry, error) {
	r4Once.Do(func() { r4Reg, r4Err = loadR4() })
	return r4Reg, r4Err
}

type specSearchParameter struct {
	URL        string   `json:"url"`
	Code       string   `json:"code"`
	Base       []string `json:"base"`
	Type       Type     `json:"type"`
	Expression string   `json:"expression"`
	Target     []string `json:"target"`
	Component  []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

func loadR4() (*Registry, error) {
	raw, err := spec.R4(spec.SearchParameters)
	if err != nil {
		return nil, err
	}
	var bundle struct {
		Entry []struct {
			Resource specSearchParameter `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		return nil, fmt.Errorf("searchparam: decoding search-parameters.json: %w", err)
	}
	defs := make([]specSearchParameter, 0, len(bundle.Entry))
	for _, e := range bundle.Entry {
		defs = append(defs, e.Resource)
	}
	model, err := loadTypeModel()
	if err != nil {
		return nil, err
	}
	patient, err := loadPatientCompartment()
	if err != nil {
		return nil, err
	}
	return newRegistry(defs, model, patient)
}

// componentErrata corrects component expressions of R4 definitions that
// are wrong in the published search-parameters.json, by composite URL and
// component definition. DocumentReference-relationship ("Combination of
// relation and relatesTo") gives its relatesto component, a reference,
// the expression "code" and its relation component, a token, "target":
// the wrong way round, since relatesTo.target is the Reference and
// relatesTo.code the code.
var componentErrata = map[string]map[string]string{
	"http://hl7.org/fhir/SearchParameter/DocumentReference-relationship": {
		"http://hl7.org/fhir/SearchParameter/DocumentReference-relatesto": "target",
		"http://hl7.org/fhir/SearchParameter/DocumentReference-relation":  "code",
	},
}

// notIndexed are search parameters Warden does not index or search, by
// resource type, although R4 defines them. AuditEvents are written only
// by Warden's own audit trail, one for every request, and each indexed
// value costs the trail about 5 µs of CPU per event (a B-tree insert into
// the row's table and one into its value index, `bench/audit.sh`); these
// parameters carry the same few values in every event Warden writes
// (its own source, site and destination agent; fixed entity roles, entity
// types and BALP profiles; client names, which agent:identifier finds by
// client id), so they select nothing an auditor needs that the indexed
// ones (patient, agent, agent-role, altid, date, outcome, entity, action,
// type, subtype, policy, address) do not. A search naming one is refused
// as unsupported (Defined), and the CapabilityStatement does not list
// them.
var notIndexed = map[string][]string{
	"AuditEvent": {"_profile", "agent-name", "entity-name", "entity-role", "entity-type", "site", "source"},
}

// newRegistry builds a registry from search parameter definitions,
// compiling each expression against model; patient lists the parameters
// of the Patient compartment by resource type.
func newRegistry(defs []specSearchParameter, model *typeModel, patient map[string][]string) (*Registry, error) {
	r := &Registry{byType: map[string]map[string]*Param{}, byURL: map[string]*Param{}, patientParams: patient}
	codeByURL := map[string]specSearchParameter{}
	for _, d := range defs {
		codeByURL[d.URL] = d
	}
	for _, d := range defs {
		for _, base := range d.Base {
			p := &Param{
				Code:       d.Code,
				URL:        d.URL,
				Type:       d.Type,
				Base:       base,
				Expression: d.Expression,
				Targets:    d.Target,
			}
			if len(d.Base) > 1 {
				// Shared definitions name the base in every branch; a
				// single-base one may also be relative ("name | alias"
				// on InsurancePlan) and is kept whole.
				p.Expression = restrictExpression(d.Expression, base)
			}
			for _, c := range d.Component {
				cd, ok := codeByURL[c.Definition]
				if !ok {
					return nil, fmt.Errorf("searchparam: %s: unknown component %s", d.URL, c.Definition)
				}
				expr := c.Expression
				if fixed, ok := componentErrata[d.URL][c.Definition]; ok {
					expr = fixed
				}
				p.Components = append(p.Components, Component{Definition: c.Definition, Code: cd.Code, Type: cd.Type, Expression: expr})
			}
			if x, err := compile(p, model); err == nil {
				p.compiled = x
			}
			if r.byType[base] == nil {
				r.byType[base] = map[string]*Param{}
			}
			r.byType[base][d.Code] = p
			if len(d.Base) == 1 {
				r.byURL[d.URL] = p
			}
		}
	}
	for typ, codes := range notIndexed {
		for _, code := range codes {
			if r.byType[typ] == nil {
				r.byType[typ] = map[string]*Param{}
			}
			p := r.byType[typ][code]
			if p == nil {
				// Inherited (_profile): hidden for this type alone.
				p = &Param{Code: code, Base: typ}
				r.byType[typ][code] = p
			}
			p.notIndexed = true
		}
	}
	r.byResource = map[string][]*Param{"Resource": r.Params("Resource")}
	for name, t := range model.types {
		if t.kind == kindResource && name != "Resource" && name != "DomainResource" {
			r.byResource[name] = r.Params(name)
		}
	}
	return r, nil
}

// Param returns the search parameter code for resourceType, including the
// parameters defined on Resource and DomainResource, or nil when there is
// none or it is not supported.
func (r *Registry) Param(resourceType, code string) *Param {
	for _, t := range []string{resourceType, "DomainResource", "Resource"} {
		if p := r.byType[t][code]; p != nil {
			if !p.supported() {
				return nil
			}
			return p
		}
	}
	return nil
}

// Defined reports whether R4 defines the search parameter code for
// resourceType (its own or inherited), supported or not: a search naming
// one that Param does not return is unsupported rather than unknown.
func (r *Registry) Defined(resourceType, code string) bool {
	for _, t := range []string{resourceType, "DomainResource", "Resource"} {
		if r.byType[t][code] != nil {
			return true
		}
	}
	return false
}

// Params returns the supported search parameters of resourceType (its own
// and the inherited ones), sorted by code.
func (r *Registry) Params(resourceType string) []*Param {
	seen := map[string]bool{}
	var out []*Param
	for _, t := range []string{resourceType, "DomainResource", "Resource"} {
		for code, p := range r.byType[t] {
			if seen[code] {
				continue
			}
			// An unsupported parameter of the type hides an inherited
			// one of the same code, as in Param.
			seen[code] = true
			if p.supported() {
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}
