package detect_test

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
)

var (
	t0      = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC) // a Tuesday, 10:00 site time
	home    = netip.MustParseAddr("10.1.2.3")
	outside = netip.MustParseAddr("203.0.113.9")
)

func engine(t testing.TB, edit func(*detect.Policy), sinks ...detect.Sink) *detect.Engine {
	t.Helper()
	p := detect.DefaultPolicy()
	if edit != nil {
		edit(&p)
	}
	e, err := detect.New(p, detect.Options{Location: time.UTC, Sinks: sinks})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// recorder is a Sink that keeps what it is sent.
type recorder struct {
	mu     sync.Mutex
	alerts []detect.Alert
}

func (r *recorder) Send(a detect.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
}

func (r *recorder) all() []detect.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]detect.Alert(nil), r.alerts...)
}

func clinicianRead(at time.Time, user, token string, peer netip.Addr, patient string, related bool) detect.Event {
	ev := detect.Event{Time: at, Client: "ehr", Class: detect.ClinicianApp, User: user, Token: token, Peer: peer,
		Interaction: detect.Read, Type: "Patient", ID: patient, Patients: []string{patient}, Status: 200, Results: 1}
	if !related {
		ev.Unrelated = []string{patient}
	}
	return ev
}

func patientRead(at time.Time, user, token string, peer netip.Addr, id string, status int) detect.Event {
	ev := detect.Event{Time: at, Client: "myhealth", Class: detect.PatientApp, User: user, Token: token, Peer: peer,
		Interaction: detect.Read, Type: "Patient", ID: id, Status: status}
	if status == 200 {
		ev.Patients, ev.Results = []string{id}, 1
	}
	return ev
}

func has(v detect.Verdict, name string) bool {
	for _, s := range v.Signals {
		if s.Name == name {
			return true
		}
	}
	return false
}

// ---- The ways around each control, first. ----

// An attacker who paces below every alert point is not flagged: this is
// the documented evasion (docs/DETECTION.md), bounded by the limits. The
// same evidence from two signals at once adds up and is flagged.
func TestJustUnderEachThreshold(t *testing.T) {
	e := engine(t, nil)
	// One 404 on another patient's id every 20 minutes: probing and
	// error counts decay faster than they grow.
	for i := 0; i < 30; i++ {
		v := e.Observe(patientRead(t0.Add(time.Duration(i)*20*time.Minute), "Patient/mallory", fmt.Sprintf("jti-%d", i), home, fmt.Sprintf("other-%d", i), 404))
		if v.Action != detect.ActionNone {
			t.Fatalf("a paced prober was flagged at probe %d: %+v", i, v)
		}
	}
	// A search disclosing two unrelated patients: half the unrelated
	// threshold, a partial signal short of an alert.
	two := func(at time.Time) detect.Event {
		ev := clinicianRead(at, "Practitioner/eve", "jti-e", home, "", false)
		ev.Interaction, ev.ID, ev.Results = detect.Search, "", 2
		ev.Patients = []string{"p-1", "p-2"}
		ev.Unrelated = ev.Patients
		return ev
	}
	e2 := engine(t, nil)
	v := e2.Observe(two(t0))
	if v.Action != detect.ActionNone || !has(v, detect.SigUnrelated) {
		t.Fatalf("two unrelated patients: %+v, want a partial unrelated signal and no action", v)
	}
	// The same user, at 03:00 (an hour clinicians are not seen): the two
	// partial signals add up to an alert.
	e3 := engine(t, nil)
	night := time.Date(2026, 3, 3, 3, 0, 0, 0, time.UTC)
	v = e3.Observe(two(night))
	if v.Action < detect.ActionAlert || !has(v, detect.SigUnrelated) || !has(v, detect.SigHours) {
		t.Fatalf("two unrelated patients at 03:00: %+v, want an alert from unrelated + hours", v)
	}
}

