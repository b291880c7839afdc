package redislimit_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/limits/limitstest"
	"github.com/wardenfhir/warden/internal/limits/redislimit"
)

const redisBinary = "/usr/bin/redis-server"

// redisServer starts a redis-server of its own on a free loopback port,
// in a temporary directory, and returns its URL and process. Without the
// binary the test skips, except with CI=true, where it fails.
func redisServer(t testing.TB) (string, *exec.Cmd) {
	t.Helper()
	if _, err := os.Stat(redisBinary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is absent: scripts/test must install redis-server (apt-get install -y redis-server) in CI", redisBinary)
		}
		t.Skipf("%s is absent (apt-get install -y redis-server): the Redis store is not tested", redisBinary)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(redisBinary, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url, cmd
}

func open(t testing.TB, url string) *redislimit.Store {
	t.Helper()
	s, err := redislimit.Open(url, redislimit.Options{Timeout: 200 * time.Millisecond, Prefix: fmt.Sprintf("test:%d:", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRedisStoreConformance(t *testing.T) {
	url, _ := redisServer(t)
	limitstest.Run(t, func(t *testing.T) limits.Store { return open(t, url) })
}

// Concurrent Takes share round trips, and sharing changes no answer: a
// request refused by one of its buckets charges none of them, even when a
// request that shares a bucket with it rides the same script call.
func TestRedisConcurrentTakesShareRoundTrips(t *testing.T) {
	url, _ := redisServer(t)
	s := open(t, url)
	now := limitstest.Epoch
	const workers, each, shared, private = 64, 40, 100, 3
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			mine := 0
			buckets := []limits.Bucket{
				{Key: "client/shared", Interval: time.Hour, Burst: shared, Cost: 1},
				{Key: fmt.Sprintf("user/w%d", w), Interval: time.Hour, Burst: private, Cost: 1},
			}
			for range each {
				out := make([]limits.BucketState, 2)
				if err := s.Take(context.Background(), now, buckets, out); err != nil {
					errs <- err
					return
				}
				if out[0].Allowed && out[1].Allowed {
					mine++
					allowed.Add(1)
				} else if out[0].Allowed == out[1].Allowed && !out[0].Allowed && out[0].RetryAfter <= 0 {
					errs <- fmt.Errorf("refused without Retry-After: %+v", out)
					return
				}
			}
			if mine > private {
				errs <- fmt.Errorf("worker %d: %d allowed past its private burst of %d", w, mine, private)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 64 × 3 private units exceed the 100 shared ones: exactly the shared
	// burst passes. Fewer would mean refused requests were charged.
	if allowed.Load() != shared {
		t.Fatalf("%d requests allowed, want exactly the shared burst %d", allowed.Load(), shared)
	}
	takes, trips := s.Stats()
	if takes != workers*each {
		t.Fatalf("Stats: %d takes, want %d", takes, workers*each)
	}
	if trips >= takes {
		t.Fatalf("%d round trips for %d concurrent takes: none was shared", trips, takes)
	}
	t.Logf("%d takes in %d round trips", takes, trips)
}

func TestRedisDownFailsClosed(t *testing.T) {
	url, cmd := redisServer(t)
	s := open(t, url)
	l, _ := limitstest.NewLimiter(t, s, nil)
	k := limits.Keys{Client: "c", Class: limits.ClinicianApp, User: "u"}
	ctx := context.Background()
	if d, err := l.Allow(ctx, k, 1); err != nil || !d.Allowed {
		t.Fatalf("with Redis up: %+v %v", d, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	start := time.Now()
	d, err := l.Allow(ctx, k, 1)
	if !errors.Is(err, limits.ErrUnavailable) || d.Allowed {
		t.Fatalf("with Redis down: %+v %v, want ErrUnavailable", d, err)
	}
	if _, err := l.Touch(ctx, k, []string{"p"}); !errors.Is(err, limits.ErrUnavailable) {
		t.Fatalf("Touch with Redis down: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("two refusals took %v: the store must fail fast", el)
	}
	// The same outage with on_store_error: open serves the request.
	lo, _ := limitstest.NewLimiter(t, s, func(c *limits.Config) { c.OnStoreError = "open" })
	if d, err := lo.Allow(ctx, k, 1); err != nil || !d.Allowed {
		t.Fatalf("fail open: %+v %v", d, err)
	}
}

func TestRedisStoresNoIdentifierInClear(t *testing.T) {
	url, _ := redisServer(t)
	s := open(t, url)
	l, _ := limitstest.NewLimiter(t, s, nil)
	k := limits.Keys{Client: "client-secretive", Class: limits.ClinicianApp, User: "user-secretive", Patient: "patient-secretive"}
	if _, err := l.Allow(context.Background(), k, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Touch(context.Background(), k, []string{"patient-member-secretive"}); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		out, err := exec.Command(filepath.Join(filepath.Dir(redisBinary), "redis-cli"), append([]string{"-u", url, "--raw"}, args...)...).CombinedOutput()
		if err != nil {
			t.Skipf("redis-cli: %v", err)
		}
		return string(out)
	}
	keys := strings.Fields(cli("KEYS", "*"))
	if len(keys) != 5 {
		t.Fatalf("want 5 keys (client, user, patient buckets; client, user budgets), got %q", keys)
	}
	for _, key := range keys {
		if strings.Contains(key, "secretive") {
			t.Errorf("key %q holds an identifier in clear", key)
		}
		if ttl := strings.TrimSpace(cli("PTTL", key)); strings.HasPrefix(ttl, "-") || ttl == "0" {
			t.Errorf("key %q has no expiry (PTTL %s): memory would grow without bound", key, ttl)
		}
		if cli("TYPE", key) == "zset\n" && strings.Contains(cli("ZRANGE", key, "0", "-1"), "secretive") {
			t.Errorf("members of %q hold an identifier in clear", key)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"password in the URL", "redis://:hunter2@127.0.0.1:6379/0"},
		{"user and password in the URL", "redis://u:hunter2@127.0.0.1:6379/0"},
		{"another scheme", "http://127.0.0.1:6379/0"},
		{"bad database", "redis://127.0.0.1:6379/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := redislimit.Open(tc.url, redislimit.Options{})
			if !errors.Is(err, redislimit.ErrBadURL) {
				t.Fatalf("err = %v, want ErrBadURL", err)
			}
			if strings.Contains(fmt.Sprint(err), "hunter2") {
				t.Fatal("the error repeats the password")
			}
		})
	}
	if _, err := redislimit.Open("rediss://127.0.0.1:6380/1", redislimit.Options{}); err != nil {
		t.Fatalf("rediss: %v", err)
	}
}

// BenchmarkAllowRedis is BenchmarkAllow over a loopback redis-server: two
// round trips per request (Take and Touch, each one EVALSHA whatever the
// number of keys; one caller, so no Take shares its round trip).
func BenchmarkAllowRedis(b *testing.B) {
	url, _ := redisServer(b)
	limitstest.BenchAllow(b, open(b, url))
}
