package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// fixture is the data set the search tests run on. Every resource gets
// LastUpdated epoch + n minutes in the order of the list, and its
// resources are written in several transactions, with some updated and
// deleted afterwards (see load), so that searches must see only current,
// live versions.
type fixtureResource struct {
	typ, id  string
	entries  []searchparam.Entry
	patients []string
}

func fixture() []fixtureResource {
	type E = []searchparam.Entry
	return []fixtureResource{
		{"Practitioner", "dr1", E{strE("name", "Doctor Who")}, nil},
		{"Practitioner", "dr2", E{strE("name", "Doctor Strange")}, nil},
		{"Organization", "org1", E{strE("name", "Acme")}, nil},
		{"Group", "g1", nil, nil},

		{"Patient", "p1", E{
			strE("name", "Peter James Chalmers"), strE("name", "Chalmers"), strE("name", "Peter"), strE("name", "James"),
			strE("family", "Chalmers"),
			tokE("gender", "http://hl7.org/fhir/administrative-gender", "male"),
			dateE("birthdate", "1974-12-25"),
			tokE("identifier", "http://hospital/mrn", "12345"),
			tokE("active", "", "true"),
			refE("general-practitioner", "Practitioner", "dr1"),
			refE("link", "Patient", "p2"),
			tokE("_tag", "http://tags", "vip"),
			uriE("_profile", "http://example.org/profile/a"),
		}, nil},
		{"Patient", "p2", E{
			strE("name", "Éve Chalmers-Smith"), strE("name", "Chalmers-Smith"), strE("name", "Éve"),
			strE("family", "Chalmers-Smith"),
			tokE("gender", "http://hl7.org/fhir/administrative-gender", "female"),
			dateE("birthdate", "1990-06"),
			tokE("identifier", "http://hospital/mrn", "67890"),
			tokE("identifier", "http://other", "12345"),
			tokE("active", "", "false"),
			refE("general-practitioner", "Organization", "org1"),
			uriE("_profile", "http://example.org/profile/b"),
		}, nil},
		{"Patient", "p3", E{
			strE("name", "Steve Jones"), strE("name", "Jones"), strE("name", "Steve"),
			strE("family", "Jones"),
			tokE("gender", "http://hl7.org/fhir/administrative-gender", "male"),
			dateE("birthdate", "2001-01-01T10:00:00Z"),
		}, nil},
		{"Patient", "p4", E{
			tokE("identifier", "", "x1"),
		}, nil},
		{"Patient", "p5", E{strE("name", "Ghost"), strE("family", "Ghost")}, nil},

		{"Observation", "o1", E{
			refE("subject", "Patient", "p1"), refE("patient", "Patient", "p1"),
			tokTextE("code", "http://loinc.org", "1234-5", "Glucose"),
			tokE("status", "http://hl7.org/fhir/observation-status", "final"),
			qtyE("value-quantity", "5.4", "http://unitsofmeasure.org", "mg", "mg"),
			dateE("date", "2020-01-01T10:00:00Z"),
			compE("code-value-quantity", tokE("", "http://loinc.org", "1234-5"), qtyE("", "5.4", "http://unitsofmeasure.org", "mg", "mg")),
			refE("performer", "Practitioner", "dr1"),
		}, []string{"p1"}},
		{"Observation", "o2", E{
			refE("subject", "Patient", "p1"), refE("patient", "Patient", "p1"),
			tokTextE("code", "http://loinc.org", "1234-5", "Glucose [Mass/volume]"),
			tokE("status", "http://hl7.org/fhir/observation-status", "preliminary"),
			qtyE("value-quantity", "7.2", "http://unitsofmeasure.org", "mg", "mg"),
			dateE("date", "2021-06-15"),
			compE("code-value-quantity", tokE("", "http://loinc.org", "1234-5"), qtyE("", "7.2", "http://unitsofmeasure.org", "mg", "mg")),
		}, []string{"p1"}},
		{"Observation", "o3", E{
			refE("subject", "Patient", "p2"), refE("patient", "Patient", "p2"),
			tokTextE("code", "http://loinc.org", "9999-9", "Heart rate"),
			tokE("status", "http://hl7.org/fhir/observation-status", "final"),
			qtyE("value-quantity", "72", "http://unitsofmeasure.org", "/min", "/min"),
			dateE("date", "2020"),
			compE("code-value-quantity", tokE("", "http://loinc.org", "9999-9"), qtyE("", "72", "http://unitsofmeasure.org", "/min", "/min")),
		}, []string{"p2"}},
		{"Observation", "o4", E{
			refE("subject", "Patient", "p3"), refE("patient", "Patient", "p3"),
			tokE("code", "http://snomed.info/sct", "1234-5"),
			qtyE("value-quantity", "100", "http://unitsofmeasure.org", "mg/dL", "mg/dL"),
			periodE("date", "2019-01-01", "2019-12-31"),
		}, []string{"p3"}},
		{"Observation", "o5", E{
			refE("subject", "Group", "g1"),
			tokE("code", "http://loinc.org", "1234-5"),
			tokE("status", "http://hl7.org/fhir/observation-status", "final"),
			qtyE("value-quantity", "5.4", "", "gram", "gram"),
		}, nil},
		{"Observation", "o6", E{
			refE("subject", "Patient", "p5"), refE("patient", "Patient", "p5"),
			tokE("code", "http://loinc.org", "1234-5"),
		}, []string{"p5"}},
		{"Observation", "o7", E{
			refAbsE("subject", "https://other.example/fhir/Patient/p1", "Patient", "p1"),
			tokE("code", "http://loinc.org", "5555-5"),
		}, nil},
		{"Observation", "o8", E{
			refIdentE("subject", "http://hospital/mrn", "12345"),
			refURLE("focus", "urn:uuid:1234"),
			tokE("code", "http://loinc.org", "5555-5"),
		}, nil},
		{"Observation", "o9", E{
			tokE("code", "http://loinc.org", "0000-0"),
			compE("code-value-concept", tokE("", "http://loinc.org", "A"), tokE("", "http://snomed.info/sct", "pos")),
			compE("code-value-date", tokE("", "http://loinc.org", "B"), dateE("", "2022-02-02")),
			compE("code-value-string", tokE("", "http://loinc.org", "C"), strE("", "Hello World")),
		}, nil},
		{"Observation", "o10", E{
			tokE("code", "http://loinc.org", "0000-0"),
			compE("code-value-quantity", tokE("", "http://loinc.org", "A"), qtyE("", "1", "http://unitsofmeasure.org", "mg", "mg")),
			compE("code-value-quantity", tokE("", "http://loinc.org", "B"), qtyE("", "2", "http://unitsofmeasure.org", "mg", "mg")),
		}, nil},

		{"RiskAssessment", "ra1", E{numE("probability", "0.8"), refE("subject", "Patient", "p1")}, []string{"p1"}},
		{"RiskAssessment", "ra2", E{numE("probability", "0.25"), refE("subject", "Patient", "p2")}, []string{"p2"}},
	}
}