// Rotating tokens and peers does not shed user-level evidence: the
// quarantine lands on the user, so a fresh token from a fresh address is
// refused too.
func TestSpreadingAcrossTokensAndPeers(t *testing.T) {
	e := engine(t, nil)
	var v detect.Verdict
	for i := 0; i < 200 && v.Action < detect.ActionQuarantine; i++ {
		peer := netip.AddrFrom4([4]byte{198, 51, byte(i), 7})
		v = e.Observe(clinicianRead(t0.Add(time.Duration(i)*time.Second), "Practitioner/x", fmt.Sprintf("jti-%d", i), peer, fmt.Sprintf("p-%d", i), false))
	}
	if v.Action != detect.ActionQuarantine || v.Scope != detect.ScopeUser {
		t.Fatalf("token- and peer-rotating scraper: %+v, want a user quarantine", v)
	}
	if a := e.Check("ehr", "Practitioner/x", "jti-fresh", netip.MustParseAddr("192.0.2.200"), t0.Add(time.Hour)); a != detect.ActionQuarantine {
		t.Errorf("fresh token of the quarantined user: %v, want quarantine", a)
	}
	if a := e.Check("ehr", "Practitioner/colleague", "jti-c", home, t0.Add(time.Hour)); a != detect.ActionNone {
		t.Errorf("a colleague on the same client: %v, want none (the user, not the client, was quarantined)", a)
	}
}

// Many users of one client, each well under the per-user thresholds,
// together exceed what the client has been learned to do: the client is
// throttled.
func TestSpreadingAcrossUsers(t *testing.T) {
	e := engine(t, nil)
	// A learning day: 40 patient-app users an hour, each on their own patient.
	n := 0
	for h := 0; h < 24; h++ {
		for u := 0; u < 40; u++ {
			at := t0.Add(time.Duration(h)*time.Hour + time.Duration(u)*time.Minute)
			if v := e.Observe(patientRead(at, fmt.Sprintf("Patient/u%d", n), fmt.Sprintf("jti-%d", n), home, fmt.Sprintf("u%d", n), 200)); v.Action != detect.ActionNone {
				t.Fatalf("learning traffic flagged: %+v", v)
			}
			n++
		}
	}
	// Then 2,000 stolen patient accounts each read their one patient in
	// ten minutes.
	var v detect.Verdict
	start := t0.Add(25 * time.Hour)
	last := start
	for i := 0; i < 2000 && v.Action < detect.ActionThrottle; i++ {
		last = start.Add(time.Duration(i) * 300 * time.Millisecond)
		v = e.Observe(patientRead(start.Add(time.Duration(i)*300*time.Millisecond), fmt.Sprintf("Patient/s%d", i), fmt.Sprintf("jti-s%d", i), outside, fmt.Sprintf("s%d", i), 200))
		if has(v, detect.SigVelocity) {
			t.Fatalf("a single stolen account tripped the per-user signal: %+v", v)
		}
	}
	if v.Action < detect.ActionThrottle || v.Scope != detect.ScopeClient || !has(v, detect.SigClientVelocity) {
		t.Fatalf("spread across users: %+v, want a client throttle from client-velocity", v)
	}
	if a := e.Check("myhealth", "", "", netip.Addr{}, last.Add(time.Minute)); a < detect.ActionThrottle {
		t.Errorf("client standing %v, want throttle or stronger", a)
	}
}

