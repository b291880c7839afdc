package searchparam

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NormalizeString is the form in which string parameters are indexed and
// compared: Unicode-decomposed with combining marks removed, case-folded,
// with runs of white space and punctuation collapsed to one space and
// trimmed (FHIR R4 §3.1.1.4.7: "case- and accent-insensitive").
func NormalizeString(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r) || (unicode.IsPunct(r) && r != '\'' && r != '-'):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteString(strings.ToLower(string(r)))
	}
	return b.String()
}

// DateRange returns the half-open range [lo, hi) in Unix microseconds that
// a FHIR date, dateTime or instant covers at its precision: "2019" covers
// the whole year, "2019-05-03T10:00:00Z" one second, fractional seconds
// their digits. Values without a time zone are taken as UTC
// (FHIR R4 §2.24.0.4 leaves this to the server).
func DateRange(s string) (lo, hi int64, err error) {
	bad := func() (int64, int64, error) { return 0, 0, fmt.Errorf("not a valid FHIR date/time: %q", s) }
	if len(s) < 4 || len(s) > 40 {
		return bad()
	}
	var t time.Time
	var next func(time.Time) time.Time
	switch {
	case len(s) == 4:
		y, e := strconv.Atoi(s)
		if e != nil || y < 1 {
			return bad()
		}
		t = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		next = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	case len(s) == 7:
		t, err = time.Parse("2006-01", s)
		next = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	case len(s) == 10:
		t, err = time.Parse("2006-01-02", s)
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	default:
		if len(s) < 11 || s[10] != 'T' {
			return bad()
		}
		body, zone := splitZone(s[11:])
		layoutZone := "Z07:00"
		if zone == "" {
			layoutZone = ""
		}
		prec := time.Second
		layout := "2006-01-02T15:04:05"
		switch {
		case len(body) == 5: // hh:mm (allowed in search values)
			layout = "2006-01-02T15:04"
			prec = time.Minute
		case len(body) > 9 && body[8] == '.':
			digits := len(body) - 9
			if digits > 9 {
				return bad()
			}
			layout += "." + strings.Repeat("0", digits)
			prec = time.Duration(math.Pow10(9 - digits))
			if prec < time.Microsecond {
				prec = time.Microsecond
			}
		case len(body) != 8:
			return bad()
		}
		t, err = time.Parse(layout+layoutZone, s[:11]+body+zone)
		p := prec
		next = func(t time.Time) time.Time { return t.Add(p) }
	}
	if err != nil {
		return bad()
	}
	return t.UnixMicro(), next(t).UnixMicro(), nil
}

func splitZone(s string) (body, zone string) {
	if strings.HasSuffix(s, "Z") {
		return s[:len(s)-1], "Z"
	}
	if i := strings.LastIndexAny(s, "+-"); i >= 0 && len(s)-i == 6 {
		return s[:i], s[i:]
	}
	return s, ""
}

// NumberRange returns the value of a FHIR decimal and the range it stands
// for at its precision (FHIR R4 §3.1.1.4.4: "100" means [99.5, 100.5),
// "100.00" means [99.995, 100.005), "1e2" [95, 105)).
func NumberRange(s string) (v, lo, hi float64, err error) {
	v, err = strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, 0, fmt.Errorf("not a valid number: %q", s)
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, err = strconv.Atoi(s[i+1:])
		if err != nil {
			return 0, 0, 0, fmt.Errorf("not a valid number: %q", s)
		}
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	half := 0.5 * math.Pow10(exp-decimals)
	return v, v - half, v + half, nil
}
