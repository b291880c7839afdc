// Package limitstest is the conformance suite every limits.Store must
// pass, run through the Limiter as Warden uses it. Import it only from
// _test.go files.
package limitstest

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/limits"
)

// Epoch is the fake clock's start.
var Epoch = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// Clock is a fake clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Config is a small configuration that makes the limits easy to reach:
// per_address 10/s burst 5; clinician-app client 60/min burst 10, user
// 60/min burst 6, patient 60/min burst 8, distinct patients 3 per user
// and 5 per client per hour, concurrency 4.
func Config() limits.Config {
	cfg := limits.Default()
	cfg.PerAddress = limits.RateLimit{Rate: limits.Rate{Count: 10, Period: time.Second}, Burst: 5}
	cfg.PerCertificate = limits.RateLimit{Rate: limits.Rate{Count: 10, Period: time.Second}, Burst: 5}
	conc := 4
	cfg.Classes[limits.ClinicianApp] = limits.ClassLimits{
		Client:      &limits.RateLimit{Rate: limits.Rate{Count: 60, Period: time.Minute}, Burst: 10},
		User:        &limits.RateLimit{Rate: limits.Rate{Count: 60, Period: time.Minute}, Burst: 6},
		Patient:     &limits.RateLimit{Rate: limits.Rate{Count: 60, Period: time.Minute}, Burst: 8},
		Concurrency: &conc,
		DistinctPatients: limits.DistinctPatients{
			Client: &limits.PatientBudget{Count: 5, Window: time.Hour},
			User:   &limits.PatientBudget{Count: 3, Window: time.Hour},
		},
	}
	return cfg
}

// NewLimiter returns a Limiter over s with Config (changed by edit, when
// not nil) and a fake clock.
func NewLimiter(t *testing.T, s limits.Store, edit func(*limits.Config)) (*limits.Limiter, *Clock) {
	t.Helper()
	cfg := Config()
	if edit != nil {
		edit(&cfg)
	}
	l, err := limits.New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	c := &Clock{t: Epoch}
	l.SetClock(c.Now)
	return l, c
}

