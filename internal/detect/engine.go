package detect

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// The signal names, as Signal.Name, metrics labels and docs/DETECTION.md
// spell them.
const (
	SigVelocity          = "velocity"
	SigClientVelocity    = "client-velocity"
	SigProbing           = "probing"
	SigErrors            = "errors"
	SigClientErrors      = "client-errors"
	SigPeerErrors        = "peer-errors"
	SigBulk              = "bulk"
	SigUnrelated         = "unrelated"
	SigHours             = "hours"
	SigNetworks          = "networks"
	SigSpoofedForwarding = "spoofed-forwarding"
)

// SignalNames lists every signal, in a fixed order.
var SignalNames = []string{SigVelocity, SigClientVelocity, SigProbing, SigErrors, SigClientErrors, SigPeerErrors,
	SigBulk, SigUnrelated, SigHours, SigNetworks, SigSpoofedForwarding}

const (
	iVelocity = iota
	iClientVelocity
	iProbing
	iErrors
	iClientErrors
	iPeerErrors
	iBulk
	iUnrelated
	iHours
	iNetworks
	iSpoofed
	nSignals
)

// Options are the engine's surroundings, as opposed to its Policy.
type Options struct {
	// Location is the site's time zone, for the hours signal; nil is UTC.
	Location *time.Location
	// Sinks receive the alerts (audit, webhook, metrics).
	Sinks []Sink
	// OnStand, when set, is told of every step-up, throttle or quarantine
	// this engine imposes, with the subject it landed on, so that other
	// replicas can impose it too (Engine.Stand). It is called on the
	// request path: it must not block.
	OnStand func(Standing)
}

// Engine scores requests and keeps what is in force. It is safe for
// concurrent use.
type Engine struct {
	p       Policy
	loc     *time.Location
	sinks   []Sink
	onStand func(Standing)
	seed    maphash.Seed
	steps   []step
	weight  [nSignals]float64
	scope   [nSignals]Scope
	bulkOK  [3]bool // by classIndex

	clients, users *table[string, subject]
	peers          *table[netip.Addr, subject]
	tokens         *table[string, tokenState]
	stand          *standings

	alertMu sync.Mutex
	alerted map[alertKey]alertMark
}

type step struct {
	at  float64
	act Action
	dur time.Duration
}

type alertKey struct {
	scope Scope
	key   string
	peer  netip.Addr
}

type alertMark struct {
	act Action
	at  int64
}

// subject is what is learned about one user, client or peer address.
type subject struct {
	seen int64

	dist   *distinct
	est    float64 // dist's estimate, as of estIdx
	estIdx int64
	base   baseline

	probe  *probeRing
	probeN decay
	errs   decay
	reqs   decay // client: requests, for the error share
	cerrs  decay // client: error answers

	bulkN       decay
	bulkDays    int32
	bulkDay     int64
	bulkFlagged bool

	unrel     decay
	unrelRing [8]uint64
	unrelPos  uint8

	hours       [24]float32
	hoursTotal  float32
	hourAt      int64 // the Unix hour in progress, not yet learned
	hourLocal   int8
	hourFlagged bool

	spoof decay
}

// tokenState is what is learned about one access token.
type tokenState struct {
	seen     int64
	net      netip.Prefix
	switches int32
}

