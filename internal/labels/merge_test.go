package labels

import (
	"reflect"
	"testing"
)

func TestMergeNeverLowers(t *testing.T) {
	sen := func(code string) Coding { return Coding{System: SensitivitySystem, Code: code} }
	c := Confidentiality
	// Ways a write could lower or drop a client's label, first.
	cases := []struct {
		name               string
		existing, computed []Coding
		want               []Coding
	}{
		{"computed N does not lower client V", []Coding{c("V")}, []Coding{c("N")}, []Coding{c("V")}},
		{"computed R does not lower client V", []Coding{c("V"), sen("HIV")}, []Coding{sen("HIV"), c("R")}, []Coding{c("V"), sen("HIV")}},
		{"client sensitivity kept when nothing computed", []Coding{sen("PSY"), c("R")}, []Coding{c("N")}, []Coding{sen("PSY"), c("R")}},
		{"two client confidentialities collapse to the max", []Coding{c("L"), c("R")}, []Coding{c("N")}, []Coding{c("R")}},
		{"same code, other display, is one label", []Coding{{System: SensitivitySystem, Code: "HIV", Display: "x"}}, []Coding{sen("HIV")},
			[]Coding{{System: SensitivitySystem, Code: "HIV", Display: "x"}}},
		{"unranked code in the confidentiality system is kept", []Coding{{System: ConfidentialitySystem, Code: "Z"}}, []Coding{c("N")},
			[]Coding{{System: ConfidentialitySystem, Code: "Z"}, c("N")}},
		{"confidentiality-looking code in another system is not ranked", []Coding{{System: "http://example.org", Code: "V"}}, []Coding{c("N")},
			[]Coding{{System: "http://example.org", Code: "V"}, c("N")}},
		{"other labels kept", []Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", Code: "NORDSCLCD"}}, []Coding{sen("ETH"), c("R")},
			[]Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", Code: "NORDSCLCD"}, sen("ETH"), c("R")}},
		// Then the ordinary cases.
		{"raise client N to computed R in place", []Coding{c("N"), sen("X")}, []Coding{sen("HIV"), c("R")}, []Coding{c("R"), sen("X"), sen("HIV")}},
		{"empty existing", nil, []Coding{sen("SEX"), c("R")}, []Coding{sen("SEX"), c("R")}},
		{"both empty", nil, nil, []Coding{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Merge(tc.existing, tc.computed)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Merge = %+v, want %+v", got, tc.want)
			}
			if again := Merge(got, tc.computed); !reflect.DeepEqual(again, got) {
				t.Errorf("not idempotent: %+v then %+v", got, again)
			}
		})
	}
}
