package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// throttlePolicy says how many failures a key may collect in a window
// before it is locked, and for how long (OWASP Authentication Cheat Sheet,
// "Account Lockout"; NIST SP 800-63B §5.2.2 "Rate Limiting").
type throttlePolicy struct {
	kind    string
	limit   int           // failures within window that cause a lock
	window  time.Duration // how long a failure counts
	lockFor time.Duration // the first lock; each further lock doubles it
	maxLock time.Duration // the longest lock
	memory  time.Duration // how long after its last event a key's history (and lock level) is kept
}

var (
	// userThrottle protects one account: 5 failures in 15 minutes lock it
	// for 15 minutes, then 30, 60, … up to a day. The lock level is kept
	// for a day after the last failure or lock.
	userThrottle = throttlePolicy{kind: kindUserFails, limit: 5, window: 15 * time.Minute,
		lockFor: 15 * time.Minute, maxLock: 24 * time.Hour, memory: 24 * time.Hour}
	// addrThrottle limits one client address (an IPv6 /64) across all
	// accounts: 50 failures in 15 minutes block it for 15 minutes. It does
	// not double, so one bad actor behind a clinic's NAT cannot shut the
	// clinic out for a day.
	addrThrottle = throttlePolicy{kind: kindAddrFails, limit: 50, window: 15 * time.Minute,
		lockFor: 15 * time.Minute, maxLock: 15 * time.Minute, memory: 15 * time.Minute}
)

// throttleState is the stored history of one key.
type throttleState struct {
	Failures []int64 `json:"f,omitempty"` // Unix milliseconds of failures (or attempts in flight) within the window
	Until    int64   `json:"u,omitempty"` // Unix milliseconds the lock ends; 0 when never locked
	Level    int     `json:"l,omitempty"` // how many locks so far; each doubles the next
}

// addrKey is the throttling key of a client address: the address itself
// for IPv4 (and IPv4-mapped IPv6), its /64 for IPv6 (one subscriber usually
// holds a whole /64), and "invalid" for a missing address, so that callers
// that forget to pass one share one bucket rather than escape the limit.
func addrKey(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.Is4():
		return a.String()
	case a.Is6():
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return "invalid"
}

// lockDuration is the length of the level-th lock.
func (p throttlePolicy) lockDuration(level int) time.Duration {
	d := p.lockFor
	for i := 1; i < level && d < p.maxLock; i++ {
		d *= 2
	}
	return min(d, p.maxLock)
}

// load returns the state of key and its stored bytes (nil when absent).
func (p throttlePolicy) load(ctx context.Context, r store.Records, key string) (throttleState, []byte, error) {
	var s throttleState
	rec, err := r.GetRecord(ctx, p.kind, key)
	if errors.Is(err, store.ErrNotFound) {
		return s, nil, nil
	}
	if err != nil {
		return s, nil, fmt.Errorf("identity: read throttle: %w", err)
	}
	if err := json.Unmarshal(rec.Value, &s); err != nil {
		// A corrupt counter must not unlock anything: treat it as a
		// maximal lock that the next write replaces.
		return throttleState{Until: 1<<62 - 1, Level: 64}, rec.Value, nil
	}
	return s, rec.Value, nil
}

// save stores s for key in place of old (nil: insert), or reports
// store.ErrConflict when another writer changed it first.
func (p throttlePolicy) save(ctx context.Context, r store.Records, key string, s throttleState, old []byte, now time.Time) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	last := now
	if until := time.UnixMilli(s.Until); until.After(last) {
		last = until
	}
	rec := store.Record{Kind: p.kind, Key: key, Value: v, Expires: last.Add(p.window + p.memory)}
	if old == nil {
		return r.InsertRecord(ctx, rec)
	}
	return r.SwapRecord(ctx, rec, old)
}

