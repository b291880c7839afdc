package searchparam

import (
	"math"
	"testing"
	"time"
)

func TestNormalizeString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Smith", "smith"},
		{"  Smith  ", "smith"},
		{"Müller", "muller"},
		{"Ångström", "angstrom"},
		{"Montañez", "montanez"},
		{"Montan\u0303ez", "montanez"}, // already decomposed
		{"ÉLODIE", "elodie"},
		{"Mary   Ann", "mary ann"},
		{"Mary\tAnn\n", "mary ann"},
		{"Mary\u00a0Ann", "mary ann"}, // no-break space
		{"Smith, John", "smith john"},
		{"Dr. John", "dr john"},
		{"(cm)", "cm"},
		{"...", ""},
		{"O'Hara", "o'hara"},
		{"O’Hara", "o'hara"}, // typographic apostrophe reads as '
		{"Smith-Jones", "smith-jones"},
		{"Smith–Jones", "smith-jones"}, // en dash reads as -
		{"İstanbul", "istanbul"},
		{"ΣΊΣΥΦΟΣ", "σισυφοσ"},
		{"Łódź", "łodz"}, // Ł has no decomposition: only case folds
		{"a+b", "a+b"},   // symbols are kept
		{"10*3/uL", "10 3 ul"},
		{"\xff", "\ufffd"}, // invalid UTF-8 is replaced, not dropped
		// ASCII that is already normal comes back as is; near misses do not.
		{"mary ann", "mary ann"},
		{"mary ann ", "mary ann"},
		{" mary ann", "mary ann"},
		{"mary  ann", "mary ann"},
		{"mary\tann", "mary ann"},
		{"mary,ann", "mary ann"},
		{"8302-2", "8302-2"},
		{"mm[hg]", "mm hg"},
	} {
		if got := NormalizeString(tc.in); got != tc.want {
			t.Errorf("NormalizeString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNormalizeStringIdempotent: normalising twice changes nothing, which
// the index relies on when it compares a stored Text with a normalised
// search value.
func TestNormalizeStringIdempotent(t *testing.T) {
	for _, s := range []string{"Müller-Lüdenscheidt", "O’Hara, Dr.", "ΣΊΣΥΦΟΣ", "  a  b  ", "Ǆemal", "ﬁne"} {
		once := NormalizeString(s)
		if twice := NormalizeString(once); twice != once {
			t.Errorf("NormalizeString(%q) = %q, but normalising that gives %q", s, once, twice)
		}
	}
}

// at is an RFC 3339 time in Unix microseconds.
func at(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

func rfc3339(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }

func TestDateRange(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int64
	}{
		{"2019", at("2019-01-01T00:00:00Z"), at("2020-01-01T00:00:00Z")},
		{"0001", at("0001-01-01T00:00:00Z"), at("0002-01-01T00:00:00Z")},
		{"9999", at("9999-01-01T00:00:00Z"), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{"2019-02", at("2019-02-01T00:00:00Z"), at("2019-03-01T00:00:00Z")},
		{"2019-12", at("2019-12-01T00:00:00Z"), at("2020-01-01T00:00:00Z")},
		{"2019-05-03", at("2019-05-03T00:00:00Z"), at("2019-05-04T00:00:00Z")},
		{"2020-02-29", at("2020-02-29T00:00:00Z"), at("2020-03-01T00:00:00Z")},
		{"2019-05-03T10:00", at("2019-05-03T10:00:00Z"), at("2019-05-03T10:01:00Z")},
		{"2019-05-03T10:00Z", at("2019-05-03T10:00:00Z"), at("2019-05-03T10:01:00Z")},
		{"2019-05-03T10:00:00Z", at("2019-05-03T10:00:00Z"), at("2019-05-03T10:00:01Z")},
		{"2019-05-03T10:00:00", at("2019-05-03T10:00:00Z"), at("2019-05-03T10:00:01Z")},
		{"2019-05-03T10:00:00+02:00", at("2019-05-03T08:00:00Z"), at("2019-05-03T08:00:01Z")},
		{"2019-05-03T10:00:00-05:30", at("2019-05-03T15:30:00Z"), at("2019-05-03T15:30:01Z")},
		{"2019-05-03T10:00:00+14:00", at("2019-05-02T20:00:00Z"), at("2019-05-02T20:00:01Z")},
		{"2019-05-03T10:00:00.5Z", at("2019-05-03T10:00:00.5Z"), at("2019-05-03T10:00:00.6Z")},
		{"2019-05-03T10:00:00.453+00:00", at("2019-05-03T10:00:00.453Z"), at("2019-05-03T10:00:00.454Z")},
		{"2019-05-03T10:00:00.123456Z", at("2019-05-03T10:00:00.123456Z"), at("2019-05-03T10:00:00.123457Z")},
		// Below a microsecond the range is one microsecond.
		{"2019-05-03T10:00:00.123456789Z", at("2019-05-03T10:00:00.123456Z"), at("2019-05-03T10:00:00.123457Z")},
		// A leap second is the first second of the next minute.
		{"2016-12-31T23:59:60Z", at("2017-01-01T00:00:00Z"), at("2017-01-01T00:00:01Z")},
		{"2019-12-31T23:59:59Z", at("2019-12-31T23:59:59Z"), at("2020-01-01T00:00:00Z")},
	} {
		lo, hi, err := DateRange(tc.in)
		if err != nil {
			t.Errorf("DateRange(%q): %v", tc.in, err)
			continue
		}
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("DateRange(%q) = [%s, %s), want [%s, %s)", tc.in, rfc3339(lo), rfc3339(hi), rfc3339(tc.lo), rfc3339(tc.hi))
		}
	}
}

func TestDateRangeRejects(t *testing.T) {
	for _, in := range []string{
		"", "201", "20190", "19", "0000", "+999", "-999", " 2019", "2019 ", "２０１９",
		"2019-", "2019-1", "2019-00", "2019-13", "2019-1-01", "2019/05",
		"2019-05-", "2019-05-1", "2019-05-00", "2019-05-32", "2019-02-29", "2019-04-31",
		"2019-05-03T", "2019-05-03T10", "2019-05-03T10:0", "2019-05-03 10:00:00Z", "2019-05-03t10:00:00Z",
		"2019-05-03T24:00:00Z", "2019-05-03T10:60:00Z", "2019-05-03T10:00:61Z", "2019-05-03T10:00:0Z",
		"2019-05-03T10:00:00.Z", "2019-05-03T10:00:00.1234567890Z", "2019-05-03T10:00:00,5Z",
		"2019-05-03T10:00:00z", "2019-05-03T10:00:00+0200", "2019-05-03T10:00:00+02", "2019-05-03T10:00:00+02:60",
		"2019-05-03T10:00:00+14:30", "2019-05-03T10:00:00+15:00", "2019-05-03T10:00:00Z+01:00", "2019-05-03T10:00:00ZZ",
		"2019-05-03T10:00:00+02:00 ", "2019-05-03T10:00:00.5.5Z",
	} {
		if lo, hi, err := DateRange(in); err == nil {
			t.Errorf("DateRange(%q) = [%d, %d), want an error", in, lo, hi)
		}
	}
}

func TestNumberRange(t *testing.T) {
	for _, tc := range []struct {
		in         string
		v, lo, hi  float64
		approxOnly bool // compare with a relative tolerance
	}{
		{"100", 100, 99.5, 100.5, false},
		{"100.00", 100, 99.995, 100.005, true},
		{"0", 0, -0.5, 0.5, false},
		{"-0.5", -0.5, -0.55, -0.45, true},
		{"2.5E-3", 0.0025, 0.00245, 0.00255, true},
		{"1e2", 100, 50, 150, false},
		{"1.0e2", 100, 95, 105, false},
		{"1E+2", 100, 50, 150, false},
		{"12.5e-1", 1.25, 1.245, 1.255, true},
	} {
		v, lo, hi, err := NumberRange(tc.in)
		if err != nil {
			t.Errorf("NumberRange(%q): %v", tc.in, err)
			continue
		}
		near := func(a, b float64) bool {
			if !tc.approxOnly {
				return a == b
			}
			return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b))
		}
		if !near(v, tc.v) || !near(lo, tc.lo) || !near(hi, tc.hi) {
			t.Errorf("NumberRange(%q) = %v [%v, %v), want %v [%v, %v)", tc.in, v, lo, hi, tc.v, tc.lo, tc.hi)
		}
	}
}

// TestNumberRangePrecisionBeyondFloat: a value written with more digits
// than a float64 holds still gets a range that contains it.
func TestNumberRangePrecisionBeyondFloat(t *testing.T) {
	for _, in := range []string{"178.69452709041775", "1e-400", "0.00000000000000000000000000000001", "123456789012345678901234567890", "1.7976931348623157e308"} {
		v, lo, hi, err := NumberRange(in)
		if err != nil {
			t.Errorf("NumberRange(%q): %v", in, err)
			continue
		}
		if !(lo <= v && v < hi) {
			t.Errorf("NumberRange(%q) = %v [%v, %v): does not contain the value", in, v, lo, hi)
		}
	}
}

func TestNumberRangeRejects(t *testing.T) {
	for _, in := range []string{
		"", "-", "+1", ".5", "5.", "01", "-01", "1.", "1e", "1e+", "e2", "1.5.5", "1,5", " 1", "1 ",
		"0x1p4", "1_000", "Inf", "-Inf", "NaN", "infinity", "1e400", "-1e400", "1e99999999999999999999",
	} {
		if v, lo, hi, err := NumberRange(in); err == nil {
			t.Errorf("NumberRange(%q) = %v [%v, %v), want an error", in, v, lo, hi)
		}
	}
}

// TestNormalizeASCIIFastPath: the ASCII fast path agrees with the general
// one on every string of up to three ASCII characters.
func TestNormalizeASCIIFastPath(t *testing.T) {
	var chars []byte
	for c := byte(0); c < 0x80; c++ {
		chars = append(chars, c)
	}
	check := func(s string) {
		if a, u := normalizeASCII(s), normalizeUnicode(s); a != u {
			t.Fatalf("%q: ASCII path %q, general path %q", s, a, u)
		}
	}
	for _, a := range chars {
		for _, b := range chars {
			check(string([]byte{a, b}))
			for _, c := range []byte{' ', 'A', 'z', '.', '\'', '-', '\t', '0'} {
				check(string([]byte{a, b, c}))
				check(string([]byte{c, a, b}))
			}
		}
	}
}
