package searchparam

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func registry(tb testing.TB) *Registry {
	tb.Helper()
	r, err := R4()
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func typeModelR4(tb testing.TB) *typeModel {
	tb.Helper()
	m, err := loadTypeModel()
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// String renders a compiled path for test failures: %resource or $this,
// then .key for an element (.{a,b} when it has several JSON keys),
// .ofType(T) and .where(…).
func (p path) String() string {
	var b strings.Builder
	if p.start == startRoot {
		b.WriteString("%resource")
	} else {
		b.WriteString("$this")
	}
	for _, s := range p.steps {
		switch s.op {
		case opMember:
			var keys []string
			for _, a := range s.alts {
				if !slices.Contains(keys, a.key) {
					keys = append(keys, a.key)
				}
			}
			if len(keys) == 1 {
				b.WriteString("." + keys[0])
			} else {
				b.WriteString(".{" + strings.Join(keys, ",") + "}")
			}
		case opOfType:
			b.WriteString(".ofType(" + typeNames(s.types) + ")")
		case opWhere:
			b.WriteString(".where(" + s.cond.String() + ")")
		}
	}
	return b.String()
}

func (c *cond) String() string {
	paths := func() string {
		s := make([]string, len(c.paths))
		for i, p := range c.paths {
			s[i] = p.String()
		}
		return strings.Join(s, " | ")
	}
	switch c.op {
	case condConst:
		return fmt.Sprint(c.lit)
	case condEq:
		return fmt.Sprintf("%s = %#v", paths(), c.lit)
	case condNe:
		return fmt.Sprintf("%s != %#v", paths(), c.lit)
	case condExists:
		return paths() + ".exists()"
	case condEmpty:
		return paths() + ".empty()"
	case condAnd:
		return "(" + c.args[0].String() + " and " + c.args[1].String() + ")"
	case condOr:
		return "(" + c.args[0].String() + " or " + c.args[1].String() + ")"
	case condResolveIs:
		return "resolve() is " + c.typeName
	}
	return "?"
}

func (x *extractor) String() string {
	if x.test != nil {
		return "test " + x.test.String()
	}
	s := make([]string, len(x.paths))
	for i, p := range x.paths {
		s[i] = p.String()
	}
	out := strings.Join(s, " | ")
	for _, c := range x.components {
		cs := make([]string, len(c.paths))
		for i, p := range c.paths {
			cs[i] = p.String()
		}
		out += " $ " + strings.Join(cs, " | ")
	}
	return out
}

func TestCompile(t *testing.T) {
	m := typeModelR4(t)
	for _, tc := range []struct {
		base string
		typ  Type
		expr string
		want string
	}{
		{"Observation", Token, "Observation.code", "%resource.code"},
		{"Observation", Token, "Observation.component.code", "%resource.component.code"},
		{"Observation", Quantity, "(Observation.value as Quantity)", "%resource.valueQuantity"},
		{"Observation", Quantity, "Observation.value.as(Quantity)", "%resource.valueQuantity"},
		{"Observation", Quantity, "Observation.value.ofType(Quantity)", "%resource.valueQuantity"},
		{"Observation", String, "(Observation.value as CodeableConcept).text", "%resource.valueCodeableConcept.text"},
		// A choice element without "as" is every type the parameter can
		// index; effective[x] also allows Timing and instant.
		{"Observation", Date, "Observation.effective", "%resource.{effectiveDateTime,effectivePeriod,effectiveTiming,effectiveInstant}"},
		{"Observation", Quantity, "Observation.value", "%resource.{valueQuantity,valueRange}"},
		{"Condition", Quantity, "Condition.onset.as(Age) | Condition.onset.as(Range)", "%resource.onsetAge | %resource.onsetRange"},
		{"Condition", Date, "Condition.onset.as(dateTime) | Condition.onset.as(Period)", "%resource.onsetDateTime | %resource.onsetPeriod"},
		{"Observation", Date, "Observation.value.as(DateTime)", "%resource.valueDateTime"}, // type names ignore case
		{"Account", Reference, "Account.subject.where(resolve() is Patient)", "%resource.subject.where(resolve() is Patient)"},
		{"Patient", Token, "Patient.telecom.where(system='email')", `%resource.telecom.where($this.system = "email")`},
		{"ActivityDefinition", Reference, "ActivityDefinition.relatedArtifact.where(type='composed-of').resource", `%resource.relatedArtifact.where($this.type = "composed-of").resource`},
		{"InsurancePlan", String, "name | alias", "$this.name | $this.alias"},
		{"Patient", String, "Patient.extension('http://example.org/nickname').value", `%resource.extension.where($this.url = "http://example.org/nickname").{valueCanonical,valueCode,valueId,valueMarkdown,valueOid,valueString,valueUri,valueUrl,valueUuid,valueAddress,valueHumanName}`},
		{"Patient", Token, "Patient.extension.where(url = 'http://x').value.ofType(Coding)", `%resource.extension.where($this.url = "http://x").valueCoding`},
		{"Patient", Token, "Patient.deceased.exists() and Patient.deceased != false", "test (%resource.{deceasedBoolean,deceasedDateTime}.exists() and %resource.{deceasedBoolean,deceasedDateTime} != false)"},
		{"Patient", Token, "Patient.active.where($this = true)", ""}, // $this is not supported: see TestCompileUnsupported
		{"Resource", Token, "Resource.meta.tag", "%resource.meta.tag"},
		{"Resource", URI, "Resource.meta.profile", "%resource.meta.profile"},
		{"Patient", Token, "Resource.id", "%resource.id"},
		{"ConceptMap", Reference, "(ConceptMap.source as uri)", "%resource.sourceUri"},
		{"Group", Token, "(Group.characteristic.value as CodeableConcept) | (Group.characteristic.value as boolean)", "%resource.characteristic.valueCodeableConcept | %resource.characteristic.valueBoolean"},
		{"Questionnaire", Token, "Questionnaire.item.item.code", "%resource.item.item.code"}, // contentReference
	} {
		if tc.want == "" {
			continue
		}
		p := &Param{Code: "x", Type: tc.typ, Base: tc.base, Expression: tc.expr}
		x, err := compile(p, m)
		if err != nil {
			t.Errorf("compile(%s on %s): %v", tc.expr, tc.base, err)
			continue
		}
		if got := x.String(); got != tc.want {
			t.Errorf("compile(%s on %s) =\n\t%s\nwant\n\t%s", tc.expr, tc.base, got, tc.want)
		}
	}
}

func TestCompileUnsupported(t *testing.T) {
	m := typeModelR4(t)
	for _, tc := range []struct {
		base string
		typ  Type
		expr string
		why  string // in the error
	}{
		{"Observation", Token, "", "no FHIRPath expression"},
		{"Location", Special, "Location.position", "special"},
		{"Nonsense", Token, "Nonsense.code", "unknown base type"},
		{"Observation", Token, "Observation.nonexistent", `no element "nonexistent"`},
		{"Observation", Token, "Observation.code.coding.code.nonexistent", `no element "nonexistent"`},
		{"Observation", Quantity, "(Observation.value as Money)", "never a Money"},
		{"Observation", Token, "Observation.code.first()", "function first()"},
		{"Bundle", Reference, "Bundle.entry[0].resource", "not a path"},
		{"Observation", Reference, "Observation.subject.where(resolve() is Nonsense)", "not a resource type"},
		{"Observation", Token, "Observation.code.where(resolve() is Patient)", "resolve() on CodeableConcept"},
		{"Observation", Token, "Observation.code.where(coding.code = coding.system)", "compares two paths"},
		{"Observation", Token, "Observation.code.where(coding)", "not a supported condition"},
		{"Patient", Token, "Patient.active.where($this = true)", "expected an identifier"},
		{"Patient", String, "Patient.deceased.exists()", "boolean expression for a string parameter"},
		{"Observation", Reference, "Observation.code", "cannot index"},
		{"Observation", Quantity, "(Observation.value as SampledData)", "cannot index"},
		{"Bundle", Reference, "Bundle.entry.resource", "cannot index"},
		{"Observation", Token, "Observation.code.as()", "takes a type name"},
		{"Observation", Token, "Observation.extension(1)", "takes a URL string"},
		{"Observation", Token, "Observation.code.where()", "takes one criterion"},
		{"Observation", Token, "Observation.code[", "expected an integer"},
		{"Observation", Token, "'a string'", "not a path"},
	} {
		p := &Param{Code: "x", Type: tc.typ, Base: tc.base, Expression: tc.expr}
		x, err := compile(p, m)
		if err == nil {
			t.Errorf("compile(%s on %s) = %s, want an error", tc.expr, tc.base, x)
			continue
		}
		if !errors.Is(err, errUnsupported) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("compile(%s on %s): %v, want errUnsupported saying %q", tc.expr, tc.base, err, tc.why)
		}
	}
}

// TestCompileComposite: components are compiled relative to the elements
// the composite's expression selects, which may be of several types.
func TestCompileComposite(t *testing.T) {
	reg := registry(t)
	for _, tc := range []struct{ typ, code, want string }{
		{"Observation", "code-value-quantity", "%resource $ $this.code $ $this.valueQuantity"},
		{"Observation", "code-value-date", "%resource $ $this.code $ $this.valueDateTime | $this.valuePeriod"},
		{"Observation", "component-code-value-quantity", "%resource.component $ $this.code $ $this.valueQuantity"},
		{"Observation", "combo-code-value-concept", "%resource | %resource.component $ $this.code $ $this.valueCodeableConcept"},
		{"Group", "characteristic-value", "%resource.characteristic $ $this.code $ $this.{valueCodeableConcept,valueBoolean}"},
		{"MolecularSequence", "chromosome-variant-coordinate", "%resource.variant $ %resource.referenceSeq.chromosome $ $this.start $ $this.end"},
		{"ValueSet", "context-type-quantity", "%resource.useContext $ $this.code $ $this.valueQuantity | $this.valueRange"},
		// The erratum of componentErrata: relatesto is the reference, relation the code.
		{"DocumentReference", "relationship", "%resource.relatesTo $ $this.target $ $this.code"},
	} {
		p := reg.Param(tc.typ, tc.code)
		if p == nil {
			t.Errorf("%s %s: not supported", tc.typ, tc.code)
			continue
		}
		if got := p.compiled.(*extractor).String(); got != tc.want {
			t.Errorf("%s %s =\n\t%s\nwant\n\t%s", tc.typ, tc.code, got, tc.want)
		}
	}
	rel := reg.Param("DocumentReference", "relationship")
	if rel.Components[0].Type != Reference || rel.Components[1].Type != Token {
		t.Errorf("DocumentReference relationship components %+v: want reference then token", rel.Components)
	}
}

// TestUnsupportedParams lists every R4 search parameter the compiler does
// not support, and every union branch it leaves out, in
// testdata/unsupported.golden (go test -update rewrites it). A change in
// what is supported shows up as a diff there.
func TestUnsupportedParams(t *testing.T) {
	reg := registry(t)
	m := typeModelR4(t)
	var lines, dropped, hidden []string
	defs := map[string]bool{} // definition URL → all of its bases supported
	for base, params := range reg.byType {
		for code, p := range params {
			if p.notIndexed {
				// Warden's choice, not the compiler's: listed apart, and
				// neither searchable nor extracted.
				hidden = append(hidden, fmt.Sprintf("%s %s", base, code))
				if reg.Param(base, code) != nil || slices.Contains(reg.Params(base), p) {
					t.Errorf("%s %s: not indexed by Warden, but searchable", base, code)
				}
				if p.URL != "" && !isKnownDef(defs, p.URL) {
					defs[p.URL] = true // a definition the compiler supports
				}
				continue
			}
			ok := defs[p.URL] || !isKnownDef(defs, p.URL)
			x, err := compile(p, m)
			if (err == nil) != (p.compiled != nil) {
				t.Errorf("%s %s: compile error %v but compiled %v", base, code, err, p.compiled != nil)
			}
			if err != nil {
				lines = append(lines, fmt.Sprintf("%s %s (%s): %v", base, code, p.Type, err))
				ok = false
			} else {
				for _, d := range x.dropped {
					dropped = append(dropped, fmt.Sprintf("%s %s (%s): leaves out the branch reaching %s", base, code, p.Type, d))
				}
				if reg.Param(base, code) != p {
					t.Errorf("%s %s: compiled but Param does not return it", base, code)
				}
			}
			defs[p.URL] = ok
		}
	}
	sort.Strings(lines)
	sort.Strings(dropped)
	dropped = slices.Compact(dropped)
	unsupportedDefs := 0
	for _, ok := range defs {
		if !ok {
			unsupportedDefs++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# R4 search parameters without an index: %d of %d definitions.\n", unsupportedDefs, len(defs))
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n# Union branches left out because no value they reach can be indexed as the parameter's type.\n")
	for _, l := range dropped {
		b.WriteString(l + "\n")
	}
	sort.Strings(hidden)
	b.WriteString("\n# Defined by R4, compiled, but not indexed by Warden (notIndexed).\n")
	for _, l := range hidden {
		b.WriteString(l + "\n")
	}
	t.Logf("%d of %d R4 search parameter definitions supported", len(defs)-unsupportedDefs, len(defs))
	if len(defs) != 1375 {
		t.Errorf("%d definitions, want the 1375 of R4", len(defs))
	}
	if unsupportedDefs > 10 {
		t.Errorf("%d definitions unsupported, want at most a handful", unsupportedDefs)
	}
	golden(t, "unsupported.golden", b.String())
}

func isKnownDef(defs map[string]bool, url string) bool {
	_, ok := defs[url]
	return ok
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// The AuditEvent parameters Warden does not index are neither searchable
// nor extracted, for AuditEvent alone: _profile stays a parameter of
// every other type, and the indexed AuditEvent parameters still extract.
func TestNotIndexed(t *testing.T) {
	reg := registry(t)
	ev := map[string]any{
		"resourceType": "AuditEvent", "id": "e1",
		"meta":    map[string]any{"profile": []any{"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"}},
		"type":    map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
		"outcome": "0", "recorded": "2026-11-29T04:30:00Z",
		"agent":  []any{map[string]any{"name": "app", "requestor": true, "who": map[string]any{"identifier": map[string]any{"value": "app"}}}},
		"source": map[string]any{"site": "https://h/fhir", "observer": map[string]any{"display": "Warden", "identifier": map[string]any{"value": "https://h/fhir"}}},
		"entity": []any{map[string]any{"what": map[string]any{"reference": "Patient/p1"}, "name": "n",
			"type": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
			"role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}}},
	}
	got := map[string]bool{}
	for _, e := range reg.Extract("AuditEvent", ev) {
		got[e.Param] = true
	}
	for _, code := range notIndexed["AuditEvent"] {
		if reg.Param("AuditEvent", code) != nil {
			t.Errorf("AuditEvent %s is searchable", code)
		}
		for _, p := range reg.Params("AuditEvent") {
			if p.Code == code {
				t.Errorf("AuditEvent %s is listed as supported", code)
			}
		}
		if got[code] {
			t.Errorf("AuditEvent %s was extracted", code)
		}
	}
	for _, code := range []string{"agent", "date", "entity", "outcome", "patient", "type"} {
		if reg.Param("AuditEvent", code) == nil || !got[code] {
			t.Errorf("AuditEvent %s: searchable %v, extracted %v", code, reg.Param("AuditEvent", code) != nil, got[code])
		}
	}
	if reg.Param("Patient", "_profile") == nil || reg.Param("Observation", "_profile") == nil {
		t.Error("_profile is gone from other types")
	}
}
