package consent

import (
	"fmt"
	"testing"
	"time"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const roleJSON = `"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]}`

func clientActor(id string) string {
	return `{` + roleJSON + `,"reference":{"identifier":{"system":"urn:warden:oauth-client","value":"` + id + `"}}}`
}

func refActor(ref string) string {
	return `{` + roleJSON + `,"reference":{"reference":"` + ref + `","display":"General Hospital"}}`
}

var (
	psy   = Coding{SystemActCode, "PSY"}
	eth   = Coding{SystemActCode, "ETH"}
	confR = Coding{SystemConfidentiality, "R"}
)

// access is app1, used by Dr 1 of Organization o1, reading a PSY-labelled,
// restricted Observation of 2025-03-01.
func access() *Access {
	return &Access{
		Actor:  Actor{ClientID: "app1", Organization: "Organization/o1", FHIRUser: "Practitioner/dr1"},
		Action: ActionAccess,
		Resource: Resource{
			Type: "Observation", ID: "obs1", Ref: "Observation/obs1",
			Profiles:     []string{"http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"},
			Security:     []Coding{psy, confR},
			Codes:        []Coding{{"http://loinc.org", "1234-5"}},
			Date:         time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
			References:   []string{"Patient/p1", "Encounter/e1"},
			ReferencedBy: []string{"DiagnosticReport/dr1"},
			Authors:      []string{"Practitioner/dr1"},
		},
		Time: now,
	}
}

func policyOf(t testing.TB, def Default, raws ...string) *Policy {
	t.Helper()
	var cs []*Consent
	for _, r := range raws {
		cs = append(cs, mustParse(t, r))
	}
	return Compile("p1", cs, def)
}

// linear is p with its index switched off: every consent evaluated.
func linear(p *Policy) *Policy {
	q := *p
	q.byClient, q.byRef, q.byClass = map[string][]int{}, map[string][]int{}, map[string][]int{}
	q.general = nil
	for i := range p.consents {
		q.general = append(q.general, i)
	}
	return &q
}

func decide(t testing.TB, p *Policy, a *Access) Verdict {
	t.Helper()
	v := p.Decide(a)
	if w := linear(p).Decide(a); w != v {
		t.Fatalf("indexed verdict %+v differs from linear %+v", v, w)
	}
	return v
}

// TestProvisionElements: each constrained element, matching and not. A
// matching permit root permits under opt-in; a matching deny root denies
// under opt-out; a non-matching root says nothing (the default decides).
func TestProvisionElements(t *testing.T) {
	cases := []struct {
		name  string
		frag  string
		mut   func(*Access)
		match bool
	}{
		{"period holds", `"period":{"start":"2026-01-01","end":"2026-06-01"}`, nil, true},
		{"period instant", `"period":{"start":"2026-06-01T11:00:00Z","end":"2026-06-01T14:00:00+02:00"}`, nil, true},
		{"period not started", `"period":{"start":"2026-06-02"}`, nil, false},
		{"period ended", `"period":{"end":"2026-05-31"}`, nil, false},
		{"period ended at an instant", `"period":{"end":"2026-06-01T11:59:59Z"}`, nil, false},

		{"actor client", `"actor":[` + clientActor("app1") + `]`, nil, true},
		{"actor organization", `"actor":[` + clientActor("app9") + `,` + refActor("Organization/o1") + `]`, nil, true},
		{"actor user", `"actor":[` + refActor("Practitioner/dr1") + `]`, nil, true},
		{"actor other client", `"actor":[` + clientActor("app2") + `]`, nil, false},
		{"actor other organization", `"actor":[` + refActor("Organization/o2") + `]`, nil, false},
		{"actor client id under another identifier system", `"actor":[{` + roleJSON + `,"reference":{"identifier":{"system":"urn:other","value":"app1"}}}]`, nil, false},
		{"actor reference equal to the client id", `"actor":[` + refActor("Device/app1") + `]`, func(a *Access) { a.Actor.ClientID = "Device/app1" }, false},
		{"actor by display only (spoofed organization)", `"actor":[` + refActor("Organization/o1") + `]`, func(a *Access) { a.Actor.Organization = "General Hospital" }, false},
		{"actor backend client has no user", `"actor":[` + refActor("Practitioner/dr1") + `]`, func(a *Access) { a.Actor.FHIRUser = "" }, false},

		{"purpose default TREAT", `"purpose":[{"system":"` + SystemActReason + `","code":"TREAT"}]`, nil, true},
		{"purpose stated", `"purpose":[{"system":"` + SystemActReason + `","code":"ETREAT"}]`, func(a *Access) { a.Purpose = []Coding{{SystemActReason, "ETREAT"}} }, true},
		{"purpose other", `"purpose":[{"system":"` + SystemActReason + `","code":"HPAYMT"}]`, nil, false},
		{"purpose stated replaces TREAT", `"purpose":[{"system":"` + SystemActReason + `","code":"TREAT"}]`, func(a *Access) { a.Purpose = []Coding{{SystemActReason, "HPAYMT"}} }, false},

		{"action access", `"action":[{"coding":[{"system":"` + SystemConsentAction + `","code":"access"}]}]`, nil, true},
		{"action disclose covers access", `"action":[{"coding":[{"system":"` + SystemConsentAction + `","code":"disclose"}]}]`, nil, true},
		{"action correct", `"action":[{"coding":[{"system":"` + SystemConsentAction + `","code":"correct"}]}]`, func(a *Access) { a.Action = ActionCorrect }, true},
		{"action correct vs access", `"action":[{"coding":[{"system":"` + SystemConsentAction + `","code":"correct"}]}]`, nil, false},
		{"action disclose vs collect", `"action":[{"coding":[{"system":"` + SystemConsentAction + `","code":"disclose"}]}]`, func(a *Access) { a.Action = ActionCollect }, false},

		{"label sensitivity", `"securityLabel":[{"system":"` + SystemActCode + `","code":"ETH"},{"system":"` + SystemActCode + `","code":"PSY"}]`, nil, true},
		{"label confidentiality high-water mark", `"securityLabel":[{"system":"` + SystemConfidentiality + `","code":"V"}]`, nil, true},
		{"label unlabelled counts as N", `"securityLabel":[{"system":"` + SystemConfidentiality + `","code":"N"}]`, func(a *Access) { a.Resource.Security = nil }, true},
		{"label confidentiality below", `"securityLabel":[{"system":"` + SystemConfidentiality + `","code":"N"}]`, nil, false},
		{"label other sensitivity", `"securityLabel":[{"system":"` + SystemActCode + `","code":"ETH"}]`, nil, false},
		{"label code under another system", `"securityLabel":[{"system":"urn:other","code":"PSY"}]`, nil, false},

		{"class resource type", `"class":[{"system":"` + SystemResourceTypes + `","code":"Condition"},{"system":"` + SystemResourceTypes + `","code":"Observation"}]`, nil, true},
		{"class profile", `"class":[{"system":"http://hl7.org/fhir/StructureDefinition","code":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"}]`, nil, true},
		{"class other type", `"class":[{"system":"` + SystemResourceTypes + `","code":"Condition"}]`, nil, false},
		{"class type name under another system", `"class":[{"system":"urn:other","code":"Observation"}]`, nil, false},

		{"code", `"code":[{"coding":[{"system":"http://snomed.info/sct","code":"1"},{"system":"http://loinc.org","code":"1234-5"}]}]`, nil, true},
		{"code other", `"code":[{"coding":[{"system":"http://loinc.org","code":"9999-9"}]}]`, nil, false},
		{"code other system", `"code":[{"coding":[{"system":"http://snomed.info/sct","code":"1234-5"}]}]`, nil, false},

		{"dataPeriod holds", `"dataPeriod":{"start":"2025","end":"2025"}`, nil, true},
		{"dataPeriod before", `"dataPeriod":{"end":"2025-02-28"}`, nil, false},
		{"dataPeriod after", `"dataPeriod":{"start":"2025-03-02"}`, nil, false},

		{"data instance", `"data":[{"meaning":"instance","reference":{"reference":"Observation/obs1"}}]`, nil, true},
		{"data instance other", `"data":[{"meaning":"instance","reference":{"reference":"Observation/obs2"}}]`, nil, false},
		{"data related: what it refers to", `"data":[{"meaning":"related","reference":{"reference":"DiagnosticReport/dr1"}}]`, nil, true},
		{"data related: not what refers to it", `"data":[{"meaning":"related","reference":{"reference":"Encounter/e1"}}]`, nil, false},
		{"data dependents: what refers to it", `"data":[{"meaning":"dependents","reference":{"reference":"Encounter/e1"}}]`, nil, true},
		{"data dependents other", `"data":[{"meaning":"dependents","reference":{"reference":"Encounter/e2"}}]`, nil, false},
		{"data authoredby", `"data":[{"meaning":"authoredby","reference":{"reference":"Practitioner/dr1"}}]`, nil, true},
		{"data authoredby other", `"data":[{"meaning":"authoredby","reference":{"reference":"Practitioner/dr2"}}]`, nil, false},

		{"all elements together", `"period":{"start":"2026"},"actor":[` + clientActor("app1") + `],"action":[{"coding":[{"system":"` + SystemConsentAction + `","code":"access"}]}],"securityLabel":[{"system":"` + SystemActCode + `","code":"PSY"}],"class":[{"system":"` + SystemResourceTypes + `","code":"Observation"}],"dataPeriod":{"start":"2025"}`, nil, true},
		{"all elements but one", `"period":{"start":"2026"},"actor":[` + clientActor("app1") + `],"action":[{"coding":[{"system":"` + SystemConsentAction + `","code":"access"}]}],"securityLabel":[{"system":"` + SystemActCode + `","code":"ETH"}],"class":[{"system":"` + SystemResourceTypes + `","code":"Observation"}]`, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := access()
			if tc.mut != nil {
				tc.mut(a)
			}
			for _, typ := range []string{"permit", "deny"} {
				def := OptIn
				if typ == "deny" {
					def = OptOut
				}
				p := policyOf(t, def, consentJSON("c1", "active", "p1", `{"type":"`+typ+`",`+tc.frag+`}`))
				v := decide(t, p, a)
				wantPermit := def == OptOut // the default
				if tc.match {
					wantPermit = typ == "permit"
				}
				if v.Permit != wantPermit {
					t.Errorf("%s root: verdict %+v, want permit=%v", typ, v, wantPermit)
				}
				if tc.match && (v.ConsentID != "c1" || v.Rule != "Consent.provision") {
					t.Errorf("%s root: verdict %+v, want decided by c1's root", typ, v)
				}
				if !tc.match && v.ConsentID != "" {
					t.Errorf("%s root: verdict %+v, want the default", typ, v)
				}
			}
		})
	}
}

