package dpop

import (
	"context"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestReplay covers the ways to spend one proof twice, and what the cache
// design allows after a proof's window (documented on Verify).
func TestReplay(t *testing.T) {
	a, b := newEC(t, elliptic.P256()), newEC(t, elliptic.P256())
	withJTI := func(key any, jti string, iat time.Time) string {
		return sign(t, spec{alg: jose.ES256, key: key, claims: map[string]any{"jti": jti, "iat": iat.Unix()}})
	}
	verify := func(v *Verifier, proof string, now time.Time) error {
		_, err := v.Verify(proof, testMethod, testURI, testToken, now)
		return err
	}

	t.Run("the same proof twice", func(t *testing.T) {
		v := newVerifier(t, Options{})
		p := withJTI(a, "j1", testNow)
		if err := verify(v, p, testNow); err != nil {
			t.Fatal(err)
		}
		if err := verify(v, p, testNow.Add(time.Second)); !errors.Is(err, ErrInvalidProof) || !errors.Is(err, ErrReplayed) {
			t.Fatalf("replay = %v, want ErrReplayed", err)
		}
	})
	t.Run("a new proof reusing a jti within the window", func(t *testing.T) {
		v := newVerifier(t, Options{})
		if err := verify(v, withJTI(a, "j1", testNow), testNow); err != nil {
			t.Fatal(err)
		}
		if err := verify(v, withJTI(a, "j1", testNow.Add(30*time.Second)), testNow.Add(30*time.Second)); !errors.Is(err, ErrReplayed) {
			t.Fatalf("reused jti = %v, want ErrReplayed", err)
		}
	})
	t.Run("the same proof after its window is refused by its iat", func(t *testing.T) {
		v := newVerifier(t, Options{})
		p := withJTI(a, "j1", testNow)
		if err := verify(v, p, testNow); err != nil {
			t.Fatal(err)
		}
		if err := verify(v, p, testNow.Add(DefaultWindow+time.Second)); !errors.Is(err, ErrIssuedAt) {
			t.Fatalf("late replay = %v, want ErrIssuedAt", err)
		}
	})
	t.Run("another key may use the same jti", func(t *testing.T) {
		v := newVerifier(t, Options{})
		if err := verify(v, withJTI(a, "j1", testNow), testNow); err != nil {
			t.Fatal(err)
		}
		if err := verify(v, withJTI(b, "j1", testNow), testNow); err != nil {
			t.Fatalf("jti of another key: %v", err)
		}
	})
	t.Run("a jti may be reused with a fresh iat once the first proof expired", func(t *testing.T) {
		v := newVerifier(t, Options{})
		if err := verify(v, withJTI(a, "j1", testNow), testNow); err != nil {
			t.Fatal(err)
		}
		later := testNow.Add(DefaultWindow + replayBucket)
		if err := verify(v, withJTI(a, "j1", later), later); err != nil {
			t.Fatalf("jti reused after expiry: %v", err)
		}
	})
	t.Run("a refused proof is not remembered", func(t *testing.T) {
		v := newVerifier(t, Options{})
		bad := sign(t, spec{alg: jose.ES256, key: a, claims: map[string]any{"jti": "j1", "ath": athOf("other")}})
		if err := verify(v, bad, testNow); !errors.Is(err, ErrTokenHash) {
			t.Fatal(err)
		}
		if err := verify(v, withJTI(a, "j1", testNow), testNow); err != nil {
			t.Fatalf("good proof after a refused one with its jti: %v", err)
		}
	})
	t.Run("concurrent presentations: exactly one wins", func(t *testing.T) {
		v := newVerifier(t, Options{})
		p := withJTI(a, "j1", testNow)
		var ok, replayed atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				switch err := verify(v, p, testNow); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrReplayed):
					replayed.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || replayed.Load() != 15 {
			t.Fatalf("accepted %d, replayed %d; want 1 and 15", ok.Load(), replayed.Load())
		}
	})
	t.Run("a full cache refuses, fail closed", func(t *testing.T) {
		v := newVerifier(t, Options{Replays: NewMemoryReplayCache(0)}) // one entry per shard
		var full error
		for i := range 200 {
			if err := verify(v, withJTI(a, "j"+string(rune('A'+i%26))+string(rune('a'+i/26)), testNow), testNow); err != nil {
				full = err
				break
			}
		}
		if !errors.Is(full, ErrReplayCheck) || !errors.Is(full, ErrReplayCacheFull) || errors.Is(full, ErrInvalidProof) {
			t.Fatalf("full cache = %v, want ErrReplayCheck (not ErrInvalidProof)", full)
		}
	})
	t.Run("a failing backend refuses, fail closed", func(t *testing.T) {
		boom := errors.New("store down")
		v := newVerifier(t, Options{Replays: failingCache{boom}})
		err := verify(v, withJTI(a, "j1", testNow), testNow)
		if !errors.Is(err, ErrReplayCheck) || !errors.Is(err, boom) || errors.Is(err, ErrInvalidProof) {
			t.Fatalf("failing cache = %v, want ErrReplayCheck", err)
		}
	})
}

type failingCache struct{ err error }

func (f failingCache) Remember(context.Context, [sha256.Size]byte, time.Time, time.Time) error {
	return f.err
}

// TestMemoryReplayCacheShards: two caches spread the same ids over their
// shards differently, so a client cannot aim its proofs at one shard.
func TestMemoryReplayCacheShards(t *testing.T) {
	a, b := NewMemoryReplayCache(1<<10), NewMemoryReplayCache(1<<10)
	differ := false
	for i := range 64 {
		id := sha256.Sum256([]byte{byte(i)})
		if maphash.Bytes(a.seed, id[:])%replayShards != maphash.Bytes(b.seed, id[:])%replayShards {
			differ = true
		}
	}
	if !differ {
		t.Errorf("two caches put 64 ids in the same shards")
	}
}

// TestMemoryReplayCacheExpiry: expired buckets are dropped, so a cache at
// capacity takes new ids once the old ones expire, and Len counts down.
func TestMemoryReplayCacheExpiry(t *testing.T) {
	ctx := context.Background()
	c := NewMemoryReplayCache(replayShards) // one id per shard
	var id, id2 [sha256.Size]byte
	shard := func(id [sha256.Size]byte) uint64 { return maphash.Bytes(c.seed, id[:]) % replayShards }
	for id2[1] = 1; shard(id2) != shard(id); id2[1]++ { // another id of id's shard
	}
	if err := c.Remember(ctx, id, testNow.Add(time.Minute), testNow); err != nil {
		t.Fatal(err)
	}
	if err := c.Remember(ctx, id2, testNow.Add(time.Minute), testNow); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("full shard = %v", err)
	}
	if err := c.Remember(ctx, id, testNow.Add(time.Minute), testNow.Add(30*time.Second)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay = %v", err)
	}
	later := testNow.Add(time.Minute + replayBucket)
	if err := c.Remember(ctx, id2, later.Add(time.Minute), later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
}
