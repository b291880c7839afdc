package consent

import (
	"regexp"
	"time"
)

// Period is a FHIR Period resolved to instants: it holds for t when
// Start ≤ t < End. A zero Start or End is unbounded on that side.
type Period struct {
	Start time.Time
	End   time.Time
}

// IsZero reports whether p constrains nothing.
func (p Period) IsZero() bool { return p.Start.IsZero() && p.End.IsZero() }

// Contains reports whether t falls in p (R4 Period: "start" is inclusive
// and "end" covers its whole precision, so an end of "2016-01-01" holds
// until the end of that day).
func (p Period) Contains(t time.Time) bool {
	if !p.Start.IsZero() && t.Before(p.Start) {
		return false
	}
	if !p.End.IsZero() && !t.Before(p.End) {
		return false
	}
	return true
}

// dateTimePattern is the R4 dateTime regular expression
// (datatypes.html#dateTime): a year, year-month, date, or a date and time
// with seconds and a time zone.
var dateTimePattern = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)

// parseDateTime parses an R4 dateTime into the interval [lo, hi) of
// instants it covers: "2016" is the whole year, "2016-05-11" the whole day
// (in UTC: a date carries no zone), a full dateTime one instant (hi = lo +
// 1ns). A leap second (":60") counts as the last instant of its minute.
func parseDateTime(s string) (lo, hi time.Time, ok bool) {
	if len(s) > 64 || !dateTimePattern.MatchString(s) {
		return lo, hi, false
	}
	var err error
	switch len(s) {
	case 4:
		lo, err = time.Parse("2006", s)
		hi = lo.AddDate(1, 0, 0)
	case 7:
		lo, err = time.Parse("2006-01", s)
		hi = lo.AddDate(0, 1, 0)
	case 10:
		lo, err = time.Parse("2006-01-02", s)
		hi = lo.AddDate(0, 0, 1)
	default:
		leap := s[17:19] == "60"
		if leap {
			s = s[:17] + "59" + s[19:]
		}
		lo, err = time.Parse(time.RFC3339Nano, s)
		if leap {
			lo = lo.Truncate(time.Second).Add(time.Second - time.Nanosecond)
		}
		hi = lo.Add(time.Nanosecond)
	}
	if err != nil { // a day the month does not have: 2015-02-30
		return time.Time{}, time.Time{}, false
	}
	return lo, hi, true
}
