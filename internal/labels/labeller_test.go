package labels

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func newLabeller(t testing.TB) *Labeller {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLabel(t *testing.T) {
	l := newLabeller(t)
	cases := []struct {
		name     string
		resource string
		want     []string // sensitivity categories, sorted
		conf     string
	}{
		// Ways around the classifier first.
		{"organisation name is never read (the MENTAL HEALTH CENTER trap)",
			`{"resourceType":"CarePlan","category":[{"coding":[{"system":"http://snomed.info/sct","code":"384758001","display":"Self-care interventions (procedure)"}]}],
			  "activity":[{"detail":{"code":{"coding":[{"system":"http://snomed.info/sct","code":"409002","display":"Food allergy diet"}]},"location":{"display":"DR SOLOMON CARTER FULLER MENTAL HEALTH CENTER"}}}]}`,
			nil, "N"},
		{"a valid code's display cannot add a label",
			`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003","display":"HIV infection"}]}}`,
			nil, "N"},
		{"a valid code's display cannot remove a label",
			`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001","display":"Hypertension"}]}}`,
			[]string{"ETH"}, "R"},
		{"sensitive code in a second coding",
			`{"resourceType":"Condition","code":{"coding":[{"system":"http://example.org/local","code":"x"},{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"B20"}]}}`,
			[]string{"HIV"}, "R"},
		{"same code under another system does not match",
			`{"resourceType":"Condition","code":{"coding":[{"system":"http://loinc.org","code":"5602001"}]}}`,
			nil, "N"},
		{"local system is not text-matched",
			`{"resourceType":"Observation","code":{"coding":[{"system":"http://example.org/local","code":"1","display":"HIV viral load"}]}}`,
			nil, "N"},
		{"CIEL id under LOINC is matched on display text",
			`{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"856AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","display":"HIV viral load"}]}}`,
			[]string{"HIV"}, "R"},
		{"CIEL answer under SNOMED is matched on display text",
			`{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"1271AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","display":"TESTS ORDERED"}]},
			  "valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"299AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","display":"VDRL"}]}}`,
			[]string{"SEX"}, "R"},
		{"text match is whole-word (archive is not HIV)",
			`{"resourceType":"Observation","code":{"coding":[{"display":"archived record"}]}}`,
			nil, "N"},
		{"contained resource is classified",
			`{"resourceType":"Claim","contained":[{"resourceType":"ServiceRequest","code":{"coding":[{"system":"http://snomed.info/sct","code":"56876005"}]}}]}`,
			[]string{"ETH"}, "R"},
		{"Claim item",
			`{"resourceType":"Claim","item":[{"productOrService":{"coding":[{"system":"http://snomed.info/sct","code":"185347001"}]}},{"productOrService":{"coding":[{"system":"http://snomed.info/sct","code":"192127007"}]}}]}`,
			[]string{"PSY"}, "R"},
		{"DocumentReference.type is one CodeableConcept",
			`{"resourceType":"DocumentReference","type":{"coding":[{"system":"http://loinc.org","code":"75443-2"}]}}`,
			[]string{"PSY"}, "R"},
		{"medication",
			`{"resourceType":"MedicationRequest","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"757594"}]}}`,
			[]string{"SEX"}, "R"},
		{"two categories",
			`{"resourceType":"Procedure","code":{"coding":[{"system":"http://snomed.info/sct","code":"443529005"}]}}`,
			[]string{"GDIS", "SEX"}, "R"},
		{"Immunization is not read",
			`{"resourceType":"Immunization","vaccineCode":{"coding":[{"system":"http://snomed.info/sct","code":"5602001"}]}}`,
			nil, "N"},
		{"nothing sensitive", `{"resourceType":"Patient","name":[{"family":"HIV"}]}`, nil, "N"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Label([]byte(tc.resource))
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Categories(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("categories = %v, want %v", got, tc.want)
			}
			last := res.Security[len(res.Security)-1]
			if last.System != ConfidentialitySystem || last.Code != tc.conf {
				t.Errorf("confidentiality = %+v, want %s", last, tc.conf)
			}
			if len(tc.want) > 0 && len(res.Why) == 0 {
				t.Error("labels without reasons")
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(tc.resource), &m); err != nil {
				t.Fatal(err)
			}
			if dec, err := l.LabelResource(m); err != nil || !reflect.DeepEqual(dec, res) {
				t.Errorf("LabelResource = %+v, %v; Label %+v", dec, err, res)
			}
		})
	}
}

