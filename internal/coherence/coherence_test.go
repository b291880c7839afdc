package coherence_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/coherence"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

// pgDSN is the DSN of the last PostgreSQL schema opened.
var pgDSN string

type database interface {
	store.Records
	Close() error
}

// backends opens one shared database per test: SQLite always, PostgreSQL
// when WARDEN_TEST_POSTGRES is set (./scripts/test sets it). Each call of
// the returned func opens another connection pool to the same database,
// as another process would.
func backends(_ testing.TB) map[string]func(t testing.TB) func() database {
	b := map[string]func(t testing.TB) func() database{
		"sqlite": func(t testing.TB) func() database {
			path := filepath.Join(t.TempDir(), "warden.db")
			var once sync.Once
			var s database
			return func() database {
				// SQLite is one process's database: members share its pool.
				once.Do(func() {
					db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { db.Close() })
					s = db
				})
				return s
			}
		},
	}
	if os.Getenv("WARDEN_TEST_POSTGRES") != "" {
		b["postgres"] = func(t testing.TB) func() database {
			u := storetest.PostgresURL(t)
			pgDSN = u
			return func() database {
				db, err := postgres.Open(context.Background(), u, postgres.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
		}
	}
	return b
}

// cache is a process's copy of one value ("is the grant revoked") read
// from the database by Reload.
type cache struct {
	db      store.Records
	value   atomic.Pointer[string]
	reloads atomic.Int64
}

func (c *cache) reload(ctx context.Context) error {
	c.reloads.Add(1)
	r, err := c.db.GetRecord(ctx, "test-state", "grant")
	v := "active"
	if err == nil {
		v = string(r.Value)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.value.Store(&v)
	return nil
}

type process struct {
	c *cache
	m *coherence.Member
}

func join(t testing.TB, ctx context.Context, db store.Records, n coherence.Notifier, lease time.Duration) process {
	t.Helper()
	c := &cache{db: db}
	m, err := coherence.Join(ctx, coherence.Options{Records: db, Notifier: n, Reload: c.reload, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	return process{c, m}
}

// TestRevocationRace is the property the package exists for: many
// readers in three processes check Fresh and then read their cached
// value; the moment Publish returns, no read that starts after it sees the
// old value, in any process.
func TestRevocationRace(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			another := open(t)
			shared := another()
			var procs []process
			for range 3 {
				db := shared
				if name == "postgres" {
					db = another() // a pool of its own, as another process
				}
				p := join(t, ctx, db, notifierFor(t, name), time.Second)
				go p.m.Run(ctx)
				procs = append(procs, p)
			}
			for round := range 5 {
				state := fmt.Sprintf("revoked-%d", round)
				var returned atomic.Int64 // UnixNano when Publish returned; 0 before
				var stale, checked atomic.Int64
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for i := range 32 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						p := procs[i%3]
						for {
							select {
							case <-stop:
								return
							default:
							}
							started := time.Now().UnixNano()
							if err := p.m.Fresh(ctx); err != nil {
								t.Error(err)
								return
							}
							v := *p.c.value.Load()
							if r := returned.Load(); r != 0 && started > r {
								checked.Add(1)
								if v != state {
									stale.Add(1)
								}
							}
							runtime.Gosched() // a request has I/O; let the members' rounds run
						}
					}()
				}
				time.Sleep(20 * time.Millisecond)
				publisher := procs[round%3]
				if err := shared.PutRecord(ctx, store.Record{Kind: "test-state", Key: "grant", Value: []byte(state)}); err != nil {
					t.Fatal(err)
				}
				if _, err := publisher.m.Publish(ctx); err != nil {
					t.Fatal(err)
				}
				returned.Store(time.Now().UnixNano())
				time.Sleep(30 * time.Millisecond)
				close(stop)
				wg.Wait()
				if stale.Load() != 0 {
					t.Fatalf("round %d: %d of %d reads after Publish returned saw the old state", round, stale.Load(), checked.Load())
				}
				if checked.Load() == 0 {
					t.Fatalf("round %d: no read after Publish returned: the test checked nothing", round)
				}
			}
		})
	}
}

// TestHungMember: a member that stops running rounds (a paused process)
// does not block Publish forever, and by the time Publish returns it no
// longer trusts its cache: its next request reloads.
func TestHungMember(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)()
			const lease = 400 * time.Millisecond
			hung := join(t, ctx, db, nil, lease) // never Run
			live := join(t, ctx, db, nil, lease)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go live.m.Run(rctx)
			if err := db.PutRecord(ctx, store.Record{Kind: "test-state", Key: "grant", Value: []byte("revoked")}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			if _, err := live.m.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			if took < lease/2 {
				t.Errorf("Publish returned after %v, before the hung member's lease could have run out", took)
			}
			if took > 3*lease {
				t.Errorf("Publish waited %v for a hung member (lease %v)", took, lease)
			}
			if *hung.c.value.Load() != "active" {
				t.Fatal("the hung member reloaded by itself: the test is not testing a hung member")
			}
			// Its cache is no longer trusted: Fresh reloads before answering.
			if err := hung.m.Fresh(ctx); err != nil {
				t.Fatal(err)
			}
			if v := *hung.c.value.Load(); v != "revoked" {
				t.Fatalf("after Publish returned, the hung member's next request saw %q", v)
			}
		})
	}
}

