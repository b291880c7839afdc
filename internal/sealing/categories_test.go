package sealing

import (
	"slices"
	"testing"
)

// TestCategories: the labels that seal are found however the JSON spells
// them (the shortcut for metas without the sensitivity system must not
// miss an escaped one), and nothing else seals.
func TestCategories(t *testing.T) {
	s := &Store{p: Policy{Categories: map[string]Category{"HIV": {}, "PSY": {}}}}
	for _, tc := range []struct {
		meta string
		want []string
	}{
		{`{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}`, []string{"HIV"}},
		{`{"security":[{"system":"http:\/\/terminology.hl7.org\/CodeSystem\/v3-ActCode","code":"HIV"}]}`, []string{"HIV"}},
		{`{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Act\u0043ode","code":"PSY"}]}`, []string{"PSY"}},
		{`{"security":[{"code":"\u0048IV","system":"http://terminology.hl7.org/CodeSystem/v3-ActCode"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}`, []string{"HIV", "PSY"}},
		{`{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}`, nil},
		{`{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"ETH"}]}`, nil},
		{`{"security":[{"system":"http://example.org/other","code":"HIV"}]}`, nil},
		{`{"versionId":"1","profile":["http://hl7.org/fhir/StructureDefinition/Patient"]}`, nil},
		{`{"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}`, nil},
	} {
		if got := s.categories([]byte(tc.meta)); !slices.Equal(got, tc.want) {
			t.Errorf("categories(%s) = %v, want %v", tc.meta, got, tc.want)
		}
	}
}