// A clinician's busy day — a worklist of 30, 45 of their own patients
// in the day, a consult outside the panel, an on-call hour at 21:00 —
// is not flagged.
func TestBusyClinicianDay(t *testing.T) {
	e := engine(t, nil)
	user, tok := "Practitioner/busy", "jti-busy"
	start := time.Date(2026, 3, 3, 7, 30, 0, 0, time.UTC)
	list := make([]string, 30)
	for i := range list {
		list[i] = fmt.Sprintf("panel-%d", i)
	}
	check := func(v detect.Verdict, what string) {
		t.Helper()
		if v.Action != detect.ActionNone {
			t.Fatalf("%s: %+v", what, v)
		}
	}
	check(e.Observe(detect.Event{Time: start, Client: "ehr", Class: detect.ClinicianApp, User: user, Token: tok, Peer: home,
		Interaction: detect.Search, Type: "Patient", Count: 50, Patients: list, Status: 200, Results: 30}), "worklist")
	for i := 0; i < 45; i++ {
		at := start.Add(time.Duration(i) * 13 * time.Minute)
		p := fmt.Sprintf("panel-%d", i%60)
		check(e.Observe(clinicianRead(at, user, tok, home, p, true)), "panel read")
		for k := 0; k < 4; k++ {
			check(e.Observe(detect.Event{Time: at.Add(time.Duration(k+1) * 10 * time.Second), Client: "ehr", Class: detect.ClinicianApp, User: user, Token: tok, Peer: home,
				Interaction: detect.Search, Type: "Observation", Count: 100, Includes: 1, Patients: []string{p}, Status: 200, Results: k * 7}), "chart search")
		}
	}
	check(e.Observe(clinicianRead(start.Add(3*time.Hour), user, tok, home, "consult-1", false)), "consult")
	check(e.Observe(clinicianRead(time.Date(2026, 3, 3, 21, 0, 0, 0, time.UTC), user, "jti-night", netip.MustParseAddr("172.16.5.5"), "panel-3", true)), "on call")
}

// Forgetting subjects under memory pressure never lifts a quarantine,
// and tracked state stays bounded.
func TestEvictionKeepsQuarantine(t *testing.T) {
	e := engine(t, func(p *detect.Policy) {
		p.Capacity = detect.Capacity{Clients: 16, Users: 64, Tokens: 64, Peers: 16, Blocks: 1000}
	})
	var v detect.Verdict
	for i := 0; i < 50 && v.Action < detect.ActionQuarantine; i++ {
		v = e.Observe(patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/walker", "jti-w", outside, fmt.Sprint(1000+i), 404))
	}
	if v.Action != detect.ActionQuarantine {
		t.Fatalf("walker: %+v, want quarantine", v)
	}
	for i := 0; i < 20000; i++ {
		e.Observe(patientRead(t0.Add(time.Minute+time.Duration(i)*time.Millisecond), fmt.Sprintf("Patient/n%d", i), fmt.Sprintf("jti-n%d", i), home, fmt.Sprintf("n%d", i), 200))
	}
	clients, users, tokens, peers, _ := e.Tracked()
	if users > 64 || tokens > 64 || clients > 32 || peers > 32 {
		t.Errorf("tracked %d clients, %d users, %d tokens, %d peers: over capacity", clients, users, tokens, peers)
	}
	if a := e.Check("myhealth", "Patient/walker", "jti-w", outside, t0.Add(time.Hour)); a != detect.ActionQuarantine {
		t.Errorf("after eviction the walker is %v, want still quarantined", a)
	}
}

// A token table full of quarantines sends the next token quarantine to
// the user instead of dropping one.
func TestFullStandingTableEscalates(t *testing.T) {
	e := engine(t, func(p *detect.Policy) { p.Capacity.Blocks = 16 })
	replay := func(user, tok string) detect.Verdict {
		var v detect.Verdict
		for i := 0; i < 12; i++ {
			peer := home
			if i%2 == 1 {
				peer = outside
			}
			v = e.Observe(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Client: "myhealth", Class: detect.PatientApp, User: user, Token: tok, Peer: peer,
				Interaction: detect.Search, Type: "Observation", Status: 200, Results: 3})
		}
		return v
	}
	for i := 0; i < 16; i++ {
		if v := replay(fmt.Sprintf("Patient/v%d", i), fmt.Sprintf("jti-%d", i)); v.Action != detect.ActionQuarantine || v.Scope != detect.ScopeToken {
			t.Fatalf("replayed token %d: %+v, want a token quarantine", i, v)
		}
	}
	v := replay("Patient/v16", "jti-16")
	if v.Action != detect.ActionQuarantine || v.Scope != detect.ScopeUser {
		t.Fatalf("17th replayed token with a full table: %+v, want the quarantine on the user", v)
	}
	for i := 0; i < 16; i++ {
		if a := e.Check("myhealth", "", fmt.Sprintf("jti-%d", i), netip.Addr{}, t0.Add(time.Hour)); a != detect.ActionQuarantine {
			t.Errorf("token %d lost its quarantine: %v", i, a)
		}
	}
}

