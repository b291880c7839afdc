package limits

import (
	"context"
	"sync"
	"time"
)

// MemoryStore keeps the limits' state in this process: right for one
// replica, and what tests use. Its zero value is not usable; call
// NewMemoryStore.
type MemoryStore struct {
	mu   sync.Mutex
	tats map[string]int64 // bucket key → theoretical arrival time, µs
	sets map[string]*patientSet
	ops  int
	// scratch for Take's tentative TATs, reused under mu
	scratch []int64
}

// patientSet is one budget's distinct patients: when each was last
// touched, and the touches in time order for trimming (stale entries,
// superseded by a later touch, are skipped and compacted away).
type patientSet struct {
	last   map[string]int64
	queue  []touch
	window int64 // µs, of the latest Touch
}

type touch struct {
	patient string
	at      int64
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{tats: map[string]int64{}, sets: map[string]*patientSet{}}
}

var _ Store = (*MemoryStore)(nil)

// sweepEvery is how many calls pass between sweeps of expired state.
const sweepEvery = 4096

// Take implements Store.
func (m *MemoryStore) Take(ctx context.Context, now time.Time, buckets []Bucket, out []BucketState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := now.UnixMicro()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(n)
	m.scratch = m.scratch[:0]
	all := true
	for i, b := range buckets {
		tat, st := gcra(n, m.tats[b.Key], b.Interval.Microseconds(), int64(b.Burst), int64(b.Cost))
		out[i] = st
		m.scratch = append(m.scratch, tat)
		all = all && st.Allowed
	}
	if all {
		for i, b := range buckets {
			m.tats[b.Key] = m.scratch[i]
		}
	}
	return nil
}

// Touch implements Store.
func (m *MemoryStore) Touch(ctx context.Context, now time.Time, budgets []Budget, patients []string, out []BudgetState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := now.UnixMicro()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(n)
	all := true
	for i, b := range budgets {
		window := b.Window.Microseconds()
		s := m.sets[b.Key]
		size, fresh := 0, 0
		if s != nil {
			s.trim(n - window)
			size = len(s.last)
		}
		for _, p := range patients {
			if s == nil {
				fresh++
			} else if _, ok := s.last[p]; !ok {
				fresh++
			}
		}
		switch {
		case size+fresh <= b.Count:
			out[i] = BudgetState{Allowed: true, Remaining: b.Count - size - fresh}
		case fresh > b.Count:
			out[i] = BudgetState{RetryAfter: b.Window}
		default:
			out[i] = BudgetState{RetryAfter: micros(s.oldest() + window - n)}
		}
		all = all && out[i].Allowed
	}
	if !all {
		return nil
	}
	for _, b := range budgets {
		s := m.sets[b.Key]
		if s == nil {
			s = &patientSet{last: map[string]int64{}}
			m.sets[b.Key] = s
		}
		s.window = b.Window.Microseconds()
		for _, p := range patients {
			s.last[p] = n
			s.queue = append(s.queue, touch{p, n})
		}
		if len(s.queue) > 2*len(s.last)+16 {
			s.compact()
		}
	}
	return nil
}

// trim drops the patients last touched at or before cutoff.
func (s *patientSet) trim(cutoff int64) {
	i := 0
	for ; i < len(s.queue) && s.queue[i].at <= cutoff; i++ {
		t := s.queue[i]
		if s.last[t.patient] == t.at {
			delete(s.last, t.patient)
		}
	}
	s.queue = s.queue[i:]
	s.skipStale()
}

// skipStale drops queue entries superseded by a later touch, so the
// queue's head is the oldest live patient.
func (s *patientSet) skipStale() {
	for len(s.queue) > 0 && s.last[s.queue[0].patient] != s.queue[0].at {
		s.queue = s.queue[1:]
	}
}

func (s *patientSet) oldest() int64 {
	s.skipStale()
	return s.queue[0].at
}

// compact rebuilds the queue from live entries only.
func (s *patientSet) compact() {
	q := make([]touch, 0, len(s.last))
	for _, t := range s.queue {
		if s.last[t.patient] == t.at {
			q = append(q, t)
		}
	}
	s.queue = q
}

// sweep drops, every sweepEvery calls, the buckets that are full again
// and the budgets whose patients all left their window.
func (m *MemoryStore) sweep(now int64) {
	m.ops++
	if m.ops < sweepEvery {
		return
	}
	m.ops = 0
	for k, tat := range m.tats {
		if tat <= now {
			delete(m.tats, k)
		}
	}
	for k, s := range m.sets {
		s.skipStale()
		if len(s.queue) == 0 || s.queue[len(s.queue)-1].at <= now-s.window {
			delete(m.sets, k)
		}
	}
}
