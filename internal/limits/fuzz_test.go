package limits_test

import (
	"errors"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/limits"
)

// FuzzParseRate: whatever the input, ParseRate either refuses it with
// ErrBadRate or returns a rate that can be enforced (emission interval of
// at least 1µs, refill period at most 7 days) and that survives a round
// trip through its text form.
func FuzzParseRate(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := limits.ParseRate(s)
		if err != nil {
			if !errors.Is(err, limits.ErrBadRate) {
				t.Fatalf("error %v is not ErrBadRate", err)
			}
			return
		}
		if !r.Off() && (r.Interval() < time.Microsecond || r.Period > 7*24*time.Hour || r.Count < 1) {
			t.Fatalf("%q gave an unenforceable rate %+v", s, r)
		}
		back, err := limits.ParseRate(r.String())
		if err != nil || back != r {
			t.Fatalf("%q → %v → %q → %v, %v", s, r, r.String(), back, err)
		}
	})
}

// FuzzParseConfig: a configuration either fails with ErrInvalidConfig or
// builds a Limiter (every accepted configuration is usable).
func FuzzParseConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := limits.ParseConfig(data)
		if err != nil {
			if !errors.Is(err, limits.ErrInvalidConfig) {
				t.Fatalf("error %v is not ErrInvalidConfig", err)
			}
			return
		}
		if _, err := limits.New(cfg, limits.NewMemoryStore()); err != nil {
			t.Fatalf("accepted configuration refused by New: %v", err)
		}
	})
}
