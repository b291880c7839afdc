package limits

import (
	"context"
	"time"
)

// Bucket is one GCRA bucket of a request: Cost units are taken from the
// bucket named Key, which refills one unit per Interval and holds at most
// Burst units. Cost is at most Burst (the Limiter clamps it).
type Bucket struct {
	Key      string
	Interval time.Duration // at least 1µs; stores keep time in microseconds
	Burst    int
	Cost     int
}

// BucketState is what Take says about one bucket.
type BucketState struct {
	Allowed    bool          // the bucket had room for the cost
	RetryAfter time.Duration // when refused: how long until it has room
	Remaining  int           // whole units left after this request
	Reset      time.Duration // how long until the bucket is full again
}

// Budget is one distinct-patients budget: at most Count distinct
// patients in any Window-long span, for the caller named Key.
type Budget struct {
	Key    string
	Count  int
	Window time.Duration
}

// BudgetState is what Touch says about one budget.
type BudgetState struct {
	Allowed    bool
	RetryAfter time.Duration // when refused: until the oldest patient leaves the window (or Window if Count can never fit them)
	Remaining  int           // distinct patients still allowed in the window
}

// Store keeps the state of the limits. It is shared by every replica when
// it is remote; its clock is the caller's now, so replicas need NTP.
//
// Implementations MUST be safe for concurrent use and MUST apply each call
// atomically: Take charges every bucket when every bucket has room, and
// none otherwise; Touch records the patients in every budget when every
// budget can take them, and in none otherwise. They MUST keep memory
// bounded: state whose window has passed is dropped. They MUST return an
// error, never a guess, when they cannot answer (the Limiter decides
// whether that fails closed or open).
type Store interface {
	// Take applies GCRA (ITU-T I.371 §4.4.2, virtual scheduling) to every
	// bucket and writes each bucket's state to out[i]; len(out) ==
	// len(buckets).
	Take(ctx context.Context, now time.Time, buckets []Bucket, out []BucketState) error
	// Touch counts patients (distinct, non-empty ids) against every
	// budget and writes each budget's state to out[i].
	Touch(ctx context.Context, now time.Time, budgets []Budget, patients []string, out []BudgetState) error
}

// gcra is the generic cell rate algorithm in its virtual-scheduling form,
// as throttled/throttled and go-redis/redis_rate implement it: tat is the
// bucket's theoretical arrival time (all in microseconds); a request of
// cost units conforms when tat + cost×interval − burst×interval ≤ now.
// It returns the tat to store when the request is allowed.
func gcra(now, tat, interval, burst, cost int64) (int64, BucketState) {
	tat = max(tat, now)
	cost = min(cost, burst)
	newTAT := tat + interval*cost
	diff := now - (newTAT - interval*burst)
	if diff < 0 {
		return tat, BucketState{RetryAfter: micros(-diff), Reset: micros(tat - now)}
	}
	return newTAT, BucketState{Allowed: true, Remaining: int(diff / interval), Reset: micros(newTAT - now)}
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
