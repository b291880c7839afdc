package dpop

import (
	"context"
	"crypto/sha256"
	"hash/maphash"
	"sync"
	"time"
)

// ReplayCache remembers the DPoP proofs a Verifier has accepted, so that
// none is accepted twice (RFC 9449 §11.1). Proofs are named by an opaque
// 32-byte id (a hash of the proof's key thumbprint and jti).
//
// Remember records id as used until expires and returns nil, or returns
// ErrReplayed, recording nothing, when id is already recorded and its
// expiry is not past at now. It MUST be atomic: of several concurrent
// calls with one id, on any replica sharing the cache, exactly one
// returns nil. It MAY keep an id longer than asked, never shorter, and
// forgets it within an hour of its expiry. Any other error refuses the
// proof (Verify fails closed with ErrReplayCheck). dpoptest.TestReplayCache
// checks an implementation against this contract.
type ReplayCache interface {
	Remember(ctx context.Context, id [sha256.Size]byte, expires, now time.Time) error
}

// Sizes of MemoryReplayCache's parts.
const (
	replayShards = 16
	// replayBucket is the width of the time buckets ids are kept in:
	// expiry costs dropping a whole bucket, and an id outlives its expiry
	// by less than this.
	replayBucket = 16 * time.Second
)

// MemoryReplayCache is a ReplayCache in this process's memory, right for
// a single replica. It is bounded: it holds at most the number of entries
// it was made with and, when full, refuses new proofs with
// ErrReplayCacheFull rather than forget unexpired ones (forgetting would
// let a replay through). Ids are kept in shards of time buckets (by
// expiry), so that expiry drops whole buckets and never scans. The shard
// of an id is a hash of it under a seed chosen when the cache is made, so
// that a client cannot grind jtis into one shard to fill it and have
// others' proofs refused.
type MemoryReplayCache struct {
	seed     maphash.Seed
	perShard int
	shards   [replayShards]replayShard
}

type replayShard struct {
	mu      sync.Mutex
	n       int                                      // ids across buckets
	buckets map[int64]map[[sha256.Size]byte]struct{} // expiry / replayBucket → ids
}

// NewMemoryReplayCache returns a cache of at most entries ids (at least
// one per shard).
func NewMemoryReplayCache(entries int) *MemoryReplayCache {
	c := &MemoryReplayCache{seed: maphash.MakeSeed(), perShard: max(1, entries/replayShards)}
	for i := range c.shards {
		c.shards[i].buckets = make(map[int64]map[[sha256.Size]byte]struct{})
	}
	return c
}

// Remember implements ReplayCache.
func (c *MemoryReplayCache) Remember(_ context.Context, id [sha256.Size]byte, expires, now time.Time) error {
	sh := &c.shards[maphash.Bytes(c.seed, id[:])%replayShards]
	cur, b := bucketOf(now), bucketOf(expires)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k, ids := range sh.buckets {
		if k < cur { // every id in it expired before now
			sh.n -= len(ids)
			delete(sh.buckets, k)
			continue
		}
		if _, ok := ids[id]; ok {
			return ErrReplayed
		}
	}
	if sh.n >= c.perShard {
		return ErrReplayCacheFull
	}
	ids := sh.buckets[max(b, cur)]
	if ids == nil {
		ids = make(map[[sha256.Size]byte]struct{})
		sh.buckets[max(b, cur)] = ids
	}
	ids[id] = struct{}{}
	sh.n++
	return nil
}

// Len returns the number of ids held, expired ones not yet dropped
// included.
func (c *MemoryReplayCache) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += c.shards[i].n
		c.shards[i].mu.Unlock()
	}
	return n
}

// bucketOf is the bucket of ids expiring at t: floor(t / replayBucket).
func bucketOf(t time.Time) int64 {
	ns, w := t.UnixNano(), int64(replayBucket)
	b := ns / w
	if ns%w < 0 {
		b--
	}
	return b
}