// TestUnknownDataDate: an access whose resource date is unknown is inside
// a deny's dataPeriod and outside a permit's: the unknown never widens.
func TestUnknownDataDate(t *testing.T) {
	a := access()
	a.Resource.Date = time.Time{}
	root := `{"type":"permit","dataPeriod":{"start":"2020"},"provision":[{"type":"deny","dataPeriod":{"start":"2024"}}]}`
	if v := decide(t, policyOf(t, OptOut, consentJSON("c1", "active", "p1", `{"type":"permit","provision":[{"type":"deny","dataPeriod":{"start":"2024"}}]}`)), a); v.Permit {
		t.Errorf("deny with dataPeriod skipped for an unknown date: %+v", v)
	}
	if v := decide(t, policyOf(t, OptIn, consentJSON("c1", "active", "p1", root)), a); v.Permit {
		t.Errorf("permit with dataPeriod applied to an unknown date: %+v", v)
	}
}

// TestNested: root deny; exception permit for app1; within it, deny for
// PSY; within that, permit for emergency treatment (ETREAT).
func TestNested(t *testing.T) {
	p := policyOf(t, OptOut, consentJSON("c1", "active", "p1", `{"type":"deny","provision":[
	  {"type":"permit","actor":[`+clientActor("app1")+`],"provision":[
	    {"type":"deny","securityLabel":[{"system":"`+SystemActCode+`","code":"PSY"}],"provision":[
	      {"type":"permit","purpose":[{"system":"`+SystemActReason+`","code":"ETREAT"}]}]}]},
	  {"type":"permit","actor":[`+clientActor("app3")+`],"class":[{"system":"`+SystemResourceTypes+`","code":"Condition"}]}]}`))
	cases := []struct {
		name   string
		mut    func(*Access)
		permit bool
		rule   string
	}{
		{"other client: root deny", func(a *Access) { a.Actor.ClientID = "app2" }, false, "Consent.provision"},
		{"app1, not PSY: permit", func(a *Access) { a.Resource.Security = []Coding{eth} }, true, "Consent.provision.provision[0]"},
		{"app1, PSY: deny", nil, false, "Consent.provision.provision[0].provision[0]"},
		{"app1, PSY, ETREAT: permit", func(a *Access) { a.Purpose = []Coding{{SystemActReason, "ETREAT"}} }, true, "Consent.provision.provision[0].provision[0].provision[0]"},
		{"app3, Observation: root deny", func(a *Access) {
			a.Purpose = []Coding{{SystemActReason, "ETREAT"}}
			a.Actor.ClientID = "app3"
		}, false, "Consent.provision"},
		{"app3, Condition: permit", func(a *Access) { a.Actor.ClientID = "app3"; a.Resource.Type = "Condition" }, true, "Consent.provision.provision[1]"},
	}
	for _, tc := range cases {
		a := access()
		if tc.mut != nil {
			tc.mut(a)
		}
		v := decide(t, p, a)
		if v.Permit != tc.permit || v.Rule != tc.rule || v.ConsentID != "c1" {
			t.Errorf("%s: %+v, want permit=%v at %s", tc.name, v, tc.permit, tc.rule)
		}
	}
}

