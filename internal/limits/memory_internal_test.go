package limits

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// The in-process store forgets buckets that are full again and budgets
// whose patients all left the window: memory stays bounded by the callers
// active within the longest window, however many come and go.
func TestMemoryStoreForgets(t *testing.T) {
	m := NewMemoryStore()
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]BucketState, 1)
	bout := make([]BudgetState, 1)
	for i := range 3 * sweepEvery {
		k := strconv.Itoa(i)
		if err := m.Take(ctx, now, []Bucket{{Key: "client/" + k, Interval: time.Millisecond, Burst: 10, Cost: 1}}, out); err != nil {
			t.Fatal(err)
		}
		if err := m.Touch(ctx, now, []Budget{{Key: "dp-client/" + k, Count: 5, Window: time.Minute}}, []string{"p" + k}, bout); err != nil {
			t.Fatal(err)
		}
		now = now.Add(20 * time.Millisecond)
	}
	// Buckets last 1ms and budgets 1 minute: after 12288 callers 20ms apart
	// (4 minutes), what remains is the last minute's 3000 budgets and what
	// came since the last sweep (a sweep every 2048 callers: 2 calls each).
	if len(m.tats) > sweepEvery/2 {
		t.Errorf("%d buckets kept", len(m.tats))
	}
	if len(m.sets) > 3000+sweepEvery/2 {
		t.Errorf("%d budgets kept of %d", len(m.sets), 3*sweepEvery)
	}
	// One key touched by the same patient again and again keeps one entry.
	for range 10_000 {
		m.Touch(ctx, now, []Budget{{Key: "dp-user/x", Count: 5, Window: time.Hour}}, []string{"same"}, bout)
		now = now.Add(time.Microsecond)
	}
	if s := m.sets["dp-user/x"]; len(s.last) != 1 || len(s.queue) > 2*len(s.last)+16 {
		t.Errorf("one patient touched 10000 times: %d entries, queue %d", len(s.last), len(s.queue))
	}
}
