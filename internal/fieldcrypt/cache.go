package fieldcrypt

import "sync"

// keyCache holds unwrapped keysets, bounded in number. A nil state
// records a shredded scope or patient. Each change that removes entries
// (shredding, Invalidate) advances the generation; a keyset loaded
// before that is not cached afterwards, so a load racing a shred cannot
// bring a destroyed key back into memory. Nor does a load racing a
// rotation put back the keyset from before it: an entry is never
// replaced by an older state of its record.
type keyCache struct {
	mu         sync.RWMutex
	max        int
	gen        uint64
	categories map[string]*categoryState
	patients   map[string]*patientState
}

func newKeyCache(max int) *keyCache {
	return &keyCache{max: max, categories: map[string]*categoryState{}, patients: map[string]*patientState{}}
}

func (c *keyCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

func (c *keyCache) category(key string) (*categoryState, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, ok := c.categories[key]
	return st, c.gen, ok
}

func (c *keyCache) patient(key string) (*patientState, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, ok := c.patients[key]
	return st, c.gen, ok
}

// evictOne makes room: it drops an arbitrary entry (Go's map order is
// random), patients first, since there are many more of them.
func (c *keyCache) evictOne() {
	for k := range c.patients {
		delete(c.patients, k)
		return
	}
	for k := range c.categories {
		delete(c.categories, k)
		return
	}
}

func (c *keyCache) putCategory(key string, st *categoryState, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	old, ok := c.categories[key]
	if ok && old != nil && st != nil && old.rec.Epoch > st.rec.Epoch {
		// A load that read the record before a rotation finished after
		// it: the rotated keyset stays.
		return
	}
	if !ok && len(c.categories)+len(c.patients) >= c.max {
		c.evictOne()
	}
	c.categories[key] = st
}

func (c *keyCache) putPatient(key string, st *patientState, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	old, ok := c.patients[key]
	if ok && old != nil && st != nil && newer(old.rec, st.rec) {
		return // as in putCategory: never back to an older keyset
	}
	if !ok && len(c.categories)+len(c.patients) >= c.max {
		c.evictOne()
	}
	c.patients[key] = st
}

// newer reports whether patient keyset a is a later state than b: made
// in a later category epoch, or holding more keys (keys are only ever
// added to a keyset).
func newer(a, b patientRecord) bool {
	return a.Epoch > b.Epoch || a.Epoch == b.Epoch && len(a.Keys) > len(b.Keys)
}

// dropPatient forgets one patient keyset without advancing the
// generation: it is for reloading a keyset that changed, not for
// destroying one.
func (c *keyCache) dropPatient(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.patients, key)
}

func (c *keyCache) dropCategory(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.categories, key)
}

func (c *keyCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.categories)
	clear(c.patients)
}

func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.categories) + len(c.patients)
}