// New returns an Engine enforcing p, which must pass Validate.
func New(p Policy, o Options) (*Engine, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{p: p, loc: o.Location, sinks: slices.Clone(o.Sinks), onStand: o.OnStand, seed: maphash.MakeSeed(), alerted: map[alertKey]alertMark{}}
	if e.loc == nil {
		e.loc = time.UTC
	}
	for _, st := range p.Ladder {
		a, _ := parseAction(st.Action)
		e.steps = append(e.steps, step{at: st.At, act: a, dur: st.For})
	}
	sg := p.Signals
	for i, ws := range []struct {
		w float64
		s string
	}{
		iVelocity: {sg.Velocity.Weight, sg.Velocity.Scope}, iClientVelocity: {sg.ClientVelocity.Weight, sg.ClientVelocity.Scope},
		iProbing: {sg.Probing.Weight, sg.Probing.Scope}, iErrors: {sg.Errors.Weight, sg.Errors.Scope},
		iClientErrors: {sg.ClientErrors.Weight, sg.ClientErrors.Scope}, iPeerErrors: {sg.PeerErrors.Weight, sg.PeerErrors.Scope},
		iBulk: {sg.Bulk.Weight, sg.Bulk.Scope}, iUnrelated: {sg.Unrelated.Weight, sg.Unrelated.Scope},
		iHours: {sg.Hours.Weight, sg.Hours.Scope}, iNetworks: {sg.Networks.Weight, sg.Networks.Scope},
		iSpoofed: {sg.SpoofedForwarding.Weight, sg.SpoofedForwarding.Scope},
	} {
		e.weight[i] = ws.w
		e.scope[i], _ = parseScope(ws.s)
	}
	for _, c := range sg.Bulk.Classes {
		e.bulkOK[classIndex(c)] = true
	}
	seen := func(s *subject) int64 { return s.seen }
	e.clients = newTable[string, subject](p.Capacity.Clients, seen)
	e.users = newTable[string, subject](p.Capacity.Users, seen)
	e.peers = newTable[netip.Addr, subject](p.Capacity.Peers, seen)
	e.tokens = newTable[string, tokenState](p.Capacity.Tokens, func(t *tokenState) int64 { return t.seen })
	e.stand = newStandings(p.Capacity.Blocks)
	return e, nil
}

func classIndex(c string) int {
	switch c {
	case ClinicianApp:
		return 1
	case Backend:
		return 2
	default:
		return 0
	}
}

func (e *Engine) hash(s string) uint64 { return maphash.String(e.seed, s) }

func (e *Engine) hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	return maphash.Bytes(e.seed, b[:])
}

func ns(d time.Duration) float64 { return float64(d) }

// eventFacts are the per-request facts the signals share.
type eventFacts struct {
	now      int64
	class    string
	patients []uint64 // keyed hashes of ev.Patients
	errPts   float64  // error points of this answer (actor signal)
	peerPts  float64  // error points for the peer signal
	failed   bool     // 401, 403 or 404
	bulk     float64  // bulk points of this request
	actor    Scope    // what ScopeActor means for this event
}

func isFailure(status int) bool { return status == 401 || status == 403 || status == 404 }

