package cli

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// Two replicas over one database: a throttle one imposes, the other
// imposes at its next read of the shared standings; an administrator's
// release on the second lifts it on both.
func TestStandingsShared(t *testing.T) {
	ctx := context.Background()
	st := standingsStore(t)
	replica := func() (*detect.Engine, *standingSync) {
		s := newStandingSync(st, slog.New(slog.DiscardHandler))
		e, err := detect.New(detect.DefaultPolicy(), detect.Options{Location: time.UTC, OnStand: s.offer})
		if err != nil {
			t.Fatal(err)
		}
		s.d = e
		return e, s
	}
	a, sa := replica()
	b, sb := replica()
	peer := netip.MustParseAddr("192.0.2.50")
	now := time.Now()
	// A user of a patient app guesses ids on replica A until A throttles.
	var v detect.Verdict
	for i := range 40 {
		v = a.Observe(detect.Event{Time: now, Client: "myhealth", Class: detect.PatientApp, User: "Patient/u9", Token: "jti-9", Peer: peer,
			Interaction: detect.Read, Type: "Patient", ID: "guess-" + string(rune('a'+i%26)), Status: 404})
	}
	if v.Action < detect.ActionThrottle {
		t.Fatalf("replica A did not throttle: %+v", v)
	}
	if act := b.Check("myhealth", "Patient/u9", "jti-9", peer, time.Now()); act != detect.ActionNone {
		t.Fatalf("replica B refuses before any sharing: %v", act)
	}
	sa.pull(ctx) // A stores what it imposed
	sb.pull(ctx) // B reads it
	if act := b.Check("myhealth", "Patient/u9", "jti-9", peer, time.Now()); act != v.Action {
		t.Fatalf("replica B answers %v after reading the shared standings; want %v", act, v.Action)
	}
	// Another user of the same client is not affected on B.
	if act := b.Check("myhealth", "Patient/u10", "jti-10", netip.MustParseAddr("192.0.2.51"), time.Now()); act != detect.ActionNone {
		t.Fatalf("another user on B: %v", act)
	}
	// The administrator releases the client on B: lifted on B at once,
	// on A at its next read.
	if n := (syncedRelease{d: b, s: sb}).Release("myhealth"); n == 0 {
		t.Fatal("B released nothing")
	}
	if act := b.Check("myhealth", "Patient/u9", "jti-9", peer, time.Now()); act != detect.ActionNone {
		t.Fatalf("B after release: %v", act)
	}
	if act := a.Check("myhealth", "Patient/u9", "jti-9", peer, time.Now()); act == detect.ActionNone {
		t.Fatal("A lifted before reading the shared standings")
	}
	sa.pull(ctx)
	if act := a.Check("myhealth", "Patient/u9", "jti-9", peer, time.Now()); act != detect.ActionNone {
		t.Fatalf("A after reading the release: %v", act)
	}
	// And it stays lifted on B after B reads again.
	sb.pull(ctx)
	if act := b.Check("myhealth", "Patient/u9", "jti-9", peer, time.Now()); act != detect.ActionNone {
		t.Fatalf("B after reading again: %v", act)
	}
	if list, _ := st.ListRecords(ctx, kindStanding); len(list) != 0 {
		t.Fatalf("%d standings still stored after the release", len(list))
	}
}

// A stored standing never weakens one stored by another replica.
func TestStandingStoredNeverWeakens(t *testing.T) {
	ctx := context.Background()
	st := standingsStore(t)
	s := newStandingSync(st, slog.New(slog.DiscardHandler))
	later := time.Now().Add(time.Hour)
	s.write(ctx, detect.Standing{Scope: detect.ScopeClient, Key: "c", Client: "c", Action: detect.ActionQuarantine})
	s.write(ctx, detect.Standing{Scope: detect.ScopeClient, Key: "c", Client: "c", Action: detect.ActionThrottle, Until: later})
	r, err := st.GetRecord(ctx, kindStanding, "client|c")
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeStanding(r.Value)
	if err != nil || got.Action != detect.ActionQuarantine || !got.Until.IsZero() {
		t.Fatalf("stored %+v (%v); want the quarantine until released", got, err)
	}
	if _, err := decodeStanding([]byte(`{"scope":"galaxy","key":"c","action":"throttle"}`)); err == nil {
		t.Fatal("an unknown scope decoded")
	}
}

