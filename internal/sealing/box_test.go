package sealing

import (
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
