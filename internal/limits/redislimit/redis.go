// Package redislimit is the Redis (or Valkey) backend of limits.Store,
// shared by every Warden replica: each call is one Lua script, whatever
// the number of keys, and the Takes of concurrent requests share round
// trips (see Store.Take).
//
// It stores no identifier in clear: keys and set members are SHA-256
// digests (truncated to 128 bits) of the client, user, patient, address and
// certificate ids. It never retries and never waits longer than its
// timeout; the Limiter decides what an error means. Redis Cluster is not
// supported (one call touches keys in several hash slots): use one primary
// (with replicas or Sentinel).
package redislimit

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wardenfhir/warden/internal/limits"
)

// ErrBadURL is returned by Open for a URL it cannot use.
var ErrBadURL = errors.New("redislimit: invalid redis URL")

//go:embed takemany.lua
var takeSource string

//go:embed touch.lua
var touchSource string

var (
	takeScript  = redis.NewScript(takeSource)
	touchScript = redis.NewScript(touchSource)
)

// Options tune Open.
type Options struct {
	// Timeout bounds dialing and each read and write; 100ms when 0.
	Timeout time.Duration
	// PasswordFile names a file holding the Redis password (AUTH), its
	// trailing newline dropped; "" for none.
	PasswordFile string
	// Prefix is put before every key; "warden:limits:" when "".
	Prefix string
}

// Store is a limits.Store in Redis.
type Store struct {
	rdb     *redis.Client
	prefix  string
	timeout time.Duration

	mu     sync.Mutex
	queue  []*take // Takes waiting for a round trip
	flying int     // round trips of Takes under way (at most maxFlights)

	takes, trips atomic.Uint64
}

// Batching of Takes: a Take that finds maxFlights round trips under way
// waits for the next one, which carries every Take waiting then (up to
// maxBatch) in one script call. Under load a request costs a fraction of
// a round trip; alone, it costs one, as before.
const (
	maxFlights = 2
	maxBatch   = 64
)

// take is one Take waiting for, or in, a round trip.
type take struct {
	now     int64
	buckets []limits.Bucket
	out     []limits.BucketState
	err     error
	done    chan struct{}
}

var _ limits.Store = (*Store)(nil)

// Open connects to redis://HOST:PORT/DB or rediss://HOST:PORT/DB (TLS 1.2
// or later, the system roots). A password in the URL is refused: give
// PasswordFile. Open does not dial; the first call does.
func Open(rawURL string, o Options) (*Store, error) {
	if !strings.HasPrefix(rawURL, "redis://") && !strings.HasPrefix(rawURL, "rediss://") {
		return nil, fmt.Errorf("%w: want redis:// or rediss://", ErrBadURL)
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if opt.Password != "" {
		return nil, fmt.Errorf("%w: the URL carries a password; use a password file", ErrBadURL)
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redislimit: reading the password file: %w", err)
		}
		opt.Password = strings.TrimRight(string(b), "\r\n")
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	opt.DialTimeout = o.Timeout
	opt.ReadTimeout = o.Timeout
	opt.WriteTimeout = o.Timeout
	opt.PoolTimeout = o.Timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1 // never retry: a slow store must not slow requests further
	opt.DisableIdentity = true
	if o.Prefix == "" {
		o.Prefix = "warden:limits:"
	}
	return &Store{rdb: redis.NewClient(opt), prefix: o.Prefix, timeout: o.Timeout}, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks that the server answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// digest names an identifier without storing it.
func digest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// key keeps the kind of a limiter key (KIND/REST: "client", "dp-user")
// readable and digests everything after it.
func (s *Store) key(k string) string {
	kind, rest, _ := strings.Cut(k, "/")
	return s.prefix + kind + "/" + digest(rest)
}

// Take implements limits.Store. It is one EVALSHA of takemany.lua,
// shared with the Takes of other requests made meanwhile: each request is
// decided alone, all or nothing, in the order the script takes them, so
// sharing changes no answer. A caller whose ctx ends first gets its error;
// its request may still be charged (the limits err on the strict side).
func (s *Store) Take(ctx context.Context, now time.Time, buckets []limits.Bucket, out []limits.BucketState) error {
	t := &take{now: now.UnixMicro(), buckets: buckets, out: out, done: make(chan struct{})}
	s.takes.Add(1)
	s.mu.Lock()
	s.queue = append(s.queue, t)
	lead := s.flying < maxFlights
	if lead {
		s.flying++
	}
	s.mu.Unlock()
	if lead {
		// This caller carries the next round trip (its own Take is in
		// it); whoever queued meanwhile goes in the next one, carried by
		// a goroutine that keeps this flight's slot.
		s.flyOnce()
		s.mu.Lock()
		more := len(s.queue) > 0
		if !more {
			s.flying--
		}
		s.mu.Unlock()
		if more {
			go s.fly()
		}
	}
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return fmt.Errorf("redislimit: take: %w", ctx.Err())
	}
}

// fly carries round trips until no Take waits, then gives up its slot.
func (s *Store) fly() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.flying--
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.flyOnce()
	}
}

