// Package coherence keeps the authorization state that every Warden
// process caches in memory (revoked tokens and grants, disabled clients,
// consents) coherent with the shared database, so that a revocation takes
// effect for every request that starts after the revoking call returns, in
// every process.
//
// The design is an epoch with acknowledged leases:
//
//   - The database holds one counter, the epoch. A change to cached state
//     is stored first, then Publish increments the epoch, sends a notice
//     (PostgreSQL NOTIFY, when there is a Notifier) and waits until every
//     live Member has acknowledged the new epoch, or its lease has run out.
//     Only then does the revoking call return.
//   - Each serving process is a Member. It holds a lease record (its id,
//     the last epoch it applied, an expiry Lease ahead) and renews it in
//     rounds: read the epoch, reload its caches if the epoch moved, then
//     write the lease. A round runs on every notice, every Poll, and on
//     demand.
//   - A Member trusts its caches only until the lease of its last good
//     round runs out, measured from the round's start on the monotonic
//     clock and ahead of the record's expiry by Margin. After that, Fresh —
//     called by every request before it consults a cache — runs a round
//     itself, and fails (ErrUnavailable, a 503) when the database cannot be
//     read: a process that lost its notices or its database falls back to
//     checking on each request, never to serving stale permissions.
//
// Publish waits at most Lease plus Margin for a Member that does not
// answer: by then that Member no longer trusts its caches. Clocks of the
// hosts must agree within Margin (NTP), since a lease's expiry is written
// by one host and judged by another.
//
// The package never reads or decides authorization itself; it only says
// when a process must reload and whether its view may be used.
package coherence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// Records kinds: the epoch counter and the members' leases.
const (
	KindEpoch = "coherence-epoch"
	keyEpoch  = "epoch"
	KindLease = "coherence-lease"
)

// Defaults of Options.
const (
	DefaultLease = 2 * time.Second
	// DefaultPoll is how often a Member without a working Notifier reads
	// the epoch; it bounds how long Publish waits for such a Member.
	DefaultPoll = 25 * time.Millisecond
)

// ErrUnavailable: the database could not be read, so this process cannot
// tell whether its cached authorization state is current. Callers answer
// 503 and serve nothing from the cache.
var ErrUnavailable = errors.New("coherence: authorization state cannot be confirmed")

// Notifier carries "the epoch moved" between processes (PostgreSQL
// LISTEN/NOTIFY). It is only a hastener: Members also poll.
type Notifier interface {
	Publish(ctx context.Context) error
	// Listen calls ready once it listens, then notice for every notice
	// (and after every reconnection), until ctx ends; down is called when
	// the connection is lost.
	Listen(ctx context.Context, ready, notice, down func()) error
}

// Options configure a Member.
type Options struct {
	// Records is the shared database.
	Records store.Records
	// Notifier hastens rounds; nil: poll only (SQLite, one process plus
	// the admin commands).
	Notifier Notifier
	// Reload re-reads every cache whose state the epoch guards. It is
	// called before a round acknowledges an epoch.
	Reload func(ctx context.Context) error
	// Lease is how long a round's acknowledgement stays valid (default
	// DefaultLease).
	Lease time.Duration
	// Margin is how much earlier than its lease record's expiry a Member
	// stops trusting its caches: the tolerated clock difference between
	// hosts (default Lease/4).
	Margin time.Duration
	// Poll is how often the epoch is read while notices work (default
	// Lease/4) and while they do not (default DefaultPoll).
	Poll, PollUnnotified time.Duration
	// Now is the wall clock written into lease records (default
	// time.Now).
	Now func() time.Time
	// Failed, when set, is told about background failures (rounds that
	// could not reach the database); requests see them as ErrUnavailable.
	Failed func(err error)
}