// allowN calls Allow n times and returns how many were allowed.
func allowN(t *testing.T, l *limits.Limiter, k limits.Keys, cost, n int) (int, limits.Decision) {
	t.Helper()
	ok := 0
	var last limits.Decision
	for range n {
		d, err := l.Allow(context.Background(), k, cost)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if d.Allowed {
			ok++
		}
		last = d
	}
	return ok, last
}

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) limits.Store) {
	addr := netip.MustParseAddr("192.0.2.7")
	cl := func(id string) limits.Keys { return limits.Keys{Client: id, Class: limits.ClinicianApp} }

	// Each key class: the burst passes, the next request is refused with
	// the right limit and Retry-After, and one interval later one more passes.
	classes := []struct {
		name     string
		keys     limits.Keys
		burst    int
		interval time.Duration
		limit    string
	}{
		{"client", cl("c1"), 10, time.Second, "client rate (clinician-app)"},
		{"user", limits.Keys{Client: "c1", Class: limits.ClinicianApp, User: "u1"}, 6, time.Second, "user rate (clinician-app)"},
		{"patient context", limits.Keys{Client: "c1", Class: limits.ClinicianApp, Patient: "p1"}, 8, time.Second, "patient-context rate (clinician-app)"},
		{"address", limits.Keys{Address: addr}, 5, 100 * time.Millisecond, "source-address rate"},
		{"certificate", limits.Keys{Cert: "thumb"}, 5, 100 * time.Millisecond, "client-certificate rate"},
	}
	for _, tc := range classes {
		t.Run("burst then refusal then refill/"+tc.name, func(t *testing.T) {
			l, clock := NewLimiter(t, newStore(t), nil)
			ok, _ := allowN(t, l, tc.keys, 1, tc.burst)
			if ok != tc.burst {
				t.Fatalf("burst: %d of %d allowed", ok, tc.burst)
			}
			d, err := l.Allow(context.Background(), tc.keys, 1)
			if err != nil || d.Allowed {
				t.Fatalf("over burst: allowed=%v err=%v", d.Allowed, err)
			}
			if d.Limit != tc.limit {
				t.Errorf("Limit = %q, want %q", d.Limit, tc.limit)
			}
			if d.RetryAfter != tc.interval {
				t.Errorf("RetryAfter = %v, want %v", d.RetryAfter, tc.interval)
			}
			clock.Advance(tc.interval - time.Microsecond)
			if d, _ := l.Allow(context.Background(), tc.keys, 1); d.Allowed {
				t.Fatal("allowed before Retry-After")
			}
			clock.Advance(time.Microsecond)
			if d, _ := l.Allow(context.Background(), tc.keys, 1); !d.Allowed {
				t.Fatalf("refused at Retry-After: %+v", d)
			}
			clock.Advance(time.Duration(tc.burst) * tc.interval)
			if ok, _ := allowN(t, l, tc.keys, 1, tc.burst); ok != tc.burst {
				t.Fatalf("after a full refill: %d of %d allowed", ok, tc.burst)
			}
		})
	}

	t.Run("separate keys do not interfere", func(t *testing.T) {
		l, _ := NewLimiter(t, newStore(t), nil)
		allowN(t, l, cl("a"), 1, 20)
		if ok, _ := allowN(t, l, cl("b"), 1, 10); ok != 10 {
			t.Fatalf("client b got %d of 10 after client a was exhausted", ok)
		}
		allowN(t, l, limits.Keys{Address: addr}, 1, 20)
		if ok, _ := allowN(t, l, limits.Keys{Address: netip.MustParseAddr("192.0.2.8")}, 1, 5); ok != 5 {
			t.Fatalf("another address got %d of 5", ok)
		}
	})

	t.Run("a client cannot dodge its limit by changing address, certificate or user", func(t *testing.T) {
		l, _ := NewLimiter(t, newStore(t), nil)
		ok := 0
		for i := range 30 {
			k := cl("dodger")
			k.Address = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
			k.Cert = fmt.Sprint("cert", i)
			k.User = fmt.Sprint("user", i)
			d, err := l.Allow(context.Background(), k, 1)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed {
				ok++
			} else if d.Limit != "client rate (clinician-app)" {
				t.Fatalf("refused by %q, want the client rate", d.Limit)
			}
		}
		if ok != 10 {
			t.Fatalf("%d requests allowed across 30 addresses, want the client burst of 10", ok)
		}
	})

	t.Run("IPv6 addresses count by /64", func(t *testing.T) {
		l, _ := NewLimiter(t, newStore(t), nil)
		ok := 0
		for i := range 10 {
			a := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1))
			if d, _ := l.Allow(context.Background(), limits.Keys{Address: a}, 1); d.Allowed {
				ok++
			}
		}
		if ok != 5 {
			t.Fatalf("%d allowed from one /64, want 5", ok)
		}
	})

	t.Run("ways around the limits", func(t *testing.T) {
		ctx := context.Background()
		named := func(c *limits.Config) {
			one := 1
			c.Clients["a/b"] = limits.ClientLimits{Class: limits.ClinicianApp, ClassLimits: limits.ClassLimits{Concurrency: &one}}
			c.Clients["a"] = limits.ClientLimits{Class: limits.ClinicianApp, ClassLimits: limits.ClassLimits{Concurrency: &one}}
			c.Clients["locked"] = limits.ClientLimits{Class: limits.ClinicianApp, ClassLimits: limits.ClassLimits{
				Client: &limits.RateLimit{Rate: limits.Rate{Count: 1, Period: time.Minute}, Burst: 2}}}
		}
		for _, tc := range []struct {
			name  string
			spend limits.Keys // exhaust this key
			probe limits.Keys // then this one must be refused (same caller in disguise)
			cost  int
		}{
			{"an IPv4-mapped IPv6 address is the IPv4 address",
				limits.Keys{Address: addr}, limits.Keys{Address: netip.MustParseAddr("::ffff:192.0.2.7")}, 1},
			{"a named client cannot claim a roomier class",
				limits.Keys{Client: "locked", Class: limits.ClinicianApp}, limits.Keys{Client: "locked", Class: limits.Backend}, 1},
			{"a negative cost is no credit",
				cl("neg"), cl("neg"), -1000},
			{"a zero cost still counts",
				cl("zero"), cl("zero"), 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l, _ := NewLimiter(t, newStore(t), named)
				for range 20 {
					if _, err := l.Allow(ctx, tc.spend, tc.cost); err != nil {
						t.Fatal(err)
					}
				}
				if d, _ := l.Allow(ctx, tc.probe, 1); d.Allowed {
					t.Fatalf("allowed: %+v", d)
				}
			})
		}
		t.Run("ids holding separators do not share a bucket", func(t *testing.T) {
			l, _ := NewLimiter(t, newStore(t), named)
			// Naively joined, both would be user/client=a/b/c.
			k1 := limits.Keys{Client: "a/b", User: "c"}
			k2 := limits.Keys{Client: "a", User: "b/c"}
			ok1, _ := allowN(t, l, k1, 1, 6)
			ok2, _ := allowN(t, l, k2, 1, 6)
			if ok1 != 6 || ok2 != 6 {
				t.Fatalf("%d and %d of 6 allowed: the two users share a bucket", ok1, ok2)
			}
			if d, _ := l.Touch(ctx, k1, []string{"x1", "x2", "x3"}); !d.Allowed {
				t.Fatal(d)
			}
			if d, _ := l.Touch(ctx, k2, []string{"y1", "y2", "y3"}); !d.Allowed {
				t.Fatalf("the two users share a patient budget: %+v", d)
			}
		})
		t.Run("an unknown class gets the default class, not a roomier one", func(t *testing.T) {
			l, _ := NewLimiter(t, newStore(t), func(c *limits.Config) {
				c.Classes[limits.PatientApp] = limits.ClassLimits{Client: &limits.RateLimit{Rate: limits.Rate{Count: 1, Period: time.Minute}, Burst: 3}}
			})
			ok, d := allowN(t, l, limits.Keys{Client: "who", Class: "superuser"}, 1, 10)
			if ok != 3 || d.Limit != "client rate (patient-app)" {
				t.Fatalf("%d allowed, last %+v", ok, d)
			}
		})
	})

	t.Run("a refusal by one limit spends no other limit", func(t *testing.T) {
		l, _ := NewLimiter(t, newStore(t), nil)
		user := limits.Keys{Client: "shared", Class: limits.ClinicianApp, User: "greedy"}
		allowN(t, l, user, 1, 50) // 6 allowed, 44 refused by the user rate
		if ok, _ := allowN(t, l, limits.Keys{Client: "shared", Class: limits.ClinicianApp, User: "other"}, 1, 10); ok != 4 {
			t.Fatalf("another user of the client got %d, want the 4 the greedy user left", ok)
		}
	})

	t.Run("weights: one $everything costs what 50 reads do", func(t *testing.T) {
		l, clock := NewLimiter(t, newStore(t), func(c *limits.Config) {
			c.Classes[limits.Backend] = limits.ClassLimits{Client: &limits.RateLimit{Rate: limits.Rate{Count: 100, Period: time.Second}, Burst: 100}}
		})
		k := limits.Keys{Client: "bulk", Class: limits.Backend}
		every := limits.Cost(limits.Request{Interaction: limits.Operation, Operation: "$everything", Type: "Patient"})
		read := limits.Cost(limits.Request{Interaction: limits.Read, Type: "Patient"})
		if every != 50*read {
			t.Fatalf("$everything costs %d, a read %d", every, read)
		}
		if ok, _ := allowN(t, l, k, every, 2); ok != 2 {
			t.Fatal("two $everything did not fit a burst of 100")
		}
		if d, _ := l.Allow(context.Background(), k, read); d.Allowed {
			t.Fatal("a read passed after two $everything spent the burst")
		}
		clock.Advance(500 * time.Millisecond)
		if ok, _ := allowN(t, l, k, read, 60); ok != 50 {
			t.Fatalf("half a second later %d reads passed, want 50", ok)
		}
	})

	t.Run("a cost above the burst is charged as the whole burst", func(t *testing.T) {
		l, clock := NewLimiter(t, newStore(t), nil)
		k := cl("export")
		d, _ := l.Allow(context.Background(), k, 500)
		if !d.Allowed || d.Remaining != 0 {
			t.Fatalf("a cost of 500 on a burst of 10: %+v", d)
		}
		d, _ = l.Allow(context.Background(), k, 1)
		if d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("after it: %+v", d)
		}
		clock.Advance(10 * time.Second)
		if d, _ := l.Allow(context.Background(), k, 500); !d.Allowed {
			t.Fatal("refused once the burst refilled")
		}
	})

	t.Run("Retry-After is the longest wait of the refusing limits", func(t *testing.T) {
		l, clock := NewLimiter(t, newStore(t), nil)
		k := limits.Keys{Client: "r", Class: limits.ClinicianApp, User: "u"}
		allowN(t, l, k, 1, 6) // user burst spent, client has 4 left
		d, _ := l.Allow(context.Background(), k, 5)
		// user: 5 units at 1/s with 0 room → 5s; client: 1 short → 1s
		if d.Allowed || d.Limit != "user rate (clinician-app)" || d.RetryAfter != 5*time.Second {
			t.Fatalf("%+v", d)
		}
		clock.Advance(d.RetryAfter)
		if d, _ := l.Allow(context.Background(), k, 5); !d.Allowed {
			t.Fatalf("refused after Retry-After: %+v", d)
		}
	})

	t.Run("distinct patients", func(t *testing.T) {
		l, clock := NewLimiter(t, newStore(t), nil)
		ctx := context.Background()
		u := limits.Keys{Client: "dp", Class: limits.ClinicianApp, User: "dr"}
		for _, p := range []string{"p1", "p2", "p3"} {
			if d, err := l.Touch(ctx, u, []string{p}); err != nil || !d.Allowed {
				t.Fatalf("patient %s: %+v %v", p, d, err)
			}
			clock.Advance(time.Minute)
		}
		d, _ := l.Touch(ctx, u, []string{"p4"})
		if d.Allowed || d.Limit != "distinct patients per user (clinician-app)" {
			t.Fatalf("4th patient: %+v", d)
		}
		if want := time.Hour - 3*time.Minute; d.RetryAfter != want {
			t.Errorf("RetryAfter = %v, want %v (when p1 leaves the window)", d.RetryAfter, want)
		}
		if d, _ := l.Touch(ctx, u, []string{"p2", "p1", "p3", "p1", ""}); !d.Allowed {
			t.Fatalf("the same patients again: %+v", d)
		}
		// p1 was touched again just now: it stays; nothing leaves until an hour from now.
		clock.Advance(time.Hour - time.Minute)
		if d, _ := l.Touch(ctx, u, []string{"p4"}); d.Allowed {
			t.Fatal("a 4th patient passed while three were touched within the hour")
		}
		clock.Advance(time.Minute)
		if d, _ := l.Touch(ctx, u, []string{"p4"}); !d.Allowed {
			t.Fatalf("the window rolled over but the 4th patient is refused: %+v", d)
		}
		// The client budget (5) counts every user of the client: {p4} so far.
		other := limits.Keys{Client: "dp", Class: limits.ClinicianApp, User: "nurse"}
		tech := limits.Keys{Client: "dp", Class: limits.ClinicianApp, User: "tech"}
		if d, _ := l.Touch(ctx, other, []string{"q1", "q2"}); !d.Allowed {
			t.Fatalf("nurse: %+v", d)
		}
		if d, _ := l.Touch(ctx, tech, []string{"r1", "r2"}); !d.Allowed {
			t.Fatalf("tech: %+v", d)
		}
		d, _ = l.Touch(ctx, other, []string{"q3"})
		if d.Allowed || d.Limit != "distinct patients per client (clinician-app)" {
			t.Fatalf("6th patient of the client: %+v", d)
		}
		// All or nothing: the refused touch recorded q3 in no budget, so
		// the nurse (via another client) still has room for one more.
		if d, _ := l.Touch(ctx, limits.Keys{Client: "dp2", Class: limits.ClinicianApp, User: "nurse"}, []string{"q4"}); !d.Allowed {
			t.Fatalf("the refused q3 was counted in the nurse's budget: %+v", d)
		}
	})

	t.Run("distinct patients: more in one response than the budget", func(t *testing.T) {
		l, _ := NewLimiter(t, newStore(t), nil)
		d, _ := l.Touch(context.Background(), limits.Keys{Client: "big", Class: limits.ClinicianApp, User: "u"}, []string{"a", "b", "c", "d"})
		if d.Allowed || d.RetryAfter != time.Hour {
			t.Fatalf("%+v", d)
		}
	})

	t.Run("concurrent Allow spends exactly the burst", func(t *testing.T) {
		l, _ := NewLimiter(t, newStore(t), nil)
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 10 {
					d, err := l.Allow(context.Background(), cl("race"), 1)
					if err == nil && d.Allowed {
						ok.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if ok.Load() != 10 {
			t.Fatalf("%d allowed under concurrency, want 10", ok.Load())
		}
	})
}

// BenchAllow meters b.N requests against every key class at once, with
// the concurrency slot and a one-patient Touch, over s (limits.Default).
func BenchAllow(b *testing.B, s limits.Store) {
	l, err := limits.New(limits.Default(), s)
	if err != nil {
		b.Fatal(err)
	}
	// A fake clock that advances 1ms per request: each key comes back every
	// second, well within the default rates, so the benchmark measures the
	// allowed path however long it runs.
	now := Epoch
	l.SetClock(func() time.Time { return now })
	keys := make([]limits.Keys, 1000)
	for i := range keys {
		n := strconv.Itoa(i)
		keys[i] = limits.Keys{Client: "client-" + n, Class: limits.ClinicianApp, User: "user-" + n, Patient: "patient-" + n,
			Address: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Cert: "thumbprint-" + n}
	}
	patient := make([][]string, len(keys))
	for i := range patient {
		patient[i] = []string{"patient-" + strconv.Itoa(i)}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Millisecond)
		k := keys[i%len(keys)]
		d, release := l.Acquire(k)
		if !d.Allowed {
			b.Fatal("concurrency refused")
		}
		if d, err := l.Allow(ctx, k, 1); err != nil || !d.Allowed {
			b.Fatalf("refused: %+v %v", d, err)
		}
		if d, err := l.Touch(ctx, k, patient[i%len(keys)]); err != nil || !d.Allowed {
			b.Fatalf("touch refused: %+v %v", d, err)
		}
		release()
	}
}
