package detect

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// standing is a step-up, throttle or quarantine in force.
type standing struct {
	act    Action
	until  int64  // Unix nanoseconds; 0: until released
	client string // the client it was imposed through (for Release)
}

func (s standing) live(now int64) bool { return s.act != ActionNone && (s.until == 0 || now < s.until) }

// standings holds what is in force, per scope. They are kept apart from
// the tracked behaviour so that forgetting a subject under memory
// pressure never lifts its quarantine.
type standings struct {
	n  atomic.Int64 // entries held, so Check is a load when nothing stands
	mu sync.RWMutex

	tokens, users, clients map[string]standing
	peers                  map[netip.Addr]standing
	capacity               int
}

func newStandings(capacity int) *standings {
	return &standings{
		tokens: map[string]standing{}, users: map[string]standing{}, clients: map[string]standing{},
		peers: map[netip.Addr]standing{}, capacity: capacity,
	}
}

// peerKey is the address a peer standing is kept under: an IPv4 address
// as it is, an IPv6 address by its /64 (one host usually holds a whole
// /64).
func peerKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// check returns the strongest live standing among the subjects named,
// and when it ends (0: until released).
func (s *standings) check(client, user, token string, peer netip.Addr, now int64) (Action, int64) {
	if s.n.Load() == 0 {
		return ActionNone, 0
	}
	best := standing{}
	pick := func(st standing, ok bool) {
		if ok && st.live(now) && (st.act > best.act || (st.act == best.act && later(st.until, best.until))) {
			best = st
		}
	}
	s.mu.RLock()
	if token != "" {
		st, ok := s.tokens[token]
		pick(st, ok)
	}
	if user != "" {
		st, ok := s.users[user]
		pick(st, ok)
	}
	if client != "" {
		st, ok := s.clients[client]
		pick(st, ok)
	}
	if peer.IsValid() && len(s.peers) > 0 {
		st, ok := s.peers[peerKey(peer)]
		pick(st, ok)
	}
	s.mu.RUnlock()
	return best.act, best.until
}

// later reports whether until a ends after until b (0 is never).
func later(a, b int64) bool { return (a == 0 && b != 0) || (b != 0 && a > b) }

// merge keeps the stronger of two standings; at the same strength, the
// one that ends later.
func merge(old, nu standing, now int64) standing {
	if !old.live(now) || nu.act > old.act || (nu.act == old.act && later(nu.until, old.until)) {
		return nu
	}
	return old
}

// set imposes st on the subject of scope sc and returns the scope it
// landed on. A full table first drops what has ended, then the standing
// that ends soonest short of a quarantine until released; a token or
// user table full of such quarantines sends the new one to the user or
// the client instead (a client quarantine is always kept: clients are
// registered, so their number is bounded elsewhere).
func (s *standings) set(sc Scope, client, user, token string, peer netip.Addr, st standing, now int64) Scope {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch sc {
		case ScopeToken:
			if token == "" {
				sc = ScopeUser
				continue
			}
			if s.room(s.tokens, token, now) {
				s.put(s.tokens, token, st, now)
				return sc
			}
			sc = ScopeUser
		case ScopeUser:
			if user == "" {
				sc = ScopeClient
				continue
			}
			if s.room(s.users, user, now) {
				s.put(s.users, user, st, now)
				return sc
			}
			sc = ScopeClient
		case ScopeClient:
			if client == "" {
				sc = ScopePeer
				continue
			}
			s.put(s.clients, client, st, now)
			return sc
		default:
			if !peer.IsValid() {
				return ScopePeer
			}
			k := peerKey(peer)
			old, had := s.peers[k]
			if !had && len(s.peers) >= s.capacity {
				s.n.Add(-int64(dropSoonest(s.peers, now)))
				if len(s.peers) >= s.capacity {
					return ScopePeer // every peer standing is a live, bounded one: keep them
				}
			}
			s.peers[k] = merge(old, st, now)
			if !had {
				s.n.Add(1)
			}
			return ScopePeer
		}
	}
}

// room makes room for key in m if it can and reports whether key fits.
func (s *standings) room(m map[string]standing, key string, now int64) bool {
	if _, ok := m[key]; ok || len(m) < s.capacity {
		return true
	}
	s.n.Add(-int64(dropSoonest(m, now)))
	return len(m) < s.capacity
}

func (s *standings) put(m map[string]standing, key string, st standing, now int64) {
	old, had := m[key]
	m[key] = merge(old, st, now)
	if !had {
		s.n.Add(1)
	}
}

// dropSoonest deletes every standing that has ended; when none had, the
// one ending soonest (never one until released). It returns how many
// it deleted.
func dropSoonest[K comparable](m map[K]standing, now int64) int {
	n := 0
	var victim K
	soonest := int64(0)
	found := false
	for k, st := range m {
		if !st.live(now) {
			delete(m, k)
			n++
			continue
		}
		if st.until != 0 && (!found || st.until < soonest) {
			victim, soonest, found = k, st.until, true
		}
	}
	if n == 0 && found {
		delete(m, victim)
		n++
	}
	return n
}

// release lifts every standing imposed on client, through it on its
// users and tokens.
func (s *standings) release(client string) (n int, users, tokens []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[client]; ok {
		delete(s.clients, client)
		n++
	}
	for k, st := range s.users {
		if st.client == client {
			delete(s.users, k)
			users = append(users, k)
		}
	}
	for k, st := range s.tokens {
		if st.client == client {
			delete(s.tokens, k)
			tokens = append(tokens, k)
		}
	}
	n += len(users) + len(tokens)
	s.n.Add(-int64(n))
	return n, users, tokens
}

// releaseKey lifts the standing on one token or user.
func (s *standings) releaseKey(sc Scope, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.tokens
	if sc == ScopeUser {
		m = s.users
	}
	if _, ok := m[key]; !ok {
		return false
	}
	delete(m, key)
	s.n.Add(-1)
	return true
}

// setExact imposes st on exactly the subject of scope sc (no falling
// back to a wider scope when a table is full: a standing from another
// replica is kept only if there is room) and reports whether it did.
func (s *standings) setExact(sc Scope, client, user, token string, peer netip.Addr, st standing, now int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m map[string]standing
	var key string
	switch sc {
	case ScopeToken:
		m, key = s.tokens, token
	case ScopeUser:
		m, key = s.users, user
	case ScopeClient:
		m, key = s.clients, client
	default:
		k := peerKey(peer)
		old, had := s.peers[k]
		if !had && len(s.peers) >= s.capacity {
			return false
		}
		s.peers[k] = merge(old, st, now)
		if !had {
			s.n.Add(1)
		}
		return true
	}
	if sc != ScopeClient && !s.room(m, key, now) {
		return false
	}
	s.put(m, key, st, now)
	return true
}

// releaseClientOnly lifts the standing on the client itself (not its
// users' and tokens').
func (s *standings) releaseClientOnly(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[client]; !ok {
		return false
	}
	delete(s.clients, client)
	s.n.Add(-1)
	return true
}

// releasePeer lifts the standing on a peer address.
func (s *standings) releasePeer(a netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := peerKey(a)
	if _, ok := s.peers[k]; !ok {
		return false
	}
	delete(s.peers, k)
	s.n.Add(-1)
	return true
}