// flyOnce takes up to maxBatch waiting Takes off the queue and answers
// them in one script call.
func (s *Store) flyOnce() {
	s.mu.Lock()
	n := min(len(s.queue), maxBatch)
	batch := make([]*take, n)
	copy(batch, s.queue)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	s.mu.Unlock()
	if n == 0 {
		return
	}
	err := s.takeMany(batch)
	for _, t := range batch {
		if err != nil {
			t.err = err
		}
		close(t.done)
	}
}

// takeMany runs takemany.lua for batch and writes each Take's out.
func (s *Store) takeMany(batch []*take) error {
	s.trips.Add(1)
	var keys []string
	args := make([]any, 0, 1+len(batch)*(2+3*2))
	args = append(args, len(batch))
	total := 0
	for _, t := range batch {
		args = append(args, t.now, len(t.buckets))
		for _, b := range t.buckets {
			keys = append(keys, s.key(b.Key))
			args = append(args, b.Interval.Microseconds(), b.Burst, b.Cost)
		}
		total += len(t.buckets)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	res, err := takeScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("redislimit: take: %w", err)
	}
	if len(res) != 4*total {
		return fmt.Errorf("redislimit: take: %d values for %d buckets", len(res), total)
	}
	for _, t := range batch {
		for i := range t.buckets {
			r := res[4*i:]
			t.out[i] = limits.BucketState{Allowed: r[0] == 1, RetryAfter: micros(r[1]), Remaining: int(r[2]), Reset: micros(r[3])}
		}
		res = res[4*len(t.buckets):]
	}
	return nil
}

// Stats returns how many Takes this Store answered and in how many round
// trips.
func (s *Store) Stats() (takes, roundTrips uint64) { return s.takes.Load(), s.trips.Load() }

// Touch implements limits.Store in one EVALSHA of touch.lua.
func (s *Store) Touch(ctx context.Context, now time.Time, budgets []limits.Budget, patients []string, out []limits.BudgetState) error {
	keys := make([]string, len(budgets))
	args := make([]any, 0, 2+2*len(budgets)+len(patients))
	args = append(args, now.UnixMicro(), len(budgets))
	for i, b := range budgets {
		keys[i] = s.key(b.Key)
		args = append(args, b.Count, b.Window.Microseconds())
	}
	for _, p := range patients {
		args = append(args, digest(p))
	}
	res, err := touchScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("redislimit: touch: %w", err)
	}
	if len(res) != 3*len(budgets) {
		return fmt.Errorf("redislimit: touch: %d values for %d budgets", len(res), len(budgets))
	}
	for i := range budgets {
		r := res[3*i:]
		out[i] = limits.BudgetState{Allowed: r[0] == 1, RetryAfter: micros(r[1]), Remaining: int(r[2])}
	}
	return nil
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

// String names the store for logs, without the password.
func (s *Store) String() string {
	o := s.rdb.Options()
	return "redis " + o.Addr + "/" + strconv.Itoa(o.DB)
}
