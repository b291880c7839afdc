package limits

import (
	"sync"
	"time"
)

// Acquire takes one of the in-flight slots of k's client (in this process
// only: the cap is per replica). When allowed, call release exactly once
// when the request ends; release is safe to call more than once. When
// refused, release does nothing.
func (l *Limiter) Acquire(k Keys) (d Decision, release func()) {
	if l.cfg.Disabled || k.Client == "" {
		return Decision{Allowed: true}, func() {}
	}
	p := l.profile(k)
	limit := p.limConcurrency
	l.mu.Lock()
	n := l.inflight[k.Client]
	if n >= p.concurrency {
		l.mu.Unlock()
		// Nothing says when a slot frees; one second is a fair guess for
		// requests that are refused because others are still running.
		return Decision{Limit: limit, Policy: "concurrency", RetryAfter: time.Second, Quota: p.concurrency}, func() {}
	}
	l.inflight[k.Client] = n + 1
	l.mu.Unlock()
	var once sync.Once
	return Decision{Allowed: true, Limit: limit, Policy: "concurrency", Remaining: p.concurrency - n - 1, Quota: p.concurrency}, func() {
		once.Do(func() {
			l.mu.Lock()
			if l.inflight[k.Client] <= 1 {
				delete(l.inflight, k.Client)
			} else {
				l.inflight[k.Client]--
			}
			l.mu.Unlock()
		})
	}
}
