// Package redislimit is the Redis (or Valkey) backend of limits.Store,
// shared by every Warden replica: one round trip per call, whatever the
// number of keys, by running each call as one Lua script.
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
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wardenfhir/warden/internal/limits"
)

// ErrBadURL is returned by Open for a URL it cannot use.
var ErrBadURL = errors.New("redislimit: invalid redis URL")

//go:embed take.lua
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
	rdb    *redis.Client
	prefix string
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
	return &Store{rdb: redis.NewClient(opt), prefix: o.Prefix}, nil
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

// Take implements limits.Store in one EVALSHA of take.lua.
func (s *Store) Take(ctx context.Context, now time.Time, buckets []limits.Bucket, out []limits.BucketState) error {
	keys := make([]string, len(buckets))
	args := make([]any, 0, 1+3*len(buckets))
	args = append(args, now.UnixMicro())
	for i, b := range buckets {
		keys[i] = s.key(b.Key)
		args = append(args, b.Interval.Microseconds(), b.Burst, b.Cost)
	}
	res, err := takeScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("redislimit: take: %w", err)
	}
	if len(res) != 4*len(buckets) {
		return fmt.Errorf("redislimit: take: %d values for %d buckets", len(res), len(buckets))
	}
	for i := range buckets {
		r := res[4*i:]
		out[i] = limits.BucketState{Allowed: r[0] == 1, RetryAfter: micros(r[1]), Remaining: int(r[2]), Reset: micros(r[3])}
	}
	return nil
}

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