// ---- Each signal on its own. ----

func TestVelocityPatientApp(t *testing.T) {
	e := engine(t, nil)
	var v detect.Verdict
	for i := 0; i < 3; i++ {
		v = e.Observe(patientRead(t0.Add(time.Duration(i)*time.Minute), "Patient/g", "jti-g", home, fmt.Sprintf("kid-%d", i), 200))
	}
	if v.Action != detect.ActionNone {
		t.Fatalf("a guardian reading three records: %+v", v)
	}
	for i := 3; i < 10; i++ {
		v = e.Observe(patientRead(t0.Add(time.Duration(i)*time.Minute), "Patient/g", "jti-g", home, fmt.Sprintf("kid-%d", i), 200))
	}
	if v.Action < detect.ActionAlert || !has(v, detect.SigVelocity) || v.Scope != detect.ScopeUser {
		t.Fatalf("a patient-app user on ten patients: %+v", v)
	}
}

func TestProbingIsThrottledThenBlocked(t *testing.T) {
	e := engine(t, nil)
	var seen []detect.Action
	for i := 0; i < 12; i++ {
		v := e.Observe(patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/w", "jti-w", home, fmt.Sprint(5000+i), 404))
		if len(seen) == 0 || seen[len(seen)-1] != v.Action {
			seen = append(seen, v.Action)
		}
		if v.Action > detect.ActionNone && !has(v, detect.SigProbing) {
			t.Fatalf("probe %d flagged without the probing signal: %+v", i, v)
		}
	}
	want := []detect.Action{detect.ActionNone, detect.ActionAlert, detect.ActionStepUp, detect.ActionThrottle, detect.ActionQuarantine}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("actions over an ID walk: %v, want %v", seen, want)
	}
	// Random ids answered 200 (one's own resources) are not probing.
	e2 := engine(t, nil)
	for i := 0; i < 30; i++ {
		ev := patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/ok", "jti-ok", home, "self", 200)
		ev.Type, ev.ID = "Observation", fmt.Sprintf("%08x-obs", i*7919)
		if v := e2.Observe(ev); v.Action != detect.ActionNone {
			t.Fatalf("reading one's own observations: %+v", v)
		}
	}
}

func TestUnauthenticatedProbingBlocksThePeerForABoundedTime(t *testing.T) {
	e := engine(t, nil)
	var v detect.Verdict
	for i := 0; i < 40 && v.Action < detect.ActionQuarantine; i++ {
		v = e.Observe(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Peer: outside, Interaction: detect.Read, Type: "Patient", ID: fmt.Sprint(i), Status: 401})
	}
	if v.Action != detect.ActionQuarantine || v.Scope != detect.ScopePeer {
		t.Fatalf("unauthenticated walk: %+v, want a peer quarantine", v)
	}
	a, until := e.CheckUntil("", "", "", outside, t0.Add(time.Minute))
	if a != detect.ActionQuarantine || until.IsZero() || until.After(t0.Add(time.Minute+time.Hour)) {
		t.Errorf("peer standing %v until %v, want a quarantine of at most peer_block_max", a, until)
	}
	if a := e.Check("", "", "", outside, t0.Add(3*time.Hour)); a != detect.ActionNone {
		t.Errorf("peer still %v three hours later", a)
	}
	if a := e.Check("", "", "", home, t0.Add(time.Minute)); a != detect.ActionNone {
		t.Errorf("another peer is %v", a)
	}
}

func TestErrorBursts(t *testing.T) {
	e := engine(t, nil)
	var v detect.Verdict
	for i := 0; i < 10; i++ {
		v = e.Observe(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Client: "myhealth", Class: detect.PatientApp, User: "Patient/b", Token: "jti-b", Peer: home,
			Interaction: detect.Search, Type: "Observation", Status: 403})
	}
	if v.Action < detect.ActionAlert || !has(v, detect.SigErrors) {
		t.Fatalf("ten 403s in ten seconds: %+v", v)
	}
	// Empty searches weigh a tenth each: thirty of them are not an alert.
	e2 := engine(t, nil)
	for i := 0; i < 30; i++ {
		v = e2.Observe(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Client: "myhealth", Class: detect.PatientApp, User: "Patient/c", Token: "jti-c", Peer: home,
			Interaction: detect.Search, Type: "AllergyIntolerance", Status: 200})
	}
	if v.Action != detect.ActionNone {
		t.Fatalf("thirty empty searches: %+v", v)
	}
}