// TestSiblingsDenyWins: two exceptions both apply; the deny decides.
func TestSiblingsDenyWins(t *testing.T) {
	for _, order := range []string{
		`[{"type":"permit","class":[{"system":"` + SystemResourceTypes + `","code":"Observation"}]},{"type":"deny","securityLabel":[{"system":"` + SystemActCode + `","code":"PSY"}]}]`,
		`[{"type":"deny","securityLabel":[{"system":"` + SystemActCode + `","code":"PSY"}]},{"type":"permit","class":[{"system":"` + SystemResourceTypes + `","code":"Observation"}]}]`,
	} {
		p := policyOf(t, OptOut, consentJSON("c1", "active", "p1", `{"type":"deny","provision":`+order+`}`))
		if v := decide(t, p, access()); v.Permit {
			t.Errorf("%s: %+v", order, v)
		}
		a := access()
		a.Resource.Security = nil
		if v := decide(t, p, a); !v.Permit {
			t.Errorf("%s without PSY: %+v", order, v)
		}
	}
}

func TestDenyWinsAcrossConsents(t *testing.T) {
	permitAll := consentJSON("all", "active", "p1", `{"type":"permit"}`)
	denyPSY := consentJSON("nopsy", "active", "p1", `{"type":"deny","securityLabel":[{"system":"`+SystemActCode+`","code":"PSY"}]}`)
	denyApp := consentJSON("noapp", "active", "p1", `{"type":"deny","actor":[`+clientActor("app1")+`]}`)
	for _, p := range []*Policy{policyOf(t, OptIn, permitAll, denyPSY, denyApp), policyOf(t, OptIn, denyApp, denyPSY, permitAll)} {
		v := decide(t, p, access())
		if v.Permit || (v.ConsentID != "nopsy" && v.ConsentID != "noapp") {
			t.Errorf("PSY for app1: %+v", v)
		}
		a := access()
		a.Actor.ClientID = "app2"
		if v := decide(t, p, a); v.Permit || v.ConsentID != "nopsy" {
			t.Errorf("PSY for app2: %+v", v)
		}
		a.Resource.Security = nil
		if v := decide(t, p, a); !v.Permit || v.ConsentID != "all" {
			t.Errorf("unlabelled for app2: %+v", v)
		}
	}
	// Among several denies the earliest consent is named, whatever the index.
	p := policyOf(t, OptIn, denyApp, denyPSY)
	if v := decide(t, p, access()); v.ConsentID != "noapp" {
		t.Errorf("deny named %q, want the first, noapp", v.ConsentID)
	}
}

