package adminapi_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/adminapi"
	"github.com/wardenfhir/warden/internal/detect"
)

// TestAdminDetectionRelease: an administrator lifts a quarantine the
// detection imposed; without the admin token, with no name or two, or
// with detection off, nothing is lifted.
func TestAdminDetectionRelease(t *testing.T) {
	h, _, _ := newAPI(t)
	tok := string(adminToken)
	if w, _ := call(t, h, "POST", "/admin/detection/release", tok, `{"client":"app"}`); w.Code != 501 {
		t.Fatalf("detection off: %d", w.Code)
	}
	eng, err := detect.New(detect.DefaultPolicy(), detect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.(*adminapi.API).WithDetection(eng)
	// A token used from networks far apart is quarantined.
	now := time.Now()
	peer := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i % 2 * 100), 0, 1}) }
	for i := range 40 {
		eng.Observe(detect.Event{Time: now.Add(time.Duration(i) * time.Second), Client: "app", Class: detect.PatientApp, User: "Patient/p1",
			Token: "jti-1", Peer: peer(i), Interaction: detect.Read, Type: "Patient", ID: "p1", Patients: []string{"p1"}, Status: 200, Results: 1})
	}
	if a := eng.Check("app", "Patient/p1", "jti-1", peer(0), now.Add(41*time.Second)); a < detect.ActionStepUp {
		t.Fatalf("the replayed token stands at %v", a)
	}
	for _, c := range []struct {
		token, body string
		want        int
	}{
		{"", `{"token":"jti-1"}`, 401},
		{tok, `{}`, 400},
		{tok, `{"token":"jti-1","client":"app"}`, 400},
		{tok, `{"token":"jti-1","extra":1}`, 400},
		{tok, `{"peer":"10.0.0.999"}`, 400},
		{tok, `{"peer":"10.0.0.1","token":"jti-1"}`, 400},
	} {
		if w, _ := call(t, h, "POST", "/admin/detection/release", c.token, c.body); w.Code != c.want {
			t.Errorf("%q: %d, want %d", c.body, w.Code, c.want)
		}
	}
	if eng.Check("app", "Patient/p1", "jti-1", peer(0), now.Add(41*time.Second)) < detect.ActionStepUp {
		t.Fatal("a refused release lifted the action")
	}
	w, m := call(t, h, "POST", "/admin/detection/release", tok, `{"token":"jti-1"}`)
	if w.Code != 200 || m["released"].(float64) != 1 {
		t.Fatalf("release: %d %v", w.Code, m)
	}
	if a := eng.Check("app", "Patient/p1", "jti-1", peer(0), now.Add(41*time.Second)); a != detect.ActionNone {
		t.Errorf("after release: %v", a)
	}
	// An address throttled after a burst of unauthenticated failures is
	// lifted by naming it (an IPv6 one by any address of its /64).
	for _, p := range []string{"198.51.100.7", "2001:db8::7"} {
		addr := netip.MustParseAddr(p)
		for i := range 120 {
			eng.Observe(detect.Event{Time: now.Add(time.Duration(i) * time.Millisecond), Peer: addr, Interaction: detect.Read, Type: "Patient", ID: "x", Status: 401})
		}
		if a := eng.Check("", "", "", addr, now.Add(time.Second)); a < detect.ActionThrottle {
			t.Fatalf("%s stands at %v", p, a)
		}
		name := p
		if addr.Is6() {
			name = "2001:db8::ffff"
		}
		w, m := call(t, h, "POST", "/admin/detection/release", tok, `{"peer":"`+name+`"}`)
		if w.Code != 200 || m["released"].(float64) != 1 {
			t.Fatalf("release of %s: %d %v", name, w.Code, m)
		}
		if a := eng.Check("", "", "", addr, now.Add(time.Second)); a != detect.ActionNone {
			t.Errorf("%s after release: %v", p, a)
		}
		// The evidence went with it: the next good answer does not bring
		// the throttle back; new failures must earn it again.
		eng.Observe(detect.Event{Time: now.Add(time.Second), Peer: addr, Interaction: detect.Read, Type: "Metadata", Status: 200})
		if a := eng.Check("", "", "", addr, now.Add(2*time.Second)); a != detect.ActionNone {
			t.Errorf("%s throttled again by the evidence released: %v", p, a)
		}
	}
}
