package searchparam

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// NormalizeString is the form in which string parameters are indexed and
// compared: Unicode-decomposed with combining marks removed, case-folded,
// with runs of white space and punctuation collapsed to one space and
// trimmed (FHIR R4 Search, "string": "case- and accent-insensitive").
//
// Apostrophes and hyphens are kept, so that "O'Hara" and "Smith-Jones"
// stay one word; their typographic variants (’ ‘ ʼ, and ‐ ‑ ‒ – — − )
// are written as ' and - so that the way a name was typed does not
// matter.
func NormalizeString(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return normalizeUnicode(s)
		}
	}
	return normalizeASCII(s)
}

// asciiClass says what NormalizeString does with each ASCII byte.
var asciiClass = func() (c [utf8.RuneSelf]byte) {
	for b := range utf8.RuneSelf {
		switch r := rune(b); {
		case 'A' <= r && r <= 'Z':
			c[b] = classUpper
		case r == '\'' || r == '-':
			c[b] = classKeep
		case unicode.IsSpace(r) || unicode.IsPunct(r):
			c[b] = classSpace
		default:
			c[b] = classKeep
		}
	}
	return c
}()

const (
	classKeep  = iota // written as is
	classUpper        // written in lower case
	classSpace        // part of a run written as one space
)

// normalizeASCII is NormalizeString for ASCII text. Text that is already
// normal (a code, a lower-case unit) is returned without copying.
func normalizeASCII(s string) string {
	normal := true
	for i := 0; i < len(s) && normal; i++ {
		switch asciiClass[s[i]] {
		case classUpper:
			normal = false
		case classSpace:
			// One space between words is normal, anything else is not.
			normal = s[i] == ' ' && i > 0 && i < len(s)-1 && asciiClass[s[i+1]] != classSpace
		}
	}
	if normal {
		return s
	}
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch asciiClass[c] {
		case classSpace:
			space = len(b) > 0
			continue
		case classUpper:
			c += 'a' - 'A'
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	return string(b)
}

func normalizeUnicode(s string) string {
	s = norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch r {
		case '\u2018', '\u2019', '\u02bc': // ‘ ’ ʼ
			r = '\''
		case '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2212': // ‐ ‑ ‒ – — −
			r = '-'
		}
		switch {
		case r < utf8.RuneSelf:
			switch asciiClass[r] {
			case classSpace:
				space = b.Len() > 0
				continue
			case classUpper:
				r += 'a' - 'A'
			}
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r) || unicode.IsPunct(r):
			space = b.Len() > 0
			continue
		default:
			r = unicode.ToLower(r)
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// DateRange returns the half-open range [lo, hi) in Unix microseconds that
// a FHIR date, dateTime or instant covers at its precision: "2019" covers
// the whole year, "2019-05-03T10:00:00Z" one second, fractional seconds
// their digits (but at least a microsecond). Values without a time zone
// are taken as UTC (FHIR R4 Search, "date", leaves this to the server).
//
// The accepted forms are those of FHIR R4 Data Types (date, dateTime,
// instant) — yyyy, yyyy-mm, yyyy-mm-dd, yyyy-mm-ddThh:mm:ss[.f…][zone] —
// plus yyyy-mm-ddThh:mm[zone], which search values may use. Years run from
// 0001 to 9999, zones from -14:00 to +14:00, and a leap second (:60) is
// read as the first second of the next minute.
func DateRange(s string) (lo, hi int64, err error) {
	bad := func() (int64, int64, error) { return 0, 0, fmt.Errorf("not a valid FHIR date/time: %q", s) }
	if len(s) < 4 || len(s) > 40 {
		return bad()
	}
	year, ok := digits(s, 0, 4)
	if !ok || year < 1 {
		return bad()
	}
	month, day := 1, 1
	if len(s) == 4 {
		t := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return t.UnixMicro(), t.AddDate(1, 0, 0).UnixMicro(), nil
	}
	if s[4] != '-' || len(s) < 7 {
		return bad()
	}
	if month, ok = digits(s, 5, 2); !ok || month < 1 || month > 12 {
		return bad()
	}
	if len(s) == 7 {
		t := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return t.UnixMicro(), t.AddDate(0, 1, 0).UnixMicro(), nil
	}
	if s[7] != '-' || len(s) < 10 {
		return bad()
	}
	if day, ok = digits(s, 8, 2); !ok || day < 1 || day > daysIn(year, month) {
		return bad()
	}
	if len(s) == 10 {
		t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return t.UnixMicro(), t.AddDate(0, 0, 1).UnixMicro(), nil
	}
	// Time of day: Thh:mm[:ss[.f…]] and the zone.
	if s[10] != 'T' || len(s) < 16 || s[13] != ':' {
		return bad()
	}
	hour, hok := digits(s, 11, 2)
	minute, mok := digits(s, 14, 2)
	if !hok || !mok || hour > 23 || minute > 59 {
		return bad()
	}
	rest := s[16:]
	sec, nanos := 0, 0
	prec := time.Minute
	if strings.HasPrefix(rest, ":") {
		if sec, ok = digits(rest, 1, 2); !ok || sec > 60 {
			return bad()
		}
		rest = rest[3:]
		prec = time.Second
		if strings.HasPrefix(rest, ".") {
			n := 1
			for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
				n++
			}
			frac := n - 1
			if frac == 0 || frac > 9 {
				return bad()
			}
			f, _ := strconv.Atoi(rest[1:n])
			nanos = f * int(math.Pow10(9-frac))
			prec = max(time.Duration(math.Pow10(9-frac)), time.Microsecond)
			rest = rest[n:]
		}
	}
	offset, ok := zoneOffset(rest)
	if !ok {
		return bad()
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC).Add(-time.Duration(offset) * time.Second)
	lo = t.UnixMicro()
	return lo, t.Add(prec).UnixMicro(), nil
}

// digits reads n decimal digits at s[i:].
func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// zoneOffset reads a zone ("", "Z", "+hh:mm", "-hh:mm", FHIR's
// (Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))) as seconds east of UTC.
// No zone is UTC.
func zoneOffset(z string) (int, bool) {
	switch {
	case z == "" || z == "Z":
		return 0, true
	case len(z) != 6 || (z[0] != '+' && z[0] != '-') || z[3] != ':':
		return 0, false
	}
	h, hok := digits(z, 1, 2)
	m, mok := digits(z, 4, 2)
	if !hok || !mok || m > 59 || h > 14 || (h == 14 && m != 0) {
		return 0, false
	}
	off := h*3600 + m*60
	if z[0] == '-' {
		off = -off
	}
	return off, true
}

// NumberRange returns the value of a FHIR decimal and the range it stands
// for at its precision (FHIR R4 Search, "number"): "100" means
// [99.5, 100.5), "100.00" means [99.995, 100.005). The precision is that
// of the significant figures written, so "1e2", one significant figure,
// means [50, 150) — the R4 table's "[95 … 105)" for 1e2 contradicts its
// own "to 1 significant figure", and the significant-figure rule is the
// one that gives "1.0e2" [95, 105).
//
// s must follow the FHIR decimal (and JSON number) grammar,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and fit a float64.
// Where the precision is finer than a float64 can tell apart from the
// value, the range is the smallest one that still contains it, so that
// always lo <= v < hi.
func NumberRange(s string) (v, lo, hi float64, err error) {
	bad := func() (float64, float64, float64, error) { return 0, 0, 0, fmt.Errorf("not a valid number: %q", s) }
	decimals, exp, ok := decimalSyntax(s)
	if !ok {
		return bad()
	}
	v, err = strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return bad()
	}
	half := 0.5 * math.Pow10(exp-decimals)
	lo, hi = v-half, v+half
	if lo > v {
		lo = v
	}
	if hi <= v {
		hi = math.Nextafter(v, math.Inf(1))
	}
	return v, lo, hi, nil
}

// decimalSyntax checks s against the FHIR decimal grammar and returns the
// number of digits after its decimal point and its exponent.
func decimalSyntax(s string) (decimals, exp int, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == start || (s[start] == '0' && i-start > 1) {
		return 0, 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, 0, false
		}
		decimals = i - d
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		e := i
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, 0, false
		}
		n, err := strconv.Atoi(s[e:i])
		if err != nil {
			return 0, 0, false
		}
		exp = n
	}
	return decimals, exp, i == len(s)
}
