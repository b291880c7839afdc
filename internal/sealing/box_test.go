package sealing

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// FuzzParseBox: the fast reader of the sealed member never panics, and
// whatever it accepts is what encoding/json reads from the same bytes
// (so the shortcut cannot read a member differently), and a member as
// Seal writes it reads back whole.
func FuzzParseBox(f *testing.F) {
	for _, b := range []box{
		{V: 1, Cats: []string{"HIV"}, Pat: "p1", CT: []byte{1, 2, 3}},
		{V: 1, Cats: []string{"ETH", "HIV"}, Pat: "-", CT: []byte("0123456789abcdef")},
	} {
		raw, _ := json.Marshal(b)
		f.Add(raw)
	}
	f.Add([]byte(`{"v":1,"c":["HIV"],"p":"p\"1","ct":"AQID"}`))
	f.Add([]byte(`{"v":1,"c":[],"p":"p1","ct":"AQID"}`))
	f.Add([]byte(`{"ct":"AQID","p":"p1","c":["HIV"],"v":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := parseBox(raw, make([]byte, 0, 64))
		var want box
		jerr := json.Unmarshal(raw, &want)
		if err != nil {
			if jerr == nil && want.V == 1 && len(want.Cats) > 0 {
				t.Fatalf("refused %q, which encoding/json reads as a valid member %+v", raw, want)
			}
			return
		}
		if jerr != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", raw, jerr)
		}
		if got.V != want.V || got.Pat != want.Pat || !slices.Equal(got.Cats, want.Cats) || string(got.CT) != string(want.CT) {
			t.Fatalf("%q: read %+v, encoding/json reads %+v", raw, got, want)
		}
		again, _ := json.Marshal(got)
		if back, err := parseBox(again, nil); err != nil || back.Pat != got.Pat || string(back.CT) != string(got.CT) {
			t.Fatalf("round trip of %+v: %+v, %v", got, back, err)
		}
	})
}

// TestSealedAt: the fast locator of the sealed member finds the last
// marker, as the backward search does, and nothing in a form without one.
func TestSealedAt(t *testing.T) {
	obs := `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}`
	for _, tt := range []struct {
		name, stored string
	}{
		{"not sealed", obs + `}`},
		{"empty", ``},
		{"sealed", obs + `,"_sealed":{"v":1,"c":["HIV"],"p":"p1","ct":"AQID"}}`},
		{"marker nested earlier too", `{"resourceType":"Basic","x":{"a":1,"_sealed":{}},"_sealed":{"v":1,"c":["HIV"],"p":"p1","ct":"AQID"}}`},
		{"key without the comma", `{"_sealed":{}}`},
		{"name inside a string", `{"resourceType":"Basic","note":"\",\"_sealed\":"}`},
	} {
		got, want := sealedAt([]byte(tt.stored)), bytes.LastIndex([]byte(tt.stored), sealedMarker)
		if got != want {
			t.Errorf("%s: sealedAt = %d, want %d (bytes.LastIndex)", tt.name, got, want)
		}
	}
	if sealedAt([]byte(obs+`}`)) != -1 {
		t.Error("an unsealed form has a sealed member")
	}
	s := obs + `,"_sealed":{"v":1,"c":["HIV"],"p":"p1","ct":"AQID"}}`
	if sealedAt([]byte(s)) != len(obs) {
		t.Errorf("sealedAt = %d, want %d", sealedAt([]byte(s)), len(obs))
	}
}

// BenchmarkSealedAt: locating the sealed member in an unsealed form (most
// of them), forward-then-backward against the backward search alone.
func BenchmarkSealedAt(b *testing.B) {
	stored := []byte(`{"resourceType":"Observation","id":"o1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"72514-3","display":"Pain severity - 0-10 verbal numeric rating [Score] - Reported"}],"text":"Pain severity"},"subject":{"reference":"Patient/08bb5ad8-79b2-47ef-a0ad-81ef0b4ab2c3"},"encounter":{"reference":"Encounter/1"},"effectiveDateTime":"2019-02-24T20:23:43-05:00","issued":"2019-02-24T20:23:43.911-05:00","valueQuantity":{"value":3,"unit":"{score}","system":"http://unitsofmeasure.org","code":"{score}"}}`)
	b.Run("sealedAt", func(b *testing.B) {
		for b.Loop() {
			if sealedAt(stored) >= 0 {
				b.Fatal("sealed")
			}
		}
	})
	b.Run("LastIndex", func(b *testing.B) {
		for b.Loop() {
			if bytes.LastIndex(stored, sealedMarker) >= 0 {
				b.Fatal("sealed")
			}
		}
	})
}