// A subject that keeps offending while it stands is shared once, not on
// every request; a stronger standing, or one after a release, again.
func TestStandingOfferedOnce(t *testing.T) {
	ctx := context.Background()
	st := standingsStore(t)
	s := newStandingSync(st, slog.New(slog.DiscardHandler))
	e, err := detect.New(detect.DefaultPolicy(), detect.Options{Location: time.UTC, OnStand: s.offer})
	if err != nil {
		t.Fatal(err)
	}
	s.d = e
	until := time.Now().Add(10 * time.Minute)
	throttle := detect.Standing{Scope: detect.ScopeToken, Key: "jti-5", Client: "app", Action: detect.ActionThrottle, Until: until}
	for range 1000 {
		s.offer(throttle)
	}
	if len(s.out) != 1 {
		t.Fatalf("%d queued for one standing offered 1000 times", len(s.out))
	}
	s.offer(detect.Standing{Scope: detect.ScopeToken, Key: "jti-5", Client: "app", Action: detect.ActionQuarantine})
	if len(s.out) != 2 {
		t.Fatalf("a stronger standing was not queued: %d", len(s.out))
	}
	s.pull(ctx) // stores both
	(syncedRelease{d: e, s: s}).ReleaseToken("jti-5")
	s.offer(throttle)
	if len(s.out) != 1 {
		t.Fatalf("after the release, the same standing again is not queued: %d", len(s.out))
	}
}

// standingsStore is a fresh SQLite store, the database replicas share.
func standingsStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// A shared standing that simply ended is not a release: the evidence
// counted here stays, so the next failure escalates as it would have.
func TestStandingEndedKeepsEvidence(t *testing.T) {
	ctx := context.Background()
	st := standingsStore(t)
	p, err := detect.ParsePolicy([]byte("ladder:\n  - {at: 1, action: alert}\n  - {at: 2, action: throttle, for: 10m}\n" +
		"signals:\n  peer_errors: {weight: 1, scope: peer, threshold: 2, half_life: 1h, empty_search: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := newStandingSync(st, slog.New(slog.DiscardHandler))
	e, err := detect.New(p, detect.Options{Location: time.UTC, OnStand: s.offer})
	if err != nil {
		t.Fatal(err)
	}
	s.d = e
	peer := netip.MustParseAddr("203.0.113.44")
	fail := func() detect.Verdict {
		return e.Observe(detect.Event{Time: time.Now(), Peer: peer, Interaction: detect.Read, Type: "Patient", ID: "x", Status: 401})
	}
	for range 3 {
		fail() // 3 failures: an alert, no throttle yet
	}
	// Another replica's short throttle on the address arrives, then ends.
	s.write(ctx, detect.Standing{Scope: detect.ScopePeer, Key: peer.String(), Action: detect.ActionThrottle, Until: time.Now().Add(150 * time.Millisecond)})
	s.pull(ctx)
	if a := e.Check("", "", "", peer, time.Now()); a != detect.ActionThrottle {
		t.Fatalf("the shared throttle is not in force: %v", a)
	}
	time.Sleep(250 * time.Millisecond)
	s.pull(ctx)
	if a := e.Check("", "", "", peer, time.Now()); a != detect.ActionNone {
		t.Fatalf("the ended throttle still stands: %v", a)
	}
	// Kept, four failures score about 2 (a little under, as they decay);
	// forgotten, one scores 0.5.
	if v := fail(); v.Score < 1.9 {
		t.Fatalf("the fourth failure scores %.2f (%v): the evidence was forgotten when the throttle ended", v.Score, v.Action)
	}
}
