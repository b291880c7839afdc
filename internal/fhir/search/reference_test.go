package search

import (
	"testing"
)

// TestReferenceFormsNormalise: every way of writing "Patient 123" in a
// reference search — the forms THREATS.md lists as ways around a
// compartment check — yields RefType Patient and RefID 123, alone, in a
// comma list, or repeated.
func TestReferenceFormsNormalise(t *testing.T) {
	tests := []struct{ name, query string }{
		{"Type/id", "patient=Patient/123"},
		{"type-less id on a Patient-only parameter", "patient=123"},
		{"type modifier", "subject:Patient=123"},
		{"type modifier and type", "subject:Patient=Patient/123"},
		{"versioned", "subject=Patient/123/_history/2"},
		{"versioned with modifier", "subject:Patient=Patient/123/_history/2"},
		{"absolute", "subject=http://example.org/fhir/Patient/123"},
		{"absolute elsewhere", "patient=https://other.example.com/base/r4/Patient/123"},
		{"absolute versioned", "subject=https://example.org/fhir/Patient/123/_history/7"},
		{"absolute with modifier", "subject:Patient=http://example.org/fhir/Patient/123"},
		{"comma list", "patient=Patient/123,123,http://example.org/fhir/Patient/123,Patient/123/_history/1"},
		{"repeated", "patient=123&patient=Patient/123/_history/3&patient=http://example.org/fhir/Patient/123"},
		{"repeated across parameters", "patient=123&subject=Patient/123&subject:Patient=123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseQuery(t, "Observation", tt.query, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, c := range q.Clauses {
				for _, v := range c.Values {
					n++
					if v.RefType != "Patient" || v.RefID != "123" {
						t.Errorf("%s: RefType/RefID = %q/%q, want Patient/123", c.Param.Code, v.RefType, v.RefID)
					}
				}
			}
			if n == 0 {
				t.Error("no values")
			}
		})
	}
}

// TestReferenceTypeless: a bare id on a parameter with several targets
// leaves RefType empty (any target), and the type modifier or a single
// target fills it in.
func TestReferenceTypeless(t *testing.T) {
	tests := []struct {
		typ, query, wantType string
	}{
		{"Observation", "subject=123", ""},
		{"Observation", "subject:Device=123", "Device"},
		{"Observation", "patient=123", "Patient"},
		{"Encounter", "patient=123", "Patient"},
		{"Patient", "organization=123", "Organization"},
		{"Patient", "general-practitioner=123", ""},
		{"Patient", "general-practitioner:Practitioner=123", "Practitioner"},
	}
	for _, tt := range tests {
		q, err := parseQuery(t, tt.typ, tt.query, testOpts)
		if err != nil {
			t.Errorf("%s?%s: %v", tt.typ, tt.query, err)
			continue
		}
		if v := q.Clauses[0].Values[0]; v.RefType != tt.wantType || v.RefID != "123" {
			t.Errorf("%s?%s: RefType/RefID = %q/%q, want %q/123", tt.typ, tt.query, v.RefType, v.RefID, tt.wantType)
		}
	}
}

func TestResolveRestriction(t *testing.T) {
	tests := []struct {
		expr, typ           string
		restricted, allowed bool
	}{
		{"Observation.subject.where(resolve() is Patient)", "Patient", true, true},
		{"Observation.subject.where(resolve() is Patient)", "Group", true, false},
		{"AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)", "Patient", true, true},
		{"A.b.where(resolve() is Patient) | A.c", "Group", false, false},
		{"Observation.subject", "Group", false, false},
		{"A.b.where(resolve() is Patient or resolve() is Group)", "Group", false, false},
		{"", "Patient", false, false},
	}
	for _, tt := range tests {
		r, a := resolveRestriction(tt.expr, tt.typ)
		if r != tt.restricted || a != tt.allowed {
			t.Errorf("resolveRestriction(%q, %q) = %v, %v; want %v, %v", tt.expr, tt.typ, r, a, tt.restricted, tt.allowed)
		}
	}
}
