package validate

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeValidate feeds arbitrary bodies to Decode and Validate
// (seeds: testdata/fuzz/FuzzDecodeValidate) and asserts:
//
//   - neither panics, and Decode fails only with a *DecodeError;
//   - what Decode accepts, encoding/json reads to the same value;
//   - a resource that validates still validates, and decodes to the same
//     value, after a round trip through encoding/json.
func FuzzDecodeValidate(f *testing.F) {
	f.Add([]byte(patient))
	f.Add([]byte(observation))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Decode(body, Limits{MaxBytes: 1 << 20})
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error %v is not a *DecodeError", err)
			}
			return
		}
		if want := stdDecode(t, body); !reflect.DeepEqual(res, want) {
			t.Fatalf("Decode = %#v, encoding/json reads %#v", res, want)
		}
		if hasErrors(Validate(res)) {
			return
		}
		again, err := json.Marshal(res)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		res2, err := Decode(again, Limits{})
		if err != nil {
			t.Fatalf("decoding the re-encoded resource: %v", err)
		}
		if !reflect.DeepEqual(res, res2) {
			t.Fatalf("round trip changed the resource:\n%#v\n%#v", res, res2)
		}
		if issues := Validate(res2); hasErrors(issues) {
			t.Fatalf("re-encoded resource no longer validates: %+v", issues)
		}
	})
}

func hasErrors(issues []Issue) bool {
	for _, is := range issues {
		if is.Severity == "error" || is.Severity == "fatal" {
			return true
		}
	}
	return false
}