// load writes the fixture into s: the resources in three transactions,
// then a stale first version of p3 replaced by its fixture version, and
// p5 deleted. It returns the LastUpdated of each "Type/id".
func load(t testing.TB, s store.Store) map[string]time.Time {
	t.Helper()
	ctx := context.Background()
	fx := fixture()
	at := map[string]time.Time{}
	tick := epoch
	next := func() time.Time { tick = tick.Add(time.Minute); return tick }
	for start := 0; start < len(fx); start += 8 {
		end := min(start+8, len(fx))
		err := s.Tx(ctx, func(tx store.Tx) error {
			for _, r := range fx[start:end] {
				v := int64(1)
				entries := r.entries
				if r.id == "p3" {
					// Version 1 of p3 has other values, which its version
					// 2 replaces.
					entries = []searchparam.Entry{strE("name", "Stale Name"), tokE("gender", "", "female"), dateE("birthdate", "1900")}
				}
				w := write(r.typ, r.id, v, next(), entries, r.patients...)
				at[r.typ+"/"+r.id] = w.Resource.LastUpdated
				if err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("loading the fixture: %v", err)
		}
	}
	err := s.Tx(ctx, func(tx store.Tx) error {
		for _, r := range fx {
			if r.id != "p3" {
				continue
			}
			w := write(r.typ, r.id, 2, next(), r.entries, r.patients...)
			at[r.typ+"/"+r.id] = w.Resource.LastUpdated
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return tx.Put(ctx, deletion("Patient", "p5", 2, next()))
	})
	if err != nil {
		t.Fatalf("updating the fixture: %v", err)
	}
	return at
}