// Member is one serving process. Its methods are safe for concurrent use.
type Member struct {
	o  Options
	id string

	base time.Time // monotonic origin of trusted
	// trusted is how long after base the caches may be used without a
	// round (nanoseconds; 0: not at all).
	trusted atomic.Int64
	applied atomic.Uint64 // the epoch the caches reflect
	notices atomic.Bool   // the Notifier's connection is up

	round   sync.Mutex    // one round at a time
	written time.Duration // start (since base) of the last round that stored the lease; under round
	kick    chan struct{}
}

// Join registers a new Member: it runs a first round (loading the caches
// through Reload) and returns once the Member's lease is stored.
func Join(ctx context.Context, o Options) (*Member, error) {
	if o.Records == nil || o.Reload == nil {
		return nil, errors.New("coherence: Records and Reload are required")
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Margin <= 0 {
		o.Margin = o.Lease / 4
	}
	if o.Margin >= o.Lease {
		return nil, errors.New("coherence: Margin must be shorter than Lease")
	}
	if o.Poll <= 0 {
		o.Poll = o.Lease / 4
	}
	if o.PollUnnotified <= 0 {
		o.PollUnnotified = DefaultPoll
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var id [12]byte
	rand.Read(id[:])
	m := &Member{o: o, id: hex.EncodeToString(id[:]), base: time.Now(), kick: make(chan struct{}, 1)}
	m.applied.Store(^uint64(0)) // nothing applied: the first round reloads
	m.round.Lock()
	err := m.roundLocked(ctx, true)
	m.round.Unlock()
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ID is the Member's lease key.
func (m *Member) ID() string { return m.id }

// Epoch is the epoch the Member's caches reflect.
func (m *Member) Epoch() uint64 { return m.applied.Load() }

// Fresh returns nil when the caches may be used for a request starting
// now: the last stored lease holds, or a round run now succeeds. It
// returns ErrUnavailable (wrapped) otherwise. The fast path is one atomic
// load and a monotonic clock read.
func (m *Member) Fresh(ctx context.Context) error {
	if m.trustedNow() {
		return nil
	}
	m.round.Lock()
	defer m.round.Unlock()
	if m.trustedNow() { // another request's round renewed it
		return nil
	}
	return m.roundLocked(ctx, true)
}

func (m *Member) trustedNow() bool { return int64(time.Since(m.base)) < m.trusted.Load() }

// Round reads the epoch, reloads the caches if it moved, and renews the
// lease when it acknowledges a new epoch or is a quarter spent. On
// failure the Member's trust is withdrawn at once, so that Fresh checks
// again on the next request.
func (m *Member) Round(ctx context.Context) error {
	m.round.Lock()
	defer m.round.Unlock()
	return m.roundLocked(ctx, false)
}

func (m *Member) roundLocked(ctx context.Context, renew bool) error {
	start := time.Since(m.base)
	err := m.sync(ctx, start, renew)
	if err != nil {
		m.trusted.Store(0)
		if m.o.Failed != nil {
			m.o.Failed(err)
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// sync is one round. The caches are trusted until the lease stored by
// the latest round that wrote one runs out, less Margin: every Publish
// waits for this Member until then.
func (m *Member) sync(ctx context.Context, start time.Duration, renew bool) error {
	epoch, err := readEpoch(ctx, m.o.Records)
	if err != nil {
		return err
	}
	moved := epoch != m.applied.Load()
	if moved {
		if err := m.o.Reload(ctx); err != nil {
			return fmt.Errorf("reloading: %w", err)
		}
		m.applied.Store(epoch)
	}
	if !moved && !renew && start < m.written+m.o.Lease/4 {
		return nil
	}
	if err := m.o.Records.PutRecord(ctx, store.Record{Kind: KindLease, Key: m.id,
		Value: strconv.AppendUint(nil, epoch, 10), Expires: m.o.Now().Add(m.o.Lease)}); err != nil {
		return err
	}
	m.written = start
	m.trusted.Store(int64(start + m.o.Lease - m.o.Margin))
	return nil
}

// Run keeps the Member's lease and listens for notices until ctx ends;
// then it removes the lease (so Publish stops waiting for it) and returns
// ctx's error.
func (m *Member) Run(ctx context.Context) error {
	if n := m.o.Notifier; n != nil {
		go n.Listen(ctx, func() { m.notices.Store(true); m.poke() }, m.poke, func() { m.notices.Store(false) })
	}
	for {
		every := m.o.PollUnnotified
		if m.notices.Load() {
			every = m.o.Poll
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			m.o.Records.DeleteRecord(dctx, KindLease, m.id)
			cancel()
			return ctx.Err()
		case <-t.C:
		case <-m.kick:
			t.Stop()
		}
		m.Round(ctx) // a failure withdraws trust; Failed reports it
	}
}

func (m *Member) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Publish announces that cached state changed in the database (the change
// must be stored before the call): it increments the epoch, applies it
// here, notifies, and waits until every live Member has applied it. It
// returns the time from which every Member serves the change.
func (m *Member) Publish(ctx context.Context) (time.Time, error) {
	epoch, err := bump(ctx, m.o.Records)
	if err != nil {
		return time.Time{}, err
	}
	if err := m.Round(ctx); err != nil {
		return time.Time{}, err
	}
	return wait(ctx, m.o.Records, m.o.Notifier, epoch, m.o.Lease+m.o.Margin, m.o.Now)
}

// Publish is Member.Publish for a process that is not a Member (an admin
// command): it increments the epoch, notifies and waits, at most
// maxWait, for the live Members to apply it.
func Publish(ctx context.Context, records store.Records, n Notifier, maxWait time.Duration) (time.Time, error) {
	epoch, err := bump(ctx, records)
	if err != nil {
		return time.Time{}, err
	}
	return wait(ctx, records, n, epoch, maxWait, time.Now)
}

// wait notifies and then polls the leases until each live one
// acknowledges epoch or maxWait passes (by then every lease that was live
// has run out in its holder's eyes).
func wait(ctx context.Context, records store.Records, n Notifier, epoch uint64, maxWait time.Duration, now func() time.Time) (time.Time, error) {
	if n != nil {
		// Best effort: Members poll anyway.
		n.Publish(ctx)
	}
	deadline := time.Now().Add(maxWait)
	pause := 500 * time.Microsecond
	for {
		leases, err := records.ListRecords(ctx, KindLease)
		if err != nil {
			return time.Time{}, fmt.Errorf("coherence: reading leases: %w", err)
		}
		behind := 0
		for _, l := range leases {
			if e, err := strconv.ParseUint(string(l.Value), 10, 64); err != nil || e < epoch {
				behind++
			}
		}
		if behind == 0 || time.Now().After(deadline) {
			return now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// readEpoch returns the current epoch (0 before the first change).
func readEpoch(ctx context.Context, records store.Records) (uint64, error) {
	r, err := records.GetRecord(ctx, KindEpoch, keyEpoch)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(r.Value), 10, 64)
}

// bump increments the epoch (compare-and-swap, retried on a concurrent
// increment) and returns the new value.
func bump(ctx context.Context, records store.Records) (uint64, error) {
	for range 1000 {
		r, err := records.GetRecord(ctx, KindEpoch, keyEpoch)
		if errors.Is(err, store.ErrNotFound) {
			err = records.InsertRecord(ctx, store.Record{Kind: KindEpoch, Key: keyEpoch, Value: []byte("1")})
			if err == nil {
				return 1, nil
			}
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			return 0, fmt.Errorf("coherence: %w", err)
		}
		if err != nil {
			return 0, fmt.Errorf("coherence: %w", err)
		}
		cur, err := strconv.ParseUint(string(r.Value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("coherence: epoch record: %w", err)
		}
		next := cur + 1
		err = records.SwapRecord(ctx, store.Record{Kind: KindEpoch, Key: keyEpoch, Value: strconv.AppendUint(nil, next, 10)}, r.Value)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("coherence: %w", err)
		}
	}
	return 0, errors.New("coherence: the epoch is contended beyond reason")
}
