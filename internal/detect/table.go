package detect

import (
	"sync"
)

// shards is how many independently locked parts each table has.
const shards = 32

// evictSample is how many entries a full shard looks at to pick the
// least recently seen one to forget.
const evictSample = 8

// table is a bounded, sharded map of tracked state. When a shard is full,
// adding a key forgets the least recently seen of a sample of entries:
// an entry in active use is almost never the one forgotten.
type table[K comparable, V any] struct {
	parts  [shards]part[K, V]
	perCap int
	last   func(*V) int64 // when an entry was last seen
}

type part[K comparable, V any] struct {
	mu      sync.Mutex
	m       map[K]*V
	evicted int
}

func newTable[K comparable, V any](capacity int, last func(*V) int64) *table[K, V] {
	t := &table[K, V]{perCap: max(1, capacity/shards), last: last}
	for i := range t.parts {
		t.parts[i].m = map[K]*V{}
	}
	return t
}

// lock returns the entry of k (created when absent) with its shard
// locked; the caller unlocks the returned part.
func (t *table[K, V]) lock(k K, hash uint64) (*V, *part[K, V]) {
	p := &t.parts[hash%shards]
	p.mu.Lock()
	v, ok := p.m[k]
	if !ok {
		if len(p.m) >= t.perCap {
			p.evictOne(t.last)
		}
		v = new(V)
		p.m[k] = v
	}
	return v, p
}

// peek returns the entry of k, if any, with its shard locked (nil and
// unlocked when absent).
func (t *table[K, V]) peek(k K, hash uint64) (*V, *part[K, V]) {
	p := &t.parts[hash%shards]
	p.mu.Lock()
	if v, ok := p.m[k]; ok {
		return v, p
	}
	p.mu.Unlock()
	return nil, nil
}

func (p *part[K, V]) evictOne(last func(*V) int64) {
	var victim K
	oldest, n := int64(0), 0
	for k, v := range p.m {
		if at := last(v); n == 0 || at < oldest {
			victim, oldest = k, at
		}
		n++
		if n == evictSample {
			break
		}
	}
	if n > 0 {
		delete(p.m, victim)
		p.evicted++
	}
}

// size is the number of entries held.
func (t *table[K, V]) size() int {
	n := 0
	for i := range t.parts {
		p := &t.parts[i]
		p.mu.Lock()
		n += len(p.m)
		p.mu.Unlock()
	}
	return n
}