func TestDefaults(t *testing.T) {
	if v := decide(t, Compile("p1", nil, OptIn), access()); v.Permit || v.Rule != "default opt-in" {
		t.Errorf("opt-in without consents: %+v", v)
	}
	if v := decide(t, Compile("p1", nil, OptOut), access()); !v.Permit || v.Rule != "default opt-out" {
		t.Errorf("opt-out without consents: %+v", v)
	}
	// A consent on something else leaves the default in place.
	other := consentJSON("c1", "active", "p1", `{"type":"deny","class":[{"system":"`+SystemResourceTypes+`","code":"Condition"}]}`)
	if v := decide(t, policyOf(t, OptOut, other), access()); !v.Permit {
		t.Errorf("opt-out, unrelated deny: %+v", v)
	}
}

// TestIgnoredConsents: the ways a deny could be made not to count, or a
// permit to count, that must fail: each consent is ignored.
func TestIgnoredConsents(t *testing.T) {
	cases := map[string]string{
		"inactive":         consentJSON("c1", "inactive", "p1", `{"type":"%s"}`),
		"draft":            consentJSON("c1", "draft", "p1", `{"type":"%s"}`),
		"proposed":         consentJSON("c1", "proposed", "p1", `{"type":"%s"}`),
		"rejected":         consentJSON("c1", "rejected", "p1", `{"type":"%s"}`),
		"entered-in-error": consentJSON("c1", "entered-in-error", "p1", `{"type":"%s"}`),
		"expired":          consentJSON("c1", "active", "p1", `{"type":"%s","period":{"start":"2020","end":"2026-05-31T23:59:59Z"}}`),
		"future":           consentJSON("c1", "active", "p1", `{"type":"%s","period":{"start":"2026-06-01T12:00:01Z"}}`),
		"another patient":  consentJSON("c1", "active", "p2", `{"type":"%s"}`),
	}
	for name, tmpl := range cases {
		if v := decide(t, policyOf(t, OptOut, fmt.Sprintf(tmpl, "deny")), access()); !v.Permit || v.ConsentID != "" {
			t.Errorf("%s deny counted: %+v", name, v)
		}
		if v := decide(t, policyOf(t, OptIn, fmt.Sprintf(tmpl, "permit")), access()); v.Permit || v.ConsentID != "" {
			t.Errorf("%s permit counted: %+v", name, v)
		}
	}
}

