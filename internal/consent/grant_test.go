package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var granted = time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)

func grantPolicy(t *testing.T, def Default, raws ...[]byte) *Policy {
	t.Helper()
	var cs []*Consent
	for _, r := range raws {
		c, err := Parse(r)
		if err != nil {
			t.Fatalf("Parse: %v\n%s", err, r)
		}
		cs = append(cs, c)
	}
	return Compile("p1", cs, def)
}

func accessTo(client, typ string, act Coding) *Access {
	a := access()
	a.Actor = Actor{ClientID: client}
	a.Action = act
	a.Resource.Type, a.Resource.Ref = typ, typ+"/x1"
	a.Resource.Security = nil
	return a
}

func TestGrantRoundTrip(t *testing.T) {
	scopes := []string{"launch/patient", "openid", "patient/Observation.rs", "patient/Condition.cruds", "user/Encounter.read", "patient/MedicationRequest.rs?status=active"}
	raw := GrantConsent("p1", "app1", scopes, granted, "grant-1")
	if !bytes.Equal(raw, GrantConsent("p1", "app1", scopes, granted, "grant-1")) {
		t.Fatal("GrantConsent is not deterministic")
	}
	c, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse(GrantConsent): %v\n%s", err, raw)
	}
	if c.ID != "grant-1" || c.Patient != "p1" || c.Status != "active" || !slices.Equal(c.GrantedScopes, scopes) {
		t.Fatalf("parsed %+v", c)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["resourceType"] != "Consent" || doc["policyRule"] == nil || doc["category"] == nil || doc["dateTime"] != "2026-05-01T09:30:00Z" {
		t.Errorf("grant consent lacks required content: %s", raw)
	}
	for _, def := range []Default{OptIn, OptOut} {
		p := grantPolicy(t, def, raw)
		cases := []struct {
			client, typ string
			act         Coding
			permit      bool
		}{
			{"app1", "Observation", ActionAccess, true},
			{"app1", "Observation", ActionCorrect, false},
			{"app1", "Observation", ActionCollect, false},
			{"app1", "Condition", ActionAccess, true},
			{"app1", "Condition", ActionCollect, true},
			{"app1", "Condition", ActionCorrect, true},
			{"app1", "Encounter", ActionAccess, true},
			{"app1", "Encounter", ActionCorrect, false},
			{"app1", "MedicationRequest", ActionAccess, true}, // the scope query narrows, not the consent
			{"app1", "Patient", ActionAccess, false},
			{"app1", "Consent", ActionCorrect, false},
			{"app2", "Observation", ActionAccess, def == OptOut}, // not this grant's business
		}
		for _, tc := range cases {
			v := decide(t, p, accessTo(tc.client, tc.typ, tc.act))
			if v.Permit != tc.permit {
				t.Errorf("default %d: %s %s %s: %+v, want permit=%v", def, tc.client, tc.act.Code, tc.typ, v, tc.permit)
			}
			if tc.client == "app1" && v.ConsentID != "grant-1" {
				t.Errorf("%s %s decided by %+v, want the grant", tc.act.Code, tc.typ, v)
			}
		}
		before := accessTo("app1", "Observation", ActionAccess)
		before.Time = granted.Add(-time.Second)
		if v := decide(t, p, before); v.ConsentID != "" {
			t.Errorf("grant applied before it was granted: %+v", v)
		}
	}
}

func TestGrantWildcardAndNone(t *testing.T) {
	p := grantPolicy(t, OptIn, GrantConsent("p1", "app1", []string{"patient/*.rs"}, granted, "g"))
	for _, typ := range []string{"Observation", "Patient", "DocumentReference"} {
		if v := decide(t, p, accessTo("app1", typ, ActionAccess)); !v.Permit {
			t.Errorf("patient/*.rs, %s: %+v", typ, v)
		}
		if v := decide(t, p, accessTo("app1", typ, ActionCorrect)); v.Permit {
			t.Errorf("patient/*.rs, update %s: %+v", typ, v)
		}
	}
	// No resource scope, or unknown ones: nothing of the patient's.
	for _, scopes := range [][]string{{"openid", "fhirUser"}, {"patient/NotAType.rs", "bogus"}, nil} {
		p := grantPolicy(t, OptOut, GrantConsent("p1", "app1", scopes, granted, "g"))
		if v := decide(t, p, accessTo("app1", "Observation", ActionAccess)); v.Permit {
			t.Errorf("%v: %+v", scopes, v)
		}
	}
}

