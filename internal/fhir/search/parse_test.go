package search

import (
	"errors"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

var r4 = func() *searchparam.Registry {
	reg, err := searchparam.R4()
	if err != nil {
		panic(err)
	}
	return reg
}()

// sp returns a registry parameter the tests rely on.
func sp(typ, code string) *searchparam.Param {
	p := r4.Param(typ, code)
	if p == nil {
		panic("no search parameter " + typ + "." + code)
	}
	return p
}

var testOpts = Options{DefaultCount: 20, MaxCount: 100}

func parseQuery(t testing.TB, typ, query string, opts Options) (*Query, error) {
	t.Helper()
	vals, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("test query %q: %v", query, err)
	}
	return Parse(r4, typ, vals, opts)
}

func dateV(prefix Prefix, s string) Value {
	lo, hi, err := searchparam.DateRange(s)
	if err != nil {
		panic(err)
	}
	return Value{Prefix: prefix, Lo: lo, Hi: hi}
}

func numV(prefix Prefix, s string) Value {
	v, lo, hi, err := searchparam.NumberRange(s)
	if err != nil {
		panic(err)
	}
	return Value{Prefix: prefix, Num: v, NumLo: lo, NumHi: hi}
}

func qtyV(prefix Prefix, n, system, code string) Value {
	v := numV(prefix, n)
	v.System, v.Code = system, code
	if system == "" && code != "" {
		v.Text = searchparam.NormalizeString(code)
	}
	return v
}

func one(p *searchparam.Param, values ...Value) []Clause {
	return []Clause{{Param: p, Values: values}}
}

