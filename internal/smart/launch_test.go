package smart

import (
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/model"
)

func r4(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.R4()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLaunchContext(t *testing.T) {
	for _, tc := range []struct {
		scopes             string
		patient, encounter bool
	}{
		{"", false, false},
		{"patient/*.rs", false, false}, // resource scopes alone ask for no context
		{"openid fhirUser offline_access", false, false},
		{"launch/patient patient/*.rs", true, false},
		{"launch/encounter", false, true},
		{"launch/patient launch/encounter", true, true},
		{"launch", true, true}, // EHR launch: whatever the EHR launched in
		{"launch/Patient", false, false},
	} {
		sc, _ := ParseScopes(tc.scopes)
		if got := sc.WantsPatientContext(); got != tc.patient {
			t.Errorf("%q: WantsPatientContext() = %v", tc.scopes, got)
		}
		if got := sc.WantsEncounterContext(); got != tc.encounter {
			t.Errorf("%q: WantsEncounterContext() = %v", tc.scopes, got)
		}
	}
}

func TestContexts(t *testing.T) {
	for _, tc := range []struct {
		scopes                string
		patient, user, system bool
	}{
		{"", false, false, false},
		{"launch/patient openid", false, false, false},
		{"patient/Observation.rs", true, false, false},
		{"user/*.read openid", false, true, false},
		{"system/*.rs", false, false, true},
		{"patient/*.rs user/Appointment.c system/Patient.s", true, true, true},
		{"patient/Foo.rs user/*.sr", false, false, false}, // unknown scopes are no context
	} {
		sc, _ := ParseScopes(tc.scopes)
		p, u, s := sc.Contexts()
		if p != tc.patient || u != tc.user || s != tc.system {
			t.Errorf("%q: Contexts() = %v %v %v", tc.scopes, p, u, s)
		}
	}
}
