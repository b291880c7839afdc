package cli

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/store"
)

// standingSync shares the abuse detection's standing actions among the
// processes that serve one database (replicas behind a load balancer):
// each step-up, throttle or quarantine this process imposes is written to
// the store as a record, and every process reads the records back every
// syncEvery and imposes them too; when an administrator lifts one
// (POST /admin/detection/release on any replica), its record goes and
// every replica lifts it within syncEvery. Counts and baselines stay per
// process (docs/DETECTION.md).
type standingSync struct {
	rec store.Records
	log *slog.Logger
	out chan detect.Standing

	mu      sync.Mutex
	d       *detect.Engine
	applied map[string]detect.Standing // record key → the standing it holds here

	// offered is what offer last queued per subject: a subject that keeps
	// offending while it stands is offered again only when its standing
	// grows, not on every request. Its own lock: offer is on the request
	// path, and never waits for the store.
	offerMu sync.Mutex
	offered map[string]detect.Standing
}

// maxOffered bounds offered; past it, the map starts over (an offer
// again is harmless: write skips what is stored already).
const maxOffered = 10_000

const (
	kindStanding = "detect-standing"
	syncEvery    = 2 * time.Second
	syncTimeout  = 5 * time.Second
)

func newStandingSync(rec store.Records, log *slog.Logger) *standingSync {
	return &standingSync{rec: rec, log: log, out: make(chan detect.Standing, 256), applied: map[string]detect.Standing{}, offered: map[string]detect.Standing{}}
}

// standingKey is the record key of the subject a standing is on.
func standingKey(s detect.Standing) string { return s.Scope.String() + "|" + s.Key }

// standingRecord is a standing as stored.
type standingRecord struct {
	Scope  string    `json:"scope"`
	Key    string    `json:"key"`
	Client string    `json:"client,omitempty"`
	Action string    `json:"action"`
	Until  time.Time `json:"until,omitzero"`
}

func encodeStanding(s detect.Standing) []byte {
	b, _ := json.Marshal(standingRecord{Scope: s.Scope.String(), Key: s.Key, Client: s.Client, Action: s.Action.String(), Until: s.Until})
	return b
}

func decodeStanding(b []byte) (detect.Standing, error) {
	var r standingRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return detect.Standing{}, err
	}
	sc, ok := detect.ParseScope(r.Scope)
	act, ok2 := detect.ParseAction(r.Action)
	if !ok || !ok2 {
		return detect.Standing{}, errors.New("unknown scope or action")
	}
	return detect.Standing{Scope: sc, Key: r.Key, Client: r.Client, Action: act, Until: r.Until}, nil
}

// offer queues a standing this process imposed (detect.Options.OnStand):
// it never blocks the request that imposed it.
func (s *standingSync) offer(st detect.Standing) {
	key := standingKey(st)
	s.offerMu.Lock()
	if last, ok := s.offered[key]; ok && covers(last, st) {
		s.offerMu.Unlock()
		return
	}
	if len(s.offered) >= maxOffered {
		clear(s.offered)
	}
	s.offered[key] = st
	s.offerMu.Unlock()
	select {
	case s.out <- st:
	default:
		s.log.Warn("detection: the queue of standings to share is full; one is kept in this process only", "scope", st.Scope.String())
	}
}

// unoffer forgets that keys were offered (their standings were lifted),
// so that a new standing on them is shared again.
func (s *standingSync) unoffer(match func(key string, st detect.Standing) bool) {
	s.offerMu.Lock()
	defer s.offerMu.Unlock()
	for k, st := range s.offered {
		if match(k, st) {
			delete(s.offered, k)
		}
	}
}

// run shares and reads standings until ctx ends.
func (s *standingSync) run(ctx context.Context) {
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-s.out:
			s.write(ctx, st)
		case <-t.C:
			s.pull(ctx)
		}
	}
}