func TestBulk(t *testing.T) {
	many := make([]string, 50)
	for i := range many {
		many[i] = fmt.Sprintf("panel-%d", i)
	}
	bulk := func(class, user string) detect.Event {
		return detect.Event{Time: t0, Client: "c-" + class, Class: class, User: user, Token: "jti-" + class, Peer: home,
			Interaction: detect.Search, Type: "Observation", Count: 1000, Patients: many, Status: 200, Results: 1000}
	}
	e := engine(t, nil)
	if v := e.Observe(bulk(detect.ClinicianApp, "Practitioner/r")); v.Action < detect.ActionAlert || !has(v, detect.SigBulk) {
		t.Fatalf("first bulk search by a clinician: %+v", v)
	}
	if v := e.Observe(bulk(detect.Backend, "")); has(v, detect.SigBulk) {
		t.Fatalf("bulk from a backend client: %+v", v)
	}
	ev := patientRead(t0, "Patient/e", "jti-e", home, "e", 200)
	ev.Interaction, ev.Results = detect.Everything, 800
	if v := e.Observe(ev); v.Action != detect.ActionNone {
		t.Fatalf("a patient's own $everything: %+v", v)
	}
	// Bulk on two days that ended with no more than an alert is history:
	// the third day's is not flagged.
	e2 := engine(t, nil)
	for d := 0; d < 3; d++ {
		ev := bulk(detect.ClinicianApp, "Practitioner/reports")
		ev.Patients = many[:12]
		ev.Time = t0.Add(time.Duration(d) * 24 * time.Hour)
		v := e2.Observe(ev)
		if d == 2 && has(v, detect.SigBulk) {
			t.Fatalf("day 3 of a clinician's routine report: %+v", v)
		}
		if d < 2 && !has(v, detect.SigBulk) {
			t.Fatalf("day %d of a new bulk routine not scored: %+v", d+1, v)
		}
	}
}

func TestUnrelatedCountsDistinctPatients(t *testing.T) {
	e := engine(t, nil)
	var v detect.Verdict
	for i := 0; i < 30; i++ { // one consult patient, many requests
		v = e.Observe(clinicianRead(t0.Add(time.Duration(i)*time.Second), "Practitioner/c", "jti-c", home, "consult", false))
	}
	if v.Action != detect.ActionNone {
		t.Fatalf("thirty requests about one consult patient: %+v", v)
	}
	for i := 0; i < 4; i++ {
		v = e.Observe(clinicianRead(t0.Add(time.Minute+time.Duration(i)*time.Second), "Practitioner/c", "jti-c", home, fmt.Sprintf("stranger-%d", i), false))
	}
	if v.Action < detect.ActionAlert || !has(v, detect.SigUnrelated) || v.Scope != detect.ScopeUser {
		t.Fatalf("five unrelated patients in a minute: %+v", v)
	}
}

func TestHoursLearned(t *testing.T) {
	e := engine(t, nil)
	night := time.Date(2026, 3, 3, 3, 10, 0, 0, time.UTC)
	v := e.Observe(clinicianRead(night, "Practitioner/n", "jti-n", home, "p", true))
	if !has(v, detect.SigHours) || v.Action != detect.ActionNone {
		t.Fatalf("a clinician's first 03:00: %+v, want the hours signal alone (no action)", v)
	}
	// Ten nights on call later, 03:00 is this user's hour.
	for d := 1; d <= 10; d++ {
		e.Observe(clinicianRead(night.Add(time.Duration(d)*24*time.Hour), "Practitioner/n", "jti-n", home, "p", true))
	}
	if v := e.Observe(clinicianRead(night.Add(11*24*time.Hour+time.Hour), "Practitioner/n", "jti-n", home, "p", true)); has(v, detect.SigHours) {
		t.Fatalf("after ten nights: %+v", v)
	}
	// Patient apps are used at any hour.
	if v := e.Observe(patientRead(night, "Patient/owl", "jti-o", home, "owl", 200)); has(v, detect.SigHours) {
		t.Fatalf("a patient at 03:00: %+v", v)
	}
}