// Observe updates the state with one finished request and returns what
// the policy decides now. A step-up, throttle or quarantine it decides
// stands (Check answers it) for the ladder step's duration.
func (e *Engine) Observe(ev Event) Verdict {
	if e.p.Disabled {
		return Verdict{}
	}
	sg := &e.p.Signals
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	f := eventFacts{now: max(ev.Time.UnixNano(), 1), class: ev.Class}
	if f.class != PatientApp && f.class != ClinicianApp && f.class != Backend {
		f.class = e.p.DefaultClass
	}
	var hb [8]uint64
	f.patients = hb[:0]
	for _, p := range ev.Patients {
		f.patients = append(f.patients, e.hash(p))
	}
	f.failed = isFailure(ev.Status)
	if f.failed {
		f.errPts, f.peerPts = 1, 1
	} else if ev.Interaction == Search && ev.Results == 0 && ev.Status < 300 {
		f.errPts, f.peerPts = sg.Errors.EmptySearch, sg.PeerErrors.EmptySearch
	}
	if ev.Status < 300 && (ev.Interaction == Export || ev.Interaction == Everything ||
		ev.Count >= sg.Bulk.LargeCount || ev.Includes >= sg.Bulk.ManyIncludes) && !e.bulkOK[classIndex(f.class)] {
		f.bulk = 1
		if ev.Interaction != Export && len(ev.Patients) <= 1 {
			f.bulk = sg.Bulk.SinglePatient
		}
	}
	switch {
	case ev.User != "":
		f.actor = ScopeUser
	case ev.Client != "":
		f.actor = ScopeClient
	default:
		f.actor = ScopePeer
	}

	var arr [nSignals]Signal
	sigs := arr[:0]

	if ev.Client != "" {
		c, pt := e.clients.lock(ev.Client, e.hash(ev.Client))
		c.seen = f.now
		sigs = e.clientSignals(sigs, c, &f)
		if f.actor == ScopeClient {
			sigs = e.actorSignals(sigs, c, &ev, &f)
		}
		pt.mu.Unlock()
	}
	if ev.User != "" {
		u, pt := e.users.lock(ev.User, e.hash(ev.User))
		u.seen = f.now
		sigs = e.actorSignals(sigs, u, &ev, &f)
		pt.mu.Unlock()
	}
	if ev.Token != "" && ev.Peer.IsValid() {
		t, pt := e.tokens.lock(ev.Token, e.hash(ev.Token))
		t.seen = f.now
		sigs = e.networkSignal(sigs, t, ev.Peer, &f)
		pt.mu.Unlock()
	}
	if ev.Peer.IsValid() && (f.actor == ScopePeer || ev.SpoofedForwarded) {
		k := peerKey(ev.Peer)
		p, pt := e.peers.lock(k, e.hashAddr(k))
		p.seen = f.now
		if f.actor == ScopePeer {
			sigs = e.actorSignals(sigs, p, &ev, &f)
			v := p.errs.add(f.now, f.peerPts, ns(sg.PeerErrors.HalfLife))
			if s := v / sg.PeerErrors.Threshold; s >= e.p.PartialFrom {
				sigs = e.signal(sigs, iPeerErrors, s, &f, fmt.Sprintf("%.1f unauthenticated error answers from this address (threshold %.0f)", v, sg.PeerErrors.Threshold))
			}
		}
		sp := sg.SpoofedForwarding
		x := 0.0
		if ev.SpoofedForwarded {
			x = 1
		}
		if v := p.spoof.add(f.now, x, ns(sp.HalfLife)); ev.SpoofedForwarded {
			if s := v / sp.Threshold; s >= e.p.PartialFrom {
				sigs = e.signal(sigs, iSpoofed, s, &f, fmt.Sprintf("%.1f requests with forwarding headers from an untrusted peer (threshold %.0f)", v, sp.Threshold))
			}
		}
		pt.mu.Unlock()
	}

	if len(sigs) == 0 {
		return Verdict{}
	}
	// Evidence about the whole client (its aggregates) and evidence about
	// this request's caller (user, token, peer) are summed apart: one
	// user's near misses never add to another's through the client.
	v := Verdict{Signals: slices.Clone(sigs)}
	var sum [2]float64
	var top [2]Signal
	for _, s := range sigs {
		g := 0
		if s.Name == SigClientVelocity || s.Name == SigClientErrors {
			g = 1
		}
		sum[g] += s.Score
		if s.Score > top[g].Score {
			top[g] = s
		}
	}
	clientWide := sum[1] > sum[0]
	if clientWide {
		v.Score, v.Scope = sum[1], top[1].Scope
	} else {
		v.Score, v.Scope = sum[0], top[0].Scope
	}
	var st step
	for _, s := range e.steps {
		if v.Score >= s.at {
			st = s
		}
	}
	v.Action = st.act
	if v.Action >= ActionAlert {
		e.flag(&ev, clientWide || f.actor == ScopeClient, v.Action)
		e.impose(&ev, &v, st, f.now)
	}
	return v
}

// signal appends a signal of the given strength (observed/threshold).
func (e *Engine) signal(sigs []Signal, i int, strength float64, f *eventFacts, detail string) []Signal {
	sc := e.scope[i]
	if sc == ScopeActor {
		sc = f.actor
	}
	return append(sigs, Signal{Name: SignalNames[i], Score: e.weight[i] * min(strength, e.p.MaxStrength), Detail: detail, Scope: sc})
}

