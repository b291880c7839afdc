package identity_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/identity"
)

// retryAfter returns the wait of a *LockedError, failing the test if err
// is not one.
func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	var le *identity.LockedError
	if !errors.As(err, &le) || !errors.Is(err, identity.ErrLocked) {
		t.Fatalf("err = %v, want a *LockedError", err)
	}
	return le.RetryAfter
}

// fail makes n failed sign-ins as user, checking each is an ordinary
// credential failure.
func (f *fixture) fail(t *testing.T, user string, n int) {
	t.Helper()
	for i := range n {
		if _, _, err := f.auth(user, "not the password", ""); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
}

func TestLockout(t *testing.T) {
	f := newFixture(t)
	secret := f.users(t)

	// Four failures, then the right password: success resets the count.
	f.fail(t, "alice", 4)
	if _, _, err := f.auth("alice", alicePassword, ""); err != nil {
		t.Fatalf("after 4 failures: %v", err)
	}
	f.fail(t, "alice", 4)
	if _, _, err := f.auth("alice", alicePassword, ""); err != nil {
		t.Fatalf("after a success and 4 failures: %v", err)
	}

	// Five failures within 15 minutes lock the account for 15 minutes:
	// the right password is refused, without a password check, and the
	// error says only ErrLocked.
	f.fail(t, "alice", 5)
	before := f.hashes.Load()
	_, _, err := f.auth("ALICE", alicePassword, "")
	if d := retryAfter(t, err); d != 15*time.Minute {
		t.Errorf("RetryAfter = %v, want 15m", d)
	}
	if errors.Is(err, identity.ErrInvalidCredentials) {
		t.Error("a locked sign-in also says ErrInvalidCredentials")
	}
	if f.hashes.Load() != before {
		t.Error("a locked attempt ran Argon2id")
	}
	// Another account is not affected.
	if _, _, err := f.auth("bob", bobPassword, f.code(t, secret, 0)); err != nil {
		t.Errorf("bob while alice is locked: %v", err)
	}
	f.clock.Advance(10 * time.Minute)
	_, _, err = f.auth("alice", alicePassword, "")
	if d := retryAfter(t, err); d != 5*time.Minute {
		t.Errorf("RetryAfter 10 minutes in = %v, want 5m", d)
	}
	// The lock expires.
	f.clock.Advance(5*time.Minute + time.Second)
	if _, _, err := f.auth("alice", alicePassword, ""); err != nil {
		t.Fatalf("after the lock: %v", err)
	}

	// Failures spread wider than the window never lock.
	for range 12 {
		f.fail(t, "alice", 1)
		f.clock.Advance(4 * time.Minute)
	}
	if _, _, err := f.auth("alice", alicePassword, ""); err != nil {
		t.Fatalf("after slow failures: %v", err)
	}
}

func TestLockoutDoublesAndCaps(t *testing.T) {
	f := newFixture(t)
	f.users(t)
	want := 15 * time.Minute
	for round := 1; round <= 9; round++ {
		f.fail(t, "alice", 5)
		_, _, err := f.auth("alice", alicePassword, "")
		if got := retryAfter(t, err); got != want {
			t.Fatalf("lock %d: RetryAfter = %v, want %v", round, got, want)
		}
		f.clock.Advance(want + time.Second)
		want = min(2*want, 24*time.Hour)
	}
	if want != 24*time.Hour {
		t.Fatalf("never reached the cap: %v", want)
	}
}

func TestLockoutUnknownUserAlike(t *testing.T) {
	// A locked unknown name says exactly what a locked real one says, so
	// the lock does not reveal which accounts exist.
	f := newFixture(t)
	f.users(t)
	f.fail(t, "alice", 5)
	f.fail(t, "mallory", 5)
	_, _, errKnown := f.auth("alice", alicePassword, "")
	_, _, errUnknown := f.auth("mallory", alicePassword, "")
	if retryAfter(t, errKnown) != retryAfter(t, errUnknown) || errKnown.Error() != errUnknown.Error() {
		t.Errorf("known %v, unknown %v", errKnown, errUnknown)
	}
}

func TestLockoutConcurrentGuesses(t *testing.T) {
	// 20 guesses at once: the attempts are counted before the password is
	// checked, so at most 5 get a password check.
	f := newFixture(t)
	f.users(t)
	f.hashes.Store(0)
	var wg sync.WaitGroup
	var invalid, locked atomic.Int32
	for range 20 {
		wg.Go(func() {
			_, _, err := f.auth("alice", "guess guess guess", "")
			switch {
			case errors.Is(err, identity.ErrInvalidCredentials):
				invalid.Add(1)
			case errors.Is(err, identity.ErrLocked):
				locked.Add(1)
			default:
				t.Errorf("Authenticate = %v", err)
			}
		})
	}
	wg.Wait()
	if invalid.Load() > 5 || f.hashes.Load() > 5 || invalid.Load()+locked.Load() != 20 {
		t.Errorf("%d password checks, %d invalid, %d locked", f.hashes.Load(), invalid.Load(), locked.Load())
	}
	_, _, err := f.auth("alice", alicePassword, "")
	retryAfter(t, err)
}

func TestAddressThrottle(t *testing.T) {
	f := newFixture(t)
	f.users(t)
	ctx := context.Background()
	attacker := netip.MustParseAddr("2001:db8:1:2::7")
	try := func(user, pass string, from netip.Addr) error {
		_, _, err := f.dir.Authenticate(ctx, identity.Attempt{Username: user, Password: pass, Remote: from})
		return err
	}
	// 50 failures spread over many names (each under its own limit).
	for i := range 50 {
		if err := try(fmt.Sprintf("user%d", i%25), "password spray", attacker); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	before := f.hashes.Load()
	for name, tc := range map[string]struct {
		from netip.Addr
		user string
	}{
		"same address, right password": {attacker, "alice"},
		"same /64":                     {netip.MustParseAddr("2001:db8:1:2:ffff::1"), "alice"},
		"same /64 with a zone":         {netip.MustParseAddr("2001:db8:1:2::9%eth0"), "alice"},
		"same address, new name":       {attacker, "newcomer"},
	} {
		if err := try(tc.user, alicePassword, tc.from); !errors.Is(err, identity.ErrLocked) {
			t.Errorf("%s: %v, want ErrLocked", name, err)
		}
	}
	if f.hashes.Load() != before {
		t.Error("a throttled address got a password check")
	}
	// Other addresses, including the neighbouring /64, are not affected.
	for _, from := range []string{"2001:db8:1:3::7", "192.0.2.99"} {
		if err := try("alice", alicePassword, netip.MustParseAddr(from)); err != nil {
			t.Errorf("from %s: %v", from, err)
		}
	}
	f.clock.Advance(15*time.Minute + time.Second)
	if err := try("alice", alicePassword, attacker); err != nil {
		t.Errorf("after the address lock: %v", err)
	}
}

func TestAddressKeyMapped(t *testing.T) {
	// An IPv4 address and its IPv4-mapped IPv6 form share one bucket; a
	// missing address has a bucket of its own that callers cannot escape.
	f := newFixture(t)
	f.users(t)
	ctx := context.Background()
	for i := range 50 {
		from := netip.MustParseAddr("198.51.100.7")
		if i%2 == 1 {
			from = netip.MustParseAddr("::ffff:198.51.100.7")
		}
		_, _, err := f.dir.Authenticate(ctx, identity.Attempt{Username: fmt.Sprintf("u%d", i), Password: "password spray", Remote: from})
		if !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	_, _, err := f.dir.Authenticate(ctx, identity.Attempt{Username: "alice", Password: alicePassword, Remote: netip.MustParseAddr("198.51.100.7")})
	retryAfter(t, err)

	for i := range 50 {
		_, _, err := f.dir.Authenticate(ctx, identity.Attempt{Username: fmt.Sprintf("v%d", i), Password: "password spray"})
		if !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	_, _, err = f.dir.Authenticate(ctx, identity.Attempt{Username: "alice", Password: alicePassword})
	retryAfter(t, err)
}

func TestLockSurvivesRestart(t *testing.T) {
	// The counters live in the store: a new Directory over the same
	// records (a restart, or another replica) sees the lock.
	f := newFixture(t)
	f.users(t)
	f.fail(t, "alice", 5)
	d2 := identity.NewDirectoryWithParams(f.rec, f.sealer, identity.Options{Now: f.clock.Now}, cheap)
	_, _, err := d2.Authenticate(context.Background(), identity.Attempt{Username: "alice", Password: alicePassword, Remote: home})
	retryAfter(t, err)
}
