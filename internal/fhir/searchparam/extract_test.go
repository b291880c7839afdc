package searchparam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// decode decodes a resource the way the server does, numbers as json.Number.
func decode(tb testing.TB, s string) map[string]any {
	tb.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		tb.Fatalf("decoding %s: %v", s, err)
	}
	return m
}

// of returns the entries of one parameter.
func of(entries []Entry, code string) []Entry {
	var out []Entry
	for _, e := range entries {
		if e.Param == code {
			out = append(out, e)
		}
	}
	return out
}

func dateEntry(code, value string) Entry {
	lo, hi, err := DateRange(value)
	if err != nil {
		panic(err)
	}
	return Entry{Param: code, Type: Date, Lo: lo, Hi: hi}
}

func numEntry(code string, typ Type, value string) Entry {
	v, lo, hi, err := NumberRange(value)
	if err != nil {
		panic(err)
	}
	return Entry{Param: code, Type: typ, Num: v, NumLo: lo, NumHi: hi}
}

func strEntry(code, s string) Entry {
	return Entry{Param: code, Type: String, Text: NormalizeString(s), Exact: s}
}

func tok(code, system, c, text string) Entry {
	return Entry{Param: code, Type: Token, System: system, Code: c, Text: text}
}

func ref(code, typ, id, url string) Entry {
	return Entry{Param: code, Type: Reference, RefType: typ, RefID: id, URL: url}
}

func with(e Entry, f func(*Entry)) Entry {
	f(&e)
	return e
}

