package sqlstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/store"
)

// TestReadCacheBounded fills a small cache far past its size: it keeps
// within it, keeps the latest entry it was given, and refuses entries too
// large to share a shard fairly.
func TestReadCacheBounded(t *testing.T) {
	const maxBytes = 1 << 20
	var s Store
	s.CacheReads(maxBytes, func([]byte) bool { return true })
	c := s.cache
	body := []byte(`{"resourceType":"Patient","text":"` + strings.Repeat("x", 300) + `"}`)
	for i := range 5000 {
		id := fmt.Sprintf("p%04d", i)
		c.put(&store.Resource{Type: "Patient", ID: id, Version: 1, JSON: body, Patients: []string{id}}, CommitStamp{}, false)
		if got, ok := c.get("Patient", id); !ok || got.res.ID != id {
			t.Fatalf("entry %s just put: %v", id, ok)
		}
	}
	var total, entries int64
	for i := range c.shards {
		sh := &c.shards[i]
		var sum int64
		for _, r := range sh.m {
			sum += entrySize(r)
		}
		if sum != sh.bytes {
			t.Errorf("shard %d counts %d bytes, holds %d", i, sh.bytes, sum)
		}
		if sh.bytes > c.shardMax {
			t.Errorf("shard %d holds %d bytes, more than its %d", i, sh.bytes, c.shardMax)
		}
		total += sh.bytes
		entries += int64(len(sh.m))
	}
	if total > maxBytes || entries < 50 {
		t.Errorf("the cache holds %d entries in %d bytes; want within %d bytes and not nearly empty", entries, total, maxBytes)
	}
	if st := s.ReadCacheStats(); st.Entries != entries || st.Bytes != total {
		t.Errorf("stats report %d entries in %d bytes; the shards hold %d in %d", st.Entries, st.Bytes, entries, total)
	}

	big := &store.Resource{Type: "Binary", ID: "big", Version: 1, JSON: make([]byte, c.shardMax)}
	c.put(big, CommitStamp{}, false)
	if _, ok := c.get("Binary", "big"); ok {
		t.Error("an entry as large as a shard was kept")
	}
	c.put(&store.Resource{Type: "Patient", ID: "gone", Version: 1, JSON: body}, CommitStamp{}, false)
	c.drop("Patient", "gone")
	if _, ok := c.get("Patient", "gone"); ok {
		t.Error("a dropped entry is still served")
	}
	c.put(&store.Resource{Type: "Patient", ID: "deleted", Version: 2, Deleted: true}, CommitStamp{}, false)
	if _, ok := c.get("Patient", "deleted"); ok {
		t.Error("a deletion marker was kept")
	}
}

// TestReadCacheOff: no size or no predicate means no cache.
func TestReadCacheOff(t *testing.T) {
	var s Store
	s.CacheReads(0, func([]byte) bool { return true })
	if s.cache != nil {
		t.Error("CacheReads(0) left a cache")
	}
	s.CacheReads(1<<20, nil)
	if s.cache != nil {
		t.Error("CacheReads without a predicate left a cache")
	}
	if st := s.ReadCacheStats(); st != (ReadCacheStats{}) {
		t.Errorf("stats of no cache: %+v", st)
	}
}

// TestReadCacheRestamp: a confirmation stamps the entry that was
// confirmed, and never overwrites one put meanwhile.
func TestReadCacheRestamp(t *testing.T) {
	var s Store
	s.CacheReads(1<<20, func([]byte) bool { return true })
	c := s.cache
	c.put(&store.Resource{Type: "Patient", ID: "a", Version: 1, JSON: []byte(`{"v":1}`)}, CommitStamp{1}, true)
	e1, _ := c.get("Patient", "a")
	c.restamp(e1, CommitStamp{2})
	if e, _ := c.get("Patient", "a"); e.stamp != (CommitStamp{2}) || !e.stamped || e.res.Version != 1 {
		t.Fatalf("after restamp: %+v", e)
	}
	c.put(&store.Resource{Type: "Patient", ID: "a", Version: 2, JSON: []byte(`{"v":2}`)}, CommitStamp{3}, true)
	c.restamp(e1, CommitStamp{4})
	if e, _ := c.get("Patient", "a"); e.res.Version != 2 || e.stamp != (CommitStamp{3}) {
		t.Fatalf("a stale confirmation replaced a newer entry: %+v", e)
	}
	c.drop("Patient", "a")
	c.restamp(e1, CommitStamp{5})
	if _, ok := c.get("Patient", "a"); ok {
		t.Fatal("a confirmation brought back a dropped entry")
	}
}
