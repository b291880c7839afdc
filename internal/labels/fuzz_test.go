package labels

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseValueSet: ParseValueSet never panics, and whatever it accepts
// is usable by New (or rejected with a package error).
func FuzzParseValueSet(f *testing.F) {
	files, _ := filepath.Glob("valuesets/*.tsv")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vs, err := ParseValueSet("fuzz", data)
		if err != nil {
			return
		}
		if vs.Category == "" || len(vs.Sources) == 0 || (vs.Confidentiality != "R" && vs.Confidentiality != "V") {
			t.Fatalf("accepted an incomplete value set: %+v", vs)
		}
		vs.Category = "FUZZ" + vs.Category // avoid clashing with a built-in category
		if len(vs.Category) > 32 {
			vs.Category = vs.Category[:32]
		}
		if _, err := New(vs); err != nil && !isPackageError(err) {
			t.Fatalf("New: %v", err)
		}
	})
}

// FuzzLabel: Label and Apply never panic; Merge never lowers the
// confidentiality; Apply's output parses and carries every label the
// input had, with a confidentiality no lower than before.
func FuzzLabel(f *testing.F) {
	l, err := New()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"resourceType":"Condition","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"5602001"}]}}`))
	f.Add([]byte(`{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"856AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","display":"HIV viral load"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := l.Label(data)
		if err != nil {
			if !isPackageError(err) {
				t.Fatalf("Label: unexpected error %v", err)
			}
			return
		}
		inSec, inErr := securityOf(data)
		merged := Merge(inSec, res.Security)
		if maxRank(merged) < maxRank(inSec) || maxRank(merged) < maxRank(res.Security) {
			t.Fatalf("Merge lowered confidentiality: %+v + %+v = %+v", inSec, res.Security, merged)
		}
		out, _, err := l.Apply(data)
		if err != nil {
			return // meta or members malformed: rejected, nothing written
		}
		gotSec, err := securityOf(out)
		if err != nil {
			t.Fatalf("Apply output does not parse: %v\n%s", err, out)
		}
		if inErr != nil {
			return
		}
		have := map[Coding]bool{}
		for _, c := range gotSec {
			have[Coding{System: c.System, Code: c.Code}] = true
		}
		for _, c := range inSec {
			if isConfidentiality(c) {
				continue
			}
			if !have[Coding{System: c.System, Code: c.Code}] {
				t.Fatalf("Apply dropped label %+v:\n%s", c, out)
			}
		}
		if maxRank(gotSec) < maxRank(inSec) {
			t.Fatalf("Apply lowered confidentiality:\n%s\n%s", data, out)
		}
	})
}

// securityOf returns meta.security, matching member names exactly as FHIR
// JSON does (encoding/json alone would also accept "Meta" or "seCurity").
func securityOf(data []byte) ([]Coding, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	var meta map[string]json.RawMessage
	if raw, ok := top["meta"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, err
		}
	}
	var sec []Coding
	if raw, ok := meta["security"]; ok {
		if err := json.Unmarshal(raw, &sec); err != nil {
			return nil, err
		}
	}
	return sec, nil
}

func maxRank(cs []Coding) int {
	m := 0
	for _, c := range cs {
		if isConfidentiality(c) && ConfidentialityRank(c.Code) > m {
			m = ConfidentialityRank(c.Code)
		}
	}
	return m
}

func isPackageError(err error) bool {
	for _, e := range []error{ErrMalformedResource, ErrMalformedValueSet, ErrDuplicateCategory, ErrBadPolicy} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