// change applies f to the state of key with compare-and-swap, retrying on
// conflict. f returns whether to write and an error to return.
func (p throttlePolicy) change(ctx context.Context, r store.Records, key string, now time.Time, f func(*throttleState) (bool, error)) error {
	for attempt := range casAttempts {
		s, old, err := p.load(ctx, r, key)
		if err != nil {
			return err
		}
		s.prune(now, p.window)
		write, ferr := f(&s)
		if !write {
			return ferr
		}
		err = p.save(ctx, r, key, s, old, now)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("identity: store throttle: %w", err)
		}
		return ferr
	}
	return fmt.Errorf("identity: throttle changed concurrently %d times: %w", casAttempts, store.ErrConflict)
}

// prune drops failures older than the window.
func (s *throttleState) prune(now time.Time, window time.Duration) {
	cut := now.Add(-window).UnixMilli()
	s.Failures = slices.DeleteFunc(s.Failures, func(t int64) bool { return t <= cut })
}

// locked returns a *LockedError if the state is locked at now.
func (s *throttleState) locked(now time.Time) error {
	if s.Until > now.UnixMilli() {
		return &LockedError{RetryAfter: time.UnixMilli(s.Until).Sub(now).Round(time.Second)}
	}
	return nil
}

// lockIfFull starts the next lock when the window holds the limit.
func (p throttlePolicy) lockIfFull(s *throttleState, now time.Time) {
	if len(s.Failures) >= p.limit {
		s.Level++
		s.Until = now.Add(p.lockDuration(s.Level)).UnixMilli()
		s.Failures = nil
	}
}

// check returns a *LockedError if key is locked.
func (p throttlePolicy) check(ctx context.Context, r store.Records, key string, now time.Time) error {
	s, _, err := p.load(ctx, r, key)
	if err != nil {
		return err
	}
	return s.locked(now)
}

// reserve counts an attempt for key before its credentials are checked,
// so that concurrent guesses cannot all slip in before the first failure
// is written: it returns a *LockedError if key is locked (or becomes
// locked because the window is already full of attempts), and otherwise
// records the attempt as a failure that release takes back.
func (p throttlePolicy) reserve(ctx context.Context, r store.Records, key string, now time.Time) error {
	return p.change(ctx, r, key, now, func(s *throttleState) (bool, error) {
		if err := s.locked(now); err != nil {
			return false, err
		}
		if len(s.Failures) >= p.limit {
			p.lockIfFull(s, now)
			return true, s.locked(now)
		}
		s.Failures = append(s.Failures, now.UnixMilli())
		return true, nil
	})
}

// fail confirms a reserved attempt as a failure, or records a failure that
// was not reserved (reserved false), locking key when the window is full.
func (p throttlePolicy) fail(ctx context.Context, r store.Records, key string, now time.Time, reserved bool) error {
	return p.change(ctx, r, key, now, func(s *throttleState) (bool, error) {
		if !reserved {
			s.Failures = append(s.Failures, now.UnixMilli())
		}
		if len(s.Failures) < p.limit {
			return !reserved, nil
		}
		p.lockIfFull(s, now)
		return true, nil
	})
}

// release takes back an attempt reserved at now that turned out not to be
// a failure.
func (p throttlePolicy) release(ctx context.Context, r store.Records, key string, now time.Time) error {
	return p.change(ctx, r, key, now, func(s *throttleState) (bool, error) {
		i := slices.Index(s.Failures, now.UnixMilli())
		if i < 0 {
			return false, nil
		}
		s.Failures = slices.Delete(s.Failures, i, i+1)
		return true, nil
	})
}

// reset forgets key's history: a successful sign-in.
func (p throttlePolicy) reset(ctx context.Context, r store.Records, key string) error {
	if _, err := r.DeleteRecord(ctx, p.kind, key); err != nil {
		return fmt.Errorf("identity: reset throttle: %w", err)
	}
	return nil
}

// backoff waits a random time that grows with attempt before a retry of a
// compare-and-swap that lost a race, so that a burst of concurrent
// sign-ins on one key spreads out instead of failing together.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1+rand.IntN(1<<min(attempt, 6))) * 200 * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
