package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// RunReadCache tries to make a read cache serve what is no longer
// current. It turns on cached's cache (keeping only resources whose JSON
// lacks "uncacheable"); other MUST be a second store on the same
// database with no cache, standing for another process (an import beside
// the server, a replica): its writes tell cached nothing.
func RunReadCache(t *testing.T, cached, other *sqlstore.Store) {
	ctx := context.Background()
	cached.CacheReads(1<<20, func(js []byte) bool { return !bytes.Contains(js, []byte("uncacheable")) })
	hits := func() uint64 { return cached.ReadCacheStats().Hits }
	read := func(s store.Store, id string) (*store.Resource, error) {
		t.Helper()
		return s.Read(ctx, "Patient", id)
	}
	mustRead := func(s store.Store, id string, want store.Resource) *store.Resource {
		t.Helper()
		got, err := read(s, id)
		if err != nil {
			t.Fatalf("Read %s: %v", id, err)
		}
		sameResource(t, "Read "+id, got, want)
		if !slices.Equal(got.Patients, []string{"p-" + id}) && !want.Deleted {
			t.Errorf("Read %s: patients %v, want [p-%s]", id, got.Patients, id)
		}
		return got
	}
	w := func(id string, v int64, extra string) store.Write {
		wr := write("Patient", id, v, epoch.Add(time.Duration(v)*time.Second), nil, "p-"+id)
		wr.Resource.JSON = body("Patient", id, v, extra)
		return wr
	}

	t.Run("HitsAreCurrent", func(t *testing.T) {
		v1 := w("a", 1, "")
		put(t, cached, v1)
		mustRead(cached, "a", v1.Resource)
		before := hits()
		mustRead(cached, "a", v1.Resource)
		if hits() != before+1 {
			t.Fatalf("hits %d → %d: the second read of an unchanged resource was not served from the cache", before, hits())
		}
		// Written by this store, then by the other one: each read is
		// the new version, never the cached one.
		v2 := w("a", 2, `"x":"two"`)
		put(t, cached, v2)
		mustRead(cached, "a", v2.Resource)
		mustRead(cached, "a", v2.Resource)
		v3 := w("a", 3, `"x":"three"`)
		put(t, other, v3)
		mustRead(cached, "a", v3.Resource)
		put(t, other, deletion("Patient", "a", 4, epoch.Add(4*time.Second)))
		if got, err := read(cached, "a"); !errors.Is(err, store.ErrDeleted) || got == nil || !got.Deleted {
			t.Fatalf("Read after another store's delete: %+v, %v; want the deletion marker and ErrDeleted", got, err)
		}
		v5 := w("a", 5, `"x":"five"`)
		put(t, other, v5)
		mustRead(cached, "a", v5.Resource)
		mustRead(cached, "a", v5.Resource)
	})

	t.Run("CallerCannotChangeTheCache", func(t *testing.T) {
		v1 := w("b", 1, `"x":"b"`)
		put(t, cached, v1)
		mustRead(cached, "b", v1.Resource)
		// Two hits: what one caller appends is not in the other's.
		one, two := mustRead(cached, "b", v1.Resource), mustRead(cached, "b", v1.Resource)
		j1, j2 := append(one.JSON, "one"...), append(two.JSON, "two"...)
		p1, p2 := append(one.Patients, "p-one"), append(two.Patients, "p-two")
		if !bytes.HasSuffix(j1, []byte("one")) || !bytes.HasSuffix(j2, []byte("two")) || p1[len(p1)-1] != "p-one" || p2[len(p2)-1] != "p-two" {
			t.Errorf("two readers share what they append to a cached resource: %q %q %v %v", j1, j2, p1, p2)
		}
		one.Version, one.ID, one.JSON = 99, "other", nil
		mustRead(cached, "b", v1.Resource)
	})

	t.Run("Uncacheable", func(t *testing.T) {
		v1 := w("c", 1, `"s":"uncacheable one"`)
		put(t, cached, v1)
		mustRead(cached, "c", v1.Resource)
		before := hits()
		mustRead(cached, "c", v1.Resource)
		if hits() != before {
			t.Fatal("a resource the cache must not keep was served from it")
		}
		// The reason: its JSON may change in place, with no new version.
		next := body("Patient", "c", 1, `"s":"uncacheable two"`)
		if err := other.ReplaceJSON(ctx, "Patient", "c", 1, v1.Resource.JSON, next); err != nil {
			t.Fatal(err)
		}
		want := v1.Resource
		want.JSON = next
		mustRead(cached, "c", want)
	})

	t.Run("Gone", func(t *testing.T) {
		if _, err := read(cached, "never"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Read of a resource never written: %v, want ErrNotFound", err)
		}
		if _, err := read(cached, "never"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Read of a resource never written, again: %v, want ErrNotFound", err)
		}
	})

	// Readers never see a version older than the last one committed
	// before their read began, while both stores write.
	t.Run("Linearizable", func(t *testing.T) {
		const id, versions = "d", 120
		put(t, cached, w(id, 1, ""))
		var committed atomic.Int64
		committed.Store(1)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var failures atomic.Int64
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					lo := committed.Load()
					got, err := cached.Read(ctx, "Patient", id)
					if err != nil {
						t.Errorf("Read: %v", err)
						failures.Add(1)
						return
					}
					if got.Version < lo || !bytes.Equal(got.JSON, body("Patient", id, got.Version, fmt.Sprintf(`"n":%d`, got.Version))) && got.Version != 1 {
						t.Errorf("Read: version %d %q after version %d was committed", got.Version, got.JSON, lo)
						failures.Add(1)
						return
					}
				}
			}()
		}
		for v := int64(2); v <= versions && failures.Load() == 0; v++ {
			var by store.Store = cached
			if v%2 == 0 {
				by = other
			}
			put(t, by, w(id, v, fmt.Sprintf(`"n":%d`, v)))
			committed.Store(v)
		}
		close(stop)
		wg.Wait()
	})
}
