package smart

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct{ scope, want string }{
		{"patient/Observation.rs", "Read and search the patient's observations (such as vital signs and lab results)"},
		{"patient/Observation.read", "Read and search the patient's observations (such as vital signs and lab results)"},
		{"user/*.cruds", "Create, read, update, delete and search all kinds of records you can access"},
		{"user/*.*", "Create, read, update, delete and search all kinds of records you can access"},
		{"patient/*.rs", "Read and search all of the patient's records"},
		{"patient/Appointment.cud", "Create, update and delete the patient's appointments"},
		{"user/MedicationRequest.write", "Create, update and delete medication prescriptions and orders you can access"},
		{"system/Patient.s", "Search demographic details (such as name, birth date and contact details) this app is registered for, with no user signed in"},
		{"patient/AllergyIntolerance.r", "Read the patient's allergies and intolerances"},
		{"patient/MolecularSequence.r", "Read the patient's genetic sequence data"},
		{"patient/DeviceUseStatement.rs", "Read and search the patient's device use statement records"},
		{"patient/VerificationResult.rs", "Read and search the patient's verification result records"},
		{"user/SubstanceSpecification.r", "Read substance specification records you can access"},
		{"patient/Observation.rs?category=" + labCategory,
			`Read and search the patient's observations (such as vital signs and lab results), only those in the "laboratory" category`},
		{"patient/Observation.rs?category=vital-signs&code=http://loinc.org|8867-4",
			`Read and search the patient's observations (such as vital signs and lab results), only those in the "vital-signs" category and with the code "8867-4"`},
		{"patient/Condition.rs?clinical-status=active",
			`Read and search the patient's conditions (such as diagnoses and health problems), only those where "clinical-status" is "active"`},
		{"offline_access", "Keep access when you are not using the app, until you revoke it"},
		{"online_access", "Keep access while you are signed in, ending when you sign out"},
		{"openid", "Confirm your identity to the app when you sign in"},
		{"launch/patient", "Know which patient is selected when the app starts"},
	} {
		if got := Describe(tc.scope); got != tc.want {
			t.Errorf("Describe(%q)\n got %q\nwant %q", tc.scope, got, tc.want)
		}
	}
}

func TestDescribeEveryKnownScope(t *testing.T) {
	for _, o := range otherScopes {
		if d := Describe(o); d == UnknownDescription || d == "" {
			t.Errorf("Describe(%q) = %q", o, d)
		}
	}
	for typ := range typeNouns {
		if !r4(t).IsResourceType(typ) {
			t.Errorf("typeNouns names %q, which is not an R4 resource type", typ)
		}
	}
	// Every R4 type reads as words; those without a name of their own as
	// lower-case words.
	for _, typ := range r4(t).ResourceTypes() {
		d := Describe("patient/" + typ + ".r")
		noun, ok := strings.CutPrefix(d, "Read the patient's ")
		if !ok || noun == "" {
			t.Errorf("Describe(patient/%s.r) = %q", typ, d)
		}
		if _, named := typeNouns[typ]; !named && (noun != strings.ToLower(noun) || !strings.HasSuffix(noun, " records")) {
			t.Errorf("Describe(patient/%s.r) = %q", typ, d)
		}
	}
}

// TestDescribeUnknown: anything that is not exactly one scope Warden
// understands is described as such, never as the scope it looks like.
func TestDescribeUnknown(t *testing.T) {
	for _, s := range []string{
		"", " ", "foo", "patient/Observation.sr", "patient/Foo.rs", "patient/*.rs?category=x",
		"openid profile", "patient/Observation.rs patient/Condition.rs", " openid", "openid ", "OPENID",
		"patient/Observation.rs\"", "launch/Location",
	} {
		if got := Describe(s); got != UnknownDescription {
			t.Errorf("Describe(%q) = %q", s, got)
		}
	}
	if UnknownDescription != "An unrecognised permission; it will not be granted" {
		t.Error("UnknownDescription changed")
	}
}

// TestDescribeQueryCannotSpeak: a client chooses its granular values; they
// are shown quoted, shortened and escaped, so they cannot add a sentence
// of their own to the approval page.
func TestDescribeQueryCannotSpeak(t *testing.T) {
	d := Describe("patient/Observation.rs?category=laboratory%22%2C%20and%20nothing%20else.%0AAllow%20everything%20" + strings.Repeat("x", 100))
	const before, after = "observations (such as vital signs and lab results), only those in the ", " category"
	_, rest, ok1 := strings.Cut(d, before)
	quoted, ok2 := strings.CutSuffix(rest, after)
	if !ok1 || !ok2 {
		t.Fatalf("Describe = %q", d)
	}
	// The value is one Go-quoted string: it cannot close its quotes.
	v, err := strconv.Unquote(quoted)
	if err != nil || !strings.Contains(quoted, `\n`) || strings.Contains(d, "\n") {
		t.Fatalf("value %q is not one quoted string: %v", quoted, err)
	}
	if n := utf8.RuneCountInString(v); n != 41 || !strings.HasSuffix(v, "…") {
		t.Errorf("value %q (%d runes) is not shortened to 40 runes and an ellipsis", v, n)
	}
}