func TestExtract(t *testing.T) {
	reg := registry(t)
	const ucum = "http://unitsofmeasure.org"
	bp := `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
		"component":[
			{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`
	for _, tc := range []struct {
		name, typ, res, param string
		want                  []Entry
	}{
		// string
		{"HumanName parts", "Patient", `{"name":[{"family":"Müller","given":["Anna","Maria"],"prefix":["Dr."],"suffix":["PhD"],"text":"Dr. Anna Maria Müller"}]}`, "name",
			[]Entry{strEntry("name", "Müller"), strEntry("name", "Anna"), strEntry("name", "Maria"), strEntry("name", "Dr."), strEntry("name", "PhD"), strEntry("name", "Dr. Anna Maria Müller")}},
		{"family only", "Patient", `{"name":[{"family":"Müller","given":["Anna"]}]}`, "family", []Entry{strEntry("family", "Müller")}},
		{"given of every name", "Patient", `{"name":[{"given":["Anna"]},{"given":["Annie","Anna"]}]}`, "given", []Entry{strEntry("given", "Anna"), strEntry("given", "Annie")}},
		{"Address parts", "Patient", `{"address":[{"line":["1 Main St","Apt 2"],"city":"Springfield","district":"Hampden","state":"MA","postalCode":"01101","country":"US","text":"1 Main St, Springfield"}]}`, "address",
			[]Entry{strEntry("address", "1 Main St"), strEntry("address", "Apt 2"), strEntry("address", "Springfield"), strEntry("address", "Hampden"), strEntry("address", "MA"), strEntry("address", "01101"), strEntry("address", "US"), strEntry("address", "1 Main St, Springfield")}},
		{"address-city", "Patient", `{"address":[{"city":"Springfield"},{"city":"Boston"}]}`, "address-city", []Entry{strEntry("address-city", "Springfield"), strEntry("address-city", "Boston")}},
		{"empty strings are not indexed", "Patient", `{"name":[{"family":"","given":[""]}]}`, "name", nil},
		{"wrong JSON shape is skipped", "Patient", `{"name":[{"family":5,"given":"Anna"}],"gender":true}`, "name", []Entry{strEntry("name", "Anna")}},
		{"relative expression (InsurancePlan name | alias)", "InsurancePlan", `{"name":"Gold","alias":["Premium"]}`, "name", []Entry{strEntry("name", "Gold"), strEntry("name", "Premium")}},

		// token
		{"CodeableConcept codings and text", "Observation", `{"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"},{"system":"http://snomed.info/sct","code":"50373000"}],"text":"Height"}}`, "code",
			[]Entry{tok("code", "http://loinc.org", "8302-2", "body height"), tok("code", "http://snomed.info/sct", "50373000", ""), tok("code", "", "", "height")}},
		{"CodeableConcept text equal to a display", "Observation", `{"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body height"}}`, "code",
			[]Entry{tok("code", "http://loinc.org", "8302-2", "body height")}},
		{"CodeableConcept with text only", "Observation", `{"code":{"text":"Something"}}`, "code", []Entry{tok("code", "", "", "something")}},
		{"duplicate codings", "Observation", `{"category":[{"coding":[{"system":"s","code":"c"}]},{"coding":[{"system":"s","code":"c"}]}]}`, "category", []Entry{tok("category", "s", "c", "")}},
		{"Identifier with type text", "Patient", `{"identifier":[{"system":"http://hospital/mrn","value":"42","type":{"text":"Medical Record Number"}},{"value":"7"}]}`, "identifier",
			[]Entry{tok("identifier", "http://hospital/mrn", "42", "medical record number"), tok("identifier", "", "7", "")}},
		{"code", "Patient", `{"gender":"female"}`, "gender", []Entry{tok("gender", "", "female", "")}},
		{"boolean", "Patient", `{"active":false}`, "active", []Entry{tok("active", "", "false", "")}},
		{"boolean of the wrong type", "Patient", `{"active":"yes"}`, "active", nil},
		{"ContactPoint value", "Patient", `{"telecom":[{"system":"phone","value":"555-1234"},{"system":"email","value":"a@b.org"}]}`, "telecom",
			[]Entry{tok("telecom", "", "555-1234", ""), tok("telecom", "", "a@b.org", "")}},
		{"where(system='phone')", "Patient", `{"telecom":[{"system":"phone","value":"555-1234"},{"system":"email","value":"a@b.org"}]}`, "phone", []Entry{tok("phone", "", "555-1234", "")}},
		{"where(system='email')", "Patient", `{"telecom":[{"system":"phone","value":"555-1234"},{"system":"email","value":"a@b.org"}]}`, "email", []Entry{tok("email", "", "a@b.org", "")}},
		{"deceased absent", "Patient", `{}`, "deceased", []Entry{tok("deceased", "", "false", "")}},
		{"deceasedBoolean true", "Patient", `{"deceasedBoolean":true}`, "deceased", []Entry{tok("deceased", "", "true", "")}},
		{"deceasedBoolean false", "Patient", `{"deceasedBoolean":false}`, "deceased", []Entry{tok("deceased", "", "false", "")}},
		{"deceasedDateTime", "Patient", `{"deceasedDateTime":"2020-01-01"}`, "deceased", []Entry{tok("deceased", "", "true", "")}},
		{"choice element as token", "Group", `{"characteristic":[{"code":{"text":"x"},"valueBoolean":true},{"code":{"text":"y"},"valueCodeableConcept":{"coding":[{"system":"s","code":"c"}]}}]}`, "value",
			[]Entry{tok("value", "s", "c", ""), tok("value", "", "true", "")}},

		// reference
		{"relative", "Observation", `{"subject":{"reference":"Patient/1"}}`, "subject", []Entry{ref("subject", "Patient", "1", "")}},
		{"resolve() is Patient", "Observation", `{"subject":{"reference":"Patient/1"}}`, "patient", []Entry{ref("patient", "Patient", "1", "")}},
		{"resolve() is Patient on a Group", "Observation", `{"subject":{"reference":"Group/1"}}`, "patient", nil},
		{"subject to a Group", "Observation", `{"subject":{"reference":"Group/1"}}`, "subject", []Entry{ref("subject", "Group", "1", "")}},
		{"absolute with version", "Observation", `{"subject":{"reference":"https://h/fhir/Patient/1/_history/2"}}`, "patient", []Entry{ref("patient", "Patient", "1", "https://h/fhir/Patient/1")}},
		{"urn:uuid is kept", "Observation", `{"subject":{"reference":"urn:uuid:0b5c2f40-1e3a-4c8e-9a55-2f7a2b3c4d5e"}}`, "subject", []Entry{ref("subject", "", "", "urn:uuid:0b5c2f40-1e3a-4c8e-9a55-2f7a2b3c4d5e")}},
		{"urn:uuid has no type", "Observation", `{"subject":{"reference":"urn:uuid:0b5c2f40-1e3a-4c8e-9a55-2f7a2b3c4d5e"}}`, "patient", nil},
		{"contained is skipped", "Observation", `{"subject":{"reference":"#p1"}}`, "subject", nil},
		{"identifier", "Observation", `{"subject":{"identifier":{"system":"http://hospital/mrn","value":"42"}}}`, "subject",
			[]Entry{with(ref("subject", "", "", ""), func(e *Entry) { e.System, e.Code = "http://hospital/mrn", "42" })}},
		{"identifier does not resolve", "Observation", `{"subject":{"identifier":{"system":"http://hospital/mrn","value":"42"},"type":"Patient"}}`, "patient", nil},
		{"literal and identifier", "Observation", `{"subject":{"reference":"Patient/1","identifier":{"system":"s","value":"v"}}}`, "patient",
			[]Entry{with(ref("patient", "Patient", "1", ""), func(e *Entry) { e.System, e.Code = "s", "v" })}},
		{"display only", "Observation", `{"subject":{"display":"John"}}`, "subject", nil},
		{"canonical without version", "CarePlan", `{"instantiatesCanonical":["http://example.org/PlanDefinition/p|1.0"]}`, "instantiates-canonical", []Entry{ref("instantiates-canonical", "", "", "http://example.org/PlanDefinition/p")}},
		{"uri as reference", "ConceptMap", `{"sourceUri":"http://example.org/vs"}`, "source-uri", []Entry{ref("source-uri", "", "", "http://example.org/vs")}},
		{"where(type='composed-of').resource", "Library", `{"relatedArtifact":[{"type":"composed-of","resource":"http://x/Library/a"},{"type":"depends-on","resource":"http://x/Library/b"}]}`, "composed-of",
			[]Entry{ref("composed-of", "", "", "http://x/Library/a")}},
		{"practitioner among participants", "Appointment", `{"participant":[{"actor":{"reference":"Patient/p"}},{"actor":{"reference":"Practitioner/d"}}]}`, "practitioner", []Entry{ref("practitioner", "Practitioner", "d", "")}},

		// date
		{"dateTime", "Observation", `{"effectiveDateTime":"2019-05-03T10:00:00+02:00"}`, "date", []Entry{dateEntry("date", "2019-05-03T10:00:00+02:00")}},
		{"instant", "Observation", `{"effectiveInstant":"2019-05-03T10:00:00.123Z"}`, "date", []Entry{dateEntry("date", "2019-05-03T10:00:00.123Z")}},
		{"Period", "Observation", `{"effectivePeriod":{"start":"2019-05-03","end":"2019-05-05"}}`, "date", []Entry{{Param: "date", Type: Date, Lo: at("2019-05-03T00:00:00Z"), Hi: at("2019-05-06T00:00:00Z")}}},
		{"Period without end", "Encounter", `{"period":{"start":"2019-05-03T10:00:00Z"}}`, "date", []Entry{{Param: "date", Type: Date, Lo: at("2019-05-03T10:00:00Z"), Hi: DateMax}}},
		{"Period without start", "Encounter", `{"period":{"end":"2019"}}`, "date", []Entry{{Param: "date", Type: Date, Lo: DateMin, Hi: at("2020-01-01T00:00:00Z")}}},
		{"Period reversed", "Encounter", `{"period":{"start":"2019-05-05","end":"2019-05-03"}}`, "date", []Entry{{Param: "date", Type: Date, Lo: at("2019-05-03T00:00:00Z"), Hi: at("2019-05-06T00:00:00Z")}}},
		{"empty Period", "Encounter", `{"period":{}}`, "date", nil},
		{"Timing events and bounds", "Observation", `{"effectiveTiming":{"event":["2019-01-01","2019-02-01"],"repeat":{"boundsPeriod":{"start":"2019-01-01","end":"2019-12-31"}}}}`, "date",
			[]Entry{dateEntry("date", "2019-01-01"), dateEntry("date", "2019-02-01"), {Param: "date", Type: Date, Lo: at("2019-01-01T00:00:00Z"), Hi: at("2020-01-01T00:00:00Z")}}},
		{"invalid date", "Patient", `{"birthDate":"1970-02-30"}`, "birthdate", nil},
		{"date", "Patient", `{"birthDate":"1970-02"}`, "birthdate", []Entry{dateEntry("birthdate", "1970-02")}},

		// number
		{"decimal", "RiskAssessment", `{"prediction":[{"probabilityDecimal":0.25}]}`, "probability", []Entry{numEntry("probability", Number, "0.25")}},
		{"Range as a number", "RiskAssessment", `{"prediction":[{"probabilityRange":{"low":{"value":0.1},"high":{"value":0.3}}}]}`, "probability",
			[]Entry{{Param: "probability", Type: Number, Num: 0.1, NumLo: 0.05, NumHi: 0.35}}},
		{"integer", "MolecularSequence", `{"variant":[{"start":10,"end":20}]}`, "variant-start", []Entry{numEntry("variant-start", Number, "10")}},
		{"number as a string", "RiskAssessment", `{"prediction":[{"probabilityDecimal":"0.25"}]}`, "probability", nil},

		// quantity
		{"Quantity", "Observation", `{"valueQuantity":{"value":120.5,"unit":"mm Hg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`, "value-quantity",
			[]Entry{with(numEntry("value-quantity", Quantity, "120.5"), func(e *Entry) { e.System, e.Code, e.Text = ucum, "mm[Hg]", "mm hg" })}},
		{"Quantity without unit", "Observation", `{"valueQuantity":{"value":7,"system":"http://unitsofmeasure.org","code":"kg"}}`, "value-quantity",
			[]Entry{with(numEntry("value-quantity", Quantity, "7"), func(e *Entry) { e.System, e.Code, e.Text = ucum, "kg", "kg" })}},
		{"Quantity without value", "Observation", `{"valueQuantity":{"unit":"kg"}}`, "value-quantity", nil},
		{"Age", "Condition", `{"onsetAge":{"value":42,"unit":"a","system":"http://unitsofmeasure.org","code":"a"}}`, "onset-age",
			[]Entry{with(numEntry("onset-age", Quantity, "42"), func(e *Entry) { e.System, e.Code, e.Text = ucum, "a", "a" })}},
		{"Range", "Condition", `{"onsetRange":{"low":{"value":40,"unit":"a"},"high":{"value":50,"unit":"a"}}}`, "onset-age",
			[]Entry{{Param: "onset-age", Type: Quantity, Num: 40, NumLo: 39.5, NumHi: 50.5, Text: "a"}}},
		{"Range reversed", "Condition", `{"onsetRange":{"low":{"value":50},"high":{"value":40}}}`, "onset-age",
			[]Entry{{Param: "onset-age", Type: Quantity, Num: 50, NumLo: 39.5, NumHi: 50.5}}},
		{"Range open above", "Condition", `{"onsetRange":{"low":{"value":40}}}`, "onset-age",
			[]Entry{{Param: "onset-age", Type: Quantity, Num: 40, NumLo: 39.5, NumHi: math.MaxFloat64}}},
		{"Money", "Invoice", `{"totalGross":{"value":10.50,"currency":"EUR"}}`, "totalgross",
			[]Entry{with(numEntry("totalgross", Quantity, "10.50"), func(e *Entry) { e.System, e.Code, e.Text = "urn:iso:std:iso:4217", "EUR", "eur" })}},

		// uri
		{"uri", "ValueSet", `{"url":"http://example.org/ValueSet/x"}`, "url", []Entry{{Param: "url", Type: URI, Exact: "http://example.org/ValueSet/x"}}},

		// Resource
		{"_id", "Observation", `{"id":"abc"}`, "_id", []Entry{tok("_id", "", "abc", "")}},
		{"_lastUpdated", "Observation", `{"meta":{"lastUpdated":"2024-01-02T03:04:05.678Z"}}`, "_lastUpdated", []Entry{dateEntry("_lastUpdated", "2024-01-02T03:04:05.678Z")}},
		{"_tag", "Observation", `{"meta":{"tag":[{"system":"s","code":"c","display":"Tag C"}]}}`, "_tag", []Entry{tok("_tag", "s", "c", "tag c")}},
		{"_security", "Observation", `{"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`, "_security",
			[]Entry{tok("_security", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R", "")}},
		{"_profile as written", "Observation", `{"meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns|4.0.1"]}}`, "_profile",
			[]Entry{{Param: "_profile", Type: URI, Exact: "http://hl7.org/fhir/StructureDefinition/vitalsigns|4.0.1"}}},
		{"_source", "Observation", `{"meta":{"source":"http://example.org/source#1"}}`, "_source", []Entry{{Param: "_source", Type: URI, Exact: "http://example.org/source#1"}}},
		{"Resource parameters on an unknown type", "Nonsense", `{"id":"abc"}`, "_id", []Entry{tok("_id", "", "abc", "")}},

		// composite
		{"components pair up per element", "Observation", bp, "component-code-value-quantity", []Entry{
			{Param: "component-code-value-quantity", Type: Composite, Components: []Entry{
				tok("component-code", "http://loinc.org", "8480-6", ""),
				with(numEntry("component-value-quantity", Quantity, "120"), func(e *Entry) { e.System, e.Code, e.Text = ucum, "mm[Hg]", "mmhg" })}},
			{Param: "component-code-value-quantity", Type: Composite, Components: []Entry{
				tok("component-code", "http://loinc.org", "8462-4", ""),
				with(numEntry("component-value-quantity", Quantity, "80"), func(e *Entry) { e.System, e.Code, e.Text = ucum, "mm[Hg]", "mmhg" })}},
		}},
		{"no value, no combination", "Observation", bp, "code-value-quantity", nil},
		{"every coding with the value", "Observation", `{"code":{"coding":[{"system":"a","code":"1"},{"system":"b","code":"2"}]},"valueString":"high"}`, "code-value-string", []Entry{
			{Param: "code-value-string", Type: Composite, Components: []Entry{tok("code", "a", "1", ""), strEntry("value-string", "high")}},
			{Param: "code-value-string", Type: Composite, Components: []Entry{tok("code", "b", "2", ""), strEntry("value-string", "high")}},
		}},
		{"%resource in a component", "MolecularSequence", `{"referenceSeq":{"chromosome":{"coding":[{"system":"c","code":"1"}]}},"variant":[{"start":10,"end":20}]}`, "chromosome-variant-coordinate", []Entry{
			{Param: "chromosome-variant-coordinate", Type: Composite, Components: []Entry{tok("chromosome", "c", "1", ""), numEntry("variant-start", Number, "10"), numEntry("variant-end", Number, "20")}},
		}},
		{"useContext", "ValueSet", `{"useContext":[{"code":{"system":"u","code":"age"},"valueRange":{"low":{"value":18},"high":{"value":65}}}]}`, "context-type-quantity", []Entry{
			{Param: "context-type-quantity", Type: Composite, Components: []Entry{tok("context-type", "u", "age", ""), {Param: "context-quantity", Type: Quantity, Num: 18, NumLo: 17.5, NumHi: 65.5}}},
		}},
		{"relationship (erratum)", "DocumentReference", `{"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/old"}}]}`, "relationship", []Entry{
			{Param: "relationship", Type: Composite, Components: []Entry{ref("relatesto", "DocumentReference", "old", ""), tok("relation", "", "replaces", "")}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := of(reg.Extract(tc.typ, decode(t, tc.res)), tc.param)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s %s:\n got %+v\nwant %+v", tc.typ, tc.param, got, tc.want)
			}
		})
	}
}

// TestExtractFloat64: a resource decoded without UseNumber indexes its
// numbers at the precision of their shortest form.
func TestExtractFloat64(t *testing.T) {
	reg := registry(t)
	var res map[string]any
	if err := json.Unmarshal([]byte(`{"valueQuantity":{"value":120.5,"code":"kg"}}`), &res); err != nil {
		t.Fatal(err)
	}
	got := of(reg.Extract("Observation", res), "value-quantity")
	want := []Entry{with(numEntry("value-quantity", Quantity, "120.5"), func(e *Entry) { e.Code, e.Text = "kg", "kg" })}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestExtractGroupsByParam: entries come grouped by parameter in the
// order of Params, and only for supported parameters of the type.
func TestExtractGroupsByParam(t *testing.T) {
	reg := registry(t)
	res := decode(t, `{"resourceType":"Patient","id":"p","name":[{"family":"A","given":["B"]}],"gender":"male","birthDate":"1970","active":true,"meta":{"tag":[{"code":"t"}]}}`)
	var order []string
	for _, p := range reg.Params("Patient") {
		order = append(order, p.Code)
	}
	last := -1
	for _, e := range reg.Extract("Patient", res) {
		i := indexOf(order, e.Param)
		if i < 0 {
			t.Fatalf("entry for %s, which is not a supported Patient parameter", e.Param)
		}
		if i < last {
			t.Fatalf("entry for %s after entries for %s", e.Param, order[last])
		}
		last = i
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestExtractNothing(t *testing.T) {
	reg := registry(t)
	for _, res := range []map[string]any{nil, {}, {"resourceType": "Observation"}} {
		if got := reg.Extract("Observation", res); len(got) != 0 {
			t.Errorf("Extract(%v) = %+v, want nothing", res, got)
		}
	}
}

// TestDedupLarge exercises the map-based deduplication used for large
// groups, which must agree with equalEntries.
func TestDedupLarge(t *testing.T) {
	var codings []string
	for i := range 40 {
		c := `{"system":"s","code":"` + string(rune('a'+i%20)) + `"}`
		codings = append(codings, c)
	}
	reg := registry(t)
	res := decode(t, `{"code":{"coding":[`+strings.Join(codings, ",")+`]}}`)
	got := of(reg.Extract("Observation", res), "code")
	if len(got) != 20 {
		t.Fatalf("%d entries for 20 distinct codings", len(got))
	}
	for i := range got {
		for j := range i {
			if equalEntries(&got[i], &got[j]) {
				t.Errorf("entries %d and %d are equal: %+v", i, j, got[i])
			}
		}
	}
	for i, e := range got {
		if want := string(rune('a' + i)); e.Code != want {
			t.Errorf("entry %d has code %q, want %q (first occurrences, in order)", i, e.Code, want)
		}
	}
}

// TestDedupAgreesWithEqualEntries: for groups too large to compare
// pairwise, dedup keeps exactly the first of each set of equalEntries,
// in order — over random entries that differ in one field at a time,
// -0 and 0, NaN, and composites.
func TestDedupAgreesWithEqualEntries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	num := func() float64 { return []float64{0, math.Copysign(0, -1), 1.5, math.NaN()}[rng.IntN(4)] }
	entry := func() Entry {
		return Entry{
			Param: pick("a", "b"), Type: Type(pick("token", "string")), Text: pick("", "x"), Exact: pick("", "X"),
			System: pick("", "s"), Code: pick("c", "d"), RefType: pick("", "Patient"), RefID: pick("", "1"),
			URL: pick("", "u"), Lo: int64(rng.IntN(2)), Hi: int64(rng.IntN(2)), Num: num(), NumLo: num(), NumHi: num(),
		}
	}
	for round := range 200 {
		group := make([]Entry, 17+rng.IntN(40))
		for i := range group {
			group[i] = entry()
			if rng.IntN(4) == 0 {
				group[i].Components = []Entry{entry(), entry()}
			}
			if i > 0 && rng.IntN(3) == 0 {
				group[i] = group[rng.IntN(i)] // a duplicate
			}
		}
		var want []Entry
		for _, e := range group {
			if !slices.ContainsFunc(want, func(k Entry) bool { return equalEntries(&e, &k) }) {
				want = append(want, e)
			}
		}
		got := dedup(slices.Clone(group), 0)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d entries kept, want %d", round, len(got), len(want))
		}
		// The same entries (the first of each, in order); %v tells -0
		// from 0 and shows NaN as itself.
		if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
			t.Fatalf("round %d: kept\n%s\nwant\n%s", round, g, w)
		}
	}
}

// TestCompositeCombinationLimit: the cross product of component values is
// bounded.
func TestCompositeCombinationLimit(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"characteristic":[{"code":{"coding":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"system":"a","code":"c` + strings.Repeat("x", i) + `"}`)
	}
	b.WriteString(`]},"valueCodeableConcept":{"coding":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"system":"b","code":"v` + strings.Repeat("y", i) + `"}`)
	}
	b.WriteString(`]}}]}`)
	reg := registry(t)
	got := of(reg.Extract("Group", decode(t, b.String())), "characteristic-value")
	if len(got) != maxCombinations {
		t.Errorf("%d combinations, want the limit %d", len(got), maxCombinations)
	}
}

// TestExtractConcurrent: a Registry is shared; concurrent extractions
// (which reuse pooled scratch state) give the same entries as one at a
// time. Run with -race.
func TestExtractConcurrent(t *testing.T) {
	reg := registry(t)
	resources := []struct {
		typ string
		res map[string]any
	}{
		{"Observation", decode(t, `{"code":{"coding":[{"system":"a","code":"1","display":"One"}],"text":"Uno"},"subject":{"reference":"Patient/p"},"component":[{"code":{"coding":[{"code":"c"}]},"valueQuantity":{"value":1.5}}]}`)},
		{"Patient", decode(t, `{"id":"p","name":[{"family":"Ó Brien","given":["Seán"]}],"birthDate":"1970-01-01","telecom":[{"system":"phone","value":"1"}]}`)},
	}
	want := make([][]Entry, len(resources))
	for i, r := range resources {
		want[i] = reg.Extract(r.typ, r.res)
	}
	done := make(chan error)
	for w := range 8 {
		go func() {
			var err error
			for n := range 200 {
				i := (w + n) % len(resources)
				if got := reg.Extract(resources[i].typ, resources[i].res); !reflect.DeepEqual(got, want[i]) {
					err = fmt.Errorf("%s: got %+v, want %+v", resources[i].typ, got, want[i])
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestExtensionExpression: no R4 core parameter reads an extension, but
// implementation guides' parameters do (extension('url') and
// extension.where(url = …)); both compile and extract.
func TestExtensionExpression(t *testing.T) {
	m := typeModelR4(t)
	res := decode(t, `{"resourceType":"Patient","extension":[
		{"url":"http://example.org/nickname","valueString":"Bob"},
		{"url":"http://example.org/other","valueString":"Robert"},
		{"url":"http://example.org/nickname","valueString":"Bobby"},
		{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2106-3"}}]}]}`)
	for _, tc := range []struct {
		typ  Type
		expr string
		want []Entry
	}{
		{String, "Patient.extension('http://example.org/nickname').value", []Entry{strEntry("x", "Bob"), strEntry("x", "Bobby")}},
		{String, "Patient.extension.where(url = 'http://example.org/other').value.ofType(string)", []Entry{strEntry("x", "Robert")}},
		{Token, "Patient.extension('http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension('ombCategory').value", []Entry{tok("x", "urn:oid:2.16.840.1.113883.6.238", "2106-3", "")}},
	} {
		x, err := compile(&Param{Code: "x", Type: tc.typ, Base: "Patient", Expression: tc.expr}, m)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		ev := &evaluator{root: res}
		if got := x.extract(ev, nil); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.expr, got, tc.want)
		}
	}
}
