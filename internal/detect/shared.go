package detect

import (
	"net/netip"
	"time"
)

// Standing is a step-up, throttle or quarantine in force on one subject,
// as it travels between replicas (Options.OnStand, Engine.Stand): every
// replica should refuse a subject one of them stands against.
type Standing struct {
	Scope  Scope     // ScopeToken, ScopeUser, ScopeClient or ScopePeer
	Key    string    // the token's jti, the user, the client id, or the peer address (an IPv6 peer's /64)
	Client string    // the client it was imposed through ("" for a peer): Release(client) lifts it
	Action Action    // ActionStepUp, ActionThrottle or ActionQuarantine
	Until  time.Time // zero: until released
}

// Live reports whether the standing is in force at now.
func (s Standing) Live(now time.Time) bool {
	return s.Action >= ActionStepUp && (s.Until.IsZero() || now.Before(s.Until))
}

// Stand imposes a standing decided elsewhere (another replica's
// Options.OnStand) as if this engine had decided it, without alerting
// and without calling OnStand. A stronger standing already in force
// stays. It reports whether the standing was valid and live.
func (e *Engine) Stand(s Standing, now time.Time) bool {
	if !s.Live(now) || s.Action > ActionQuarantine {
		return false
	}
	var until int64
	if !s.Until.IsZero() {
		until = s.Until.UnixNano()
	}
	st := standing{act: s.Action, until: until, client: s.Client}
	t := now.UnixNano()
	switch s.Scope {
	case ScopeToken, ScopeUser, ScopeClient:
		if s.Key == "" {
			return false
		}
		var client, user, token string
		switch s.Scope {
		case ScopeToken:
			token = s.Key
		case ScopeUser:
			user = s.Key
		default:
			client = s.Key
		}
		return e.stand.setExact(s.Scope, client, user, token, netip.Addr{}, st, t)
	case ScopePeer:
		a, err := netip.ParseAddr(s.Key)
		if err != nil {
			return false
		}
		if st.until == 0 || st.until-t > int64(e.p.PeerBlockMax) {
			st.until = t + int64(e.p.PeerBlockMax) // peer standings always end
		}
		return e.stand.setExact(ScopePeer, "", "", "", a, st, t)
	}
	return false
}

// Lift removes the standing on one subject (a standing another replica
// lifted) and the evidence counted against it here, and reports whether
// there was one.
func (e *Engine) Lift(sc Scope, key string) bool {
	e.clearEvidence(sc, key)
	switch sc {
	case ScopeToken, ScopeUser:
		return e.stand.releaseKey(sc, key)
	case ScopeClient:
		return e.stand.releaseClientOnly(key)
	case ScopePeer:
		a, err := netip.ParseAddr(key)
		if err != nil {
			return false
		}
		return e.stand.releasePeer(a)
	}
	return false
}

// standingOf describes what impose set, for Options.OnStand.
func standingOf(sc Scope, ev *Event, st standing) Standing {
	s := Standing{Scope: sc, Client: st.client, Action: st.act}
	if st.until != 0 {
		s.Until = time.Unix(0, st.until).UTC()
	}
	switch sc {
	case ScopeToken:
		s.Key = ev.Token
	case ScopeUser:
		s.Key = ev.User
	case ScopeClient:
		s.Key = ev.Client
	default:
		s.Scope, s.Key, s.Client = ScopePeer, PeerSubject(ev.Peer), ""
	}
	return s
}

// ParseScope reads a Scope's name (Scope.String).
func ParseScope(s string) (Scope, bool) { return parseScope(s) }

// ParseAction reads an Action's name (Action.String).
func ParseAction(s string) (Action, bool) { return parseAction(s) }

// PeerSubject is the Standing.Key of a peer address: the address, or an
// IPv6 address's /64.
func PeerSubject(a netip.Addr) string { return peerKey(a).String() }

// ReleasePeer lifts the standing on a peer address (or its IPv6 /64) and
// forgets the evidence counted against it.
func (e *Engine) ReleasePeer(a netip.Addr) bool {
	e.clearEvidence(ScopePeer, a.String())
	return e.stand.releasePeer(a)
}
