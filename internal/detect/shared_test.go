package detect_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
)

// What one replica imposes, another imposes too (Options.OnStand →
// Engine.Stand), and lifting it there lifts it only there.
func TestStandingTravels(t *testing.T) {
	b := engine(t, nil)
	var mu sync.Mutex
	var sent []detect.Standing
	a, err := detect.New(detect.DefaultPolicy(), detect.Options{Location: time.UTC, OnStand: func(s detect.Standing) {
		mu.Lock()
		sent = append(sent, s)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	// A burst of 404s from one user of a patient app: A steps in.
	at := t0
	var v detect.Verdict
	for i := range 40 {
		v = a.Observe(patientRead(at, "Patient/u1", "jti-1", home, "guess-"+string(rune('a'+i%26)), 404))
		at = at.Add(100 * time.Millisecond)
	}
	if v.Action < detect.ActionThrottle {
		t.Fatalf("A did not throttle a burst of 404s: %+v", v)
	}
	mu.Lock()
	got := append([]detect.Standing(nil), sent...)
	mu.Unlock()
	if len(got) == 0 {
		t.Fatal("OnStand was not called")
	}
	last := got[len(got)-1]
	if last.Key == "" || last.Action != v.Action || last.Scope == detect.ScopeActor {
		t.Fatalf("OnStand got %+v for verdict %+v", last, v)
	}
	// B has seen nothing of it, then is told.
	if act := b.Check("myhealth", "Patient/u1", "jti-1", home, at); act != detect.ActionNone {
		t.Fatalf("B refuses before being told: %v", act)
	}
	for _, s := range got {
		if !b.Stand(s, at) {
			t.Fatalf("B refused the standing %+v", s)
		}
	}
	if act := b.Check("myhealth", "Patient/u1", "jti-1", home, at); act != v.Action {
		t.Fatalf("B, told, answers %v; want %v", act, v.Action)
	}
	// B lifts what it was told; A still stands.
	for _, s := range got {
		b.Lift(s.Scope, s.Key)
	}
	if act := b.Check("myhealth", "Patient/u1", "jti-1", home, at); act != detect.ActionNone {
		t.Fatalf("B after Lift: %v", act)
	}
	if act := a.Check("myhealth", "Patient/u1", "jti-1", home, at); act != v.Action {
		t.Fatalf("A after B's Lift: %v", act)
	}
}

func TestStandRefusesWhatIsNotAStanding(t *testing.T) {
	e := engine(t, nil)
	later := t0.Add(time.Hour)
	for _, s := range []detect.Standing{
		{Scope: detect.ScopeClient, Key: "c", Action: detect.ActionAlert, Until: later},     // an alert stands nowhere
		{Scope: detect.ScopeClient, Key: "", Action: detect.ActionThrottle, Until: later},   // no subject
		{Scope: detect.ScopeClient, Key: "c", Action: detect.ActionThrottle, Until: t0},     // ended
		{Scope: detect.ScopePeer, Key: "not an address", Action: detect.ActionQuarantine},   // no peer
		{Scope: detect.ScopeActor, Key: "c", Action: detect.ActionQuarantine, Until: later}, // no such scope for a standing
		{Scope: detect.ScopeClient, Key: "c", Action: detect.Action(99), Until: later},      // no such action
	} {
		if e.Stand(s, t0) {
			t.Errorf("Stand(%+v) accepted", s)
		}
	}
	if act := e.Check("c", "", "", netip.Addr{}, t0); act != detect.ActionNone {
		t.Fatalf("something stands: %v", act)
	}
	// A peer quarantine "until released" from elsewhere still ends (peer_block_max).
	p := netip.MustParseAddr("198.51.100.4")
	if !e.Stand(detect.Standing{Scope: detect.ScopePeer, Key: p.String(), Action: detect.ActionQuarantine}, t0) {
		t.Fatal("peer standing refused")
	}
	if act := e.Check("", "", "", p, t0.Add(time.Minute)); act != detect.ActionQuarantine {
		t.Fatalf("peer: %v", act)
	}
	if act := e.Check("", "", "", p, t0.Add(detect.DefaultPolicy().PeerBlockMax+time.Second)); act != detect.ActionNone {
		t.Fatalf("peer standing did not end: %v", act)
	}
	// A weaker standing from elsewhere does not weaken a stronger one here.
	e.Stand(detect.Standing{Scope: detect.ScopeClient, Key: "c2", Action: detect.ActionQuarantine}, t0)
	e.Stand(detect.Standing{Scope: detect.ScopeClient, Key: "c2", Action: detect.ActionThrottle, Until: later}, t0)
	if act := e.Check("c2", "", "", netip.Addr{}, t0); act != detect.ActionQuarantine {
		t.Fatalf("quarantine weakened to %v", act)
	}
}