// LabelResource refuses what Label refuses among resources a map can
// hold, and reads the types Label does not read whatever their shape.
func TestLabelResourceMalformed(t *testing.T) {
	l := newLabeller(t)
	for _, in := range []string{`{}`, `{"resourceType":1}`, `{"resourceType":"Condition","code":"x"}`,
		`{"resourceType":"Encounter","type":{"coding":[]}}`, `{"resourceType":"DocumentReference","type":[]}`,
		`{"resourceType":"Claim","contained":[1]}`, `{"resourceType":"Claim","contained":[{"resourceType":"Condition","code":[]}]}`,
		`{"resourceType":"Condition","code":[{"coding":[]}]}`, `{"resourceType":"Condition","code":{"coding":[{"code":5602001}]}}`,
		`{"resourceType":"Observation","component":{}}`, `{"resourceType":"CarePlan","activity":[{"detail":[]}]}`} {
		var m map[string]any
		if err := json.Unmarshal([]byte(in), &m); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Label([]byte(in)); !errors.Is(err, ErrMalformedResource) {
			t.Errorf("Label(%s) error = %v, want ErrMalformedResource", in, err)
		}
		if _, err := l.LabelResource(m); !errors.Is(err, ErrMalformedResource) {
			t.Errorf("LabelResource(%s) error = %v, want ErrMalformedResource", in, err)
		}
	}
	var m map[string]any
	json.Unmarshal([]byte(`{"resourceType":"PractitionerRole","code":[{"coding":[{"system":"http://nucc.org/provider-taxonomy","code":"208D00000X"}]}],"item":"x"}`), &m)
	res, err := l.LabelResource(m)
	if err != nil || len(res.Security) != 1 || res.Security[0].Code != "N" {
		t.Fatalf("PractitionerRole: %v, %v", res.Security, err)
	}
}

