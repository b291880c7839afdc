package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// searchCase is a query and the exact set of resources it must match.
type searchCase struct {
	name  string
	q     *search.Query
	want  []string // "Type/id"
	order bool     // want is in result order
}

// withCompartment sets the compartment of q.
func withCompartment(q *search.Query, patient string) *search.Query {
	q.Compartment = &search.Compartment{Type: "Patient", ID: patient}
	return q
}

func withSort(q *search.Query, keys ...search.Sort) *search.Query {
	q.Sort = keys
	return q
}

func asc(p *searchparam.Param) search.Sort  { return search.Sort{Param: p} }
func desc(p *searchparam.Param) search.Sort { return search.Sort{Param: p, Desc: true} }

// instant formats t as a FHIR instant to the second.
func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func searchCases(at map[string]time.Time, now time.Time) []searchCase {
	P := func(list ...string) []string { return names("Patient", list...) }
	O := func(list ...string) []string { return names("Observation", list...) }
	obs := func(c ...search.Clause) *search.Query { return query("Observation", c...) }
	pat := func(c ...search.Clause) *search.Query { return query("Patient", c...) }
	loinc := "http://loinc.org"
	ucum := "http://unitsofmeasure.org"

	// ap on a date: within 10% of the gap between now and the date
	// (FHIR R4 §3.1.1.4.5), so the expectation depends on the clock.
	ap := vDate(search.Ap, "2020-01-01")
	gap := now.UnixMicro() - ap.Lo
	apLo, apHi := ap.Lo-gap/10, ap.Hi+gap/10
	var apWant []string
	for _, o := range []struct {
		id     string
		lo, hi string
	}{{"o1", "2020-01-01T10:00:00Z", "2020-01-01T10:00:00Z"}, {"o2", "2021-06-15", "2021-06-15"}, {"o3", "2020", "2020"}, {"o4", "2019-01-01", "2019-12-31"}} {
		lo, _ := dateRange(o.lo)
		_, hi := dateRange(o.hi)
		if lo < apHi && hi > apLo {
			apWant = append(apWant, "Observation/"+o.id)
		}
	}

	return []searchCase{
		// String (FHIR R4 §3.1.1.4.8): starts with, case- and accent-insensitive.
		{"string prefix", pat(cl(pName, vStr("peter"))), P("p1"), false},
		{"string case", pat(cl(pName, vStr("PETER"))), P("p1"), false},
		{"string accent", pat(cl(pName, vStr("eve"))), P("p2"), false},
		{"string accent in value", pat(cl(pName, vStr("Éve"))), P("p2"), false},
		{"string prefix of several", pat(cl(pName, vStr("chalmers"))), P("p1", "p2"), false},
		{"string with punctuation", pat(cl(pName, vStr("chalmers-s"))), P("p2"), false},
		{"string of a replaced version", pat(cl(pName, vStr("stale"))), nil, false},
		{"string of a deleted resource", pat(cl(pName, vStr("ghost"))), nil, false},
		{"string exact", pat(clMod(pName, search.ModExact, vStr("Peter"))), P("p1"), false},
		{"string exact is case-sensitive", pat(clMod(pName, search.ModExact, vStr("peter"))), nil, false},
		{"string exact with punctuation", pat(clMod(pName, search.ModExact, vStr("Chalmers-Smith"))), P("p2"), false},
		{"string contains", pat(clMod(pName, search.ModContains, vStr("alm"))), P("p1", "p2"), false},
		{"string contains anywhere", pat(clMod(pName, search.ModContains, vStr("eve"))), P("p2", "p3"), false},
		{"string missing", pat(clMod(pName, search.ModMissing, vMissing(true))), P("p4"), false},
		{"string present", pat(clMod(pName, search.ModMissing, vMissing(false))), P("p1", "p2", "p3"), false},
		{"string or", pat(cl(pName, vStr("peter"), vStr("steve"))), P("p1", "p3"), false},
		{"string and", pat(cl(pFamily, vStr("chalmers")), cl(pName, vStr("peter"))), P("p1"), false},

		// Token (§3.1.1.4.10).
		{"token code", pat(cl(pGender, vCode("male"))), P("p1", "p3"), false},
		{"token of a replaced version", pat(cl(pGender, vCode("female"))), P("p2"), false},
		{"token not", pat(clMod(pGender, search.ModNot, vCode("male"))), P("p2", "p4"), false},
		{"token or", pat(cl(pGender, vCode("male"), vCode("female"))), P("p1", "p2", "p3"), false},
		{"token system and code", pat(cl(pGender, vSysCode("http://hl7.org/fhir/administrative-gender", "male"))), P("p1", "p3"), false},
		{"token without system", pat(cl(pGender, vSysCode("", "male"))), nil, false},
		{"token code in any system", pat(cl(pIdentifier, vCode("12345"))), P("p1", "p2"), false},
		{"token code in one system", pat(cl(pIdentifier, vSysCode("http://hospital/mrn", "12345"))), P("p1"), false},
		{"token any code of a system", pat(cl(pIdentifier, vSys("http://hospital/mrn"))), P("p1", "p2"), false},
		{"token code with no system", pat(cl(pIdentifier, vSysCode("", "x1"))), P("p4"), false},
		{"token code with no system only", pat(cl(pIdentifier, vSysCode("", "12345"))), nil, false},
		{"token missing", pat(clMod(pIdentifier, search.ModMissing, vMissing(true))), P("p3"), false},
		{"token present", pat(clMod(pIdentifier, search.ModMissing, vMissing(false))), P("p1", "p2", "p4"), false},
		{"token boolean", pat(cl(pActive, vCode("true"))), P("p1"), false},
		{"token not boolean", pat(clMod(pActive, search.ModNot, vCode("true"))), P("p2", "p3", "p4"), false},
		{"token on Resource", pat(cl(pTag, vSysCode("http://tags", "vip"))), P("p1"), false},
		{"token text", obs(clMod(pCode, search.ModText, vText("gluc"))), O("o1", "o2"), false},
		{"token text of another", obs(clMod(pCode, search.ModText, vText("Heart"))), O("o3"), false},
		{"token text is a prefix", obs(clMod(pCode, search.ModText, vText("rate"))), nil, false},
		{"token code across systems", obs(cl(pCode, vCode("1234-5"))), O("o1", "o2", "o4", "o5", "o6"), false},
		{"token code in loinc", obs(cl(pCode, vSysCode(loinc, "1234-5"))), O("o1", "o2", "o5", "o6"), false},
		{"token not in loinc", obs(clMod(pCode, search.ModNot, vSysCode(loinc, "1234-5"))), O("o3", "o4", "o7", "o8", "o9", "o10"), false},

		// URI (§3.1.1.4.14).
		{"uri", pat(cl(pProfile, search.Value{Exact: "http://example.org/profile/a"})), P("p1"), false},
		{"uri is exact", pat(cl(pProfile, search.Value{Exact: "http://example.org/profile"})), nil, false},

		// Date (§3.1.1.4.7) and prefixes (§3.1.1.4.5).
		{"date year", pat(cl(pBirthdate, vDate(search.Eq, "1974"))), P("p1"), false},
		{"date month", pat(cl(pBirthdate, vDate(search.Eq, "1974-12"))), P("p1"), false},
		{"date day", pat(cl(pBirthdate, vDate(search.Eq, "1974-12-25"))), P("p1"), false},
		{"date finer than the target", pat(cl(pBirthdate, vDate(search.Eq, "1974-12-25T00:00:00Z"))), nil, false},
		{"date month target in year", pat(cl(pBirthdate, vDate(search.Eq, "1990"))), P("p2"), false},
		{"date month target in day", pat(cl(pBirthdate, vDate(search.Eq, "1990-06-15"))), nil, false},
		{"date ne", pat(cl(pBirthdate, vDate(search.Ne, "1974"))), P("p2", "p3"), false},
		{"date lt", pat(cl(pBirthdate, vDate(search.Lt, "1990"))), P("p1"), false},
		{"date lt overlapping", pat(cl(pBirthdate, vDate(search.Lt, "1990-07"))), P("p1", "p2"), false},
		{"date gt", pat(cl(pBirthdate, vDate(search.Gt, "1990"))), P("p3"), false},
		{"date gt overlapping", pat(cl(pBirthdate, vDate(search.Gt, "1990-05"))), P("p2", "p3"), false},
		{"date ge", pat(cl(pBirthdate, vDate(search.Ge, "1990-06"))), P("p2", "p3"), false},
		{"date le", pat(cl(pBirthdate, vDate(search.Le, "1990-06"))), P("p1", "p2"), false},
		{"date sa", pat(cl(pBirthdate, vDate(search.Sa, "1990"))), P("p3"), false},
		{"date eb", pat(cl(pBirthdate, vDate(search.Eb, "1990-06-15"))), P("p1"), false},
		{"date ap", pat(cl(pBirthdate, vDate(search.Ap, "1974-12-25"))), P("p1"), false},
		{"date missing", pat(clMod(pBirthdate, search.ModMissing, vMissing(true))), P("p4"), false},
		{"date period in year", obs(cl(pDate, vDate(search.Eq, "2019"))), O("o4"), false},
		{"date instant in year", obs(cl(pDate, vDate(search.Eq, "2020"))), O("o1", "o3"), false},
		{"date period lt", obs(cl(pDate, vDate(search.Lt, "2020"))), O("o4"), false},
		{"date period ge", obs(cl(pDate, vDate(search.Ge, "2020"))), O("o1", "o2", "o3"), false},
		{"date period sa", obs(cl(pDate, vDate(search.Sa, "2019"))), O("o1", "o2", "o3"), false},
		{"date period eb", obs(cl(pDate, vDate(search.Eb, "2020"))), O("o4"), false},
		{"date period gt", obs(cl(pDate, vDate(search.Gt, "2020"))), O("o2"), false},
		{"date period le", obs(cl(pDate, vDate(search.Le, "2019-06"))), O("o4"), false},
		{"date period not in month", obs(cl(pDate, vDate(search.Eq, "2019-06"))), nil, false},
		{"date ap around now", obs(cl(pDate, ap)), apWant, false},

		// Number (§3.1.1.4.6): the precision of the search value counts.
		{"number eq", query("RiskAssessment", cl(pProbability, vNum(search.Eq, "0.8"))), names("RiskAssessment", "ra1"), false},
		{"number eq finer than the target", query("RiskAssessment", cl(pProbability, vNum(search.Eq, "0.80"))), nil, false},
		{"number gt", query("RiskAssessment", cl(pProbability, vNum(search.Gt, "0.5"))), names("RiskAssessment", "ra1"), false},
		{"number lt", query("RiskAssessment", cl(pProbability, vNum(search.Lt, "0.5"))), names("RiskAssessment", "ra2"), false},
		{"number ge", query("RiskAssessment", cl(pProbability, vNum(search.Ge, "0.25"))), names("RiskAssessment", "ra1", "ra2"), false},
		{"number ne", query("RiskAssessment", cl(pProbability, vNum(search.Ne, "0.8"))), names("RiskAssessment", "ra2"), false},
		{"number sa", query("RiskAssessment", cl(pProbability, vNum(search.Sa, "0.5"))), names("RiskAssessment", "ra1"), false},
		{"number eb", query("RiskAssessment", cl(pProbability, vNum(search.Eb, "0.5"))), names("RiskAssessment", "ra2"), false},
		{"number ap", query("RiskAssessment", cl(pProbability, vNum(search.Ap, "0.26"))), names("RiskAssessment", "ra2"), false},
		{"number ap too far", query("RiskAssessment", cl(pProbability, vNum(search.Ap, "0.30"))), nil, false},
		{"number ap within the value's precision", query("RiskAssessment", cl(pProbability, vNum(search.Ap, "0.3"))), names("RiskAssessment", "ra2"), false},

		// Quantity (§3.1.1.4.11).
		{"quantity any unit", obs(cl(pValueQty, vQty(search.Eq, "5.4", "", ""))), O("o1", "o5"), false},
		{"quantity system and code", obs(cl(pValueQty, vQty(search.Eq, "5.4", ucum, "mg"))), O("o1"), false},
		{"quantity code in any system", obs(cl(pValueQty, vQty(search.Eq, "5.4", "", "mg"))), O("o1"), false},
		{"quantity unit as written", obs(cl(pValueQty, vQty(search.Eq, "5.4", "", "gram"))), O("o5"), false},
		{"quantity system only", obs(cl(pValueQty, vQty(search.Eq, "5.4", ucum, ""))), O("o1"), false},
		{"quantity gt", obs(cl(pValueQty, vQty(search.Gt, "6", "", ""))), O("o2", "o3", "o4"), false},
		{"quantity lt with unit", obs(cl(pValueQty, vQty(search.Lt, "6", ucum, "mg"))), O("o1"), false},
		{"quantity ap", obs(cl(pValueQty, vQty(search.Ap, "70", "", ""))), O("o3"), false},

		// Reference (§3.1.1.4.12).
		{"reference type and id", obs(cl(pSubject, vRef("Patient", "p1"))), O("o1", "o2"), false},
		{"reference id alone", obs(cl(pSubject, vRef("", "p1"))), O("o1", "o2"), false},
		{"reference type modifier", obs(search.Clause{Param: pSubject, Modifier: search.ModType, TargetType: "Patient", Values: []search.Value{vRef("Patient", "p1")}}), O("o1", "o2"), false},
		{"reference type modifier filters", obs(search.Clause{Param: pSubject, Modifier: search.ModType, TargetType: "Group", Values: []search.Value{vRef("", "p1")}}), nil, false},
		{"reference to a group", obs(cl(pSubject, vRef("Group", "g1"))), O("o5"), false},
		{"reference to a deleted resource", obs(cl(pSubject, vRef("Patient", "p5"))), O("o6"), false},
		{"reference single target", obs(cl(pPatient, vRef("Patient", "p1"))), O("o1", "o2"), false},
		// An absolute reference may name a resource on another server: it
		// matches as written, never as a local Type/id.
		{"reference absolute", obs(cl(pSubject, search.Value{URL: "https://other.example/fhir/Patient/p1", RefType: "Patient", RefID: "p1"})), O("o7"), false},
		{"reference absolute elsewhere", obs(cl(pSubject, search.Value{URL: "https://else.example/fhir/Patient/p1", RefType: "Patient", RefID: "p1"})), nil, false},
		{"reference url", obs(cl(pFocus, vURL("urn:uuid:1234"))), O("o8"), false},
		{"reference identifier", obs(clMod(pSubject, search.ModIdentifier, vSysCode("http://hospital/mrn", "12345"))), O("o8"), false},
		{"reference identifier any system", obs(clMod(pSubject, search.ModIdentifier, vCode("12345"))), O("o8"), false},
		{"reference missing", obs(clMod(pSubject, search.ModMissing, vMissing(true))), O("o9", "o10"), false},
		{"reference present", obs(clMod(pSubject, search.ModMissing, vMissing(false))), O("o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"), false},
		{"reference or", obs(cl(pSubject, vRef("Patient", "p1"), vRef("Group", "g1"))), O("o1", "o2", "o5"), false},
		{"reference on another type", query("RiskAssessment", cl(pRASubject, vRef("Patient", "p1"))), names("RiskAssessment", "ra1"), false},

		// Composite (§3.1.1.4.17): the components of one value together.
		{"composite token$quantity", obs(cl(pCodeValue, vComp(vSysCode(loinc, "1234-5"), vQty(search.Eq, "5.4", ucum, "mg")))), O("o1"), false},
		{"composite with prefix", obs(cl(pCodeValue, vComp(vSysCode(loinc, "9999-9"), vQty(search.Gt, "50", "", "")))), O("o3"), false},
		{"composite no match", obs(cl(pCodeValue, vComp(vCode("1234-5"), vQty(search.Gt, "100", "", "")))), nil, false},
		{"composite second", obs(cl(pCodeValue, vComp(vCode("1234-5"), vQty(search.Eq, "7.2", "", "")))), O("o2"), false},
		{"composite across resources", obs(cl(pCodeValue, vComp(vCode("9999-9"), vQty(search.Eq, "5.4", "", "")))), nil, false},
		{"composite pairs", obs(cl(pCodeValue, vComp(vCode("A"), vQty(search.Eq, "1", "", "")))), O("o10"), false},
		{"composite pairs not crossed", obs(cl(pCodeValue, vComp(vCode("A"), vQty(search.Eq, "2", "", "")))), nil, false},
		{"composite other pair", obs(cl(pCodeValue, vComp(vCode("B"), vQty(search.Eq, "2", "", "")))), O("o10"), false},
		{"composite or", obs(cl(pCodeValue, vComp(vCode("A"), vQty(search.Eq, "1", "", "")), vComp(vCode("B"), vQty(search.Eq, "3", "", "")))), O("o10"), false},
		{"composite token$token", obs(cl(pCodeConc, vComp(vCode("A"), vSysCode("http://snomed.info/sct", "pos")))), O("o9"), false},
		{"composite token$date", obs(cl(pCodeDate, vComp(vCode("B"), vDate(search.Eq, "2022")))), O("o9"), false},
		{"composite token$date gt", obs(cl(pCodeDate, vComp(vCode("B"), vDate(search.Gt, "2023")))), nil, false},
		{"composite token$string", obs(cl(pCodeStr, vComp(vCode("C"), vStr("hello")))), O("o9"), false},
		{"composite token$string prefix", obs(cl(pCodeStr, vComp(vCode("C"), vStr("world")))), nil, false},

		// Chains (§3.1.1.4.15).
		{"chain typed", obs(chain(pSubject, "Patient", cl(pName, vStr("peter")))), O("o1", "o2"), false},
		{"chain untyped", obs(chain(pSubject, "", cl(pName, vStr("peter")))), O("o1", "o2"), false},
		{"chain token", obs(chain(pSubject, "Patient", cl(pGender, vCode("female")))), O("o3"), false},
		{"chain date", obs(chain(pSubject, "Patient", cl(pBirthdate, vDate(search.Lt, "1980")))), O("o1", "o2"), false},
		{"chain to a deleted resource", obs(chain(pSubject, "Patient", cl(pName, vStr("ghost")))), nil, false},
		{"chain to a replaced version", obs(chain(pSubject, "Patient", cl(pName, vStr("stale")))), nil, false},
		{"chain across target types", pat(chain(pGP, "", cl(pPractName, vStr("doctor")))), P("p1"), false},
		{"chain to another type", pat(chain(pGP, "", cl(pOrgName, vStr("acme")))), P("p2"), false},
		{"chain type restricts", pat(chain(pGP, "Practitioner", cl(pOrgName, vStr("acme")))), nil, false},
		{"chain missing", obs(chain(pSubject, "Patient", clMod(pIdentifier, search.ModMissing, vMissing(true)))), O("o4"), false},
		{"chain _id", obs(chain(pSubject, "Patient", cl(pID, vCode("p2")))), O("o3"), false},

		// Reverse chains (§3.1.1.4.16).
		{"has", pat(has("Observation", pPatient, cl(pCode, vCode("1234-5")))), P("p1", "p3"), false},
		{"has other reference", pat(has("Observation", pSubject, cl(pStatus, vCode("preliminary")))), P("p1"), false},
		{"has not", pat(has("Observation", pPatient, clMod(pStatus, search.ModNot, vCode("final")))), P("p1", "p3"), false},
		{"has number", pat(has("RiskAssessment", pRASubject, cl(pProbability, vNum(search.Gt, "0.5")))), P("p1"), false},
		{"has on another type", query("Practitioner", has("Patient", pGP, cl(pGender, vCode("male")))), names("Practitioner", "dr1"), false},
		{"has and clause", pat(has("Observation", pPatient, cl(pCode, vCode("1234-5"))), cl(pGender, vCode("male")), cl(pBirthdate, vDate(search.Gt, "2000"))), P("p3"), false},

		// Compartments.
		{"compartment", withCompartment(obs(), "p1"), O("o1", "o2"), false},
		{"compartment and clause", withCompartment(obs(cl(pCode, vSysCode(loinc, "1234-5"))), "p1"), O("o1", "o2"), false},
		{"compartment patient itself", withCompartment(pat(), "p1"), P("p1"), false},
		{"compartment patient itself and clause", withCompartment(pat(cl(pName, vStr("peter"))), "p2"), nil, false},
		{"compartment other type", withCompartment(query("RiskAssessment"), "p1"), names("RiskAssessment", "ra1"), false},
		{"compartment of a deleted patient", withCompartment(obs(), "p5"), O("o6"), false},
		{"compartment deleted patient itself", withCompartment(pat(), "p5"), nil, false},

		// _id and _lastUpdated.
		{"id", pat(cl(pID, vCode("p1"), vCode("p3"))), P("p1", "p3"), false},
		{"id of a deleted resource", pat(cl(pID, vCode("p5"))), nil, false},
		{"id of another type", pat(cl(pID, vCode("o1"))), nil, false},
		{"id not", pat(clMod(pID, search.ModNot, vCode("p1"))), P("p2", "p3", "p4"), false},
		{"lastUpdated eq", pat(cl(pLastUpdated, vDate(search.Eq, instant(at["Patient/p1"])))), P("p1"), false},
		{"lastUpdated gt", pat(cl(pLastUpdated, vDate(search.Gt, instant(at["Patient/p2"])))), P("p3", "p4"), false},
		{"lastUpdated lt", pat(cl(pLastUpdated, vDate(search.Lt, instant(at["Patient/p2"])))), P("p1"), false},
		{"lastUpdated day", pat(cl(pLastUpdated, vDate(search.Eq, epoch.Format("2006-01-02")))), P("p1", "p2", "p3", "p4"), false},

		// All types together.
		{"and across types", pat(cl(pGender, vCode("male")), cl(pBirthdate, vDate(search.Lt, "1990"))), P("p1"), false},
		{"three clauses", obs(cl(pCode, vCode("1234-5")), cl(pPatient, vRef("Patient", "p1")), cl(pStatus, vCode("final"))), O("o1"), false},
		{"no clauses", pat(), P("p1", "p2", "p3", "p4"), true},
		{"other type", query("Group"), names("Group", "g1"), false},
		{"unknown type", query("Basic"), nil, false},

		// _sort (§3.1.1.5.1): lowest value ascending, highest descending,
		// resources without a value last, ties by creation.
		{"sort date", withSort(pat(), asc(pBirthdate)), P("p1", "p2", "p3", "p4"), true},
		{"sort date desc", withSort(pat(), desc(pBirthdate)), P("p3", "p2", "p1", "p4"), true},
		{"sort two keys", withSort(pat(), asc(pGender), desc(pBirthdate)), P("p2", "p3", "p1", "p4"), true},
		{"sort id desc", withSort(pat(), desc(pID)), P("p4", "p3", "p2", "p1"), true},
		{"sort lastUpdated desc", withSort(pat(), desc(pLastUpdated)), P("p3", "p4", "p2", "p1"), true},
		{"sort string", withSort(pat(), asc(pFamily)), P("p1", "p2", "p3", "p4"), true},
		{"sort lowest string", withSort(pat(), asc(pName)), P("p1", "p2", "p3", "p4"), true},
		{"sort highest string", withSort(pat(), desc(pName)), P("p3", "p1", "p2", "p4"), true},
		{"sort quantity with ties", withSort(obs(), asc(pValueQty)), O("o1", "o5", "o2", "o3", "o4", "o6", "o7", "o8", "o9", "o10"), true},
		{"sort date desc by end", withSort(obs(), desc(pDate)), O("o2", "o3", "o1", "o4", "o5", "o6", "o7", "o8", "o9", "o10"), true},
		{"sort number", withSort(query("RiskAssessment"), desc(pProbability)), names("RiskAssessment", "ra1", "ra2"), true},
		{"sort with filter", withSort(obs(cl(pCode, vCode("1234-5"))), desc(pValueQty)), O("o4", "o2", "o1", "o5", "o6"), true},
	}
}