// failing is a Records whose reads fail while down is set.
type failing struct {
	store.Records
	down atomic.Bool
}

var errDown = errors.New("database down")

func (f *failing) GetRecord(ctx context.Context, kind, key string) (*store.Record, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Records.GetRecord(ctx, kind, key)
}

func (f *failing) PutRecord(ctx context.Context, r store.Record) error {
	if f.down.Load() {
		return errDown
	}
	return f.Records.PutRecord(ctx, r)
}

// TestDatabaseDown: a member that cannot reach the database serves from
// its cache only while its stored lease holds; then every request checks
// the database and fails with ErrUnavailable (a 503), and recovers when
// the database does.
func TestDatabaseDown(t *testing.T) {
	ctx := context.Background()
	db := &failing{Records: backends(t)["sqlite"](t)()}
	const lease = 300 * time.Millisecond
	var failures atomic.Int64
	c := &cache{db: db}
	m, err := coherence.Join(ctx, coherence.Options{Records: db, Reload: c.reload, Lease: lease,
		Failed: func(error) { failures.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Fresh(ctx); err != nil {
		t.Fatal(err)
	}
	db.down.Store(true)
	time.Sleep(lease) // past lease - margin
	for range 3 {
		if err := m.Fresh(ctx); !errors.Is(err, coherence.ErrUnavailable) || !errors.Is(err, errDown) {
			t.Fatalf("Fresh with the database down after the lease: %v, want ErrUnavailable", err)
		}
	}
	if failures.Load() != 3 {
		t.Errorf("Failed was told %d times, want once per failed round (3)", failures.Load())
	}
	db.down.Store(false)
	if err := m.Fresh(ctx); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// Join itself fails closed.
	db.down.Store(true)
	if _, err := coherence.Join(ctx, coherence.Options{Records: db, Reload: c.reload}); !errors.Is(err, coherence.ErrUnavailable) {
		t.Fatalf("Join with the database down: %v", err)
	}
}

// TestFailedReload: a member whose reload fails does not acknowledge the
// epoch, so Publish keeps waiting for it, and it stops trusting its cache.
func TestFailedReload(t *testing.T) {
	ctx := context.Background()
	db := backends(t)["sqlite"](t)()
	const lease = 300 * time.Millisecond
	var broken atomic.Bool
	c := &cache{db: db}
	m, err := coherence.Join(ctx, coherence.Options{Records: db, Lease: lease, Reload: func(ctx context.Context) error {
		if broken.Load() {
			return errors.New("cannot reload")
		}
		return c.reload(ctx)
	}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go m.Run(rctx)
	broken.Store(true)
	t0 := time.Now()
	if _, err := coherence.Publish(ctx, db, nil, 2*lease); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took < lease/2 {
		t.Fatalf("Publish returned after %v though the member could not apply the change", took)
	}
	if err := m.Fresh(ctx); !errors.Is(err, coherence.ErrUnavailable) {
		t.Fatalf("Fresh with a failing reload: %v", err)
	}
	broken.Store(false)
	if err := m.Fresh(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentPublish: the epoch is a counter no concurrent increment
// is lost from.
func TestConcurrentPublish(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)()
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 10 {
						if _, err := coherence.Publish(ctx, db, nil, time.Second); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			p := join(t, ctx, db, nil, time.Second)
			if p.m.Epoch() != 80 {
				t.Fatalf("epoch %d after 80 increments", p.m.Epoch())
			}
		})
	}
}

// TestLeaveOnStop: a member that stops removes its lease, so Publish does
// not wait for it.
func TestLeaveOnStop(t *testing.T) {
	ctx := context.Background()
	db := backends(t)["sqlite"](t)()
	p := join(t, ctx, db, nil, 10*time.Second)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- p.m.Run(rctx) }()
	cancel()
	<-done
	t0 := time.Now()
	if _, err := coherence.Publish(ctx, db, nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Fatalf("Publish waited %v for a member that had left", took)
	}
}

// BenchmarkPublish measures how long a change takes to reach every member
// of three (Publish's latency: the revoking call's added wait), reporting
// p50 and p99.
func BenchmarkPublish(b *testing.B) {
	for name, open := range backends(nil) {
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			another := open(b)
			var procs []process
			for range 3 {
				p := join(b, ctx, another(), notifierFor(b, name), time.Second)
				go p.m.Run(ctx)
				procs = append(procs, p)
			}
			time.Sleep(100 * time.Millisecond) // listeners up
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if _, err := procs[i%3].m.Publish(ctx); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// notifierFor is PostgreSQL's LISTEN/NOTIFY on a PostgreSQL backend, and
// nil (polling) on SQLite.
func notifierFor(t testing.TB, backend string) coherence.Notifier {
	if backend != "postgres" {
		return nil
	}
	return postgres.NewBus(pgDSN).Channel("warden_coherence_test")
}