// distinctNow adds the event's patients to s's window and returns the
// distinct count in the sliding hour.
func distinctNow(s *subject, f *eventFacts, words int) float64 {
	if s.dist == nil {
		if len(f.patients) == 0 {
			return 0
		}
		s.dist = newDistinct(words)
	}
	added := false
	for _, h := range f.patients {
		if s.dist.add(f.now, h) {
			added = true
		}
	}
	if idx := f.now / slotNanos; added || idx != s.estIdx {
		s.est, s.estIdx = s.dist.estimate(f.now), idx
	}
	return s.est
}

// clientSignals: distinct-patient velocity of the whole client, and its
// share of error answers.
func (e *Engine) clientSignals(sigs []Signal, c *subject, f *eventFacts) []Signal {
	cv := &e.p.Signals.ClientVelocity
	cur := distinctNow(c, f, 128)
	c.base.observe(f.now, cur, cv.LearnRate)
	thr := c.base.threshold(cv, f.class)
	if s := cur / thr; s >= e.p.PartialFrom && (!cv.SilentWarmup || c.base.warm(cv)) {
		sigs = e.signal(sigs, iClientVelocity, s, f, fmt.Sprintf("%.0f distinct patients in the last hour across the client (threshold %.0f, learned peak %.1f over %d hours)", cur, thr, c.base.learned(), c.base.hours))
	}
	ce := &e.p.Signals.ClientErrors
	reqs := c.reqs.add(f.now, 1, ns(ce.HalfLife))
	errs := c.cerrs.add(f.now, f.errPts, ns(ce.HalfLife))
	if errs >= ce.MinErrors {
		if s := errs / reqs / ce.Threshold; s >= e.p.PartialFrom {
			sigs = e.signal(sigs, iClientErrors, s, f, fmt.Sprintf("%.0f%% of the client's recent answers are errors or empty (%.0f of %.0f; threshold %.0f%%)", 100*errs/reqs, errs, reqs, 100*ce.Threshold))
		}
	}
	return sigs
}

