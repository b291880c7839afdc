package limits

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrBadRate is returned for a rate that cannot be parsed or enforced.
var ErrBadRate = errors.New("limits: invalid rate")

// Rate is a number of cost units per period, written "600/min", "100/s",
// "5000/h", "20000/day" or with a Go duration as the period ("50/10s").
// The zero Rate, written "off", is no limit.
type Rate struct {
	Count  int
	Period time.Duration
}

const (
	maxRateCount  = 1_000_000_000
	maxRatePeriod = 7 * 24 * time.Hour
)

var rateUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour,
}

// ParseRate parses "N/unit" or "N/duration" (or "off"). The count is a
// whole number from 1 to 10^9, the period at most 7 days, and one cost
// unit's emission interval (period / count) at least 1µs, the resolution
// the stores keep time in.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return Rate{}, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%w: %q: write COUNT/PERIOD, e.g. 600/min, 100/s, 50/10s, or off", ErrBadRate, clip(s))
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 1 || n > maxRateCount {
		return Rate{}, fmt.Errorf("%w: %q: the count must be a whole number from 1 to %d", ErrBadRate, clip(s), maxRateCount)
	}
	unit = strings.TrimSpace(unit)
	period, ok := rateUnits[unit]
	if !ok {
		period, err = time.ParseDuration(unit)
		if err != nil {
			return Rate{}, fmt.Errorf("%w: %q: the period must be s, min, h, day or a duration such as 10s", ErrBadRate, clip(s))
		}
	}
	r := Rate{Count: n, Period: period}
	if err := r.check(); err != nil {
		return Rate{}, fmt.Errorf("%w: %q: %v", ErrBadRate, clip(s), err)
	}
	return r, nil
}

func (r Rate) check() error {
	switch {
	case r.Off():
		return nil
	case r.Count < 1 || r.Count > maxRateCount:
		return fmt.Errorf("the count must be from 1 to %d", maxRateCount)
	case r.Period <= 0:
		return errors.New("the period must be positive")
	case r.Period > maxRatePeriod:
		return fmt.Errorf("the period must be at most %s", maxRatePeriod)
	case r.Interval() < time.Microsecond:
		return errors.New("more than one unit per microsecond cannot be enforced")
	}
	return nil
}

// clip keeps error messages short when the input is long.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Off reports whether r is no limit.
func (r Rate) Off() bool { return r.Count == 0 && r.Period == 0 }

// Interval is the GCRA emission interval: the time one cost unit takes to
// come back, truncated to the microsecond.
func (r Rate) Interval() time.Duration {
	if r.Count <= 0 {
		return 0
	}
	return (r.Period / time.Duration(r.Count)).Truncate(time.Microsecond)
}

// String writes r the way ParseRate reads it.
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"day", 24 * time.Hour}, {"h", time.Hour}, {"min", time.Minute}, {"s", time.Second}} {
		if r.Period == u.d {
			return strconv.Itoa(r.Count) + "/" + u.name
		}
	}
	return strconv.Itoa(r.Count) + "/" + r.Period.String()
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseRate.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// UnmarshalYAML reads a rate from one YAML scalar and names its line.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %w: write one value such as 600/min", n.Line, ErrBadRate)
	}
	v, err := ParseRate(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*r = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
