// Package dpoptest is the conformance suite of dpop.ReplayCache: every
// implementation (the in-memory one, one over the shared store for
// several replicas) runs TestReplayCache from its tests. It is imported
// only from _test.go files and never from the binary.
package dpoptest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/dpop"
)

// TestReplayCache checks the contract of dpop.ReplayCache on caches made
// by newCache, each subtest with a fresh one: an id is accepted once and
// refused with dpop.ErrReplayed until it expires; ids are independent;
// an expired id is accepted again within an hour of its expiry; a refusal
// records nothing new; and of concurrent calls with one id exactly one
// wins.
func TestReplayCache(t *testing.T, newCache func(t *testing.T) dpop.ReplayCache) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	id := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

	t.Run("once, then replayed until expiry", func(t *testing.T) {
		c := newCache(t)
		exp := now.Add(time.Minute)
		if err := c.Remember(ctx, id("a"), exp, now); err != nil {
			t.Fatalf("first: %v", err)
		}
		for _, at := range []time.Time{now, now.Add(time.Second), exp.Add(-time.Second)} {
			if err := c.Remember(ctx, id("a"), exp, at); !errors.Is(err, dpop.ErrReplayed) {
				t.Fatalf("again at now+%v: %v, want ErrReplayed", at.Sub(now), err)
			}
		}
	})
	t.Run("a later expiry does not reopen an id", func(t *testing.T) {
		c := newCache(t)
		if err := c.Remember(ctx, id("a"), now.Add(time.Minute), now); err != nil {
			t.Fatal(err)
		}
		if err := c.Remember(ctx, id("a"), now.Add(time.Hour), now.Add(time.Second)); !errors.Is(err, dpop.ErrReplayed) {
			t.Fatalf("again with a later expiry: %v, want ErrReplayed", err)
		}
	})
	t.Run("ids are independent", func(t *testing.T) {
		c := newCache(t)
		for i := range 100 {
			if err := c.Remember(ctx, id(fmt.Sprint(i)), now.Add(time.Minute), now); err != nil {
				t.Fatalf("id %d: %v", i, err)
			}
		}
	})
	t.Run("forgotten within an hour of expiry", func(t *testing.T) {
		c := newCache(t)
		if err := c.Remember(ctx, id("a"), now.Add(time.Minute), now); err != nil {
			t.Fatal(err)
		}
		later := now.Add(time.Minute + time.Hour)
		if err := c.Remember(ctx, id("a"), later.Add(time.Minute), later); err != nil {
			t.Fatalf("an hour after expiry: %v", err)
		}
		if err := c.Remember(ctx, id("a"), later.Add(time.Minute), later); !errors.Is(err, dpop.ErrReplayed) {
			t.Fatalf("renewed id: %v, want ErrReplayed", err)
		}
	})
	t.Run("concurrent calls: exactly one wins", func(t *testing.T) {
		c := newCache(t)
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = c.Remember(ctx, id("a"), now.Add(time.Minute), now) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, dpop.ErrReplayed):
				t.Errorf("concurrent call: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d concurrent calls won, want 1", won, n)
		}
	})
}
