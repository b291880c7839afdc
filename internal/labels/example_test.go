package labels_test

import (
	"fmt"

	"github.com/wardenfhir/warden/internal/labels"
)

func ExampleLabeller_Label() {
	l, err := labels.New()
	if err != nil {
		panic(err)
	}
	res, err := l.Label([]byte(`{"resourceType":"Observation",
		"code":{"coding":[{"system":"http://loinc.org","code":"856AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","display":"HIV viral load"}]}}`))
	if err != nil {
		panic(err)
	}
	for _, c := range res.Security {
		fmt.Println(c.Code)
	}
	fmt.Println(res.Why[0])
	// Output:
	// HIV
	// R
	// HIV: Observation.code.coding[0] http://loinc.org|856AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA "HIV viral load" — code not valid in its system; display contains "hiv" (valuesets/HIV.tsv)
}

func ExampleMerge() {
	client := []labels.Coding{labels.Confidentiality("V")}
	computed := []labels.Coding{{System: labels.SensitivitySystem, Code: "PSY"}, labels.Confidentiality("R")}
	for _, c := range labels.Merge(client, computed) {
		fmt.Println(c.Code)
	}
	// Output:
	// V
	// PSY
}