func TestDecideRefusesIncompleteInput(t *testing.T) {
	p := policyOf(t, OptOut)
	a := access()
	a.Time = time.Time{}
	for name, v := range map[string]Verdict{
		"no time":   p.Decide(a),
		"no access": p.Decide(nil),
		"no policy": (*Policy)(nil).Decide(access()),
	} {
		if v.Permit {
			t.Errorf("%s: permitted", name)
		}
	}
}

func TestActionFor(t *testing.T) {
	for in, want := range map[string]Coding{
		"read": ActionAccess, "vread": ActionAccess, "search-type": ActionAccess, "history-instance": ActionAccess,
		"create": ActionCollect, "update": ActionCorrect, "patch": ActionCorrect, "delete": ActionCorrect,
	} {
		if got, ok := ActionFor(in); !ok || got != want {
			t.Errorf("%s: %v %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "operation", "transaction", "READ"} {
		if _, ok := ActionFor(in); ok {
			t.Errorf("%q mapped", in)
		}
	}
}

func TestMayWithhold(t *testing.T) {
	app1 := Actor{ClientID: "app1"}
	app2 := Actor{ClientID: "app2"}
	grantApp1 := consentJSON("g", "active", "p1", `{"type":"permit","actor":[`+clientActor("app1")+`]}`)
	denyApp1PSY := consentJSON("d", "active", "p1", `{"type":"deny","actor":[`+clientActor("app1")+`],"securityLabel":[{"system":"`+SystemActCode+`","code":"PSY"}]}`)
	cases := []struct {
		name  string
		p     *Policy
		actor Actor
		want  bool
	}{
		{"opt-out, no consents", policyOf(t, OptOut), app1, false},
		{"opt-in, no consents", policyOf(t, OptIn), app1, true},
		{"opt-in, unconditional permit for the actor", policyOf(t, OptIn, grantApp1), app1, false},
		{"opt-in, permit for another actor", policyOf(t, OptIn, grantApp1), app2, true},
		{"opt-out, a deny for the actor", policyOf(t, OptOut, denyApp1PSY), app1, true},
		{"opt-out, a deny for another actor", policyOf(t, OptOut, denyApp1PSY), app2, false},
		{"opt-in, permit and a deny", policyOf(t, OptIn, grantApp1, denyApp1PSY), app1, true},
	}
	for _, tc := range cases {
		if got := tc.p.MayWithhold(tc.actor, now); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}
