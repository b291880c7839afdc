package consent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// consentJSON is a patient-privacy Consent for Patient/{patient} with the
// given status and provision (a JSON object, or "" for none).
func consentJSON(id, status, patient, provision string) string {
	s := fmt.Sprintf(`{"resourceType":"Consent","id":%q,"status":%q,
	"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	"patient":{"reference":"Patient/%s","display":"Jane Secret"},
	"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]}`,
		id, status, patient)
	if provision != "" {
		s += `,"provision":` + provision
	}
	return s + "}"
}

func mustParse(t testing.TB, raw string) *Consent {
	t.Helper()
	c, err := Parse([]byte(raw))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, raw)
	}
	return c
}

// TestParseSpecExamples parses the R4 Consent examples: all but pkb are
// enforceable; pkb's nested provisions have no type, which R4 requires
// (Consent.provision.type: "required in all nested rules").
func TestParseSpecExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzParse/spec-*")
	if err != nil || len(files) < 4 {
		t.Fatalf("spec seeds: %v %v", files, err)
	}
	for _, f := range files {
		raw := fuzzSeed(t, f)
		c, err := Parse(raw)
		if strings.Contains(f, "pkb") {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Location != "Consent.provision.provision[0].type" {
				t.Errorf("%s: err = %v, want the nested type refused", f, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.Status != "active" || c.Patient == "" || c.Provision == nil || c.Provision.Type == 0 {
			t.Errorf("%s: parsed %+v", f, c)
		}
	}
}

func TestParseFields(t *testing.T) {
	c := mustParse(t, consentJSON("c1", "active", "p1", `{"type":"deny",
	  "period":{"start":"2020-01-01","end":"2020-12"},
	  "actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},
	            "reference":{"identifier":{"system":"urn:warden:oauth-client","value":"app1"}}}],
	  "provision":[{"type":"permit","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"PSY"}],
	     "data":[{"meaning":"related","reference":{"reference":"Encounter/e1"}}]}]}`))
	if c.ID != "c1" || c.Patient != "p1" || c.Provision.Type != Deny {
		t.Fatalf("parsed %+v", c)
	}
	p := c.Provision
	if got := p.Period.End.Format("2006-01-02"); got != "2021-01-01" {
		t.Errorf("period end %s: an end month covers the whole month", got)
	}
	if p.Actors[0].Reference != (Ref{System: SystemClient, Value: "app1"}) {
		t.Errorf("actor %+v", p.Actors[0])
	}
	ch := p.Provisions[0]
	if ch.Location != "Consent.provision.provision[0]" || ch.Type != Permit || ch.Data[0] != (DataRule{"related", "Encounter/e1"}) {
		t.Errorf("child %+v", ch)
	}
}

func TestParseNotPrivacy(t *testing.T) {
	raw := strings.Replace(consentJSON("c1", "active", "p1", `{"type":"permit"}`), "patient-privacy", "research", 1)
	if _, err := Parse([]byte(raw)); !errors.Is(err, ErrNotPrivacy) {
		t.Fatalf("err = %v, want ErrNotPrivacy", err)
	}
}

// TestParseRefuses: each way a Consent can fail to be enforceable, with
// the location the error must name.
func TestParseRefuses(t *testing.T) {
	role := `"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]}`
	nest := func(depth int) string {
		s := `{"type":"deny"}`
		for range depth - 1 {
			s = `{"type":"permit","provision":[` + s + `]}`
		}
		return s
	}
	wide := `{"type":"permit","provision":[` + strings.Repeat(`{"type":"deny"},`, MaxListLength) + `{"type":"deny"}]}`
	cases := []struct {
		name, raw, loc string
	}{
		{"not JSON", `{"resourceType":`, "Consent"},
		{"not a Consent", `{"resourceType":"Patient","id":"p1"}`, "Consent.resourceType"},
		{"bad status", consentJSON("c1", "enabled", "p1", `{"type":"permit"}`), "Consent.status"},
		{"no scope", `{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/p1"}}`, "Consent.scope"},
		{"patient not a Patient", strings.Replace(consentJSON("c1", "active", "p1", `{"type":"permit"}`), `"Patient/p1"`, `"Group/p1"`, 1), "Consent.patient"},
		{"patient absolute URL", strings.Replace(consentJSON("c1", "active", "p1", `{"type":"permit"}`), `"Patient/p1"`, `"http://evil/Patient/p1"`, 1), "Consent.patient"},
		{"bad id", consentJSON("bad id!", "active", "p1", `{"type":"permit"}`), "Consent.id"},
		{"modifierExtension", strings.Replace(consentJSON("c1", "active", "p1", `{"type":"permit"}`), `"status"`, `"modifierExtension":[{"url":"x"}],"status"`, 1), "Consent.modifierExtension"},
		{"implicitRules", strings.Replace(consentJSON("c1", "active", "p1", `{"type":"permit"}`), `"status"`, `"implicitRules":"http://x","status"`, 1), "Consent.implicitRules"},
		{"provision modifierExtension", consentJSON("c1", "active", "p1", `{"type":"permit","modifierExtension":[{"url":"x"}]}`), "Consent.provision.modifierExtension"},
		{"type unknown", consentJSON("c1", "active", "p1", `{"type":"allow"}`), "Consent.provision.type"},
		{"nested without type", consentJSON("c1", "active", "p1", `{"type":"deny","provision":[{"class":[{"system":"http://hl7.org/fhir/resource-types","code":"Observation"}]}]}`), "Consent.provision.provision[0].type"},
		{"unknown element", consentJSON("c1", "active", "p1", `{"type":"deny","actors":[]}`), "Consent.provision"},
		{"provision not object", consentJSON("c1", "active", "p1", `[1]`), "Consent.provision"},
		{"period reversed", consentJSON("c1", "active", "p1", `{"type":"permit","provision":[{"type":"deny","period":{"start":"2021-01-01","end":"2020-01-01"}}]}`), "Consent.provision.provision[0].period"},
		{"period bad date", consentJSON("c1", "active", "p1", `{"type":"permit","period":{"start":"2021-02-30"}}`), "Consent.provision.period.start"},
		{"period no zone", consentJSON("c1", "active", "p1", `{"type":"permit","period":{"start":"2021-02-03T10:00:00"}}`), "Consent.provision.period.start"},
		{"period empty", consentJSON("c1", "active", "p1", `{"type":"permit","period":{}}`), "Consent.provision.period"},
		{"dataPeriod not a Period", consentJSON("c1", "active", "p1", `{"type":"permit","dataPeriod":"2020"}`), "Consent.provision.dataPeriod"},
		{"actor without role", consentJSON("c1", "active", "p1", `{"type":"permit","actor":[{"reference":{"reference":"Organization/o1"}}]}`), "Consent.provision.actor[0].role"},
		{"actor without reference", consentJSON("c1", "active", "p1", `{"type":"permit","actor":[{`+role+`}]}`), "Consent.provision.actor[0].reference"},
		{"actor display only", consentJSON("c1", "active", "p1", `{"type":"permit","actor":[{`+role+`,"reference":{"display":"Dr Who"}}]}`), "Consent.provision.actor[0].reference"},
		{"actor reference and identifier", consentJSON("c1", "active", "p1", `{"type":"permit","actor":[{`+role+`,"reference":{"reference":"Organization/o1","identifier":{"system":"urn:warden:oauth-client","value":"a"}}}]}`), "Consent.provision.actor[0].reference"},
		{"actor absolute reference", consentJSON("c1", "active", "p1", `{"type":"permit","actor":[{`+role+`,"reference":{"reference":"https://x/Organization/o1"}}]}`), "Consent.provision.actor[0].reference.reference"},
		{"purpose without system", consentJSON("c1", "active", "p1", `{"type":"permit","purpose":[{"code":"TREAT"}]}`), "Consent.provision.purpose[0]"},
		{"label without code", consentJSON("c1", "active", "p1", `{"type":"permit","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode"}]}`), "Consent.provision.securityLabel[0]"},
		{"class not array", consentJSON("c1", "active", "p1", `{"type":"permit","class":{"system":"s","code":"c"}}`), "Consent.provision.class"},
		{"action text only", consentJSON("c1", "active", "p1", `{"type":"permit","action":[{"text":"read"}]}`), "Consent.provision.action[0]"},
		{"code coding without system", consentJSON("c1", "active", "p1", `{"type":"permit","code":[{"coding":[{"code":"x"}]}]}`), "Consent.provision.code[0].coding[0]"},
		{"data meaning unknown", consentJSON("c1", "active", "p1", `{"type":"permit","data":[{"meaning":"all","reference":{"reference":"Observation/o1"}}]}`), "Consent.provision.data[0].meaning"},
		{"data without reference", consentJSON("c1", "active", "p1", `{"type":"permit","data":[{"meaning":"instance"}]}`), "Consent.provision.data[0].reference"},
		{"too deep", consentJSON("c1", "active", "p1", nest(MaxDepth+1)), "Consent.provision" + strings.Repeat(".provision[0]", MaxDepth)},
		{"too wide", consentJSON("c1", "active", "p1", wide), "Consent.provision.provision"},
		{"too large", consentJSON("c1", "active", "p1", `{"type":"permit","id":"`+strings.Repeat("x", MaxBytes)+`"}`), "Consent"},
		{"duplicate patient", strings.Replace(consentJSON("c1", "active", "p1", `{"type":"permit"}`), `"status"`, `"patient":{"reference":"Patient/p2"},"status"`, 1), "Consent"},
		{"patient in another case", strings.Replace(consentJSON("c1", "active", "p1", `{"type":"permit"}`), `"status"`, `"Patient":{"reference":"Patient/p2"},"status"`, 1), "Consent"},
		{"duplicate type", consentJSON("c1", "active", "p1", `{"type":"deny","type":"permit"}`), "Consent"},
		{"coding system in two cases", consentJSON("c1", "active", "p1", `{"type":"deny","purpose":[{"system":"`+SystemActReason+`","SYSTEM":"x","code":"TREAT"}]}`), "Consent"},
		{"no type, no policy rule", strings.Replace(consentJSON("c1", "active", "p1", `{"period":{"start":"2020"}}`), "OPTIN", "OTHER", 1), "Consent.provision.type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.raw))
			if c != nil {
				t.Fatalf("parsed %+v", c)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if ve.Location != tc.loc {
				t.Errorf("location %q, want %q (%s)", ve.Location, tc.loc, ve.Message)
			}
			if strings.Contains(err.Error(), "Jane") || strings.Contains(err.Error(), "Dr Who") {
				t.Errorf("error echoes resource content: %v", err)
			}
		})
	}
	t.Run("deepest allowed nesting parses", func(t *testing.T) {
		mustParse(t, consentJSON("c1", "active", "p1", nest(MaxDepth)))
	})
}

func TestParseDateTime(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi string
	}{
		{"2016", "2016-01-01T00:00:00Z", "2017-01-01T00:00:00Z"},
		{"2016-02", "2016-02-01T00:00:00Z", "2016-03-01T00:00:00Z"},
		{"2016-02-29", "2016-02-29T00:00:00Z", "2016-03-01T00:00:00Z"},
		{"2016-06-23T17:02:33+10:00", "2016-06-23T07:02:33Z", "2016-06-23T07:02:33.000000001Z"},
		{"2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999999Z", "2017-01-01T00:00:00Z"},
	} {
		lo, hi, ok := parseDateTime(tc.in)
		if !ok || lo.UTC().Format("2006-01-02T15:04:05.999999999Z07:00") != tc.lo || hi.UTC().Format("2006-01-02T15:04:05.999999999Z07:00") != tc.hi {
			t.Errorf("%s: [%v, %v) %v", tc.in, lo, hi, ok)
		}
	}
	for _, bad := range []string{"", "16", "2016-13", "2015-02-29", "2016-01-01T10:00Z", "2016-01-01T10:00:00", "2016-01-01T10:00:00+15:00", "2016-01-01 10:00:00Z", "0000"} {
		if _, _, ok := parseDateTime(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func fuzzSeed(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// go test fuzz v1 / []byte("...")
	lines := strings.SplitN(string(b), "\n", 2)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz seed file", path)
	}
	v := strings.TrimSpace(lines[1])
	v = strings.TrimSuffix(strings.TrimPrefix(v, "[]byte("), ")")
	s, err := strconv.Unquote(v)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