// write stores st, unless a standing at least as strong and as long is
// stored for the subject already.
func (s *standingSync) write(ctx context.Context, st detect.Standing) {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	key := standingKey(st)
	if old, err := s.rec.GetRecord(ctx, kindStanding, key); err == nil {
		if prev, err := decodeStanding(old.Value); err == nil && covers(prev, st) {
			return
		}
	}
	r := store.Record{Kind: kindStanding, Key: key, Group: st.Client, Value: encodeStanding(st), Expires: st.Until}
	if err := s.rec.PutRecord(ctx, r); err != nil {
		s.log.Error("detection: a standing could not be shared with the other replicas", "scope", st.Scope.String(), "error", err.Error())
		return
	}
	s.mu.Lock()
	s.applied[key] = st
	s.mu.Unlock()
}

// covers reports whether a is at least as strong as b and lasts as long.
func covers(a, b detect.Standing) bool {
	return a.Action >= b.Action && (a.Until.IsZero() || (!b.Until.IsZero() && !a.Until.Before(b.Until)))
}

// pull imposes every stored standing and lifts those whose records went.
func (s *standingSync) pull(ctx context.Context) {
	// What this process imposed is stored first, so that its record is
	// there when the list is read.
	for {
		select {
		case st := <-s.out:
			s.write(ctx, st)
			continue
		default:
		}
		break
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	list, err := s.rec.ListRecords(ctx, kindStanding)
	if err != nil {
		s.log.Error("detection: the shared standings could not be read", "error", err.Error())
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(list))
	for _, r := range list {
		st, err := decodeStanding(r.Value)
		if err != nil || !st.Live(now) {
			continue
		}
		seen[r.Key] = true
		if s.d.Stand(st, now) {
			s.applied[r.Key] = st
		}
	}
	var lifted []string
	for k, st := range s.applied {
		if seen[k] {
			continue
		}
		delete(s.applied, k)
		lifted = append(lifted, k)
		// Lifted elsewhere: lift it here too (with the evidence, as a
		// release does). One that simply ended is left to end here on
		// its own, its evidence kept.
		if st.Live(now) {
			s.d.Lift(st.Scope, st.Key)
		}
	}
	if len(lifted) > 0 {
		s.unoffer(func(k string, _ detect.Standing) bool { return slices.Contains(lifted, k) })
	}
}

// syncedRelease is what the admin API lifts standings through: here, and
// in the store, so that every replica lifts them.
type syncedRelease struct {
	d *detect.Engine
	s *standingSync
}

func (r syncedRelease) forget(keys ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	for _, k := range keys {
		if _, err := r.s.rec.DeleteRecord(ctx, kindStanding, k); err != nil {
			r.s.log.Error("detection: a lifted standing is still stored; other replicas keep it until it ends", "error", err.Error())
		}
		delete(r.s.applied, k)
	}
	r.s.unoffer(func(k string, _ detect.Standing) bool { return slices.Contains(keys, k) })
}

// Release lifts the client's standing and its users' and tokens'.
func (r syncedRelease) Release(client string) int {
	n := r.d.Release(client)
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	if _, err := r.s.rec.DeleteGroup(ctx, kindStanding, client); err != nil {
		r.s.log.Error("detection: lifted standings are still stored; other replicas keep them until they end", "error", err.Error())
	}
	r.forget(standingKey(detect.Standing{Scope: detect.ScopeClient, Key: client}))
	r.s.mu.Lock()
	for k, st := range r.s.applied {
		if st.Client == client {
			delete(r.s.applied, k)
		}
	}
	r.s.mu.Unlock()
	r.s.unoffer(func(_ string, st detect.Standing) bool { return st.Client == client })
	return n
}

// ReleaseUser lifts one user's standing.
func (r syncedRelease) ReleaseUser(user string) bool {
	ok := r.d.ReleaseUser(user)
	r.forget(standingKey(detect.Standing{Scope: detect.ScopeUser, Key: user}))
	return ok
}

// ReleasePeer lifts the standing on one address.
func (r syncedRelease) ReleasePeer(addr netip.Addr) bool {
	ok := r.d.ReleasePeer(addr)
	r.forget(standingKey(detect.Standing{Scope: detect.ScopePeer, Key: detect.PeerSubject(addr)}))
	return ok
}

// ReleaseToken lifts one token's standing.
func (r syncedRelease) ReleaseToken(token string) bool {
	ok := r.d.ReleaseToken(token)
	r.forget(standingKey(detect.Standing{Scope: detect.ScopeToken, Key: token}))
	return ok
}
