package sqlstore

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/wardenfhir/warden/internal/store"
)

// A read cache keeps the current versions of resources recently read by
// id, so that reading one that has not changed costs an index probe for
// its current version number instead of its row, its JSON and its
// compartments (read by id: ~27 → ~7 µs of the server's CPU, see
// docs/PERFORMANCE.md).
//
// Every hit is checked against the database before it is served: the
// cached copy is returned only when the version it holds is still the
// current one. So a write by anyone (this process, another replica on
// the same PostgreSQL database, an import or admin command beside the
// server) is seen by the next read exactly as without the cache, and no
// write has to tell the cache. This rests on a version's content never
// changing, which holds for everything the store writes but one thing:
// ReplaceJSON re-encrypts sealed content in place. Resources that
// cacheable refuses (the sealing layer refuses any that carry sealed
// content) are therefore never cached, and the sensitive ones stay out of
// this memory altogether.
//
// A backend that is a CommitWatcher (SQLite's) spares most hits the
// probe too: an entry carries the commit stamp read before the database
// last confirmed it, and while the stamp is unchanged nothing has been
// committed since, by anyone, so the entry is still current.
//
// Searches use it too (see fill): they find their matches' current
// version numbers anyway, and take the JSON and compartments of those
// the cache holds in that version from it.
//
// The cache holds at most maxBytes of JSON and bookkeeping, in shards
// that each evict arbitrary entries when full.
type readCache struct {
	cacheable func(json []byte) bool
	watch     CommitWatcher // nil: every hit is probed
	shardMax  int64
	seed      maphash.Seed
	hits      atomic.Uint64
	misses    atomic.Uint64
	// Of search matches (see fill): taken from the cache, or read.
	searchHits   atomic.Uint64
	searchMisses atomic.Uint64
	shards       [readCacheShards]readCacheShard
}

// CommitStamp is a database's commit state as a CommitWatcher reads it.
type CommitStamp [12]uint32

// CommitWatcher is a Backend that can tell without a query whether
// anything has been committed to its database since an earlier moment.
type CommitWatcher interface {
	// CommitStamp returns the database's commit state now. Two ok stamps
	// that are equal MUST mean that no transaction was committed, by any
	// connection or process, between the two calls. ok is false when the
	// state cannot be read (a commit is being published, or the backend
	// cannot watch), and then nothing may be concluded from the stamp.
	CommitStamp() (stamp CommitStamp, ok bool)
}

// cacheEntry is a cached current version, with the commit stamp read
// before the database last confirmed it current (stamped false: none).
type cacheEntry struct {
	res     store.Resource
	stamp   CommitStamp
	stamped bool
}

const readCacheShards = 32

// entryOverhead approximates the bytes an entry costs beyond its JSON:
// the map slot, the key and the Resource.
const entryOverhead = 160

type readCacheShard struct {
	mu    sync.Mutex
	m     map[string]*cacheEntry
	bytes int64
}

// ReadCacheStats counts the reads by id that found their resource in the
// read cache, current (Hits), and the others (Misses), and what the cache
// holds now: Entries resources in about Bytes of memory.
//
// SearchHits and SearchMisses count the same of search matches: their
// JSON and compartments taken from the cache, which held the version the
// search found, or read from the database.
type ReadCacheStats struct {
	Hits, Misses             uint64
	SearchHits, SearchMisses uint64
	Entries, Bytes           int64
}

// CacheReads keeps up to maxBytes of recently read current versions in
// memory for Read, as described at readCache; cacheable decides which
// may be kept (nil keeps none). maxBytes <= 0 turns the cache off. Call it
// before the store is used.
func (s *Store) CacheReads(maxBytes int64, cacheable func(json []byte) bool) {
	if maxBytes <= 0 || cacheable == nil {
		s.cache = nil
		return
	}
	c := &readCache{cacheable: cacheable, shardMax: max(maxBytes/readCacheShards, 1), seed: maphash.MakeSeed()}
	c.watch, _ = s.b.(CommitWatcher)
	for i := range c.shards {
		c.shards[i].m = map[string]*cacheEntry{}
	}
	s.cache = c
}