func TestNetworksQuarantineTheTokenOnly(t *testing.T) {
	e := engine(t, nil)
	ev := func(i int, peer netip.Addr) detect.Event {
		return detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Client: "myhealth", Class: detect.PatientApp, User: "Patient/v", Token: "jti-v", Peer: peer,
			Interaction: detect.Search, Type: "Observation", Patients: []string{"v"}, Status: 200, Results: 3}
	}
	// Wi-Fi to mobile data once, and a neighbour in the same /24: nothing.
	if v := e.Observe(ev(0, home)); v.Action != detect.ActionNone {
		t.Fatal(v)
	}
	if v := e.Observe(ev(1, netip.MustParseAddr("10.1.2.99"))); v.Action != detect.ActionNone {
		t.Fatalf("same /24: %+v", v)
	}
	if v := e.Observe(ev(2, netip.MustParseAddr("100.64.1.1"))); v.Action != detect.ActionNone || v.Score != 0 {
		t.Fatalf("one network switch: %+v", v)
	}
	var v detect.Verdict
	for i := 3; i < 12; i++ {
		peer := home
		if i%2 == 0 {
			peer = outside
		}
		v = e.Observe(ev(i, peer))
	}
	if v.Action != detect.ActionQuarantine || v.Scope != detect.ScopeToken || !has(v, detect.SigNetworks) {
		t.Fatalf("a token bouncing between networks: %+v", v)
	}
	if a := e.Check("myhealth", "Patient/v", "jti-v", home, t0.Add(time.Minute)); a != detect.ActionQuarantine {
		t.Errorf("replayed token: %v", a)
	}
	if a := e.Check("myhealth", "Patient/v", "jti-new", home, t0.Add(time.Minute)); a != detect.ActionNone {
		t.Errorf("the user's next token: %v, want none", a)
	}
	// IPv6: a /48 is one network.
	e6 := engine(t, nil)
	for i, a := range []string{"2001:db8:1:1::1", "2001:db8:1:ff::2", "2001:db8:1:1::3"} {
		if v := e6.Observe(ev(i, netip.MustParseAddr(a))); v.Score != 0 {
			t.Fatalf("IPv6 within one /48: %+v", v)
		}
	}
}

func TestSpoofedForwarding(t *testing.T) {
	e := engine(t, nil)
	ev := patientRead(t0, "Patient/s", "jti-s", home, "s", 200)
	ev.SpoofedForwarded = true
	v := e.Observe(ev)
	if !has(v, detect.SigSpoofedForwarding) || v.Action != detect.ActionNone {
		t.Fatalf("one spoofed X-Forwarded-For: %+v, want the signal and no action", v)
	}
	for _, s := range v.Signals {
		if s.Name == detect.SigSpoofedForwarding && s.Scope != detect.ScopePeer {
			t.Errorf("spoofed-forwarding scope %v, want peer", s.Scope)
		}
	}
}

// ---- Alerts, release, step-up, policy switches. ----