func TestLabelReason(t *testing.T) {
	l := newLabeller(t)
	res, err := l.Label([]byte(`{"resourceType":"Encounter","type":[{"coding":[{"system":"http://snomed.info/sct","code":"185347001"}]}],"reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"47505003","display":"PTSD"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Reason{Category: "PSY", Path: "Encounter.reasonCode[0].coding[0]", System: "http://snomed.info/sct",
		Code: "47505003", Display: "PTSD", ValueSet: "valuesets/PSY.tsv", Match: "code"}
	if len(res.Why) != 1 || res.Why[0] != want {
		t.Fatalf("Why = %+v, want %+v", res.Why, want)
	}
	if got, want := res.Why[0].String(), `PSY: Encounter.reasonCode[0].coding[0] http://snomed.info/sct|47505003 "PTSD" — in valuesets/PSY.tsv`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestLabelMalformed(t *testing.T) {
	l := newLabeller(t)
	for _, in := range []string{``, `[]`, `{}`, `{"resourceType":1}`, `{"resourceType":"Condition","code":"x"}`,
		`{"resourceType":"Encounter","type":{"coding":[]}}`, `{"resourceType":"Claim","contained":[1]}`, `{"resourceType":"Condition"`,
		// Ways to hide a code from the classifier while a case-sensitive
		// reader still sees it: duplicate or case-variant members.
		`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001"}]},"Code":{"coding":[]}}`,
		`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001"}]},"code":{"coding":[]}}`,
		`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001","code":"1"}]}}`,
		`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001"}]},"\u0063ode":{}}`,
		`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","\u017Fystem":"x","code":"5602001"}]}}`,
		`{"resourceType":"Condition","resourcetype":"Patient"}`} {
		if _, err := l.Label([]byte(in)); !errors.Is(err, ErrMalformedResource) {
			t.Errorf("Label(%q) error = %v, want ErrMalformedResource", in, err)
		}
	}
}

func TestSiteValueSet(t *testing.T) {
	vs, err := ParseValueSet("site/BH.tsv", []byte("@category\tBH\n@confidentiality\tV\n@source\tsite list\nsystem\tcode\tdisplay\tnote\nhttp://example.org/local\tB1\tBehavioural\t\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(vs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Label([]byte(`{"resourceType":"Condition","code":{"coding":[{"system":"http://example.org/local","code":"B1"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Coding{{System: SensitivitySystem, Code: "BH"}, Confidentiality("V")}
	if !reflect.DeepEqual(res.Security, want) {
		t.Errorf("Security = %+v, want %+v", res.Security, want)
	}
	dup := vs
	dup.Category = "HIV"
	if _, err := New(dup); !errors.Is(err, ErrDuplicateCategory) {
		t.Errorf("New with a second HIV value set: %v, want ErrDuplicateCategory", err)
	}
}

func TestParseValueSetErrors(t *testing.T) {
	const head = "@category\tX\n@source\ts\nsystem\tcode\tdisplay\tnote\n"
	cases := map[string]string{
		"no category":        "@source\ts\nsystem\tcode\tdisplay\tnote\nhttp://loinc.org\t55277-8\n",
		"no source":          "@category\tX\nsystem\tcode\tdisplay\tnote\nhttp://loinc.org\t55277-8\n",
		"no header":          "@category\tX\n@source\ts\nhttp://loinc.org\t55277-8\n",
		"bad category":       "@category\thiv\n@source\ts\nsystem\tcode\tdisplay\tnote\nhttp://loinc.org\t55277-8\n",
		"confidentiality N":  "@confidentiality\tN\n" + head + "http://loinc.org\t55277-8\n",
		"unknown directive":  "@colour\tred\n" + head + "http://loinc.org\t55277-8\n",
		"bad LOINC check":    head + "http://loinc.org\t55277-9\n",
		"bad SNOMED check":   head + "http://snomed.info/sct\t5602002\n",
		"system not a URI":   head + "loinc\t55277-8\n",
		"duplicate code":     head + "http://loinc.org\t55277-8\nhttp://loinc.org\t55277-8\n",
		"too many fields":    head + "http://loinc.org\t55277-8\ta\tb\tc\n",
		"empty":              head,
		"short display term": head + "@display-term\tab\n",
	}
	for name, in := range cases {
		if _, err := ParseValueSet(name, []byte(in)); !errors.Is(err, ErrMalformedValueSet) {
			t.Errorf("%s: error = %v, want ErrMalformedValueSet", name, err)
		}
	}
	if _, err := ParseValueSet("ok", []byte(head+"http://loinc.org\t55277-8\tHIV status\t\n")); err != nil {
		t.Errorf("valid value set: %v", err)
	}
}

func TestBuiltinValueSets(t *testing.T) {
	sets, err := BuiltinValueSets()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sets {
		got = append(got, s.Category)
		if len(s.Sources) == 0 || s.Confidentiality != "R" {
			t.Errorf("%s: sources %v confidentiality %s", s.Category, s.Sources, s.Confidentiality)
		}
	}
	if want := []string{"ETH", "GDIS", "HIV", "PSY", "SDV", "SEX"}; !reflect.DeepEqual(got, want) {
		t.Errorf("categories %v, want %v", got, want)
	}
}

func TestCodeSystemChecks(t *testing.T) {
	for _, c := range []struct {
		f    func(string) bool
		code string
		ok   bool
	}{
		{validLOINC, "55277-8", true}, {validLOINC, "55277-7", false}, {validLOINC, "1040AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{validLOINC, "-1", false}, {validSNOMED, "72892002", true}, {validSNOMED, "72892003", false},
		{validSNOMED, "755621000000101", true}, {validSNOMED, "112141AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{validICD10CM, "F32.9", true}, {validICD10CM, "T74.21XA", true}, {validICD10CM, "F32.", false},
		{validICD9CM, "042", true}, {validICD9CM, "V08", true}, {validICD9CM, "995.83", true}, {validICD9CM, "99", false},
		{validRxNorm, "757594", true}, {validRxNorm, "0757", false},
	} {
		if got := c.f(c.code); got != c.ok {
			t.Errorf("check(%q) = %v, want %v", c.code, got, c.ok)
		}
	}
}

func TestPropagate(t *testing.T) {
	l := newLabeller(t)
	hiv := []Coding{{System: SensitivitySystem, Code: "HIV"}, Confidentiality("R")}
	site := []Coding{{System: "http://example.org/labels", Code: "LOCAL"}, Confidentiality("V")}
	lookup := func(ref string) []Coding {
		switch ref {
		case "Condition/hiv":
			return hiv
		case "Condition/site":
			return site
		case "Condition/conf-only":
			return []Coding{Confidentiality("V")}
		}
		return nil
	}
	hivLabelled := []Coding{{System: SensitivitySystem, Code: "HIV", Display: "HIV/AIDS information"}, Confidentiality("R")}
	cases := []struct {
		name, resource string
		want           []Coding
	}{
		{"Encounter.reasonReference", `{"resourceType":"Encounter","reasonReference":[{"reference":"Condition/other"},{"reference":"Condition/hiv"}]}`, hivLabelled},
		{"Claim.diagnosis.diagnosisReference", `{"resourceType":"Claim","diagnosis":[{"sequence":1,"diagnosisReference":{"reference":"Condition/hiv"}}]}`, hivLabelled},
		{"path not in policy", `{"resourceType":"Encounter","subject":{"reference":"Condition/hiv"}}`, []Coding{Confidentiality("N")}},
		{"confidentiality alone is not inherited", `{"resourceType":"Encounter","reasonReference":[{"reference":"Condition/conf-only"}]}`, []Coding{Confidentiality("N")}},
		{"unknown category keeps its system, counts as R", `{"resourceType":"Encounter","reasonReference":[{"reference":"Condition/site"}]}`,
			[]Coding{{System: "http://example.org/labels", Code: "LOCAL"}, Confidentiality("R")}},
		{"type without paths", `{"resourceType":"Patient","link":[{"other":{"reference":"Condition/hiv"}}]}`, []Coding{Confidentiality("N")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := l.Propagate([]byte(tc.resource), lookup)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Security, tc.want) {
				t.Errorf("Security = %+v, want %+v", res.Security, tc.want)
			}
		})
	}
	off, err := NewWithPolicy(Policy{PropagateVia: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := off.Propagate([]byte(cases[0].resource), lookup)
	if err != nil || len(res.Categories()) != 0 {
		t.Errorf("propagation off: %+v, %v", res, err)
	}
	for _, bad := range []string{"encounter.reasonReference", "Encounter", "Encounter..x", "Encounter.reason-ref"} {
		if _, err := NewWithPolicy(Policy{PropagateVia: []string{bad}}); !errors.Is(err, ErrBadPolicy) {
			t.Errorf("path %q: %v, want ErrBadPolicy", bad, err)
		}
	}
}

func TestApply(t *testing.T) {
	l := newLabeller(t)
	in := `{"resourceType":"Condition","id":"c1","meta":{"versionId":"3","security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V","userSelected":true},{"system":"http://example.org","code":"X"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001"}]},  "note":[{"text":"kept  as is"}]}`
	out, res, err := l.Apply([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Categories(), []string{"ETH"}) {
		t.Errorf("categories %v", res.Categories())
	}
	s := string(out)
	if !strings.Contains(s, `{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V","userSelected":true}`) {
		t.Errorf("client's V label not kept byte-for-byte: %s", s)
	}
	if !strings.HasSuffix(s, `"code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001"}]},  "note":[{"text":"kept  as is"}]}`) {
		t.Errorf("bytes outside meta changed: %s", s)
	}
	var parsed struct {
		Meta struct {
			VersionID string `json:"versionId"`
			Security  []Coding
		}
	}
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatal(err)
	}
	want := []Coding{{System: ConfidentialitySystem, Code: "V"}, {System: "http://example.org", Code: "X"},
		{System: SensitivitySystem, Code: "ETH", Display: "Substance abuse information (42 CFR Part 2)"}}
	if parsed.Meta.VersionID != "3" || !reflect.DeepEqual(parsed.Meta.Security, want) {
		t.Errorf("meta = %+v, want security %+v", parsed.Meta, want)
	}
	again, _, err := l.Apply(out)
	if err != nil || string(again) != string(out) {
		t.Errorf("Apply is not idempotent:\n%s\n%s (%v)", out, again, err)
	}

	noMeta, _, err := l.Apply([]byte(`{"resourceType":"Patient","id":"p"}`))
	if err != nil || string(noMeta) != `{"resourceType":"Patient","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"N","display":"normal"}]},"id":"p"}` {
		t.Errorf("no meta: %s %v", noMeta, err)
	}
	for _, bad := range []string{
		`{"resourceType":"Patient","meta":[]}`,
		`{"resourceType":"Patient","meta":{"security":{}}}`,
		`{"resourceType":"Patient","meta":{"security":[{"code":5}]}}`,
		`{"resourceType":"Patient","id":"a","id":"b"}`,
		`{"resourceType":"Patient"} {}`,
	} {
		if _, _, err := l.Apply([]byte(bad)); !errors.Is(err, ErrMalformedResource) {
			t.Errorf("Apply(%s): %v, want ErrMalformedResource", bad, err)
		}
	}
}

// TestUnreadTypesWithOtherShapes: element names this labeller reads mean
// other things in types it does not read (PractitionerRole.code is a
// list); such resources are labelled N, not refused.
func TestUnreadTypesWithOtherShapes(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Label([]byte(`{"resourceType":"PractitionerRole","code":[{"coding":[{"system":"http://nucc.org/provider-taxonomy","code":"208D00000X"}]}],"item":"x"}`))
	if err != nil {
		t.Fatalf("PractitionerRole refused: %v", err)
	}
	if len(res.Security) != 1 || res.Security[0].Code != "N" {
		t.Fatalf("labels %v", res.Security)
	}
	// A read type with a wrong shape is still malformed.
	if _, err := l.Label([]byte(`{"resourceType":"Condition","code":[{"coding":[]}]}`)); err == nil {
		t.Fatal("a Condition with a list for code was accepted")
	}
}
