package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. In the configuration it is written as a
// plain count ("1048576") or an integer with a unit: B, KiB, MiB, GiB
// (powers of 1024) or kB, MB, GB (powers of 1000).
type ByteSize int64

// Binary size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

var sizeUnits = []struct {
	suffix string
	factor ByteSize
}{
	// Longest suffixes first, so that "MiB" is not read as "B".
	{"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB},
	{"kB", 1000}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// errSizeSyntax is wrapped by every ByteSize parse failure.
var errSizeSyntax = errors.New("want a byte count such as 1048576, 512KiB or 10MiB")

// UnmarshalText parses a size written as a byte count with an optional unit.
func (s *ByteSize) UnmarshalText(text []byte) error {
	t := strings.TrimSpace(string(text))
	factor := ByteSize(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, factor = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.factor
			break
		}
	}
	if t == "" || t[0] < '0' || t[0] > '9' {
		return fmt.Errorf("%q: %w", text, errSizeSyntax)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return fmt.Errorf("%q: %w", text, errSizeSyntax)
	}
	if n > math.MaxInt64/int64(factor) {
		return fmt.Errorf("%q: too large", text)
	}
	*s = ByteSize(n) * factor
	return nil
}

// MarshalText writes the size with the largest binary unit that divides it
// exactly, so that UnmarshalText gives back the same value.
func (s ByteSize) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String returns the size as MarshalText writes it: "10MiB", "1500".
func (s ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		factor ByteSize
	}{{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if s != 0 && s%u.factor == 0 {
			return strconv.FormatInt(int64(s/u.factor), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}