// ReadCacheStats reports the read cache's hits and misses (zero when it
// is off).
func (s *Store) ReadCacheStats() ReadCacheStats {
	if s.cache == nil {
		return ReadCacheStats{}
	}
	st := ReadCacheStats{
		Hits: s.cache.hits.Load(), Misses: s.cache.misses.Load(),
		SearchHits: s.cache.searchHits.Load(), SearchMisses: s.cache.searchMisses.Load(),
	}
	for i := range s.cache.shards {
		sh := &s.cache.shards[i]
		sh.mu.Lock()
		st.Entries += int64(len(sh.m))
		st.Bytes += sh.bytes
		sh.mu.Unlock()
	}
	return st
}

// key writes the cache key of typ/id into buf.
func cacheKey(buf []byte, typ, id string) []byte {
	buf = append(buf, typ...)
	buf = append(buf, '/')
	return append(buf, id...)
}

func (c *readCache) shard(k []byte) *readCacheShard {
	return &c.shards[maphash.Bytes(c.seed, k)%readCacheShards]
}

// stamp is the commit stamp now, if the backend can read one.
func (c *readCache) stamp() (CommitStamp, bool) {
	if c.watch == nil {
		return CommitStamp{}, false
	}
	return c.watch.CommitStamp()
}

// get returns the cached entry of typ/id, if any (entries are never
// changed once cached).
func (c *readCache) get(typ, id string) (*cacheEntry, bool) {
	var kb [96]byte
	k := cacheKey(kb[:0], typ, id)
	sh := c.shard(k)
	sh.mu.Lock()
	e, ok := sh.m[string(k)]
	sh.mu.Unlock()
	return e, ok
}

// put keeps res, a current live version the database has just shown, if
// cacheable allows; stamp (if stamped) is the commit stamp read before
// the database was asked. The slices it shares with the caller are
// capped at their length, so that an append by either side copies
// instead of writing into the other.
func (c *readCache) put(res *store.Resource, stamp CommitStamp, stamped bool) {
	if res.Deleted || !c.cacheable(res.JSON) {
		return
	}
	res.JSON = res.JSON[:len(res.JSON):len(res.JSON)]
	res.Patients = res.Patients[:len(res.Patients):len(res.Patients)]
	e := &cacheEntry{res: *res, stamp: stamp, stamped: stamped}
	e.res.Withheld = nil
	size := entrySize(e)
	if size > c.shardMax/4 {
		return // a few large resources would push out many small ones
	}
	k := string(cacheKey(nil, res.Type, res.ID))
	sh := c.shard([]byte(k))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[k]; ok {
		sh.bytes -= entrySize(old)
		delete(sh.m, k)
	}
	for victim, v := range sh.m {
		if sh.bytes+size <= c.shardMax {
			break
		}
		sh.bytes -= entrySize(v)
		delete(sh.m, victim)
	}
	sh.m[k] = e
	sh.bytes += size
}

// restamp records that the database confirmed e current as of stamp,
// unless e has been replaced or dropped meanwhile.
func (c *readCache) restamp(e *cacheEntry, stamp CommitStamp) {
	k := cacheKey(nil, e.res.Type, e.res.ID)
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[string(k)] == e {
		sh.m[string(k)] = &cacheEntry{res: e.res, stamp: stamp, stamped: true}
	}
}

// drop forgets typ/id (it is gone, or changed).
func (c *readCache) drop(typ, id string) {
	var kb [96]byte
	k := cacheKey(kb[:0], typ, id)
	sh := c.shard(k)
	sh.mu.Lock()
	if old, ok := sh.m[string(k)]; ok {
		sh.bytes -= entrySize(old)
		delete(sh.m, string(k))
	}
	sh.mu.Unlock()
}

func entrySize(e *cacheEntry) int64 {
	r := &e.res
	return int64(len(r.JSON)+len(r.Type)+len(r.ID)+16*len(r.Patients)) + entryOverhead
}

// currentVersion is the version number of typ/id's current row (a
// deletion marker's included), or 0 when there is none: a probe of the
// (type, id, version) index that reads no row.
func currentVersion(ctx context.Context, q Querier, typ, id string) (int64, error) {
	rows, err := q.Query(ctx, `SELECT version FROM resources WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1`, typ, id)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var v int64
	if rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return 0, err
		}
	}
	return v, rows.Err()
}
