package validate

import (
	"errors"
	"strings"
	"testing"
)

// marker is in the offending value of every case below that has one, so
// that TestInvalid can check that no message echoes the value.
const marker = "SECRET"

// The valid resources the cases below break.
const (
	patient = `{"resourceType":"Patient","id":"p1",
		"name":[{"family":"Doe","given":["Jan","Piet"]}],
		"gender":"female","birthDate":"1970-01-01"}`
	observation = `{"resourceType":"Observation","id":"o1","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},
		"subject":{"reference":"Patient/p1"},
		"effectiveDateTime":"2020-01-02T03:04:05Z",
		"valueQuantity":{"value":178.5,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`
)

// with returns base (a resource ending in "}") with more properties.
func with(base, props string) string {
	base = strings.TrimSpace(base)
	return base[:len(base)-1] + "," + props + "}"
}

type invalidCase struct {
	name string
	body string
	err  error  // the Decode error, or nil when Decode succeeds
	code string // the issue code Validate reports
	expr string // where the decode error or issue is
}

var invalidCases = []invalidCase{
	// Decoding.
	{name: "duplicate key", body: with(patient, `"gender":"SECRET"`), err: ErrDuplicateKey, expr: "Patient.gender"},
	{name: "duplicate key with the same value", body: with(patient, `"gender":"female"`), err: ErrDuplicateKey, expr: "Patient.gender"},
	{name: "duplicate key after unescaping", body: with(patient, `"g\u0065nder":"SECRET"`), err: ErrDuplicateKey, expr: "Patient.gender"},
	{name: "depth 200", body: deep(200), err: ErrTooDeep, expr: "Patient" + strings.Repeat(".extension[0]", 32)},
	{name: "10 MB body", body: with(patient, `"text":{"status":"generated","div":"<div>`+marker+strings.Repeat("x", 10<<20)+`</div>"}`), err: ErrTooLarge},
	{name: "invalid UTF-8", body: `{"resourceType":"Patient","name":[{"family":"SECRET` + "\xff" + `"}]}`, err: ErrInvalidUTF8, expr: "Patient.name[0].family"},
	{name: "overlong UTF-8", body: `{"resourceType":"Patient","name":[{"family":"SECRET\"` + "\xc0\xaf" + `"}]}`, err: ErrInvalidUTF8, expr: "Patient.name[0].family"},
	{name: "lone surrogate", body: `{"resourceType":"Patient","name":[{"family":"SECRET\ud800"}]}`, err: ErrLoneSurrogate, expr: "Patient.name[0].family"},
	{name: "trailing data", body: patient + `{"SECRET":1}`, err: ErrTrailingData},
	{name: "array body", body: `[` + patient + `]`, err: ErrNotObject},
	{name: "string body", body: `"SECRET"`, err: ErrNotObject},
	{name: "empty body", body: ` `, err: ErrSyntax},
	{name: "trailing comma", body: `{"resourceType":"Patient","gender":"SECRET",}`, err: ErrSyntax, expr: "Patient.gender"},
	{name: "leading zero", body: `{"resourceType":"Observation","valueInteger":01}`, err: ErrSyntax, expr: "Observation.valueInteger"},
	{name: "control character in string", body: "{\"resourceType\":\"Patient\",\"gender\":\"SECRET\x01\"}", err: ErrSyntax, expr: "Patient.gender"},
	{name: "bad escape", body: `{"resourceType":"Patient","gender":"SECRET\x"}`, err: ErrSyntax, expr: "Patient.gender"},
	{name: "NaN", body: `{"resourceType":"Observation","valueQuantity":{"value":NaN}}`, err: ErrSyntax, expr: "Observation.valueQuantity.value"},

	// Resource type.
	{name: "no resourceType", body: `{"id":"p1"}`, code: "required", expr: "resourceType"},
	{name: "unknown resourceType", body: `{"resourceType":"SECRET"}`, code: "invalid", expr: "resourceType"},
	{name: "abstract resourceType", body: `{"resourceType":"DomainResource"}`, code: "invalid", expr: "resourceType"},
	{name: "resourceType not a string", body: `{"resourceType":["Patient"]}`, code: "structure", expr: "resourceType"},

	// Unknown elements.
	{name: "unknown element", body: with(patient, `"favouriteColour":"SECRET"`), code: "structure", expr: "Patient.favouriteColour"},
	{name: "unknown nested element", body: with(patient, `"contact":[{"gender":"male","SECRET":"x"}]`), code: "structure", expr: "Patient.contact[0].SECRET"},
	{name: "fhir_comments", body: with(patient, `"fhir_comments":["SECRET"]`), code: "structure", expr: "Patient.fhir_comments"},
	{name: "resourceType inside a data type", body: `{"resourceType":"Patient","name":[{"resourceType":"SECRET","family":"Doe"}]}`, code: "structure", expr: "Patient.name[0].resourceType"},
	{name: "choice without type", body: with(patient, `"deceased":"SECRET"`), code: "structure", expr: "Patient.deceased"},
	{name: "choice with a type not allowed", body: with(patient, `"deceasedString":"SECRET"`), code: "structure", expr: "Patient.deceasedString"},
	{name: "unknown element in primitive extension", body: with(patient, `"_birthDate":{"SECRET":"x"}`), code: "structure", expr: "Patient.birthDate.SECRET"},
	{name: "primitive extension on a complex element", body: with(patient, `"_maritalStatus":{"id":"SECRET"}`), code: "structure", expr: "Patient._maritalStatus"},
	{name: "primitive extension on an unknown element", body: with(patient, `"_SECRET":{"id":"x"}`), code: "structure", expr: "Patient._SECRET"},
	{name: "primitive extension on Extension.url", body: with(patient, `"extension":[{"url":"http://example.org/x","_url":{"id":"SECRET"},"valueString":"a"}]`), code: "structure", expr: "Patient.extension[0]._url"},
	{name: "primitive extension on Element.id", body: `{"resourceType":"Patient","name":[{"id":"n1","_id":{"id":"SECRET"},"family":"Doe"}]}`, code: "structure", expr: "Patient.name[0]._id"},
	{name: "unknown element in extension", body: with(patient, `"extension":[{"url":"http://example.org/x","valueString":"a","SECRET":1}]`), code: "structure", expr: "Patient.extension[0].SECRET"},
	{name: "unknown element in modifierExtension", body: with(patient, `"modifierExtension":[{"url":"http://example.org/x","valueSECRET":"a"}]`), code: "structure", expr: "Patient.modifierExtension[0].valueSECRET"},
	{name: "unknown element in contained resource", body: with(observation, `"contained":[{"resourceType":"Patient","id":"c1","SECRET":true}]`), code: "structure", expr: "Observation.contained[0].SECRET"},
	{name: "unknown element in bundle entry", body: `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","SECRET":1}}]}`, code: "structure", expr: "Bundle.entry[0].resource.SECRET"},

	// JSON types.
	{name: "number where string expected", body: `{"resourceType":"Patient","name":[{"family":1234}]}`, code: "structure", expr: "Patient.name[0].family"},
	{name: "string where number expected", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"SECRET"}}`, code: "structure", expr: "Observation.valueQuantity.value"},
	{name: "string where boolean expected", body: with(patient, `"active":"SECRET"`), code: "structure", expr: "Patient.active"},
	{name: "object where string expected", body: with(patient, `"language":{"SECRET":1}`), code: "structure", expr: "Patient.language"},
	{name: "string where object expected", body: with(patient, `"maritalStatus":"SECRET"`), code: "structure", expr: "Patient.maritalStatus"},
	{name: "array for single element", body: `{"resourceType":"Patient","gender":["SECRET"]}`, code: "structure", expr: "Patient.gender"},
	{name: "single value for array element", body: `{"resourceType":"Patient","name":{"family":"SECRET"}}`, code: "structure", expr: "Patient.name"},
	{name: "single value for array primitive", body: `{"resourceType":"Patient","name":[{"given":"SECRET"}]}`, code: "structure", expr: "Patient.name[0].given"},
	{name: "null", body: with(observation, `"issued":null`), code: "structure", expr: "Observation.issued"},
	{name: "null array item", body: `{"resourceType":"Patient","name":[{"given":["SECRET",null]}]}`, code: "structure", expr: "Patient.name[0].given[1]"},
	{name: "empty array", body: with(observation, `"note":[]`), code: "structure", expr: "Observation.note"},
	{name: "empty object", body: with(observation, `"note":[{}]`), code: "structure", expr: "Observation.note[0]"},
	{name: "primitive extension array of other length", body: `{"resourceType":"Patient","name":[{"given":["SECRET","b"],"_given":[{"id":"x"}]}]}`, code: "structure", expr: "Patient.name[0].given"},

	// Primitive formats.
	{name: "bad date", body: `{"resourceType":"Patient","birthDate":"1970-13-01SECRET"}`, code: "value", expr: "Patient.birthDate"},
	{name: "29 February in a common year", body: `{"resourceType":"Patient","birthDate":"2019-02-29"}`, code: "value", expr: "Patient.birthDate"},
	{name: "31 April in a dateTime", body: with(observation, `"issued":"2020-04-31T00:00:00Z"`), code: "value", expr: "Observation.issued"},
	{name: "date with time", body: `{"resourceType":"Patient","birthDate":"1970-01-01T00:00:00ZSECRET"}`, code: "value", expr: "Patient.birthDate"},
	{name: "dateTime without seconds", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2020-01-02T03:04SECRET"}`, code: "value", expr: "Observation.effectiveDateTime"},
	{name: "dateTime time without zone", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2020-01-02T03:04:05SECRET"}`, code: "value", expr: "Observation.effectiveDateTime"},
	{name: "instant without time", body: with(observation, `"issued":"2020-01-02SECRET"`), code: "value", expr: "Observation.issued"},
	{name: "bad id", body: `{"resourceType":"Patient","id":"SECRET id"}`, code: "value", expr: "Patient.id"},
	{name: "id too long", body: `{"resourceType":"Patient","id":"SECRET` + strings.Repeat("a", 64) + `"}`, code: "value", expr: "Patient.id"},
	{name: "bad code", body: `{"resourceType":"Patient","language":"SECRET  en"}`, code: "value", expr: "Patient.language"},
	{name: "uri with space", body: with(patient, `"implicitRules":"http://SECRET example"`), code: "value", expr: "Patient.implicitRules"},
	{name: "empty string", body: `{"resourceType":"Patient","name":[{"family":""}]}`, code: "value", expr: "Patient.name[0].family"},
	{name: "blank string", body: `{"resourceType":"Patient","name":[{"family":"  "}]}`, code: "value", expr: "Patient.name[0].family"},
	{name: "decimal in integer", body: `{"resourceType":"Patient","multipleBirthInteger":1.5}`, code: "value", expr: "Patient.multipleBirthInteger"},
	{name: "integer out of range", body: `{"resourceType":"Patient","multipleBirthInteger":2147483648}`, code: "value", expr: "Patient.multipleBirthInteger"},
	{name: "positiveInt zero", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveTiming":{"repeat":{"count":0}}}`, code: "value", expr: "Observation.effectiveTiming.repeat.count"},
	{name: "unsignedInt negative", body: `{"resourceType":"Patient","photo":[{"size":-1}]}`, code: "value", expr: "Patient.photo[0].size"},
	{name: "bad base64", body: `{"resourceType":"Patient","photo":[{"data":"SECRET!!"}]}`, code: "value", expr: "Patient.photo[0].data"},
	{name: "string over 1 MiB", body: `{"resourceType":"Patient","name":[{"family":"SECRET` + strings.Repeat("x", 1<<20) + `"}]}`, code: "too-long", expr: "Patient.name[0].family"},
	{name: "narrative with a script", body: `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>SECRET</script></div>"}}`, code: "value", expr: "Patient.text.div"},
	{name: "narrative with a javascript: link", body: `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"javascript:SECRET()\">x</a></div>"}}`, code: "value", expr: "Patient.text.div"},
	{name: "narrative not a div", body: `{"resourceType":"Patient","text":{"status":"generated","div":"<p>SECRET</p>"}}`, code: "value", expr: "Patient.text.div"},

	// Cardinality and choices.
	{name: "Observation without status", body: `{"resourceType":"Observation","code":{"text":"x"}}`, code: "required", expr: "Observation.status"},
	{name: "Observation without code", body: `{"resourceType":"Observation","status":"final"}`, code: "required", expr: "Observation.code"},
	{name: "required choice missing", body: `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p1"}}`, code: "required", expr: "MedicationRequest.medication[x]"},
	{name: "two types of a choice", body: with(observation, `"valueString":"SECRET"`), code: "structure", expr: "Observation.value[x]"},
	{name: "extension without url", body: with(patient, `"extension":[{"valueString":"SECRET"}]`), code: "required", expr: "Patient.extension[0].url"},
	{name: "extension with value and extensions", body: with(patient, `"extension":[{"url":"http://example.org/x","valueString":"SECRET","extension":[{"url":"y","valueString":"z"}]}]`), code: "invariant", expr: "Patient.extension[0]"},
	{name: "SimpleQuantity with comparator", body: with(observation, `"referenceRange":[{"low":{"value":1,"comparator":"<"}}]`), code: "structure", expr: "Observation.referenceRange[0].low.comparator"},
	{name: "nested contained", body: with(observation, `"contained":[{"resourceType":"Patient","id":"c1","contained":[{"resourceType":"Patient","id":"c2"}]}]`), code: "invariant", expr: "Observation.contained[0].contained"},
	{name: "contained with versionId", body: with(observation, `"contained":[{"resourceType":"Patient","id":"c1","meta":{"versionId":"1"}}]`), code: "invariant", expr: "Observation.contained[0].meta.versionId"},

	// Required bindings.
	{name: "wrong code for Patient.gender", body: `{"resourceType":"Patient","gender":"SECRET"}`, code: "code-invalid", expr: "Patient.gender"},
	{name: "wrong case for Patient.gender", body: `{"resourceType":"Patient","gender":"Male"}`, code: "code-invalid", expr: "Patient.gender"},
	{name: "wrong code for Observation.status", body: `{"resourceType":"Observation","status":"SECRET","code":{"text":"x"}}`, code: "code-invalid", expr: "Observation.status"},
	{name: "wrong code in CodeableConcept", body: `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"SECRET"}]}}`, code: "code-invalid", expr: "Condition.clinicalStatus"},
	{name: "right code, wrong system in CodeableConcept", body: `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"clinicalStatus":{"coding":[{"system":"http://example.org/SECRET","code":"active"}]}}`, code: "code-invalid", expr: "Condition.clinicalStatus"},
	{name: "text only for a required CodeableConcept", body: `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"clinicalStatus":{"text":"SECRET"}}`, code: "code-invalid", expr: "Condition.clinicalStatus"},
	{name: "wrong code in a data type", body: `{"resourceType":"Patient","telecom":[{"system":"SECRET","value":"1"}]}`, code: "code-invalid", expr: "Patient.telecom[0].system"},

	// References.
	{name: "reference to wrong type for Observation.subject", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Practitioner/SECRET"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "absolute reference to wrong type", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"https://example.org/fhir/Practitioner/SECRET/_history/2"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "reference to unknown type", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"SECRET/1"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "reference without id", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "reference with bad id", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/SECRET id"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "reference with extra path", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1/SECRET"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "reference with bad version", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1/_history/SECRET!"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "reference with bad scheme", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"1http://SECRET/Patient/1"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "bad urn:uuid", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:SECRET"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "bad urn:oid", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:oid:SECRET"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "local reference without contained resource", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#SECRET"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "local reference to contained resource of wrong type", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Practitioner","id":"SECRET"}],"subject":{"reference":"#SECRET"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "conditional reference outside a transaction", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=SECRET"}}`, code: "invalid", expr: "Observation.subject.reference"},
	{name: "bundle reference resolving to wrong type", body: `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:0b2f4a8e-1c5d-4e6f-8a9b-0c1d2e3f4a5b","resource":{"resourceType":"Practitioner"},"request":{"method":"POST","url":"Practitioner"}},
		{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0b2f4a8e-1c5d-4e6f-8a9b-0c1d2e3f4a5b"}},"request":{"method":"POST","url":"Observation"}}]}`,
		code: "invalid", expr: "Bundle.entry[1].resource.subject.reference"},
	{name: "conditional reference to wrong type in a transaction", body: `{"resourceType":"Bundle","type":"transaction","entry":[
		{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Practitioner?identifier=SECRET"}},"request":{"method":"POST","url":"Observation"}}]}`,
		code: "invalid", expr: "Bundle.entry[0].resource.subject.reference"},
}

// deep is a Patient whose extensions nest depth levels of JSON.
func deep(depth int) string {
	n := depth / 2
	return `{"resourceType":"Patient",` + strings.Repeat(`"extension":[{"url":"x",`, n) + `"valueString":"SECRET"` + strings.Repeat(`}]`, n) + `}`
}

// TestInvalid checks that each way of breaking a resource is caught, at
// the right place, with a message that does not repeat the bad value.
func TestInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Decode([]byte(tc.body), Limits{})
			if tc.err != nil {
				var de *DecodeError
				if !errors.As(err, &de) || !errors.Is(err, tc.err) {
					t.Fatalf("Decode error = %v, want %v", err, tc.err)
				}
				if de.Expression != tc.expr {
					t.Errorf("Expression = %q, want %q", de.Expression, tc.expr)
				}
				if strings.Contains(err.Error(), marker) {
					t.Errorf("error %q echoes the value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			issues := Validate(res)
			found := false
			for _, is := range issues {
				found = found || is.Severity == "error" && is.Code == tc.code && is.Expression == tc.expr
				if strings.Contains(is.Message, marker) {
					t.Errorf("message %q echoes the value", is.Message)
				}
			}
			if !found {
				t.Errorf("no %s error at %s; issues: %+v", tc.code, tc.expr, issues)
			}
		})
	}
}

// TestValid holds the resources that exercise the less common valid forms.
func TestValid(t *testing.T) {
	cases := map[string]string{
		"patient":                           patient,
		"observation":                       observation,
		"primitive extension without value": `{"resourceType":"Patient","_gender":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`,
		"primitive array with extensions":   `{"resourceType":"Patient","name":[{"given":["Jan",null],"_given":[null,{"id":"g2","extension":[{"url":"http://example.org/x","valueString":"y"}]}]}]}`,
		"value and extension together":      with(patient, `"_birthDate":{"id":"b"}`),
		"extension on Resource.id":          with(patient, `"_id":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}`),
		"contained with local reference":    with(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"}}`, `"contained":[{"resourceType":"Patient","id":"p"}]`),
		"reference to the container":        `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Observation","id":"o","status":"final","code":{"text":"y"},"hasMember":[{"reference":"#"}]}],"hasMember":[{"reference":"#o"}]}`,
		"versioned reference":               with(observation, `"hasMember":[{"reference":"Observation/o2/_history/3"}]`),
		"absolute reference":                with(observation, `"hasMember":[{"reference":"https://example.org/fhir/Observation/o2"}]`),
		"reference by identifier":           with(observation, `"focus":[{"identifier":{"system":"http://example.org","value":"1"}}]`),
		"any target allowed":                with(observation, `"focus":[{"reference":"Practitioner/1"}]`),
		"decimal precision and exponent":    `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50000000000000000001e-3}}`,
		"escaped text":                      `{"resourceType":"Patient","name":[{"family":"\u00c5str\u00f6m \ud83d\ude00 \"quoted\" \\ /"}]}`,
		"leap second":                       with(observation, `"issued":"2016-12-31T23:59:60Z"`),
		"29 February in a leap year":        `{"resourceType":"Patient","birthDate":"2000-02-29"}`,
		"year and month only":               `{"resourceType":"Patient","birthDate":"2019-02"}`,
		"timezone +14:00":                   with(observation, `"issued":"2020-01-01T00:00:00.123456+14:00"`),
		"transaction with conditional and urn:uuid references": `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:0b2f4a8e-1c5d-4e6f-8a9b-0c1d2e3f4a5b","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0b2f4a8e-1c5d-4e6f-8a9b-0c1d2e3f4a5b"},"performer":[{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1"}]},"request":{"method":"POST","url":"Observation"}}]}`,
		"data-absent CodeableConcept with required binding": `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"clinicalStatus":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := Decode([]byte(body), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if issues := Validate(res); len(issues) > 0 {
				t.Errorf("%+v", issues)
			}
		})
	}
}

func TestValidateType(t *testing.T) {
	res, err := Decode([]byte(patient), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if issues := ValidateType("Patient", res); len(issues) != 0 {
		t.Errorf("ValidateType(Patient) = %+v", issues)
	}
	issues := ValidateType("Observation", res)
	if len(issues) != 1 || issues[0].Code != "invalid" || issues[0].Expression != "resourceType" {
		t.Errorf("ValidateType(Observation) = %+v, want one invalid issue at resourceType", issues)
	}
}

// TestMaxIssues checks that validation stops after MaxIssues and says so.
func TestMaxIssues(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient","name":[`)
	for i := range 300 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"family":1}`)
	}
	b.WriteString(`]}`)
	res, err := Decode([]byte(b.String()), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	issues := Validate(res)
	if len(issues) != MaxIssues+1 {
		t.Fatalf("%d issues, want %d", len(issues), MaxIssues+1)
	}
	if last := issues[MaxIssues]; last.Severity != "information" || last.Code != "too-costly" {
		t.Errorf("last issue = %+v, want the note that validation stopped", last)
	}
}
