package searchparam

import (
	"slices"
	"testing"
)

func TestPatientCompartmentParams(t *testing.T) {
	reg := registry(t)
	for typ, want := range map[string][]string{
		"Observation":         {"subject", "performer"},
		"Patient":             {"link"},
		"Encounter":           {"patient"},
		"Coverage":            {"policy-holder", "subscriber", "beneficiary", "payor"},
		"Organization":        nil, // in the definition, without parameters
		"Nonsense":            nil,
		"CapabilityStatement": nil,
	} {
		if got := reg.PatientCompartmentParams(typ); !slices.Equal(got, want) {
			t.Errorf("PatientCompartmentParams(%s) = %v, want %v", typ, got, want)
		}
	}
	// The caller owns the slice.
	reg.PatientCompartmentParams("Observation")[0] = "changed"
	if got := reg.PatientCompartmentParams("Observation")[0]; got != "subject" {
		t.Errorf("modifying the returned slice changed the registry: %s", got)
	}
}

// TestPatientCompartmentParamsSupported: every parameter the compartment
// definition names is a supported reference parameter of its type, so no
// compartment link is silently lost.
func TestPatientCompartmentParamsSupported(t *testing.T) {
	reg := registry(t)
	n := 0
	for typ, params := range reg.patientParams {
		for _, code := range params {
			p := reg.Param(typ, code)
			if p == nil || p.Type != Reference {
				t.Errorf("%s %s: not a supported reference parameter", typ, code)
			}
			n++
		}
	}
	if n < 100 {
		t.Errorf("only %d compartment parameters", n)
	}
}

func TestPatientCompartment(t *testing.T) {
	reg := registry(t)
	for _, tc := range []struct {
		name, typ, res string
		want           []string
	}{
		{"subject", "Observation", `{"subject":{"reference":"Patient/p1"}}`, []string{"p1"}},
		{"performer", "Observation", `{"performer":[{"reference":"Patient/p2"},{"reference":"Practitioner/d"}]}`, []string{"p2"}},
		{"several, sorted and distinct", "Observation", `{"subject":{"reference":"Patient/p2"},"performer":[{"reference":"Patient/p1"},{"reference":"Patient/p2/_history/3"}]}`, []string{"p1", "p2"}},
		{"not through other parameters", "Observation", `{"focus":[{"reference":"Patient/p1"}],"hasMember":[{"reference":"Patient/p1"}]}`, nil},
		{"subject that is not a Patient", "Observation", `{"subject":{"reference":"Group/g"}}`, nil},
		// An absolute URL may name a Patient on another server.
		{"absolute URL", "Observation", `{"subject":{"reference":"https://elsewhere.example/fhir/Patient/p1"}}`, nil},
		{"urn:uuid", "Observation", `{"subject":{"reference":"urn:uuid:0b5c2f40-1e3a-4c8e-9a55-2f7a2b3c4d5e"}}`, nil},
		{"identifier only", "Observation", `{"subject":{"type":"Patient","identifier":{"system":"s","value":"p1"}}}`, nil},
		{"contained", "Observation", `{"subject":{"reference":"#p1"}}`, nil},
		{"linked Patient", "Patient", `{"id":"self","link":[{"other":{"reference":"Patient/other"},"type":"seealso"}]}`, []string{"other"}},
		{"a Patient is not added to its own compartment here", "Patient", `{"id":"self"}`, nil},
		{"type outside the compartment", "Organization", `{"partOf":{"reference":"Patient/p1"}}`, nil},
		{"Coverage beneficiary and payor", "Coverage", `{"beneficiary":{"reference":"Patient/b"},"payor":[{"reference":"Patient/p"},{"reference":"Organization/o"}]}`, []string{"b", "p"}},
		{"Appointment actor", "Appointment", `{"participant":[{"actor":{"reference":"Patient/a"}},{"actor":{"reference":"Location/l"}}]}`, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := reg.PatientCompartment(tc.typ, reg.Extract(tc.typ, decode(t, tc.res)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("PatientCompartment = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPatientCompartmentEntries: entries that were not extracted for a
// compartment parameter, or not as references, do not count.
func TestPatientCompartmentEntries(t *testing.T) {
	reg := registry(t)
	for _, tc := range []struct {
		name    string
		entries []Entry
		want    []string
	}{
		{"reference", []Entry{{Param: "subject", Type: Reference, RefType: "Patient", RefID: "p"}}, []string{"p"}},
		{"token with the same fields", []Entry{{Param: "subject", Type: Token, RefType: "Patient", RefID: "p"}}, nil},
		{"other parameter", []Entry{{Param: "encounter", Type: Reference, RefType: "Patient", RefID: "p"}}, nil},
		{"empty id", []Entry{{Param: "subject", Type: Reference, RefType: "Patient"}}, nil},
		{"absolute", []Entry{{Param: "subject", Type: Reference, RefType: "Patient", RefID: "p", URL: "https://x/Patient/p"}}, nil},
		{"none", nil, nil},
	} {
		if got := reg.PatientCompartment("Observation", tc.entries); !slices.Equal(got, tc.want) {
			t.Errorf("%s: PatientCompartment = %v, want %v", tc.name, got, tc.want)
		}
	}
}
