package searchparam

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzExtract feeds arbitrary JSON to Extract, as the server does with
// every resource a client writes before (or without) validation. Extract
// must not panic, and what it returns must keep the promises of Entry:
// date ranges are non-empty, numbers lie in their range, composites have
// one component per definition. Seeds are in testdata/fuzz/FuzzExtract.
func FuzzExtract(f *testing.F) {
	for _, seed := range []string{
		`{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},"subject":{"reference":"Patient/1"},"effectivePeriod":{"start":"2019","end":"2018-05"},"valueQuantity":{"value":1e-400}}`,
		`{"resourceType":"Patient","name":[{"family":["x"],"given":"y"}],"birthDate":12,"deceasedBoolean":"no","telecom":[null,{"system":"phone"}]}`,
		`{"resourceType":"Nonsense","id":"x","meta":{"tag":{"code":"t"},"lastUpdated":"2019-13-01"}}`,
	} {
		f.Add([]byte(seed))
	}
	reg, err := R4()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var res map[string]any
		if d.Decode(&res) != nil {
			return
		}
		typ, _ := res["resourceType"].(string)
		if typ == "" {
			typ = "Observation"
		}
		entries := reg.Extract(typ, res)
		for i := range entries {
			e := &entries[i]
			checkEntry(t, typ, e)
			for c := range e.Components {
				checkEntry(t, typ, &e.Components[c])
			}
			if p := reg.Param(typ, e.Param); p == nil || p.Type != e.Type || (p.Type == Composite && len(p.Components) != len(e.Components)) {
				t.Errorf("entry %+v does not fit its parameter", *e)
			}
		}
		reg.PatientCompartment(typ, entries)
	})
}

// FuzzDateRange checks that every value DateRange accepts covers a
// non-empty range, and that the start of that range, written back at the
// same precision (in UTC), reads as the same range.
func FuzzDateRange(f *testing.F) {
	for _, seed := range []string{
		"2019", "2019-05", "2019-05-03", "2019-05-03T10:00", "2019-05-03T10:00:00Z", "2019-05-03T10:00:00+14:00",
		"2019-05-03T10:00:00.1234567-05:30", "2016-12-31T23:59:60Z", "0001-01-01T00:00:00+01:00", "2019-02-29",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := DateRange(s)
		if err != nil {
			return
		}
		if !(lo < hi) {
			t.Fatalf("DateRange(%q) = [%d, %d): empty", s, lo, hi)
		}
		layout := precisionLayout(s)
		start := time.UnixMicro(lo).UTC()
		if start.Year() < 1 || start.Year() > 9999 {
			return // a valid local time whose UTC instant has no 4-digit year
		}
		back := start.Format(layout)
		lo2, hi2, err := DateRange(back)
		if err != nil || lo2 != lo || hi2 != hi {
			t.Fatalf("DateRange(%q) = [%d, %d), but its start written back as %q gives [%d, %d) %v", s, lo, hi, back, lo2, hi2, err)
		}
	})
}

// precisionLayout is the Go layout that writes a time at the precision
// of the FHIR value s, in UTC.
func precisionLayout(s string) string {
	switch len(s) {
	case 4:
		return "2006"
	case 7:
		return "2006-01"
	case 10:
		return time.DateOnly
	}
	if len(s) == 16 || s[16] != ':' {
		return "2006-01-02T15:04Z"
	}
	if len(s) > 19 && s[19] == '.' {
		n := 20
		for n < len(s) && '0' <= s[n] && s[n] <= '9' {
			n++
		}
		return "2006-01-02T15:04:05." + strings.Repeat("0", n-20) + "Z"
	}
	return "2006-01-02T15:04:05Z"
}
