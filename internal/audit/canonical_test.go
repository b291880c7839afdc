package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

// TestCanonicalVectors checks key order, escaping and numbers against the
// examples of RFC 8785 (§3.2.3 sorting, §3.2.2.3 numbers, Appendix B).
func TestCanonicalVectors(t *testing.T) {
	cases := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"sorting by UTF-16 units (RFC 8785 §3.2.3)", map[string]any{
			"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
			"1": "One", "\U0001F600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis",
		}, "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{"escaping", map[string]any{"s": "\"\\/\b\f\n\r\t\x0f\x1f<>&\u2028é"},
			"{\"s\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u000f\\u001f<>&\u2028é\"}"},
		{"numbers (RFC 8785 Appendix B)", map[string]any{"a": []any{
			0.0, math.Copysign(0, -1), 1e21, 1e-7, 333333333.33333329, 4.5, 0.002, 1e30, -1.5e-10,
			9007199254740991.0, 1e20, json.Number("1E+2"), 12, int64(-3), uint64(7),
		}}, `{"a":[0,0,1e+21,1e-7,333333333.3333333,4.5,0.002,1e+30,-1.5e-10,9007199254740991,100000000000000000000,100,12,-3,7]}`},
		{"literals and nesting", map[string]any{"t": true, "f": false, "n": nil, "o": map[string]any{"b": []any{}, "a": map[string]any{}}},
			`{"f":false,"n":null,"o":{"a":{},"b":[]},"t":true}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Canonical(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("Canonical =\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestCanonicalRefuses(t *testing.T) {
	deep := map[string]any{}
	for range maxDepth + 2 {
		deep = map[string]any{"x": deep}
	}
	cases := map[string]map[string]any{
		"NaN":                  {"x": math.NaN()},
		"infinity":             {"x": math.Inf(-1)},
		"unsupported type":     {"x": struct{}{}},
		"typed slice":          {"x": []string{"a"}},
		"invalid UTF-8 value":  {"x": "\xff"},
		"invalid UTF-8 key":    {"\xc3": 1},
		"bad json.Number":      {"x": json.Number("12abc")},
		"nested too deeply":    deep,
		"nested map bad value": {"x": map[string]any{"y": []any{math.NaN()}}},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if out, err := Canonical(in); !errors.Is(err, ErrNotCanonical) || out != nil {
				t.Fatalf("Canonical = %q, %v; want ErrNotCanonical", out, err)
			}
			// A refusal half-way leaves nothing behind for the next call
			// (the stack of members is reused).
			good := map[string]any{"b": map[string]any{"d": 1, "c": []any{"x"}}, "a": true}
			if out, err := Canonical(good); err != nil || string(out) != `{"a":true,"b":{"c":["x"],"d":1}}` {
				t.Fatalf("after a refusal, Canonical = %s, %v", out, err)
			}
		})
	}
}

// TestCanonicalRoundTrip: every built event survives encoding/json both
// ways, and its canonical form is a fixed point.
func TestCanonicalRoundTrip(t *testing.T) {
	for name, r := range records() {
		t.Run(name, func(t *testing.T) {
			ev, err := Build(r, testBase)
			if err != nil {
				t.Fatal(err)
			}
			ev["id"] = testEventID()
			canon, err := Canonical(ev)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(canon, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, ev) {
				t.Errorf("json round trip changed the event")
			}
			again, err := Canonical(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(canon, again) {
				t.Errorf("Canonical is not a fixed point:\n%s\n%s", canon, again)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, canon); err != nil || !bytes.Equal(compact.Bytes(), canon) {
				t.Errorf("canonical form has insignificant whitespace")
			}
		})
	}
}

// plainWord agrees with plainASCII on every byte value in every position
// of a word (the rest plain), and on words mixing two bytes of interest.
func TestPlainWord(t *testing.T) {
	word := func(b [8]byte) uint64 { return load64(string(b[:])) }
	plain := func(b [8]byte) bool {
		for _, c := range b {
			if c >= 0x80 || !plainASCII[c] {
				return false
			}
		}
		return true
	}
	for pos := range 8 {
		for c := range 256 {
			b := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			b[pos] = byte(c)
			if got, want := plainWord(word(b)), plain(b); got != want {
				t.Fatalf("plainWord(%q) = %v, want %v", b[:], got, want)
			}
			for _, d := range []byte{0, 0x1f, 0x20, '"', '\\', 0x7f, 0x80, 0xff} {
				b2 := b
				b2[(pos+3)%8] = d
				if got, want := plainWord(word(b2)), plain(b2); got != want {
					t.Fatalf("plainWord(%q) = %v, want %v", b2[:], got, want)
				}
			}
		}
	}
}