func TestParseClauses(t *testing.T) {
	tests := []struct {
		name, typ, query string
		want             []Clause
	}{
		// string, §3.1.1.4.8
		{"string", "Patient", "name=Peter", one(sp("Patient", "name"), Value{Text: "peter", Exact: "Peter"})},
		{"string accents", "Patient", "family=M%C3%BCller", one(sp("Patient", "family"), Value{Text: "muller", Exact: "Müller"})},
		{"string exact", "Patient", "family:exact=Eve", []Clause{{Param: sp("Patient", "family"), Modifier: ModExact, Values: []Value{{Text: "eve", Exact: "Eve"}}}}},
		{"string exact punctuation", "Patient", "family:exact=%21%21", []Clause{{Param: sp("Patient", "family"), Modifier: ModExact, Values: []Value{{Exact: "!!"}}}}},
		{"string contains", "Patient", "name:contains=eve", []Clause{{Param: sp("Patient", "name"), Modifier: ModContains, Values: []Value{{Text: "eve", Exact: "eve"}}}}},
		{"prefix on a string is text", "Patient", "name=gtpeter", one(sp("Patient", "name"), Value{Text: "gtpeter", Exact: "gtpeter"})},
		{"pipe and dollar are literal in strings", "Patient", "name=a|b$c", one(sp("Patient", "name"), Value{Text: searchparam.NormalizeString("a|b$c"), Exact: "a|b$c"})},

		// OR and AND, §3.1.1.4.17; escaping, §3.1.1.4.19
		{"or", "Patient", "name=ann,bob", one(sp("Patient", "name"), Value{Text: "ann", Exact: "ann"}, Value{Text: "bob", Exact: "bob"})},
		{"and", "Patient", "name=ann&name=bob", []Clause{
			{Param: sp("Patient", "name"), Values: []Value{{Text: "ann", Exact: "ann"}}},
			{Param: sp("Patient", "name"), Values: []Value{{Text: "bob", Exact: "bob"}}},
		}},
		{"escaped comma", "Patient", `name=ann\,bob`, one(sp("Patient", "name"), Value{Text: "ann bob", Exact: "ann,bob"})},
		{"escaped backslash", "Observation", `code=a\\b`, one(sp("Observation", "code"), Value{Code: `a\b`, AnySystem: true})},
		{"escaped backslash before comma", "Observation", `code=a\\,b`, one(sp("Observation", "code"), Value{Code: `a\`, AnySystem: true}, Value{Code: "b", AnySystem: true})},
		{"escaped pipe", "Observation", `code=a\|b`, one(sp("Observation", "code"), Value{Code: "a|b", AnySystem: true})},
		{"escaped dollar", "Observation", `code=a\$b`, one(sp("Observation", "code"), Value{Code: "a$b", AnySystem: true})},

		// token, §3.1.1.4.10
		{"token system|code", "Observation", "code=http://loinc.org|8867-4", one(sp("Observation", "code"), Value{System: "http://loinc.org", Code: "8867-4"})},
		{"token code", "Observation", "code=8867-4", one(sp("Observation", "code"), Value{Code: "8867-4", AnySystem: true})},
		{"token |code", "Observation", "code=|8867-4", one(sp("Observation", "code"), Value{Code: "8867-4"})},
		{"token system|", "Observation", "code=http://loinc.org|", one(sp("Observation", "code"), Value{System: "http://loinc.org", AnyCode: true})},
		{"token escaped pipe in system", "Observation", `code=urn:a\|b|c`, one(sp("Observation", "code"), Value{System: "urn:a|b", Code: "c"})},
		{"token prefix is text", "Patient", "gender=ne", one(sp("Patient", "gender"), Value{Code: "ne", AnySystem: true})},
		{"token not", "Patient", "gender:not=male", []Clause{{Param: sp("Patient", "gender"), Modifier: ModNot, Values: []Value{{Code: "male", AnySystem: true}}}}},
		{"token text", "Observation", "code:text=Blood%20Pressure", []Clause{{Param: sp("Observation", "code"), Modifier: ModText, Values: []Value{{Text: "blood pressure"}}}}},
		{"identifier", "Patient", "identifier=http://acme.org/patient|2345", one(sp("Patient", "identifier"), Value{System: "http://acme.org/patient", Code: "2345"})},
		{"category", "Observation", "category=vital-signs", one(sp("Observation", "category"), Value{Code: "vital-signs", AnySystem: true})},
		{"_tag", "Observation", "_tag=http://acme.org/codes|needs-review", one(sp("Observation", "_tag"), Value{System: "http://acme.org/codes", Code: "needs-review"})},
		{"_security", "Observation", "_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R", one(sp("Observation", "_security"), Value{System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Code: "R"})},
		{"_id", "Patient", "_id=123,a-b.c", one(sp("Patient", "_id"), Value{Code: "123", AnySystem: true}, Value{Code: "a-b.c", AnySystem: true})},

		// uri, §3.1.1.4.9
		{"uri", "Observation", "_profile=http://hl7.org/fhir/StructureDefinition/lipid", one(sp("Observation", "_profile"), Value{Exact: "http://hl7.org/fhir/StructureDefinition/lipid"})},
		{"uri with version", "Observation", "_profile=http://x.org/p|1.0", one(sp("Observation", "_profile"), Value{Exact: "http://x.org/p|1.0"})},

		// :missing, §3.1.1.4.4
		{"missing true", "Patient", "gender:missing=true", []Clause{{Param: sp("Patient", "gender"), Modifier: ModMissing, Values: []Value{{Missing: true}}}}},
		{"missing false on reference", "Observation", "subject:missing=false", []Clause{{Param: sp("Observation", "subject"), Modifier: ModMissing, Values: []Value{{Missing: false}}}}},
		{"missing on date", "Patient", "birthdate:missing=true", []Clause{{Param: sp("Patient", "birthdate"), Modifier: ModMissing, Values: []Value{{Missing: true}}}}},

		// date, §3.1.1.4.7
		{"date", "Observation", "date=2013-01-14", one(sp("Observation", "date"), dateV(Eq, "2013-01-14"))},
		{"date prefixes", "Observation", "date=ge2013-03-14,lt2013-01-14T10:00,sa2013,eb2013-03,ap2013-03-14,ne2013-01-14,eq2013,gt2010,le2011-12-31T23:59:59Z",
			one(sp("Observation", "date"), dateV(Ge, "2013-03-14"), dateV(Lt, "2013-01-14T10:00"), dateV(Sa, "2013"), dateV(Eb, "2013-03"),
				dateV(Ap, "2013-03-14"), dateV(Ne, "2013-01-14"), dateV(Eq, "2013"), dateV(Gt, "2010"), dateV(Le, "2011-12-31T23:59:59Z"))},
		{"date range as two clauses", "Encounter", "date=ge2010-01-01&date=le2011-12-31", []Clause{
			{Param: sp("Encounter", "date"), Values: []Value{dateV(Ge, "2010-01-01")}},
			{Param: sp("Encounter", "date"), Values: []Value{dateV(Le, "2011-12-31")}},
		}},
		{"date with zone", "Observation", "date=2013-01-14T10:00:00%2B02:00", one(sp("Observation", "date"), dateV(Eq, "2013-01-14T10:00:00+02:00"))},
		{"_lastUpdated", "Patient", "_lastUpdated=gt2010-10-01", one(sp("Patient", "_lastUpdated"), dateV(Gt, "2010-10-01"))},
		{"birthdate", "Patient", "birthdate=1970", one(sp("Patient", "birthdate"), dateV(Eq, "1970"))},

		// number, §3.1.1.4.6
		{"number", "RiskAssessment", "probability=gt0.8", one(sp("RiskAssessment", "probability"), numV(Gt, "0.8"))},
		{"number precision", "RiskAssessment", "probability=100,100.00,1e2,-0.5,2.5E-3", one(sp("RiskAssessment", "probability"),
			numV(Eq, "100"), numV(Eq, "100.00"), numV(Eq, "1e2"), numV(Eq, "-0.5"), numV(Eq, "2.5E-3"))},

		// quantity, §3.1.1.4.11
		{"quantity", "Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg", one(sp("Observation", "value-quantity"), qtyV(Eq, "5.4", "http://unitsofmeasure.org", "mg"))},
		{"quantity forms", "Observation", "value-quantity=5.40e-3|http://unitsofmeasure.org|g,5.4||mg,5.4,le5.4|http://unitsofmeasure.org|mg,ap5.4|http://unitsofmeasure.org|,5.4||",
			one(sp("Observation", "value-quantity"), qtyV(Eq, "5.40e-3", "http://unitsofmeasure.org", "g"), qtyV(Eq, "5.4", "", "mg"), qtyV(Eq, "5.4", "", ""),
				qtyV(Le, "5.4", "http://unitsofmeasure.org", "mg"), qtyV(Ap, "5.4", "http://unitsofmeasure.org", ""), qtyV(Eq, "5.4", "", ""))},

		// composite, §3.1.1.4.17
		{"composite", "Observation", "component-code-value-quantity=http://loinc.org|8480-6$lt60", one(sp("Observation", "component-code-value-quantity"),
			Value{Components: []Value{{System: "http://loinc.org", Code: "8480-6"}, numV(Lt, "60")}})},
		{"composite or", "Observation", "component-code-value-quantity=8480-6$lt60,8462-4$gt90|http://unitsofmeasure.org|mm[Hg]", one(sp("Observation", "component-code-value-quantity"),
			Value{Components: []Value{{Code: "8480-6", AnySystem: true}, numV(Lt, "60")}},
			Value{Components: []Value{{Code: "8462-4", AnySystem: true}, qtyV(Gt, "90", "http://unitsofmeasure.org", "mm[Hg]")}})},
		{"composite escaped dollar", "Observation", `code-value-concept=a\$b$c`, one(sp("Observation", "code-value-concept"),
			Value{Components: []Value{{Code: "a$b", AnySystem: true}, {Code: "c", AnySystem: true}}})},

		// reference, §3.1.1.4.12
		{"reference Type/id", "Observation", "subject=Patient/123", one(sp("Observation", "subject"), Value{RefType: "Patient", RefID: "123"})},
		{"reference id, several targets", "Observation", "subject=123", one(sp("Observation", "subject"), Value{RefID: "123"})},
		{"reference id, one target", "Patient", "organization=org1", one(sp("Patient", "organization"), Value{RefType: "Organization", RefID: "org1"})},
		{"reference id, restricted target", "Observation", "patient=123", one(sp("Observation", "patient"), Value{RefType: "Patient", RefID: "123"})},
		{"reference type modifier", "Observation", "subject:Patient=123", []Clause{{Param: sp("Observation", "subject"), Modifier: ModType, TargetType: "Patient", Values: []Value{{RefType: "Patient", RefID: "123"}}}}},
		{"reference type modifier and type", "Observation", "subject:Patient=Patient/123", []Clause{{Param: sp("Observation", "subject"), Modifier: ModType, TargetType: "Patient", Values: []Value{{RefType: "Patient", RefID: "123"}}}}},
		{"reference versioned", "Observation", "subject=Patient/123/_history/4", one(sp("Observation", "subject"), Value{RefType: "Patient", RefID: "123"})},
		{"reference absolute", "Observation", "subject=http://example.org/fhir/Patient/123", one(sp("Observation", "subject"), Value{RefType: "Patient", RefID: "123", URL: "http://example.org/fhir/Patient/123"})},
		{"reference absolute versioned", "Observation", "subject=https://example.org/fhir/Patient/123/_history/4", one(sp("Observation", "subject"), Value{RefType: "Patient", RefID: "123", URL: "https://example.org/fhir/Patient/123"})},
		{"reference urn", "Observation", "subject=urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7", one(sp("Observation", "subject"), Value{URL: "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7"})},
		{"reference absolute, not a target", "Observation", "subject=http://example.org/Profiles/lipid", one(sp("Observation", "subject"), Value{URL: "http://example.org/Profiles/lipid"})},
		{"reference absolute, encoded slash stays literal", "Observation", "subject=http://example.org/fhir/Patient%252F123", one(sp("Observation", "subject"), Value{URL: "http://example.org/fhir/Patient%2F123"})},
		{"reference identifier", "Observation", "subject:identifier=http://acme.org/fhir/identifier/mrn|123456", []Clause{{Param: sp("Observation", "subject"), Modifier: ModIdentifier, Values: []Value{{System: "http://acme.org/fhir/identifier/mrn", Code: "123456"}}}}},
		{"encounter", "Observation", "encounter=Encounter/e1", one(sp("Observation", "encounter"), Value{RefType: "Encounter", RefID: "e1"})},

		// chaining, §3.1.1.4.15
		{"chain with type", "Observation", "subject:Patient.name=peter", []Clause{{Param: sp("Observation", "subject"), Modifier: ModType, TargetType: "Patient",
			Chain: &Clause{Param: sp("Patient", "name"), Values: []Value{{Text: "peter", Exact: "peter"}}}}}},
		{"chain, one target defines it", "Observation", "patient.name=peter", []Clause{{Param: sp("Observation", "patient"), TargetType: "Patient",
			Chain: &Clause{Param: sp("Patient", "name"), Values: []Value{{Text: "peter", Exact: "peter"}}}}}},
		{"chain, several targets define it", "Observation", "subject.name=peter", []Clause{{Param: sp("Observation", "subject"),
			Chain: &Clause{Param: sp("Patient", "name"), Values: []Value{{Text: "peter", Exact: "peter"}}}}}},
		{"chain, only Patient has birthdate", "Observation", "subject.birthdate=ge1970", []Clause{{Param: sp("Observation", "subject"), TargetType: "Patient",
			Chain: &Clause{Param: sp("Patient", "birthdate"), Values: []Value{dateV(Ge, "1970")}}}}},
		{"chain to _id", "Observation", "subject._id=123", []Clause{{Param: sp("Observation", "subject"),
			Chain: &Clause{Param: sp("Patient", "_id"), Values: []Value{{Code: "123", AnySystem: true}}}}}},
		{"chain with modifier on the chained parameter", "Observation", "subject:Patient.gender:missing=true", []Clause{{Param: sp("Observation", "subject"), Modifier: ModType, TargetType: "Patient",
			Chain: &Clause{Param: sp("Patient", "gender"), Modifier: ModMissing, Values: []Value{{Missing: true}}}}}},
		{"chain to a reference", "Observation", "patient.organization=Organization/o1", []Clause{{Param: sp("Observation", "patient"), TargetType: "Patient",
			Chain: &Clause{Param: sp("Patient", "organization"), Values: []Value{{RefType: "Organization", RefID: "o1"}}}}}},
		{"chain to identifier", "Observation", "patient.identifier=http://example.com/fhir/identifier/mrn|123456", []Clause{{Param: sp("Observation", "patient"), TargetType: "Patient",
			Chain: &Clause{Param: sp("Patient", "identifier"), Values: []Value{{System: "http://example.com/fhir/identifier/mrn", Code: "123456"}}}}}},

		// _has, §3.1.1.4.16
		{"has", "Patient", "_has:Observation:patient:code=1234-5", []Clause{{Has: &Has{Type: "Observation", Ref: sp("Observation", "patient"),
			Clause: Clause{Param: sp("Observation", "code"), Values: []Value{{Code: "1234-5", AnySystem: true}}}}}}},
		{"has or, and", "Patient", "_has:Observation:patient:code=123,456&_has:Observation:subject:code=789", []Clause{
			{Has: &Has{Type: "Observation", Ref: sp("Observation", "patient"), Clause: Clause{Param: sp("Observation", "code"), Values: []Value{{Code: "123", AnySystem: true}, {Code: "456", AnySystem: true}}}}},
			{Has: &Has{Type: "Observation", Ref: sp("Observation", "subject"), Clause: Clause{Param: sp("Observation", "code"), Values: []Value{{Code: "789", AnySystem: true}}}}},
		}},
		{"has with modifier", "Patient", "_has:Observation:patient:code:not=1234-5", []Clause{{Has: &Has{Type: "Observation", Ref: sp("Observation", "patient"),
			Clause: Clause{Param: sp("Observation", "code"), Modifier: ModNot, Values: []Value{{Code: "1234-5", AnySystem: true}}}}}}},

		// empty parameters are ignored, §3.1.1.3
		{"empty values", "Patient", "name=&gender=&_count=&_sort=&_include=", nil},
		{"empty and non-empty", "Patient", "name=&name=ann", one(sp("Patient", "name"), Value{Text: "ann", Exact: "ann"})},
		{"empty unknown parameter", "Patient", "nonsense=", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseQuery(t, tt.typ, tt.query, testOpts)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.query, err)
			}
			if q.Type != tt.typ {
				t.Errorf("Type = %q, want %q", q.Type, tt.typ)
			}
			if !reflect.DeepEqual(q.Clauses, tt.want) {
				t.Errorf("Parse(%q) clauses:\n got %s\nwant %s", tt.query, dumpClauses(q.Clauses), dumpClauses(tt.want))
			}
		})
	}
}

func dumpClauses(cs []Clause) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("\n  ")
		dumpClause(&b, c)
	}
	return b.String()
}

func dumpClause(b *strings.Builder, c Clause) {
	if c.Param != nil {
		b.WriteString(c.Param.Base + "." + c.Param.Code)
	}
	b.WriteString(" mod=" + string(c.Modifier) + " target=" + c.TargetType)
	if c.Chain != nil {
		b.WriteString(" chain{")
		dumpClause(b, *c.Chain)
		b.WriteString("}")
	}
	if c.Has != nil {
		b.WriteString(" has{" + c.Has.Type + " " + c.Has.Ref.Code + " ")
		dumpClause(b, c.Has.Clause)
		b.WriteString("}")
	}
	for _, v := range c.Values {
		fmt.Fprintf(b, " %+v", v)
	}
}

// TestParseResultParameters covers the parameters that shape the result
// rather than select it (§3.1.1.5).
func TestParseResultParameters(t *testing.T) {
	tests := []struct {
		name, typ, query string
		opts             Options
		check            func(t *testing.T, q *Query)
	}{
		{"default count", "Patient", "name=a", testOpts, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 20) }},
		{"count", "Patient", "_count=50", testOpts, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 50) }},
		{"count clamped", "Patient", "_count=5000", testOpts, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 100) }},
		{"count huge", "Patient", "_count=99999999999999999999999999", testOpts, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 100) }},
		{"count zero", "Patient", "_count=0", testOpts, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 0) }},
		{"count leading zeros", "Patient", "_count=007", testOpts, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 7) }},
		{"zero options", "Patient", "", Options{}, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 20) }},
		{"zero options clamp", "Patient", "_count=100000", Options{}, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 1000) }},
		{"default above max", "Patient", "", Options{DefaultCount: 50, MaxCount: 10}, func(t *testing.T, q *Query) { wantInt(t, "Count", q.Count, 10) }},
		{"summary count", "Patient", "_summary=count&_count=10", testOpts, func(t *testing.T, q *Query) {
			wantInt(t, "Count", q.Count, 0)
			if q.Summary != SummaryCount {
				t.Errorf("Summary = %q", q.Summary)
			}
		}},
		{"summary modes", "Patient", "_summary=data", testOpts, func(t *testing.T, q *Query) {
			if q.Summary != SummaryData {
				t.Errorf("Summary = %q", q.Summary)
			}
		}},
		{"summary true", "Patient", "_summary=true", testOpts, func(t *testing.T, q *Query) {
			if q.Summary != SummaryTrue {
				t.Errorf("Summary = %q", q.Summary)
			}
		}},
		{"summary text", "Patient", "_summary=text", testOpts, func(t *testing.T, q *Query) {
			if q.Summary != SummaryText {
				t.Errorf("Summary = %q", q.Summary)
			}
		}},
		{"summary false", "Patient", "_summary=false", testOpts, func(t *testing.T, q *Query) {
			if q.Summary != SummaryFalse || q.Count != 20 {
				t.Errorf("Summary = %q, Count = %d", q.Summary, q.Count)
			}
		}},
		{"elements", "Patient", "_elements=identifier,active,link,active", testOpts, func(t *testing.T, q *Query) {
			if !reflect.DeepEqual(q.Elements, []string{"identifier", "active", "link"}) {
				t.Errorf("Elements = %q", q.Elements)
			}
		}},
		{"total", "Patient", "_total=accurate", testOpts, func(t *testing.T, q *Query) {
			if q.Total != "accurate" {
				t.Errorf("Total = %q", q.Total)
			}
		}},
		{"format and pretty", "Patient", "_format=application/fhir%2Bjson&_pretty=true", testOpts, func(t *testing.T, q *Query) {}},
		{"format json", "Patient", "_format=json", testOpts, func(t *testing.T, q *Query) {}},
		{"format case", "Patient", "_format=Application/JSON", testOpts, func(t *testing.T, q *Query) {}},
		{"sort", "Observation", "_sort=status,-date,category", testOpts, func(t *testing.T, q *Query) {
			want := []Sort{{Param: sp("Observation", "status")}, {Param: sp("Observation", "date"), Desc: true}, {Param: sp("Observation", "category")}}
			if !reflect.DeepEqual(q.Sort, want) {
				t.Errorf("Sort = %+v", q.Sort)
			}
		}},
		{"sort common", "Patient", "_sort=-_lastUpdated,_id", testOpts, func(t *testing.T, q *Query) {
			want := []Sort{{Param: sp("Patient", "_lastUpdated"), Desc: true}, {Param: sp("Patient", "_id")}}
			if !reflect.DeepEqual(q.Sort, want) {
				t.Errorf("Sort = %+v", q.Sort)
			}
		}},
		{"include", "Observation", "_include=Observation:subject&_include=Observation:subject:Patient&_include=Observation:*", testOpts, func(t *testing.T, q *Query) {
			want := []Include{
				{SourceType: "Observation", Param: sp("Observation", "subject")},
				{SourceType: "Observation", Param: sp("Observation", "subject"), TargetType: "Patient"},
				{SourceType: "Observation"},
			}
			if !reflect.DeepEqual(q.Includes, want) {
				t.Errorf("Includes = %+v", q.Includes)
			}
		}},
		{"include iterate", "MedicationDispense", "_include=MedicationDispense:prescription&_include:iterate=MedicationRequest:requester", testOpts, func(t *testing.T, q *Query) {
			want := []Include{
				{SourceType: "MedicationDispense", Param: sp("MedicationDispense", "prescription")},
				{SourceType: "MedicationRequest", Param: sp("MedicationRequest", "requester"), Iterate: true},
			}
			if !reflect.DeepEqual(q.Includes, want) {
				t.Errorf("Includes = %+v", q.Includes)
			}
		}},
		{"include duplicate", "Observation", "_include=Observation:subject&_include=Observation:subject", testOpts, func(t *testing.T, q *Query) {
			if len(q.Includes) != 1 {
				t.Errorf("Includes = %+v", q.Includes)
			}
		}},
		{"revinclude", "Patient", "_revinclude=Observation:patient&_revinclude=Provenance:target&_revinclude=Observation:*&_revinclude:iterate=Provenance:target", testOpts, func(t *testing.T, q *Query) {
			want := []Include{
				{SourceType: "Observation", Param: sp("Observation", "patient")},
				{SourceType: "Provenance", Param: sp("Provenance", "target")},
				{SourceType: "Observation"},
				{SourceType: "Provenance", Param: sp("Provenance", "target"), Iterate: true},
			}
			if !reflect.DeepEqual(q.RevIncludes, want) {
				t.Errorf("RevIncludes = %+v", q.RevIncludes)
			}
		}},
		{"clauses and controls together", "Observation", "patient=Patient/123&code=http://loinc.org|8867-4&_count=50&_sort=-date", testOpts, func(t *testing.T, q *Query) {
			if len(q.Clauses) != 2 || q.Count != 50 || len(q.Sort) != 1 {
				t.Errorf("Query = %+v", q)
			}
			// Parameters are processed in name order.
			if q.Clauses[0].Param.Code != "code" || q.Clauses[1].Param.Code != "patient" {
				t.Errorf("clause order: %s, %s", q.Clauses[0].Param.Code, q.Clauses[1].Param.Code)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseQuery(t, tt.typ, tt.query, tt.opts)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.query, err)
			}
			tt.check(t, q)
		})
	}
}

func wantInt(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %d, want %d", what, got, want)
	}
}

// TestParseRejects lists the ways a request can be malformed or ask for
// more than Warden supports. Each must fail with an *Error naming the
// parameter, without the value in its text.
// A parameter R4 defines but Warden does not support is refused as
// unsupported, not as unknown: a client that knows R4 is told why.
func TestParseUnsupportedNotUnknown(t *testing.T) {
	for _, tt := range []struct{ typ, query, reason string }{
		{"AuditEvent", "site=https://h/fhir", reasonUnsupported},   // not indexed by Warden
		{"AuditEvent", "_profile=http://x", reasonUnsupported},     // inherited, hidden for AuditEvent
		{"Bundle", "composition=Composition/1", reasonUnsupported}, // expression not indexable
		{"AuditEvent", "nonsense=1", reasonUnknown},
		{"Patient", "site=x", reasonUnknown},
	} {
		_, err := parseQuery(t, tt.typ, tt.query, testOpts)
		var e *Error
		if !errors.As(err, &e) || e.Reason != tt.reason {
			t.Errorf("%s?%s: %v, want the reason %q", tt.typ, tt.query, err, tt.reason)
		}
	}
	if _, err := parseQuery(t, "Patient", "_profile=http://x", testOpts); err != nil {
		t.Errorf("Patient?_profile: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("x", maxValueBytes+1)
	tests := []struct {
		name, typ, query string
		param            string // wanted Error.Param
	}{
		// names and raw values
		{"unknown parameter", "Patient", "nonsense=1", "nonsense"},
		{"unknown parameter with modifier", "Patient", "nonsense:exact=1", "nonsense:exact"},
		{"parameter of another type", "Patient", "code=1234", "code"},
		{"case matters", "Patient", "Name=peter", "Name"},
		{"invalid name", "Patient", "na%20me=peter", invalidName},
		{"invalid name bracket", "Patient", "name[0]=peter", invalidName},
		{"overlong name", "Patient", strings.Repeat("a", maxNameBytes+1) + "=1", invalidName},
		{"overlong value", "Patient", "name=" + long, "name"},
		{"overlong value of an unknown parameter", "Patient", "nonsense=" + long, "nonsense"},
		{"overlong control value", "Patient", "_elements=" + long, "_elements"},
		{"invalid utf-8", "Patient", "name=%FF%FE", "name"},
		{"control character", "Patient", "name=a%0Ab", "name"},
		{"nul", "Patient", "name=a%00b", "name"},
		{"bad escape", "Patient", `name=a\b`, "name"},
		{"trailing backslash", "Patient", `name=ab\`, "name"},

		// unsupported parameters (§3.1.1.4.20-24, §3.1.1.5.5, §3.1.1.7)
		{"_contained", "Patient", "_contained=true", "_contained"},
		{"_containedType", "Patient", "_containedType=contained", "_containedType"},
		{"_list", "Patient", "_list=42", "_list"},
		{"_query", "Patient", "_query=everything", "_query"},
		{"_filter", "Patient", "_filter=name%20eq%20peter", "_filter"},
		{"_text", "Condition", "_text=bone", "_text"},
		{"_content", "Condition", "_content=bone", "_content"},
		{"_type", "Patient", "_type=Observation", "_type"},
		{"special parameter", "Location", "near=42.256|-83.694|11.20|km", "near"},

		// modifiers, §3.1.1.4.4
		{"above on token", "Observation", "code:above=1234", "code:above"},
		{"below on token", "Observation", "code:below=1234", "code:below"},
		{"in on token", "Observation", "code:in=http://acme.org/fhir/ValueSet/cardiac", "code:in"},
		{"not-in on token", "Observation", "code:not-in=http://acme.org/fhir/ValueSet/cardiac", "code:not-in"},
		{"of-type on token", "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", "identifier:of-type"},
		{"exact on token", "Observation", "code:exact=1234", "code:exact"},
		{"text on string", "Patient", "name:text=peter", "name:text"},
		{"not on string", "Patient", "name:not=peter", "name:not"},
		{"exact on date", "Observation", "date:exact=2013", "date:exact"},
		{"below on uri", "Observation", "_profile:below=http://acme.org/fhir/", "_profile:below"},
		{"above on reference", "Observation", "subject:above=Patient/1", "subject:above"},
		{"missing on composite", "Observation", "component-code-value-quantity:missing=true", "component-code-value-quantity:missing"},
		{"upper case modifier", "Patient", "name:EXACT=peter", "name:EXACT"},
		{"empty modifier", "Patient", "name:=peter", "name:"},
		{"two modifiers", "Patient", "name:exact:contains=peter", "name:exact:contains"},
		{"empty modifier in a chain", "Observation", "subject:Patient.name:=peter", "subject:Patient.name:"},
		{"empty type modifier in a chain", "Observation", "subject:.name=peter", "subject:.name"},
		{"empty modifier in _has", "Patient", "_has:Observation:patient:code:=1", "_has:Observation:patient:code:"},
		{"type modifier on a token", "Observation", "code:Patient=1", "code:Patient"},
		{"type modifier not a target", "Observation", "subject:Practitioner=123", "subject:Practitioner"},
		{"type modifier excluded by restriction", "Observation", "patient:Group=123", "patient:Group"},
		{"missing maybe", "Patient", "gender:missing=maybe", "gender:missing"},
		{"missing list", "Patient", "gender:missing=true,false", "gender:missing"},

		// value lists
		{"empty alternative", "Observation", "code=a,,b", "code"},
		{"trailing comma", "Observation", "code=a,", "code"},
		{"leading comma", "Observation", "code=,a", "code"},
		{"too many alternatives", "Observation", "code=" + strings.Repeat("a,", maxOr) + "a", "code"},

		// tokens
		{"token two pipes", "Observation", "code=a|b|c", "code"},
		{"token only pipe", "Observation", "code=|", "code"},
		{"_id with system", "Patient", "_id=a|b", "_id"},
		{"_id with space", "Patient", "_id=a%20b", "_id"},
		{"_id too long", "Patient", "_id=" + strings.Repeat("1", 65), "_id"},
		{"_id with type", "Patient", "_id=Patient/1", "_id"},
		{"text with nothing to search", "Observation", "code:text=%21%21", "code:text"},

		// strings
		{"string with nothing to search", "Patient", "name=%21%21%21", "name"},

		// references
		{"reference empty id", "Observation", "subject=Patient/", "subject"},
		{"reference empty type", "Observation", "subject=/123", "subject"},
		{"reference three segments", "Observation", "subject=Patient/1/2", "subject"},
		{"reference history without version", "Observation", "subject=Patient/1/_history/", "subject"},
		{"reference history bad", "Observation", "subject=Patient/1/_other/2", "subject"},
		{"reference lower-case type", "Observation", "subject=patient/1", "subject"},
		{"reference id with space", "Observation", "subject=a%20b", "subject"},
		{"reference type not a target", "Observation", "subject=Practitioner/1", "subject"},
		{"reference type excluded by restriction", "Observation", "patient=Group/1", "patient"},
		{"reference type conflicts with modifier", "Observation", "subject:Patient=Group/1", "subject:Patient"},
		{"absolute reference conflicts with modifier", "Observation", "subject:Patient=http://example.org/fhir/Group/1", "subject:Patient"},
		{"urn with type modifier", "Observation", "subject:Patient=urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7", "subject:Patient"},
		{"canonical version", "Observation", "subject=http://example.org/fhir/Patient/1|2", "subject"},
		{"bad scheme", "Observation", "subject=1:2", "subject"},

		// dates
		{"date month 13", "Observation", "date=2013-13-01", "date"},
		{"date prefix only", "Observation", "date=gt", "date"},
		{"date unknown prefix", "Observation", "date=xx2013", "date"},
		{"date hour without minutes", "Observation", "date=2013-01-01T10", "date"},
		{"date words", "Observation", "date=23%20May%202009", "date"},
		{"date upper-case prefix", "Observation", "date=GT2013", "date"},

		// numbers and quantities
		{"number word", "RiskAssessment", "probability=abc", "probability"},
		{"number two points", "RiskAssessment", "probability=1.2.3", "probability"},
		{"number leading zero", "RiskAssessment", "probability=01", "probability"},
		{"number bare point", "RiskAssessment", "probability=.5", "probability"},
		{"number trailing point", "RiskAssessment", "probability=5.", "probability"},
		{"number infinite", "RiskAssessment", "probability=1e9999", "probability"},
		{"number hex", "RiskAssessment", "probability=0x10", "probability"},
		{"number inf", "RiskAssessment", "probability=Inf", "probability"},
		{"quantity word", "Observation", "value-quantity=abc", "value-quantity"},
		{"quantity one pipe", "Observation", "value-quantity=5.4|http://unitsofmeasure.org", "value-quantity"},
		{"quantity three pipes", "Observation", "value-quantity=5.4|a|b|c", "value-quantity"},
		{"quantity no number", "Observation", "value-quantity=|http://unitsofmeasure.org|mg", "value-quantity"},

		// composites
		{"composite one part", "Observation", "component-code-value-quantity=http://loinc.org|8480-6", "component-code-value-quantity"},
		{"composite three parts", "Observation", "component-code-value-quantity=a$lt60$b", "component-code-value-quantity"},
		{"composite empty part", "Observation", "component-code-value-quantity=$lt60", "component-code-value-quantity"},
		{"composite bad quantity", "Observation", "component-code-value-quantity=a$sixty", "component-code-value-quantity"},

		// chains, §3.1.1.4.15
		{"chain depth 2", "Observation", "subject.organization.name=acme", "subject.organization.name"},
		{"chain depth 2 with types", "Observation", "subject:Patient.organization.name=acme", "subject:Patient.organization.name"},
		{"chain on a token", "Observation", "code.name=peter", "code.name"},
		{"chain to unknown parameter", "Observation", "subject.nonsense=1", "subject.nonsense"},
		{"chain to a parameter of another target", "Observation", "subject:Device.birthdate=1970", "subject:Device.birthdate"},
		{"chain with identifier modifier", "Observation", "subject:identifier.name=peter", "subject:identifier.name"},
		{"chain with missing modifier", "Observation", "subject:missing.name=peter", "subject:missing.name"},
		{"chain type not a target", "Observation", "subject:Practitioner.name=peter", "subject:Practitioner.name"},
		{"chain with a bad modifier at the end", "Observation", "subject:Patient.name:above=peter", "subject:Patient.name:above"},
		{"chain with empty parameter", "Observation", "subject.=peter", "subject."},
		{"chain ambiguous kinds", "Observation", "focus.subject=Patient/1", "focus.subject"},
		{"chain to _has", "Observation", "subject._has:Observation:patient:code=1", "subject._has:Observation:patient:code"},
		{"chain to special", "Encounter", "location.near=42.256|-83.694|11.20|km", "location.near"},
		{"chain with bad value", "Observation", "subject:Patient.birthdate=yesterday", "subject:Patient.birthdate"},
		{"chain from unknown parameter", "Observation", "nonsense.name=peter", "nonsense.name"},

		// _has, §3.1.1.4.16
		{"has nested", "Patient", "_has:Observation:patient:_has:AuditEvent:entity:user=MyUserId", "_has:Observation:patient:_has:AuditEvent:entity:user"},
		{"has chained", "Patient", "_has:Observation:patient:subject.name=peter", "_has:Observation:patient:subject.name"},
		{"has too short", "Patient", "_has:Observation:patient=1", "_has:Observation:patient"},
		{"has bare", "Patient", "_has=1", "_has"},
		{"has modifier form", "Patient", "_has.x=1", "_has.x"},
		{"has lower-case type", "Patient", "_has:observation:patient:code=1", "_has:observation:patient:code"},
		{"has unknown type", "Patient", "_has:Nonsense:patient:code=1", "_has:Nonsense:patient:code"},
		{"has non-reference", "Patient", "_has:Observation:code:code=1", "_has:Observation:code:code"},
		{"has reference not to the searched type", "Patient", "_has:Observation:encounter:code=1", "_has:Observation:encounter:code"},
		{"has unknown inner parameter", "Patient", "_has:Observation:patient:nonsense=1", "_has:Observation:patient:nonsense"},
		{"has unsupported modifier", "Patient", "_has:Observation:patient:code:below=1", "_has:Observation:patient:code:below"},
		{"has bad value", "Patient", "_has:Observation:patient:date=yesterday", "_has:Observation:patient:date"},

		// _include and _revinclude, §3.1.1.5.4
		{"include from another type", "Observation", "_include=Patient:organization", "_include"},
		{"include token parameter", "Observation", "_include=Observation:code", "_include"},
		{"include unknown parameter", "Observation", "_include=Observation:nonsense", "_include"},
		{"include without parameter", "Observation", "_include=Observation", "_include"},
		{"include bare wildcard", "Observation", "_include=*", "_include"},
		{"include target not a target", "Observation", "_include=Observation:subject:Practitioner", "_include"},
		{"include target excluded by restriction", "Observation", "_include=Observation:patient:Group", "_include"},
		{"include comma list", "Observation", "_include=Observation:subject,Observation:patient", "_include"},
		{"include four parts", "Observation", "_include=Observation:subject:Patient:x", "_include"},
		{"include recurse", "Observation", "_include:recurse=Observation:subject", "_include:recurse"},
		{"include wildcard of unknown type", "Observation", "_include:iterate=Nonsense:*", "_include:iterate"},
		{"include iterate unknown parameter", "Observation", "_include:iterate=Patient:nonsense", "_include:iterate"},
		{"revinclude not to the searched type", "Patient", "_revinclude=Observation:encounter", "_revinclude"},
		{"revinclude token", "Patient", "_revinclude=Observation:code", "_revinclude"},
		{"revinclude wildcard without fit", "Patient", "_revinclude=Medication:*", "_revinclude"},
		{"revinclude iterate bad modifier", "Patient", "_revinclude:iterate:x=Observation:patient", "_revinclude:iterate:x"},
		{"include with summary text", "Observation", "_summary=text&_include=Observation:subject", "_summary"},

		// _sort, §3.1.1.5.1
		{"sort unknown", "Observation", "_sort=nonsense", "_sort"},
		{"sort dash only", "Observation", "_sort=-", "_sort"},
		{"sort empty key", "Observation", "_sort=date,,code", "_sort"},
		{"sort twice the same key", "Observation", "_sort=date,-date", "_sort"},
		{"sort composite", "Observation", "_sort=component-code-value-quantity", "_sort"},
		{"sort too many keys", "Observation", "_sort=date,code,status,category,_id,_lastUpdated", "_sort"},
		{"sort repeated", "Observation", "_sort=date&_sort=code", "_sort"},
		{"sort modifier", "Observation", "_sort:asc=date", "_sort:asc"},

		// _count, _summary, _elements, _total, _format, _pretty
		{"count negative", "Patient", "_count=-1", "_count"},
		{"count word", "Patient", "_count=ten", "_count"},
		{"count decimal", "Patient", "_count=1.5", "_count"},
		{"count plus", "Patient", "_count=%2B5", "_count"},
		{"count repeated", "Patient", "_count=1&_count=2", "_count"},
		{"count repeated with empty", "Patient", "_count=&_count=2", "_count"},
		{"count modifier", "Patient", "_count:x=1", "_count:x"},
		{"count chained", "Patient", "_count.x=1", "_count.x"},
		{"summary unknown", "Patient", "_summary=maybe", "_summary"},
		{"summary repeated", "Patient", "_summary=true&_summary=false", "_summary"},
		{"elements path", "Patient", "_elements=name.given", "_elements"},
		{"elements empty item", "Patient", "_elements=name,,gender", "_elements"},
		{"elements digit first", "Patient", "_elements=1name", "_elements"},
		{"total unknown", "Patient", "_total=some", "_total"},
		{"total repeated", "Patient", "_total=none&_total=accurate", "_total"},
		{"format xml", "Patient", "_format=xml", "_format"},
		{"format fhir xml", "Patient", "_format=application/fhir%2Bxml", "_format"},
		{"format html", "Patient", "_format=text/html", "_format"},
		{"format repeated", "Patient", "_format=json&_format=json", "_format"},
		{"pretty", "Patient", "_pretty=yes", "_pretty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseQuery(t, tt.typ, tt.query, testOpts)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error", tt.query, q)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) error %T %v, want *Error", tt.query, err, err)
			}
			if e.Param != tt.param {
				t.Errorf("Parse(%q) Error.Param = %q, want %q (%v)", tt.query, e.Param, tt.param, err)
			}
			if e.Reason == "" {
				t.Errorf("Parse(%q): empty Error.Reason", tt.query)
			}
			vals, _ := url.ParseQuery(tt.query)
			if problem := errorProblem(e, vals); problem != "" {
				t.Errorf("Parse(%q) error %q: %s", tt.query, err, problem)
			}
		})
	}
}

// errorProblem describes what is wrong with e as the answer to a request
// with parameters vals, or returns "". An Error may show a parameter name
// and one of the constant reasons, nothing else: Reason must be one of the
// reason constants, Param a name from vals (or the placeholder for an
// invalid one), and no value longer than 8 bytes may appear in either
// unless it is also part of a name or of the constant reason. (The two are
// checked apart: Error() joins them with ": ", and a value like "name:"
// would otherwise seem to straddle the join.)
func errorProblem(e *Error, vals url.Values) string {
	if !knownReasons()[e.Reason] {
		return "reason is not one of the reason constants: " + strconv.Quote(e.Reason)
	}
	if _, ok := vals[e.Param]; !ok && e.Param != invalidName {
		return "Param is not a parameter name of the request: " + strconv.Quote(e.Param)
	}
	if e.Error() != "search parameter "+e.Param+": "+e.Reason {
		return "Error() shows more than Param and Reason"
	}
	var names strings.Builder
	for name := range vals {
		names.WriteString(name + "\n")
	}
	for _, vs := range vals {
		for _, v := range vs {
			if len(v) <= 8 || strings.Contains(names.String(), v) {
				continue
			}
			if strings.Contains(e.Param, v) || strings.Contains(e.Reason, v) && !strings.Contains(reasonText(), v) {
				return "the text echoes the value " + strconv.Quote(v)
			}
		}
	}
	return ""
}

// reasonText is all the reason constants, joined.
var reasonText = sync.OnceValue(func() string {
	var b strings.Builder
	for r := range knownReasons() {
		b.WriteString(r + "\n")
	}
	return b.String()
})

// knownReasons returns the values of the reason constants, read from the
// package source so that a reason built at run time cannot hide.
var knownReasons = sync.OnceValue(func() map[string]bool {
	fset := token.NewFileSet()
	f, err := goparser.ParseFile(fset, "reasons.go", nil, 0)
	if err != nil {
		panic(err)
	}
	set := map[string]bool{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || !strings.HasPrefix(name.Name, "reason") {
					panic("reasons.go: " + name.Name + " is not a reason string literal")
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					panic(err)
				}
				set[v] = true
			}
		}
	}
	return set
})

func TestKnownReasons(t *testing.T) {
	set := knownReasons()
	for _, r := range []string{reasonName, reasonChainDepth, reasonEscape, reasonToken, reasonTooManyIgnored} {
		if !set[r] {
			t.Errorf("knownReasons lacks %q", r)
		}
	}
	if len(set) < 60 {
		t.Errorf("knownReasons has %d reasons; is reasons.go read correctly?", len(set))
	}
}

// TestErrorProblem makes sure the oracle used by TestParseRejects and
// FuzzParse does catch errors that echo values.
func TestErrorProblem(t *testing.T) {
	vals := url.Values{"name": {"Jane Doe-Smith"}, "subject": {"_history/"}}
	for _, e := range []*Error{
		{Param: "name", Reason: "bad value Jane Doe-Smith"},
		{Param: "name", Reason: reasonDate + " Jane Doe-Smith"},
		{Param: "Jane Doe-Smith", Reason: reasonDate},
		{Param: "other", Reason: reasonDate},
	} {
		if errorProblem(e, vals) == "" {
			t.Errorf("errorProblem(%#v) found nothing", e)
		}
	}
	for _, e := range []*Error{
		{Param: "name", Reason: reasonDate},
		{Param: "subject", Reason: reasonReference}, // "_history/" is part of the constant text
		{Param: invalidName, Reason: reasonName},
	} {
		if p := errorProblem(e, vals); p != "" {
			t.Errorf("errorProblem(%#v) = %q", e, p)
		}
	}
}

// TestParseErrorsHideValues puts a recognisable secret in the value of
// failing parameters of every kind and checks it never reaches the error.
func TestParseErrorsHideValues(t *testing.T) {
	const secret = "HIV-POSITIVE-JANE-DOE"
	for _, query := range []string{
		"name=" + secret + "%00",
		"name:above=" + secret,
		"nonsense=" + secret,
		"_id=" + secret + "|x",
		"subject=Practitioner/" + secret,
		"subject=" + secret + "/x/y",
		"subject=http://example.org/" + secret + "|1",
		"date=" + secret,
		"value-quantity=" + secret,
		"code=" + secret + "|a|b",
		"code=" + secret + `\x`,
		"component-code-value-quantity=" + secret,
		"gender:missing=" + secret,
		"_count=" + secret,
		"_sort=" + secret,
		"_summary=" + secret,
		"_elements=" + secret + ".x",
		"_total=" + secret,
		"_format=" + secret,
		"_pretty=" + secret,
		"_include=" + secret,
		"_include=Observation:" + secret,
		"_revinclude=" + secret + ":*",
		"_has:Observation:patient:date=" + secret,
		"subject:Patient.birthdate=" + secret,
		"_filter=" + secret,
	} {
		_, err := parseQuery(t, "Observation", query, testOpts)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error", query)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "JANE") {
			t.Errorf("Parse(%q) error %q echoes the value", query, err)
		}
	}
}

// TestParseLenient: under Prefer: handling=lenient unknown and unsupported
// parameters are skipped and listed; everything else still fails.
func TestParseLenient(t *testing.T) {
	lenient := Options{DefaultCount: 20, MaxCount: 100, Lenient: true}
	q, err := parseQuery(t, "Patient", "name=ann&nonsense=1&_text=x&_filter=y&foo:exact=2&code=3&nonsense2=", lenient)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"_filter", "_text", "code", "foo:exact", "nonsense"}; !reflect.DeepEqual(q.Ignored, want) {
		t.Errorf("Ignored = %q, want %q", q.Ignored, want)
	}
	if len(q.Clauses) != 1 || q.Clauses[0].Param.Code != "name" {
		t.Errorf("Clauses = %s", dumpClauses(q.Clauses))
	}

	q, err = parseQuery(t, "Patient", "name=ann", testOpts)
	if err != nil || q.Ignored != nil {
		t.Errorf("strict Parse: Ignored = %q, err = %v", q.Ignored, err)
	}

	for _, query := range []string{
		"name:above=ann",          // unsupported modifier: §3.1.1.4.4 SHALL reject
		"birthdate=yesterday",     // malformed value
		"organization.nonsense=1", // chain to an unknown parameter
		"_has:Observation:x:y=1",  // malformed _has
		"_count=ten",              // malformed control
		"_include=Observation:x",  // bad include
		"a.b.c=1",                 // chain too deep
		"na%20me=1",               // invalid name
		"_format=xml",             // format
		"name=" + strings.Repeat("x", maxValueBytes+1),
	} {
		if _, err := parseQuery(t, "Patient", query, lenient); err == nil {
			t.Errorf("lenient Parse(%q) succeeded, want error", query)
		}
	}

	var many []string
	for i := range maxIgnored + 1 {
		many = append(many, "x"+strconv.Itoa(i)+"=1")
	}
	if _, err := parseQuery(t, "Patient", strings.Join(many, "&"), lenient); err == nil {
		t.Errorf("lenient Parse with %d unknown parameters succeeded", maxIgnored+1)
	}
}

// TestParseBounds checks each limit at and just past its value.
func TestParseBounds(t *testing.T) {
	repeat := func(part string, n int, sep string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = strings.ReplaceAll(part, "#", strconv.Itoa(i))
		}
		return strings.Join(parts, sep)
	}
	tests := []struct {
		name     string
		typ      string
		ok, fail string
	}{
		{"clauses", "Observation", repeat("code=#", maxClauses, "&"), repeat("code=#", maxClauses+1, "&")},
		{"clauses across parameters", "Observation", repeat("code=#", 25, "&") + "&" + repeat("category=#", 25, "&"), repeat("code=#", 25, "&") + "&" + repeat("category=#", 26, "&")},
		{"has clauses", "Patient", repeat("_has:Observation:patient:code=#", maxClauses, "&"), repeat("_has:Observation:patient:code=#", maxClauses+1, "&")},
		{"or values", "Observation", "code=" + repeat("c#", maxOr, ","), "code=" + repeat("c#", maxOr+1, ",")},
		{"value bytes", "Patient", "name=" + strings.Repeat("a", maxValueBytes), "name=" + strings.Repeat("a", maxValueBytes+1)},
		{"includes", "Observation", strings.Join([]string{
			"_include=Observation:subject", "_include=Observation:patient", "_include=Observation:encounter", "_include=Observation:performer",
			"_include=Observation:device", "_include=Observation:focus", "_include=Observation:has-member", "_include=Observation:derived-from",
			"_include=Observation:based-on", "_revinclude=Provenance:target"}, "&"),
			strings.Join([]string{
				"_include=Observation:subject", "_include=Observation:patient", "_include=Observation:encounter", "_include=Observation:performer",
				"_include=Observation:device", "_include=Observation:focus", "_include=Observation:has-member", "_include=Observation:derived-from",
				"_include=Observation:based-on", "_revinclude=Provenance:target", "_include=Observation:part-of"}, "&")},
		{"sort keys", "Observation", "_sort=date,code,status,category,-_id", "_sort=date,code,status,category,-_id,_lastUpdated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseQuery(t, tt.typ, tt.ok, testOpts); err != nil {
				t.Errorf("at the limit: %v", err)
			}
			_, err := parseQuery(t, tt.typ, tt.fail, testOpts)
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("past the limit: error %v, want *Error", err)
			}
		})
	}
}

// TestParseDeterministic: url.Values is a map, yet the same request must
// always give the same Query (the store and the paging cursor rely on it).
func TestParseDeterministic(t *testing.T) {
	const query = "code=a&category=b&date=ge2020&subject=Patient/1&status=final&_sort=-date&_include=Observation:subject&value-quantity=5"
	first, err := parseQuery(t, "Observation", query, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		q, err := parseQuery(t, "Observation", query, testOpts)
		if err != nil || !reflect.DeepEqual(q, first) {
			t.Fatalf("Parse gave a different result: %v", err)
		}
	}
}

// BenchmarkParse measures a typical patient-scoped search.
func BenchmarkParse(b *testing.B) {
	vals, err := url.ParseQuery("patient=Patient/123&code=http://loinc.org|8867-4&_count=50&_sort=-date")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(r4, "Observation", vals, testOpts); err != nil {
			b.Fatal(err)
		}
	}
}
