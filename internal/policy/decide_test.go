package policy

import (
	"net/url"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/smart"
)

func principalFor(t *testing.T, fhirUser, patient, scope string) *Principal {
	t.Helper()
	sc, unknown := smart.ParseScopes(scope)
	if len(unknown) > 0 {
		t.Fatalf("scope %q: unknown %v", scope, unknown)
	}
	p := &Principal{ClientID: "app", Subject: "u1", FHIRUser: fhirUser, Patient: patient, Scope: scope, Scopes: sc, AuthTime: time.Now(), ACR: ACRPassword}
	if fhirUser == "" {
		p.Subject = p.ClientID
	}
	return p
}

func TestDecideRefusals(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name    string
		p       *Principal
		req     Request
		effect  Effect
		missing string
	}{
		{"no principal", nil, Request{Action: ActRead, Type: "Patient"}, Deny, ""},
		{"no scope for the type", principalFor(t, "Patient/p1", "p1", "patient/Patient.rs"), Request{Action: ActRead, Type: "Observation"}, Deny, "patient/Observation.r"},
		{"read scope does not search", principalFor(t, "Patient/p1", "p1", "patient/Observation.r"), Request{Action: ActSearch, Type: "Observation"}, Deny, "patient/Observation.s"},
		{"c means create only", principalFor(t, "Patient/p1", "p1", "patient/Observation.c"), Request{Action: ActUpdate, Type: "Observation"}, Deny, "patient/Observation.u"},
		{"v1 read does not write", principalFor(t, "Patient/p1", "p1", "patient/*.read"), Request{Action: ActDelete, Type: "Observation"}, Deny, "patient/Observation.d"},
		{"patient scope without patient context", principalFor(t, "", "", "patient/*.rs"), Request{Action: ActRead, Type: "Observation"}, Deny, "system/Observation.r"},
		{"system scope on a user token", principalFor(t, "Patient/p1", "p1", "system/*.rs"), Request{Action: ActRead, Type: "Observation"}, Deny, "patient/Observation.r"},
		{"user scope of a practitioner", principalFor(t, "Practitioner/d1", "", "user/*.rs"), Request{Action: ActRead, Type: "Observation"}, Deny, "user/Observation.r"},
		{"system-level action with a concrete scope", principalFor(t, "", "", "system/Observation.rs"), Request{Action: ActHistorySystem, Type: "*"}, Deny, "system/*.s"},
		{"unknown action", principalFor(t, "", "", "system/*.cruds"), Request{Action: 0, Type: "Observation"}, Deny, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.p, c.req, Options{}, now)
			if d.Effect != c.effect || d.Missing != c.missing {
				t.Errorf("Decide = %+v, want effect %v missing %q", d, c.effect, c.missing)
			}
			if d.Discloses("Observation", "o1", []string{"p1"}) {
				t.Error("a denial discloses")
			}
		})
	}
}

func TestDecideNarrowing(t *testing.T) {
	now := time.Now()
	lab := url.Values{"category": {"laboratory"}}
	for _, c := range []struct {
		name        string
		p           *Principal
		req         Request
		patient     string
		constraints []url.Values
	}{
		{"patient scope narrows to the launch patient", principalFor(t, "Practitioner/d1", "p1", "patient/Observation.rs"), Request{Action: ActRead, Type: "Observation"}, "p1", nil},
		{"user scope of a patient user", principalFor(t, "Patient/p2", "", "user/Observation.rs"), Request{Action: ActSearch, Type: "Observation"}, "p2", nil},
		{"system scope is not narrowed", principalFor(t, "", "", "system/Observation.rs"), Request{Action: ActSearch, Type: "Observation"}, "", nil},
		{"granular constraint", principalFor(t, "Patient/p1", "p1", "patient/Observation.rs?category=laboratory"), Request{Action: ActSearch, Type: "Observation"}, "p1", []url.Values{lab}},
		{"an open scope beats a granular one", principalFor(t, "Patient/p1", "p1", "patient/Observation.rs?category=laboratory patient/Observation.rs"), Request{Action: ActSearch, Type: "Observation"}, "p1", nil},
		{"wildcard type", principalFor(t, "Patient/p1", "p1", "patient/*.cruds"), Request{Action: ActDelete, Type: "Condition"}, "p1", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.p, c.req, Options{}, now)
			if d.Effect != Allow || d.Patient != c.patient || len(d.Constraints) != len(c.constraints) {
				t.Fatalf("Decide = %+v, want allow in %q with %v", d, c.patient, c.constraints)
			}
			for i := range c.constraints {
				if d.Constraints[i].Encode() != c.constraints[i].Encode() {
					t.Errorf("constraint %d = %v, want %v", i, d.Constraints[i], c.constraints[i])
				}
			}
		})
	}
}

func TestDiscloses(t *testing.T) {
	d := Decision{Effect: Allow, Patient: "p1"}
	for _, c := range []struct {
		typ, id  string
		patients []string
		want     bool
	}{
		{"Observation", "o1", []string{"p1"}, true},
		{"Observation", "o2", []string{"p2"}, false},
		{"Observation", "o3", []string{"p2", "p1"}, true},
		{"Observation", "o4", nil, false},
		{"Patient", "p1", nil, true},
		{"Patient", "p2", nil, false},
		{"Practitioner", "p1", nil, false}, // same id, other type
	} {
		if got := d.Discloses(c.typ, c.id, c.patients); got != c.want {
			t.Errorf("Discloses(%s/%s in %v) = %v, want %v", c.typ, c.id, c.patients, got, c.want)
		}
	}
	if !(Decision{Effect: Allow}).Discloses("Observation", "o2", nil) {
		t.Error("an unnarrowed decision hides")
	}
}

func TestStepUp(t *testing.T) {
	now := time.Now()
	o := Options{StepUp: []Action{ActDelete}, MaxAuthAge: 5 * time.Minute}
	pwd := principalFor(t, "Patient/p1", "p1", "patient/*.cruds")
	mfa := principalFor(t, "Patient/p1", "p1", "patient/*.cruds")
	mfa.ACR = ACRMultiFactor
	old := principalFor(t, "Patient/p1", "p1", "patient/*.cruds")
	old.ACR, old.AuthTime = ACRMultiFactor, now.Add(-6*time.Minute)
	backend := principalFor(t, "", "", "system/*.cruds")
	for _, c := range []struct {
		name string
		p    *Principal
		act  Action
		want Effect
	}{
		{"password login", pwd, ActDelete, DenyStepUp},
		{"stale multi-factor login", old, ActDelete, DenyStepUp},
		{"fresh multi-factor login", mfa, ActDelete, Allow},
		{"not a step-up action", pwd, ActRead, Allow},
		{"backend client has no user to step up", backend, ActDelete, Allow},
	} {
		if got := Decide(c.p, Request{Action: c.act, Type: "Observation"}, o, now).Effect; got != c.want {
			t.Errorf("%s: effect %v, want %v", c.name, got, c.want)
		}
	}
}

// BenchmarkDecide is the decision half of the per-request authorization
// overhead (the other half is token verification, internal/tokens).
func BenchmarkDecide(b *testing.B) {
	sc, _ := smart.ParseScopes("launch/patient openid fhirUser offline_access patient/Patient.rs patient/Observation.rs patient/Condition.rs patient/MedicationRequest.rs patient/Encounter.rs")
	p := &Principal{ClientID: "app", Subject: "u1", FHIRUser: "Patient/p1", Patient: "p1", Scopes: sc}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if d := Decide(p, Request{Action: ActRead, Type: "Observation"}, Options{}, now); d.Effect != Allow {
			b.Fatal(d)
		}
	}
}
