package searchparam

import (
	"strings"
	"testing"
)

func TestParseFHIRPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Observation.code", "Observation.code"},
		{"  Observation . code ", "Observation.code"},
		{"Patient.name.family", "Patient.name.family"},
		{"name | alias", "(name | alias)"},
		{"a | b | c", "((a | b) | c)"},
		{"(Observation.value as Quantity)", "(Observation.value as Quantity)"},
		{"(Observation.value as CodeableConcept).text", "(Observation.value as CodeableConcept).text"},
		{"Condition.onset.as(Age)", "Condition.onset.as(Age)"},
		{"value.as(DateTime) | value.as(Period)", "(value.as(DateTime) | value.as(Period))"},
		{"X.value.ofType(FHIR.Quantity)", "X.value.ofType(FHIR.Quantity)"},
		{"X.value as FHIR.Quantity", "(X.value as Quantity)"},
		{"Account.subject.where(resolve() is Patient)", "Account.subject.where((resolve() is Patient))"},
		{"Patient.telecom.where(system='email')", "Patient.telecom.where((system = 'email'))"},
		{"X.where(a = 'it\\'s' and b != true)", "X.where(((a = 'it's') and (b != true)))"},
		{"X.where(a = 1 or b.exists())", "X.where(((a = 1) or b.exists()))"},
		{"Patient.deceased.exists() and Patient.deceased != false", "(Patient.deceased.exists() and (Patient.deceased != false))"},
		{"Bundle.entry[0].resource", "Bundle.entry[0].resource"},
		{"%resource.referenceSeq.chromosome", "%resource.referenceSeq.chromosome"},
		{"Patient.extension('http://x/y').value", "Patient.extension('http://x/y').value"},
		{"Questionnaire.`div`", "Questionnaire.div"},
		{"X.order", "X.order"},           // a keyword prefix is still an identifier
		{"X.asserter", "X.asserter"},     // likewise
		{"X.isActive", "X.isActive"},     // likewise
		{"X.andThen", "X.andThen"},       // likewise
		{"X.truehood", "X.truehood"},     // likewise
		{"(X as Y).z", "(X as Y).z"},     // as binds tighter than .z only with parentheses
		{"X | Y as Z", "(X | (Y as Z))"}, // as binds tighter than |
	} {
		e, err := parseFHIRPath(tc.in)
		if err != nil {
			t.Errorf("parseFHIRPath(%q): %v", tc.in, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("parseFHIRPath(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestParseFHIRPathErrors(t *testing.T) {
	for _, in := range []string{
		"", "X.", ".X", "X..Y", "X.where(", "X.where(a = 'b')x", "X[", "X[a]", "X[0", "'open",
		"X.where(a = 'b\\", "(X", "X)", "%context.x", "X as", "X |", "1abc.d", "X.`open",
		strings.Repeat("(", maxDepth+1) + "X" + strings.Repeat(")", maxDepth+1),
	} {
		if e, err := parseFHIRPath(in); err == nil {
			t.Errorf("parseFHIRPath(%q) = %s, want an error", in, e)
		}
	}
}