// actorSignals are the signals of the acting user (or client, or peer).
func (e *Engine) actorSignals(sigs []Signal, a *subject, ev *Event, f *eventFacts) []Signal {
	sg := &e.p.Signals
	if f.actor == ScopeUser {
		v := &sg.Velocity
		cur := distinctNow(a, f, 8)
		a.base.observe(f.now, cur, v.LearnRate)
		thr := a.base.threshold(v, f.class)
		if s := cur / thr; s >= e.p.PartialFrom && (!v.SilentWarmup || a.base.warm(v)) {
			sigs = e.signal(sigs, iVelocity, s, f, fmt.Sprintf("%.0f distinct patients in the last hour (threshold %.0f, learned peak %.1f over %d hours)", cur, thr, a.base.learned(), a.base.hours))
		}
	}
	// Probing: reads by id.
	pr := &sg.Probing
	pv := a.probeN.value(f.now, ns(pr.HalfLife))
	if (ev.Interaction == Read || ev.Interaction == VRead) && ev.ID != "" {
		if a.probe == nil {
			a.probe = &probeRing{}
		}
		pfx, tail, ok := splitTail(ev.ID)
		pe := probeEntry{typ: e.hash(ev.Type), pfx: e.hash(pfx), id: e.hash(ev.ID), tail: tail, hasTail: ok, failed: ev.Status == 404 || ev.Status == 403, used: true}
		if len(f.patients) > 0 {
			pe.patient = f.patients[0]
		}
		pv = a.probeN.add(f.now, a.probe.observe(pe, uint64(pr.NeighbourGap)), ns(pr.HalfLife))
	}
	if s := pv / pr.Threshold; s >= e.p.PartialFrom {
		sigs = e.signal(sigs, iProbing, s, f, fmt.Sprintf("%.1f probing points: ids not found or enumerated (threshold %.0f)", pv, pr.Threshold))
	}
	// Bursts of failures and empty results (authenticated callers; the
	// peer signal covers the others).
	if f.actor != ScopePeer {
		er := &sg.Errors
		v := a.errs.add(f.now, f.errPts, ns(er.HalfLife))
		if s := v / er.Threshold; s >= e.p.PartialFrom {
			sigs = e.signal(sigs, iErrors, s, f, fmt.Sprintf("%.1f recent 401/403/404 or empty answers (threshold %.0f)", v, er.Threshold))
		}
	}
	// Bulk-shaped requests.
	b := &sg.Bulk
	bv := a.bulkN.add(f.now, f.bulk, ns(b.HalfLife))
	if f.bulk > 0 {
		day := f.now / int64(24*time.Hour)
		if day != a.bulkDay {
			if a.bulkDay != 0 && !a.bulkFlagged {
				a.bulkDays++
			}
			a.bulkDay, a.bulkFlagged = day, false
		}
	}
	if b.LearnDays == 0 || int(a.bulkDays) < b.LearnDays {
		if s := bv / b.Threshold; s >= e.p.PartialFrom {
			sigs = e.signal(sigs, iBulk, s, f, fmt.Sprintf("%.1f recent bulk-shaped requests from a %s with %d days of bulk history (threshold %.1f)", bv, f.actor, a.bulkDays, b.Threshold))
		}
	}
	if f.actor != ScopeUser {
		return sigs
	}
	// Patients without a care relationship (distinct among the last few).
	un := &sg.Unrelated
	fresh := 0.0
	for _, p := range ev.Unrelated {
		h := e.hash(p)
		if !slices.Contains(a.unrelRing[:], h) {
			a.unrelRing[a.unrelPos%uint8(len(a.unrelRing))] = h
			a.unrelPos++
			fresh++
		}
	}
	if uv := a.unrel.add(f.now, fresh, ns(un.HalfLife)); uv > 0 {
		if s := uv / un.Threshold; s >= e.p.PartialFrom {
			sigs = e.signal(sigs, iUnrelated, s, f, fmt.Sprintf("%.1f recent patients without a care relationship (threshold %.0f)", uv, un.Threshold))
		}
	}
	// Unusual hours, against the hours learned before the one in
	// progress.
	hr := &sg.Hours
	hour := f.now / int64(time.Hour)
	if hour != a.hourAt {
		if a.hourAt != 0 && !a.hourFlagged {
			a.hours[a.hourLocal]++
			a.hoursTotal++
			if a.hoursTotal > 24*90 {
				for i := range a.hours {
					a.hours[i] /= 2
				}
				a.hoursTotal /= 2
			}
		}
		a.hourAt, a.hourFlagged = hour, false
		a.hourLocal = int8(time.Unix(0, f.now).In(e.loc).Hour())
	}
	if share := e.hourShare(a, int(a.hourLocal), f.class); share < hr.MinShare {
		sigs = e.signal(sigs, iHours, 1, f, fmt.Sprintf("hour %02d holds %.1f%% of this user's active hours (threshold %.1f%%)", a.hourLocal, 100*share, 100*hr.MinShare))
	}
	return sigs
}

// hourShare is the share of a user's active hours (learned, plus the
// prior of the class) in hour h of the day, smoothed with its neighbours.
func (e *Engine) hourShare(a *subject, h int, class string) float64 {
	hr := &e.p.Signals.Hours
	prior := func(h int) float64 {
		switch class {
		case ClinicianApp:
			if h >= hr.ClinicianDayStart && h < hr.ClinicianDayEnd {
				return hr.PriorDays
			}
			return 0
		default:
			return hr.PriorDays
		}
	}
	count := func(h int) float64 { h = (h + 24) % 24; return float64(a.hours[h]) + prior(h) }
	total := float64(a.hoursTotal)
	for i := 0; i < 24; i++ {
		total += prior(i)
	}
	if total == 0 {
		return 1
	}
	return (0.25*count(h-1) + 0.5*count(h) + 0.25*count(h+1)) / total
}

