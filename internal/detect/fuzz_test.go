package detect_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wardenfhir/warden/internal/detect"
)

// FuzzPolicy: a policy file either fails with ErrInvalidPolicy or gives a
// policy that New accepts, that survives a round trip through YAML
// unchanged, and whose engine scores a burst of hostile events without
// panicking and with a ladder action.
func FuzzPolicy(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := detect.ParsePolicy(data)
		if err != nil {
			if !errors.Is(err, detect.ErrInvalidPolicy) {
				t.Fatalf("error %v is not ErrInvalidPolicy", err)
			}
			return
		}
		e, err := detect.New(p, detect.Options{})
		if err != nil {
			t.Fatalf("accepted policy refused by New: %v", err)
		}
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back, err := detect.ParsePolicy(out)
		if err != nil {
			t.Fatalf("re-parsing the encoded policy: %v\n%s", err, out)
		}
		if fmt.Sprintf("%+v", back) != fmt.Sprintf("%+v", p) {
			t.Fatalf("round trip changed the policy:\n%+v\n%+v", p, back)
		}
		t0 := time.Date(2026, 3, 3, 3, 0, 0, 0, time.UTC)
		for i := 0; i < 40; i++ {
			v := e.Observe(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Client: "c", Class: detect.ClinicianApp, User: "Practitioner/f", Token: "t",
				Peer: netip.AddrFrom4([4]byte{10, byte(i % 2), 0, 1}), Interaction: detect.Read, Type: "Patient", ID: fmt.Sprint(i), Status: 404,
				Count: 5000, Includes: 9, Unrelated: []string{fmt.Sprint(i)}, SpoofedForwarded: true})
			if v.Action > detect.ActionQuarantine || v.Score < 0 {
				t.Fatalf("verdict %+v", v)
			}
		}
	})
}
