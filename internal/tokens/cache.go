package tokens

import (
	"crypto/sha256"
	"sync"

	"github.com/wardenfhir/warden/internal/policy"
)

// cacheShards splits the verified-token cache so that concurrent requests
// rarely wait on one lock.
const cacheShards = 16

// cacheEntry is a verified token: its Principal and the key that signed
// it. Entries are immutable once stored.
type cacheEntry struct {
	principal policy.Principal
	kid       string
}

// tokenCache maps the SHA-256 of a raw token to its verification. It is
// bounded: a full shard makes room by evicting, of a few entries it
// samples (Go's map iteration starts at a random place), the one that
// expires first, so expired entries go before live ones.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]*cacheEntry
}

func newTokenCache(entries int) *tokenCache {
	c := &tokenCache{perShard: max(1, entries/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]*cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(sum [sha256.Size]byte) *cacheShard {
	return &c.shards[sum[0]%cacheShards]
}

func (c *tokenCache) get(sum [sha256.Size]byte) *cacheEntry {
	sh := c.shard(sum)
	sh.mu.RLock()
	e := sh.m[sum]
	sh.mu.RUnlock()
	return e
}

// evictSample is how many entries a full shard looks at for an expired one.
const evictSample = 8

func (c *tokenCache) put(sum [sha256.Size]byte, e *cacheEntry) {
	sh := c.shard(sum)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[sum]; !ok && len(sh.m) >= c.perShard {
		var victim [sha256.Size]byte
		n := 0
		for k, old := range sh.m {
			if n == 0 || old.principal.Expires.Before(sh.m[victim].principal.Expires) {
				victim = k
			}
			if n++; n == evictSample {
				break
			}
		}
		delete(sh.m, victim)
	}
	sh.m[sum] = e
}

func (c *tokenCache) delete(sum [sha256.Size]byte) {
	sh := c.shard(sum)
	sh.mu.Lock()
	delete(sh.m, sum)
	sh.mu.Unlock()
}

// len returns the number of cached entries.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}