// TestGrantOtherPatient: a grant for p2 never speaks for p1.
func TestGrantOtherPatient(t *testing.T) {
	c, err := Parse(GrantConsent("p2", "app1", []string{"patient/*.cruds"}, granted, "g"))
	if err != nil {
		t.Fatal(err)
	}
	p := Compile("p1", []*Consent{c}, OptIn)
	if v := decide(t, p, accessTo("app1", "Observation", ActionAccess)); v.Permit {
		t.Errorf("p2's grant permitted p1's data: %+v", v)
	}
}

func TestNarrow(t *testing.T) {
	raw := GrantConsent("p1", "app1", []string{"patient/Observation.rs", "patient/Condition.cruds"}, granted, "g")
	narrowed, err := Narrow(raw, psy)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Narrow(narrowed, eth, psy)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(again)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.GrantedScopes, []string{"patient/Observation.rs", "patient/Condition.cruds"}) || c.ID != "g" {
		t.Errorf("Narrow lost content: %+v", c)
	}
	for _, sub := range c.Provision.Provisions {
		if len(sub.Provisions) != 1 || len(sub.Provisions[0].SecurityLabels) != 2 || sub.Provisions[0].Type != Deny {
			t.Errorf("%s: exceptions %+v, want one deny for PSY and ETH", sub.Location, sub.Provisions)
		}
	}
	p := grantPolicy(t, OptOut, again)
	for _, tc := range []struct {
		labels []Coding
		typ    string
		act    Coding
		permit bool
	}{
		{nil, "Observation", ActionAccess, true},
		{[]Coding{psy}, "Observation", ActionAccess, false},
		{[]Coding{eth, confR}, "Observation", ActionAccess, false},
		{[]Coding{confR}, "Observation", ActionAccess, true},
		{[]Coding{psy}, "Condition", ActionCorrect, false},
		{nil, "Condition", ActionCorrect, true},
	} {
		a := accessTo("app1", tc.typ, tc.act)
		a.Resource.Security = tc.labels
		if v := decide(t, p, a); v.Permit != tc.permit {
			t.Errorf("%v %s %s: %+v", tc.labels, tc.act.Code, tc.typ, v)
		}
	}
	// Under a permit root the deny goes directly below it.
	permitRoot := consentJSON("c1", "active", "p1", `{"type":"permit","actor":[`+clientActor("app1")+`]}`)
	out, err := Narrow([]byte(permitRoot), psy)
	if err != nil {
		t.Fatal(err)
	}
	if v := decide(t, grantPolicy(t, OptIn, out), access()); v.Permit || v.Rule != "Consent.provision.provision[0]" {
		t.Errorf("narrowed permit root: %+v", v)
	}
}

func TestNarrowRefuses(t *testing.T) {
	raw := GrantConsent("p1", "app1", []string{"patient/Observation.rs"}, granted, "g")
	cases := map[string]struct {
		raw   []byte
		deny  []Coding
		isErr error
	}{
		"no label":           {raw, nil, ErrInvalid},
		"label without code": {raw, []Coding{{System: SystemActCode}}, ErrInvalid},
		"malformed consent":  {[]byte(`{"resourceType":"Consent"`), []Coding{psy}, ErrInvalid},
		"research consent":   {[]byte(strings.Replace(string(raw), "patient-privacy", "research", 1)), []Coding{psy}, ErrNotPrivacy},
		"permits nothing":    {GrantConsent("p1", "app1", []string{"openid"}, granted, "g"), []Coding{psy}, ErrInvalid},
	}
	for name, tc := range cases {
		if out, err := Narrow(tc.raw, tc.deny...); out != nil || !errors.Is(err, tc.isErr) {
			t.Errorf("%s: %v, want %v", name, err, tc.isErr)
		}
	}
}
