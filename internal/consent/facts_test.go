package consent

import (
	"slices"
	"testing"
	"time"
)

// immunization is the R4 example Immunization-example (CC0), shortened,
// with a security label and a profile added.
const immunization = `{"resourceType":"Immunization","id":"example",
 "meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"},{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],
         "profile":["http://example.org/StructureDefinition/imm"]},
 "status":"completed",
 "vaccineCode":{"coding":[{"system":"urn:oid:1.2.36.1.2001.1005.17","code":"FLUVAX"}],"text":"Fluvax (Influenza)"},
 "patient":{"reference":"Patient/example"},"encounter":{"reference":"Encounter/example"},
 "occurrenceDateTime":"2013-01-10","recorded":"2013-01-11",
 "location":{"reference":"Location/1"},"manufacturer":{"reference":"Organization/hl7"},
 "performer":[{"function":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0443","code":"OP"}]},"actor":{"reference":"Practitioner/example"}}],
 "reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"429060002"}]}],
 "contained":[{"resourceType":"Medication","id":"m"}],"extension":[{"url":"x","valueReference":{"reference":"#m"}},{"url":"y","valueReference":{"reference":"https://elsewhere/Patient/1"}}]}`

func TestFactsOf(t *testing.T) {
	r, err := FactsOf("Immunization", "example", []byte(immunization))
	if err != nil {
		t.Fatal(err)
	}
	if r.Ref != "Immunization/example" || r.Type != "Immunization" {
		t.Errorf("ref %q", r.Ref)
	}
	if !slices.Equal(r.Security, []Coding{psy, confR}) || !slices.Equal(r.Profiles, []string{"http://example.org/StructureDefinition/imm"}) {
		t.Errorf("meta: %+v %v", r.Security, r.Profiles)
	}
	if !slices.Equal(r.Codes, []Coding{{"urn:oid:1.2.36.1.2001.1005.17", "FLUVAX"}}) {
		t.Errorf("codes %+v", r.Codes)
	}
	if !r.Date.Equal(time.Date(2013, 1, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date %v, want the occurrence, not the recording", r.Date)
	}
	if want := []string{"Encounter/example", "Location/1", "Organization/hl7", "Patient/example", "Practitioner/example"}; !slices.Equal(r.References, want) {
		t.Errorf("references %v, want %v (no contained or absolute ones)", r.References, want)
	}
	if !slices.Equal(r.Authors, []string{"Practitioner/example"}) {
		t.Errorf("authors %v", r.Authors)
	}
	// The facts feed Decide: a consent on FLUVAX, dated 2013, by that
	// practitioner, matches.
	p := policyOf(t, OptIn, consentJSON("c1", "active", "p1", `{"type":"permit",
	  "code":[{"coding":[{"system":"urn:oid:1.2.36.1.2001.1005.17","code":"FLUVAX"}]}],"dataPeriod":{"start":"2013","end":"2013"},
	  "data":[{"meaning":"authoredby","reference":{"reference":"Practitioner/example"}}]}`))
	a := access()
	a.Resource = r
	if v := decide(t, p, a); !v.Permit {
		t.Errorf("%+v", v)
	}
}

func TestFactsOfShapes(t *testing.T) {
	r, err := FactsOf("Encounter", "e1", []byte(`{"resourceType":"Encounter","type":[{"coding":[{"system":"s","code":"a"}]},{"coding":[{"system":"s","code":"b"},{"code":"nosystem"}]}],
	  "period":{"start":"2020-05-01T10:00:00+02:00"},"category":"not a concept","author":[{"reference":"Practitioner/1"},{"display":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Codes, []Coding{{"s", "a"}, {"s", "b"}}) || !r.Date.Equal(time.Date(2020, 5, 1, 8, 0, 0, 0, time.UTC)) || !slices.Equal(r.Authors, []string{"Practitioner/1"}) {
		t.Errorf("%+v", r)
	}
	if _, err := FactsOf("Observation", "o1", []byte(`[1,2]`)); err == nil {
		t.Error("an array was read as a resource")
	}
}

// FuzzFactsOf: FactsOf never panics, names the resource by the given type
// and id, and returns only relative references.
func FuzzFactsOf(f *testing.F) {
	f.Add([]byte(immunization))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := FactsOf("Observation", "o1", raw)
		if err != nil {
			return
		}
		if r.Ref != "Observation/o1" {
			t.Fatalf("ref %q", r.Ref)
		}
		for _, ref := range append(r.References, r.Authors...) {
			if !literalRefPattern.MatchString(ref) {
				t.Fatalf("reference %q", ref)
			}
		}
	})
}

// FuzzFactsFor: reading only meta gives the labels and profiles the full
// reader gives, for every resource the full reader accepts.
func FuzzFactsFor(f *testing.F) {
	f.Add([]byte(immunization))
	f.Add([]byte(`{"resourceType":"Observation","meta":{"security":[{"system":"s","code":"c"}]},"meta":{}}`))
	f.Add([]byte(`{"a":"\"meta\":{","meta":{"profile":["p"]},"b":[{"meta":1}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		full, err := FactsOf("Observation", "o1", raw)
		if err != nil {
			return
		}
		part, err := FactsFor("Observation", "o1", raw, NeedSecurity|NeedProfiles)
		if err != nil {
			t.Fatalf("FactsFor refused what FactsOf read: %v", err)
		}
		if !slices.Equal(full.Security, part.Security) || !slices.Equal(full.Profiles, part.Profiles) {
			t.Fatalf("meta differs:\n full %+v %v\n part %+v %v", full.Security, full.Profiles, part.Security, part.Profiles)
		}
	})
}

func TestNeeds(t *testing.T) {
	for _, c := range []struct {
		provision string
		want      Needs
	}{
		{`{"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}]}`, NeedSecurity},
		{`{"type":"permit","class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}]}`, 0},
		{`{"type":"permit","class":[{"system":"http://example.org","code":"http://example.org/StructureDefinition/x"}]}`, NeedProfiles},
		{`{"type":"deny","provision":[{"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"1-1"}]}]}]}`, NeedCodes},
		{`{"type":"deny","dataPeriod":{"start":"2020"}}`, NeedDate},
		{`{"type":"deny","data":[{"meaning":"dependents","reference":{"reference":"Encounter/e1"}}]}`, NeedReferences},
		{`{"type":"deny","data":[{"meaning":"authoredby","reference":{"reference":"Practitioner/d1"}}]}`, NeedAuthors},
		{`{"type":"deny","data":[{"meaning":"instance","reference":{"reference":"Observation/o1"}}]}`, 0},
	} {
		p := policyOf(t, OptOut, consentJSON("c1", "active", "p1", c.provision))
		if got := p.Needs(); got != c.want {
			t.Errorf("%s: needs %b, want %b", c.provision, got, c.want)
		}
	}
}
