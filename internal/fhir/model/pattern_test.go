package model

import (
	"math/rand/v2"
	"testing"
)

// fastTypes are the primitive types that must have a hand-written matcher;
// if the embedded regex of one of them changed, fastMatcher would no longer
// recognise it and this list says so.
var fastTypes = []string{
	"string", "markdown", "uri", "url", "canonical", "code", "id", "boolean",
	"decimal", "integer", "unsignedInt", "positiveInt", "date", "dateTime",
	"instant", "time", "base64Binary",
}

// patternSamples are edge cases for the primitive regexes.
var patternSamples = []string{
	"", " ", "a", " a", "a ", "a  b", "a b", "a\tb", "a\fb", "\f", "\v", "\x00", "\xff", "é", "a\u00a0b",
	"0", "00", "01", "-0", "-01", "+1", "1", "-1", "1.", ".5", "1.5", "1.50", "-0.0", "1e5", "1E+5", "1e-05", "1e", "1.5e3", "2147483648",
	"true", "false", "True", "truefalse",
	"0000", "0001", "1000", "2020", "999", "20200", "2020-", "2020-00", "2020-01", "2020-12", "2020-13", "2020-1",
	"2020-01-00", "2020-01-01", "2020-01-31", "2020-01-32", "2020-02-30", "2020-01-01T", "2020-01-01T00:00:00",
	"2020-01-01T00:00:00Z", "2020-01-01T23:59:60Z", "2020-01-01T24:00:00Z", "2020-01-01T00:60:00Z", "2020-01-01T00:00:61Z",
	"2020-01-01T00:00:00.Z", "2020-01-01T00:00:00.123Z", "2020-01-01T00:00:00+14:00", "2020-01-01T00:00:00+14:01",
	"2020-01-01T00:00:00-13:59", "2020-01-01T00:00:00+1:00", "2020-01-01T00:00:00+0100", "2020-01-01T00:00:00z",
	"2020T00:00:00Z", "2020-01T00:00:00Z", "00:00:00", "23:59:60.5", "24:00:00", "1:00:00", "00:00", "00:00:00Z",
	"aGVsbG8=", "aGVs bG8=", "aGV sbG8=", " aGVs ", "aGV", "a/+=", "a-_=", "\naGVs\n",
	"abc.-DEF", "a_b", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij12345",
	"urn:uuid:0b2f4a8e-1c5d-4e6f-8a9b-0c1d2e3f4a5b", "http://example.org/a b", "http://example.org/a",
}

func TestFastMatchersAgreeWithRegexes(t *testing.T) {
	m, err := R4()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range fastTypes {
		typ := m.Type(name)
		if typ == nil || typ.match == nil {
			t.Errorf("%s has no hand-written matcher: did its regex change?", name)
			continue
		}
		check := func(s string) {
			if got, want := typ.MatchString(s), typ.Pattern.MatchString(s); got != want {
				t.Errorf("%s: MatchString(%q) = %v, regex says %v", name, s, got, want)
			}
		}
		for _, s := range patternSamples {
			check(s)
		}
		// Random strings over the characters the patterns care about.
		const alphabet = "0123456789-+.:TZeE \t\n\f\r=/aZ_\xff"
		rng := rand.New(rand.NewPCG(1, uint64(len(name))))
		for range 20000 {
			b := make([]byte, rng.IntN(30))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			check(string(b))
		}
		// Mutations of valid values, which reach deeper into the patterns.
		for _, s := range patternSamples {
			if !typ.Pattern.MatchString(s) || s == "" {
				continue
			}
			for range 200 {
				b := []byte(s)
				b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
				check(string(b))
			}
		}
	}
}

// FuzzPrimitivePatterns asserts that every hand-written matcher agrees
// with the spec regex it stands for (seeds:
// testdata/fuzz/FuzzPrimitivePatterns).
func FuzzPrimitivePatterns(f *testing.F) {
	m, err := R4()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range patternSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, name := range fastTypes {
			typ := m.Type(name)
			if got, want := typ.MatchString(s), typ.Pattern.MatchString(s); got != want {
				t.Errorf("%s: MatchString(%q) = %v, regex says %v", name, s, got, want)
			}
		}
	})
}