func TestAlertsCarryNoPHIAndAreNotRepeated(t *testing.T) {
	rec := &recorder{}
	e := engine(t, nil, rec)
	var patients []string
	for i := 0; i < 300; i++ {
		p := fmt.Sprintf("9f1c2e-patient-%d", i)
		patients = append(patients, p)
		e.Observe(patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/9f1c2e-self", "jti-p", home, p, 200))
	}
	alerts := rec.all()
	if len(alerts) == 0 || len(alerts) > 8 {
		t.Fatalf("%d alerts for one scraping run, want a few (one per escalation, then every realert)", len(alerts))
	}
	for _, a := range alerts {
		text := fmt.Sprintf("%+v", a)
		for _, p := range append(patients, "9f1c2e-self") {
			if strings.Contains(text, p) {
				t.Fatalf("alert holds patient id %q: %s", p, text)
			}
		}
		if a.User != "Patient/*" {
			t.Errorf("alert user %q, want the patient user masked", a.User)
		}
		if a.Token != "jti-p" || a.Client != "myhealth" {
			t.Errorf("alert %+v does not name the token and client", a)
		}
	}
}

func TestReleaseAndStepUp(t *testing.T) {
	e := engine(t, nil)
	var v detect.Verdict
	for i := 0; i < 300 && v.Action < detect.ActionQuarantine; i++ {
		v = e.Observe(detect.Event{Time: t0.Add(time.Duration(i) * time.Second), Client: "scraper", Class: detect.ClinicianApp, Token: "jti-s", Peer: outside,
			Interaction: detect.Read, Type: "Patient", ID: fmt.Sprint(i), Status: 404})
	}
	// A client acting with no user: its own evidence lands on the client.
	if v.Action != detect.ActionQuarantine || v.Scope != detect.ScopeClient {
		t.Fatalf("a user-less client walking ids: %+v", v)
	}
	if a := e.Check("scraper", "", "jti-other", home, t0.Add(24*time.Hour)); a != detect.ActionQuarantine {
		t.Fatalf("quarantined client: %v", a)
	}
	if n := e.Release("scraper"); n < 1 {
		t.Fatalf("Release lifted %d", n)
	}
	if a := e.Check("scraper", "", "jti-s", outside, t0.Add(24*time.Hour)); a != detect.ActionNone {
		t.Fatalf("after Release: %v", a)
	}

	// A step-up lands on the token: the next token is clean.
	e2 := engine(t, nil)
	for i := 0; i < 4; i++ {
		v = e2.Observe(patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/w", "jti-w", home, fmt.Sprint(7000+i), 404))
	}
	if v.Action != detect.ActionStepUp || v.Scope != detect.ScopeToken {
		t.Fatalf("four probes: %+v, want a token step-up", v)
	}
	if a := e2.Check("myhealth", "Patient/w", "jti-w", home, t0.Add(time.Minute)); a != detect.ActionStepUp {
		t.Errorf("stepped-up token: %v", a)
	}
	if a := e2.Check("myhealth", "Patient/w", "jti-after-step-up", home, t0.Add(time.Minute)); a != detect.ActionNone {
		t.Errorf("new token after the step-up: %v", a)
	}
	if !e2.ReleaseToken("jti-w") || e2.Check("myhealth", "", "jti-w", home, t0.Add(time.Minute)) != detect.ActionNone {
		t.Error("ReleaseToken did not lift the step-up")
	}
}

// Hostile or careless events (no time, a time before 1970, no peer,
// unknown class and interaction) are scored without a panic.
func TestOddEvents(t *testing.T) {
	e := engine(t, nil)
	for _, ev := range []detect.Event{
		{},
		{Time: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), Client: "c", User: "u", Token: "t", Patients: []string{"p"}, Status: 404, Interaction: detect.Read, ID: "1"},
		{Time: t0, Client: "c", Class: "robot", Interaction: "dance", Type: "Patient", ID: strings.Repeat("9", 40), Status: 404},
		{Time: t0, Peer: netip.MustParseAddr("::ffff:10.0.0.1"), Token: "t", SpoofedForwarded: true},
	} {
		e.Observe(ev)
	}
}

func TestDisabled(t *testing.T) {
	e := engine(t, func(p *detect.Policy) { p.Disabled = true })
	for i := 0; i < 50; i++ {
		if v := e.Observe(patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/w", "jti-w", home, fmt.Sprint(i), 404)); v.Action != detect.ActionNone || len(v.Signals) != 0 {
			t.Fatalf("disabled engine scored: %+v", v)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	e := engine(t, nil, &recorder{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				user := fmt.Sprintf("Patient/g%d-%d", g, i%7)
				e.Observe(patientRead(t0.Add(time.Duration(i)*time.Millisecond), user, fmt.Sprintf("jti-%d", i%13), home, fmt.Sprint(i), 200+204*(i%2)))
				e.Check("myhealth", user, fmt.Sprintf("jti-%d", i%13), home, t0)
				if i%500 == 0 {
					e.Release("myhealth")
				}
			}
		}()
	}
	wg.Wait()
}

func TestCheckAllocatesNothing(t *testing.T) {
	e := engine(t, nil)
	for i := 0; i < 12; i++ { // some standing actions, so Check takes the slow path
		e.Observe(patientRead(t0.Add(time.Duration(i)*time.Second), "Patient/w", "jti-w", home, fmt.Sprint(5000+i), 404))
	}
	if n := testing.AllocsPerRun(1000, func() { e.Check("myhealth", "Patient/x", "jti-x", outside, t0) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}

// ---- The policy file. ----

func TestPolicyRefused(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown key", "signals:\n  velocty: {weight: 1}\n", "velocty"},
		{"repeated key", "realert: 1m\nrealert: 2m\n", "realert"},
		{"negative weight", "signals:\n  probing: {weight: -1}\n", "signals.probing.weight"},
		{"NaN weight", "signals:\n  bulk: {weight: .nan}\n", "signals.bulk.weight"},
		{"unknown scope", "signals:\n  networks: {scope: galaxy}\n", "signals.networks.scope"},
		{"zero threshold", "signals:\n  errors: {threshold: 0}\n", "signals.errors.threshold"},
		{"zero half-life", "signals:\n  unrelated: {half_life: 0s}\n", "signals.unrelated.half_life"},
		{"empty ladder", "ladder: []\n", "ladder"},
		{"unknown action", "ladder: [{at: 1, action: nuke}]\n", "ladder[0].action"},
		{"ladder not rising", "ladder: [{at: 2, action: alert}, {at: 1, action: throttle, for: 1m}]\n", "ladder[1]"},
		{"ladder action not rising", "ladder: [{at: 1, action: throttle, for: 1m}, {at: 2, action: alert}]\n", "ladder[1]"},
		{"throttle without duration", "ladder: [{at: 1, action: throttle}]\n", "ladder[0].for"},
		{"alert with duration", "ladder: [{at: 1, action: alert, for: 1m}]\n", "ladder[0].for"},
		{"tiny capacity", "capacity: {users: 3}\n", "capacity.users"},
		{"unknown class", "default_class: robot\n", "default_class"},
		{"bulk class unknown", "signals:\n  bulk: {classes: [robot]}\n", "signals.bulk.classes[0]"},
		{"bad hours", "signals:\n  hours: {clinician_day_start: 20, clinician_day_end: 8}\n", "signals.hours.clinician_day_end"},
		{"bad prefix", "signals:\n  networks: {ipv4_prefix: 40}\n", "signals.networks.ipv4_prefix"},
		{"floor below 1", "signals:\n  velocity: {floor: {patient-app: 0}}\n", "signals.velocity.floor.patient-app"},
		{"not YAML", "{{{", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := detect.ParsePolicy([]byte(c.yaml))
			if !errors.Is(err, detect.ErrInvalidPolicy) {
				t.Fatalf("ParsePolicy = %v, want ErrInvalidPolicy", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

func TestPolicyDefaultsAndOverlay(t *testing.T) {
	p, err := detect.ParsePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, detect.DefaultPolicy()) {
		t.Error("an empty file is not the default policy")
	}
	p, err = detect.ParsePolicy([]byte("signals:\n  probing:\n    threshold: 12\nladder:\n  - {at: 1, action: alert}\n  - {at: 4, action: quarantine, for: 2h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := detect.DefaultPolicy()
	if p.Signals.Probing.Threshold != 12 || p.Signals.Probing.Weight != d.Signals.Probing.Weight || len(p.Ladder) != 2 || p.Ladder[1].For != 2*time.Hour {
		t.Errorf("overlay: %+v", p)
	}
	if _, err := detect.New(p, detect.Options{}); err != nil {
		t.Error(err)
	}
}
