package model

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/spec"
)

func r4(t *testing.T) *Model {
	t.Helper()
	m, err := R4()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestResourceTypes checks the model's resource types against the R4
// ResourceType code system, an independent list in the same package.
func TestResourceTypes(t *testing.T) {
	m := r4(t)
	raw, err := spec.R4(spec.ValueSets)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				URL     string `json:"url"`
				Concept []struct {
					Code string `json:"code"`
				} `json:"concept"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range bundle.Entry {
		if e.Resource.URL == "http://hl7.org/fhir/resource-types" {
			for _, c := range e.Resource.Concept {
				if c.Code != "Resource" && c.Code != "DomainResource" {
					want = append(want, c.Code)
				}
			}
		}
	}
	sort.Strings(want)
	if got := m.ResourceTypes(); !slices.Equal(got, want) {
		t.Errorf("ResourceTypes() = %d types, the resource-types code system has %d:\n%v\n%v", len(got), len(want), got, want)
	}
	for _, name := range want {
		if !m.IsResourceType(name) || m.Resource(name) == nil {
			t.Errorf("IsResourceType(%q) = false", name)
		}
	}
	for _, name := range []string{"Resource", "DomainResource", "HumanName", "string", "BackboneElement", "MetadataResource", "SimpleQuantity", "patient", ""} {
		if m.IsResourceType(name) || m.Resource(name) != nil {
			t.Errorf("IsResourceType(%q) = true", name)
		}
	}
	got := m.ResourceTypes()
	got[0] = "changed"
	if m.ResourceTypes()[0] == "changed" {
		t.Error("ResourceTypes shares its slice with the model")
	}
}

func TestElements(t *testing.T) {
	m := r4(t)
	obs := m.Resource("Observation")
	cases := []struct {
		typ, name, elemType string
		min, max            int
		array               bool
	}{
		{"Observation", "id", "id", 0, 1, false}, // Resource.id is an id (R4 §2.6.2)
		{"Observation", "status", "code", 1, 1, false},
		{"Observation", "code", "CodeableConcept", 1, 1, false},
		{"Observation", "category", "CodeableConcept", 0, Unbounded, true},
		{"Observation", "valueQuantity", "Quantity", 0, 1, false},
		{"Observation", "valueDateTime", "dateTime", 0, 1, false},
		{"Observation", "effectiveInstant", "instant", 0, 1, false},
		{"Observation", "contained", "Resource", 0, Unbounded, true},
		{"Observation", "component", "Observation.component", 0, Unbounded, true},
		{"Observation.component", "code", "CodeableConcept", 1, 1, false},
		{"Observation.component", "referenceRange", "Observation.referenceRange", 0, Unbounded, true},
		{"Observation.referenceRange", "low", "SimpleQuantity", 0, 1, false},
		{"SimpleQuantity", "comparator", "code", 0, 0, false},
		{"Quantity", "comparator", "code", 0, 1, false},
		{"Extension", "url", "uri", 1, 1, false},
		{"Extension", "valueBase64Binary", "base64Binary", 0, 1, false},
		{"Extension", "valueMeta", "Meta", 0, 1, false},
		{"Element", "id", "string", 0, 1, false},
		{"HumanName", "given", "string", 0, Unbounded, true},
		{"Bundle.entry", "resource", "Resource", 0, 1, false},
		{"Timing.repeat", "count", "positiveInt", 0, 1, false},
		{"MedicationRequest", "medicationReference", "Reference", 1, 1, false},
	}
	types := map[string]*Type{
		"Observation":                obs,
		"Observation.component":      obs.Element("component").Type,
		"Observation.referenceRange": obs.Element("referenceRange").Type,
		"Bundle.entry":               m.Type("Bundle").Element("entry").Type,
		"Timing.repeat":              m.Type("Timing").Element("repeat").Type,
	}
	for _, tc := range cases {
		typ := types[tc.typ]
		if typ == nil {
			typ = m.Type(tc.typ)
		}
		e := typ.Element(tc.name)
		if e == nil {
			t.Errorf("%s has no element %s", tc.typ, tc.name)
			continue
		}
		if e.Type.Name != tc.elemType || e.Min != tc.min || e.Max != tc.max || e.Array != tc.array {
			t.Errorf("%s.%s: type %s %d..%d array %v, want %s %d..%d array %v",
				tc.typ, tc.name, e.Type.Name, e.Min, e.Max, e.Array, tc.elemType, tc.min, tc.max, tc.array)
		}
		want := "_" + tc.name
		if tc.typ == "Element" && tc.name == "id" || tc.typ == "Extension" && tc.name == "url" {
			want = "" // XML attributes
		}
		if e.ExtensionName() != want {
			t.Errorf("%s.%s: ExtensionName = %q, want %q", tc.typ, tc.name, e.ExtensionName(), want)
		}
	}
	for _, name := range []string{"value[x]", "value", "valueFoo", "_status", "resourceType"} {
		if obs.Element(name) != nil {
			t.Errorf("Observation has an element %q", name)
		}
	}
}

func TestChoices(t *testing.T) {
	m := r4(t)
	v := m.Resource("Observation").Element("valueString")
	if v.Choice == nil || v.Choice.Name != "value" || v.Choice.Path != "Observation.value[x]" || len(v.Choice.Elements) != 11 {
		t.Fatalf("Observation.valueString choice = %+v", v.Choice)
	}
	med := m.Resource("MedicationRequest").Element("medicationCodeableConcept")
	if med.Choice == nil || med.Choice.Min != 1 || slices.Contains(m.Resource("MedicationRequest").Required, med) {
		t.Errorf("MedicationRequest.medication[x]: choice %+v; a choice must be required as a whole, not per type", med.Choice)
	}
	if n := len(m.Type("Extension").Choices[0].Elements); n != 50 {
		t.Errorf("Extension.value[x] has %d types, want the 50 of R4", n)
	}
}

func TestContentReference(t *testing.T) {
	m := r4(t)
	item := m.Resource("Questionnaire").Element("item").Type
	if item.Element("item").Type != item {
		t.Error("Questionnaire.item.item is not Questionnaire.item")
	}
	if item.Kind != BackboneKind || item.Name != "Questionnaire.item" {
		t.Errorf("Questionnaire.item type = %s kind %d", item.Name, item.Kind)
	}
}

func TestReferenceTargets(t *testing.T) {
	m := r4(t)
	subject := m.Resource("Observation").Element("subject")
	if want := []string{"Patient", "Group", "Device", "Location"}; !slices.Equal(subject.Targets, want) {
		t.Errorf("Observation.subject targets = %v, want %v", subject.Targets, want)
	}
	if !subject.AllowsTarget("Patient") || subject.AllowsTarget("Practitioner") {
		t.Error("AllowsTarget disagrees with Targets")
	}
	focus := m.Resource("Observation").Element("focus") // Reference(Any)
	if focus.Targets != nil || !focus.AllowsTarget("Practitioner") {
		t.Errorf("Observation.focus targets = %v, want any", focus.Targets)
	}
}

func TestBindings(t *testing.T) {
	m := r4(t)
	gender := m.Resource("Patient").Element("gender")
	if gender.Binding == nil || gender.BindingURL != "http://hl7.org/fhir/ValueSet/administrative-gender" {
		t.Fatalf("Patient.gender binding = %v %q", gender.Binding, gender.BindingURL)
	}
	for _, c := range []string{"male", "female", "other", "unknown"} {
		if !gender.Binding.ContainsCode(c) || !gender.Binding.Contains("http://hl7.org/fhir/administrative-gender", c) {
			t.Errorf("administrative-gender lacks %s", c)
		}
	}
	if gender.Binding.ContainsCode("Male") || gender.Binding.Contains("http://example.org", "male") || gender.Binding.Len() != 4 {
		t.Errorf("administrative-gender has more than its 4 codes")
	}
	// A value set that includes a whole code system with nested concepts.
	clinical := m.Resource("Condition").Element("clinicalStatus").Binding
	for _, c := range []string{"active", "recurrence", "relapse", "inactive", "remission", "resolved"} {
		if !clinical.Contains("http://terminology.hl7.org/CodeSystem/condition-clinical", c) {
			t.Errorf("condition-clinical lacks %s", c)
		}
	}
	if m.ValueSet("http://hl7.org/fhir/ValueSet/observation-status|4.0.1") == nil {
		t.Error("ValueSet ignores the version suffix")
	}
	if m.Resource("Observation").Element("category").Binding != nil {
		t.Error("a preferred binding was expanded")
	}
	// The value sets whose code systems are not in the core package.
	want := []string{
		"http://hl7.org/fhir/ValueSet/currencies",
		"http://hl7.org/fhir/ValueSet/mimetypes",
		"http://hl7.org/fhir/ValueSet/ucum-units",
		"http://loinc.org/vs/LL379-9",
	}
	if got := m.Unexpanded(); !slices.Equal(got, want) {
		t.Errorf("Unexpanded() = %v, want %v", got, want)
	}
	if ct := m.Type("Attachment").Element("contentType"); ct.Binding != nil || ct.BindingURL != "http://hl7.org/fhir/ValueSet/mimetypes" {
		t.Errorf("Attachment.contentType: binding %v url %q", ct.Binding, ct.BindingURL)
	}
}

func TestPrimitives(t *testing.T) {
	m := r4(t)
	kinds := map[string]JSONKind{"boolean": JSONBoolean, "integer": JSONNumber, "decimal": JSONNumber, "positiveInt": JSONNumber, "unsignedInt": JSONNumber, "string": JSONString, "date": JSONString, "base64Binary": JSONString}
	for name, kind := range kinds {
		if p := m.Type(name); p == nil || p.Kind != PrimitiveKind || p.JSON != kind {
			t.Errorf("%s: %+v, want a primitive with JSON kind %d", name, p, kind)
		}
	}
	n := 0
	for _, typ := range m.types {
		if typ.Kind != PrimitiveKind {
			continue
		}
		n++
		if typ.Pattern == nil && typ.Name != "xhtml" {
			t.Errorf("%s has no regex", typ.Name)
		}
	}
	if n != 20 {
		t.Errorf("%d primitive types, want the 20 of R4", n)
	}
	for _, name := range []string{"string", "code", "id", "markdown"} {
		if m.Type(name).MaxLength != 1<<20 {
			t.Errorf("%s MaxLength = %d, want 1 MiB", name, m.Type(name).MaxLength)
		}
	}
	if u := m.Type("unsignedInt"); u.MinValue != 0 || u.MaxValue != 1<<31-1 {
		t.Errorf("unsignedInt range %d..%d", u.MinValue, u.MaxValue)
	}
	if !m.Type("date").MatchString("2020-02") || m.Type("date").MatchString("2020-2") {
		t.Error("date pattern")
	}
}

func TestSummaryAndMandatory(t *testing.T) {
	m := r4(t)
	cases := []struct {
		typ, name          string
		summary, mandatory bool
	}{
		{"Patient", "birthDate", true, false},
		{"Patient", "_birthDate", true, false},
		{"Patient", "photo", false, false},
		{"Observation", "status", true, true},
		{"Observation", "valueQuantity", true, false},
		{"Observation", "note", false, false},
		{"MedicationRequest", "medicationReference", true, true},
		{"Observation", "nonsense", false, false},
		{"Nonsense", "status", false, false},
	}
	for _, tc := range cases {
		if got := m.IsSummary(tc.typ, tc.name); got != tc.summary {
			t.Errorf("IsSummary(%s, %s) = %v", tc.typ, tc.name, got)
		}
		if got := m.IsMandatory(tc.typ, tc.name); got != tc.mandatory {
			t.Errorf("IsMandatory(%s, %s) = %v", tc.typ, tc.name, got)
		}
	}
}

// TestEveryElementTyped walks every type and checks that each element is
// linked to a type and each choice has its elements.
func TestEveryElementTyped(t *testing.T) {
	m := r4(t)
	seen := map[*Type]bool{}
	var walk func(*Type)
	walk = func(typ *Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		for _, e := range typ.Elements {
			if e.Type == nil {
				t.Errorf("%s (%s) has no type", e.Path, e.Name)
				continue
			}
			if typ.Element(e.Name) != e {
				t.Errorf("%s: Element(%q) does not find it", typ.Name, e.Name)
			}
			walk(e.Type)
		}
		for _, c := range typ.Choices {
			if len(c.Elements) < 2 {
				t.Errorf("%s has %d types", c.Path, len(c.Elements))
			}
		}
	}
	for _, typ := range m.types {
		walk(typ)
	}
	if len(seen) < 400 {
		t.Errorf("walked %d types (with backbone elements); expected several hundred", len(seen))
	}
}