// networkSignal: one token seen on several networks.
func (e *Engine) networkSignal(sigs []Signal, t *tokenState, peer netip.Addr, f *eventFacts) []Signal {
	n := &e.p.Signals.Networks
	peer = peer.Unmap()
	bitsLen := n.IPv4Prefix
	if peer.Is6() {
		bitsLen = n.IPv6Prefix
	}
	net, err := peer.Prefix(bitsLen)
	if err != nil {
		return sigs
	}
	if !t.net.IsValid() {
		t.net = net
	} else if t.net != net {
		t.net = net
		t.switches++
	}
	if t.switches > 0 {
		if s := float64(t.switches) / n.Switches; s >= e.p.PartialFrom {
			sigs = e.signal(sigs, iNetworks, s, f, fmt.Sprintf("token switched networks %d times (threshold %.0f)", t.switches, n.Switches))
		}
	}
	return sigs
}

// flag keeps what a flagged request's subject did out of what is
// learned: the hour's peaks and the hour of day; the bulk day too when
// the action went past an alert (bulk that only ever raised alerts
// becomes history: someone saw the alerts and let it go on). The client
// is marked when the client is what was flagged.
func (e *Engine) flag(ev *Event, client bool, act Action) {
	mark := func(s *subject) {
		s.base.flagged = true
		s.hourFlagged = true
		if act > ActionAlert {
			s.bulkFlagged = true
		}
	}
	if client && ev.Client != "" {
		if c, pt := e.clients.peek(ev.Client, e.hash(ev.Client)); c != nil {
			mark(c)
			pt.mu.Unlock()
		}
	}
	if ev.User != "" {
		if u, pt := e.users.peek(ev.User, e.hash(ev.User)); u != nil {
			mark(u)
			pt.mu.Unlock()
		}
	}
}

// impose records the standing action of v (if any) and alerts the sinks.
func (e *Engine) impose(ev *Event, v *Verdict, st step, now int64) {
	var until int64
	if v.Action >= ActionStepUp {
		sc := v.Scope
		dur := st.dur
		if v.Action == ActionStepUp && ev.Token != "" {
			sc = ScopeToken // a new token after the step-up starts clean
		}
		if sc == ScopePeer && (dur == 0 || dur > e.p.PeerBlockMax) {
			dur = e.p.PeerBlockMax
		}
		if dur > 0 {
			until = now + int64(dur)
		}
		st := standing{act: v.Action, until: until, client: ev.Client}
		v.Scope = e.stand.set(sc, ev.Client, ev.User, ev.Token, ev.Peer, st, now)
		if e.onStand != nil {
			e.onStand(standingOf(v.Scope, ev, st))
		}
	}
	if len(e.sinks) == 0 {
		return
	}
	k := alertKey{scope: v.Scope}
	switch v.Scope {
	case ScopeToken:
		k.key = ev.Token
	case ScopeUser:
		k.key = ev.User
	case ScopeClient:
		k.key = ev.Client
	default:
		k.peer = peerKey(ev.Peer)
	}
	e.alertMu.Lock()
	m, ok := e.alerted[k]
	send := !ok || v.Action > m.act || now-m.at >= int64(e.p.Realert)
	if send {
		if !ok && len(e.alerted) >= e.p.Capacity.Blocks {
			for key, old := range e.alerted {
				if now-old.at >= int64(e.p.Realert) {
					delete(e.alerted, key)
				}
			}
		}
		// When every mark is recent the table is full: this alert is sent
		// but not remembered (more alerts rather than unbounded memory).
		if ok || len(e.alerted) < e.p.Capacity.Blocks {
			e.alerted[k] = alertMark{act: v.Action, at: now}
		}
	}
	e.alertMu.Unlock()
	if !send {
		return
	}
	a := Alert{Time: time.Unix(0, now).UTC(), Client: ev.Client, User: alertUser(ev.User), Token: ev.Token,
		Action: v.Action, Scope: v.Scope, Score: v.Score, Signals: v.Signals}
	if until != 0 {
		a.Until = time.Unix(0, until).UTC()
	}
	if v.Scope == ScopePeer {
		a.Peer = ev.Peer
	}
	for _, s := range e.sinks {
		s.Send(a)
	}
}

