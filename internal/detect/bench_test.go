package detect_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
)

// BenchmarkObserve: a mix of the normal traffic of 1,000 patient-app
// users and 100 clinicians (reads and searches of one patient each).
func BenchmarkObserve(b *testing.B) {
	e := engine(b, nil)
	evs := make([]detect.Event, 4096)
	for i := range evs {
		if i%5 == 0 {
			u := i % 100
			evs[i] = clinicianRead(time.Time{}, fmt.Sprintf("Practitioner/%d", u), fmt.Sprintf("jti-c%d", u), home, fmt.Sprintf("p-%d", i%700), true)
		} else {
			u := i % 1000
			evs[i] = patientRead(time.Time{}, fmt.Sprintf("Patient/%d", u), fmt.Sprintf("jti-%d", u), home, fmt.Sprintf("%d", u), 200)
			if i%3 == 0 {
				evs[i].Interaction, evs[i].Type, evs[i].ID, evs[i].Results = detect.Search, "Observation", "", 12
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%len(evs)]
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		e.Observe(ev)
	}
}

// BenchmarkCheck: the common case (nothing stands) and with standing
// actions in force for others.
func BenchmarkCheck(b *testing.B) {
	b.Run("nothing-stands", func(b *testing.B) {
		e := engine(b, nil)
		b.ReportAllocs()
		for b.Loop() {
			e.Check("myhealth", "Patient/a", "jti-a", home, t0)
		}
	})
	b.Run("standing", func(b *testing.B) {
		e := engine(b, nil)
		for i := 0; i < 12; i++ {
			e.Observe(patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/w", "jti-w", home, fmt.Sprint(5000+i), 404))
		}
		peer := netip.MustParseAddr("2001:db8::1")
		b.ReportAllocs()
		for b.Loop() {
			e.Check("myhealth", "Patient/a", "jti-a", peer, t0)
		}
	})
}