func testSearch(t *testing.T, s store.Store, at map[string]time.Time) {
	ctx := context.Background()
	for _, c := range searchCases(at, time.Now()) {
		t.Run(c.name, func(t *testing.T) {
			res, err := s.Search(ctx, c.q, store.PageRequest{WantTotal: true})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			got := ids(res.Matches)
			want := slices.Clone(c.want)
			if !c.order {
				slices.Sort(got)
				slices.Sort(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("matches %v, want %v", got, want)
			}
			if res.Total != len(c.want) {
				t.Errorf("Total %d, want %d", res.Total, len(c.want))
			}
			if len(res.Included) != 0 || res.Next != "" || res.Prev != "" {
				t.Errorf("Included %v, Next %q, Prev %q: want none", ids(res.Included), res.Next, res.Prev)
			}
			for _, m := range res.Matches {
				if m.Deleted || len(m.JSON) == 0 || m.Version < 1 {
					t.Errorf("match %s/%s: deleted %v, %d bytes, version %d", m.Type, m.ID, m.Deleted, len(m.JSON), m.Version)
				}
			}
		})
	}
}

// testSearchTotals checks Total, OnlyCount and Count 0.
func testSearchTotals(t *testing.T, s store.Store) {
	ctx := context.Background()
	q := query("Observation", cl(pCode, vCode("1234-5")))
	q.Count = 2
	res, err := s.Search(ctx, q, store.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != -1 || len(res.Matches) != 2 || res.Next == "" {
		t.Errorf("without WantTotal: Total %d, %d matches, Next %q; want -1, 2, a cursor", res.Total, len(res.Matches), res.Next)
	}
	res, err = s.Search(ctx, q, store.PageRequest{WantTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 5 {
		t.Errorf("Total %d, want 5", res.Total)
	}
	next, err := s.Search(ctx, q, store.PageRequest{WantTotal: true, Cursor: res.Next})
	if err != nil {
		t.Fatal(err)
	}
	if next.Total != 5 || len(next.Matches) != 2 {
		t.Errorf("second page: Total %d, %d matches; want 5, 2", next.Total, len(next.Matches))
	}
	res, err = s.Search(ctx, q, store.PageRequest{OnlyCount: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 5 || len(res.Matches) != 0 || res.Next != "" {
		t.Errorf("OnlyCount: Total %d, %d matches, Next %q; want 5, none", res.Total, len(res.Matches), res.Next)
	}
	q.Count = 0
	res, err = s.Search(ctx, q, store.PageRequest{WantTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 5 || len(res.Matches) != 0 {
		t.Errorf("Count 0: Total %d, %d matches; want 5, none", res.Total, len(res.Matches))
	}
	q = query("Observation", cl(pCode, vCode("no-such-code")))
	res, err = s.Search(ctx, q, store.PageRequest{WantTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 0 || len(res.Matches) != 0 {
		t.Errorf("no match: Total %d, %d matches", res.Total, len(res.Matches))
	}
}

// testBadCursor checks that cursors that were not issued are refused.
func testBadCursor(t *testing.T, s store.Store) {
	ctx := context.Background()
	q := query("Patient")
	q.Count = 1
	first, err := s.Search(ctx, q, store.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sorted := withSort(query("Patient"), asc(pBirthdate))
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		q      *search.Query
		cursor string
	}{
		{"not base64", q, "!!!"},
		{"not JSON", q, "bm90IGpzb24"},
		{"unknown field", q, "eyJ0IjoicyIsIngiOjF9"},
		{"history cursor", q, hist.Next},
		{"other sort", sorted, first.Next},
		{"huge", q, string(make([]byte, 100000))},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Search(ctx, c.q, store.PageRequest{Cursor: c.cursor})
			if !errors.Is(err, store.ErrBadCursor) {
				t.Errorf("Search: %v, want ErrBadCursor", err)
			}
		})
	}
	_, err = s.History(ctx, store.HistoryQuery{Type: "Patient", Count: 1, After: first.Next})
	if !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("History with a search cursor: %v, want ErrBadCursor", err)
	}
	_, err = s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p3", Count: 1, After: hist.Next})
	if !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("instance History with a type history cursor: %v, want ErrBadCursor", err)
	}
}