// Check answers what stands against a request before it is served: None,
// StepUp (answer the RFC 9470 §3 challenge), Throttle (429) or
// Quarantine (refuse). user may be empty before the caller is known.
// It takes well under a microsecond and allocates nothing.
func (e *Engine) Check(client, user, token string, peer netip.Addr, now time.Time) Action {
	a, _ := e.stand.check(client, user, token, peer, now.UnixNano())
	return a
}

// CheckUntil is Check that also says when the standing action ends (for
// Retry-After); the zero time means until released.
func (e *Engine) CheckUntil(client, user, token string, peer netip.Addr, now time.Time) (Action, time.Time) {
	a, until := e.stand.check(client, user, token, peer, now.UnixNano())
	if a == ActionNone || until == 0 {
		return a, time.Time{}
	}
	return a, time.Unix(0, until).UTC()
}

// Release lifts every step-up, throttle and quarantine imposed on client
// and, through it, on its users and tokens (an administrator's action),
// and forgets the evidence counted against each of them, so that a new
// action needs new evidence. It returns how many it lifted.
func (e *Engine) Release(client string) int {
	n, users, tokens := e.stand.release(client)
	e.clearEvidence(ScopeClient, client)
	for _, u := range users {
		e.clearEvidence(ScopeUser, u)
	}
	for _, t := range tokens {
		e.clearEvidence(ScopeToken, t)
	}
	return n
}

// ReleaseUser lifts the standing action on one user, and forgets the
// evidence counted against the user.
func (e *Engine) ReleaseUser(user string) bool {
	e.clearEvidence(ScopeUser, user)
	return e.stand.releaseKey(ScopeUser, user)
}

// ReleaseToken lifts the standing action on one token, and forgets what
// was counted against it.
func (e *Engine) ReleaseToken(token string) bool {
	e.clearEvidence(ScopeToken, token)
	return e.stand.releaseKey(ScopeToken, token)
}

// clearEvidence forgets the evidence counted against one subject (a
// Standing.Key of its scope), keeping what was learned of its normal use.
func (e *Engine) clearEvidence(sc Scope, key string) {
	switch sc {
	case ScopeClient, ScopeUser:
		t := e.clients
		if sc == ScopeUser {
			t = e.users
		}
		if v, pt := t.peek(key, e.hash(key)); v != nil {
			v.clearEvidence()
			pt.mu.Unlock()
		}
	case ScopeToken:
		if v, pt := e.tokens.peek(key, e.hash(key)); v != nil {
			v.switches = 0
			pt.mu.Unlock()
		}
	case ScopePeer:
		a, err := netip.ParseAddr(key)
		if err != nil {
			return
		}
		k := peerKey(a)
		if v, pt := e.peers.peek(k, e.hashAddr(k)); v != nil {
			v.clearEvidence()
			pt.mu.Unlock()
		}
	}
}

// clearEvidence forgets the counted evidence against a subject (what a
// release lifted must be earned again), keeping what was learned of its
// normal use: its velocity baseline and hours.
func (s *subject) clearEvidence() {
	s.dist, s.est, s.estIdx = nil, 0, 0
	s.probe, s.probeN, s.errs, s.reqs, s.cerrs = nil, decay{}, decay{}, decay{}, decay{}
	s.bulkN, s.bulkFlagged = decay{}, false
	s.unrel, s.unrelRing, s.unrelPos = decay{}, [8]uint64{}, 0
	s.hourFlagged = false
	s.spoof = decay{}
}

// Tracked reports how many clients, users, tokens and peers have state,
// and how many standing actions are held.
func (e *Engine) Tracked() (clients, users, tokens, peers, standing int) {
	return e.clients.size(), e.users.size(), e.tokens.size(), e.peers.size(), int(e.stand.n.Load())
}
