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

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
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

	t.Run("Search", func(t *testing.T) { runCachedSearch(t, cached, other) })

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

// runCachedSearch tries to make searches of a store with its read cache
// on return bodies or compartments of another version than the one they
// matched: after writes by the other store, after a transaction that
// wrote and rolled back, and while both stores write.
func runCachedSearch(t *testing.T, cached, other *sqlstore.Store) {
	ctx := context.Background()
	stats := cached.ReadCacheStats
	// Observations of patient sp-1 with code x|1, each a compartment
	// member of the patient and of a second patient; "u" is uncacheable.
	obs := func(id string, v int64, extra string) store.Write {
		wr := write("Observation", id, v, epoch.Add(time.Duration(v)*time.Second),
			[]searchparam.Entry{refE("patient", "Patient", "sp-1"), tokE("code", "x", "1")}, "sp-1", "sp-"+id)
		wr.Resource.JSON = body("Observation", id, v, extra)
		return wr
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		put(t, cached, obs(id, 1, `"n":1`))
	}
	put(t, cached, obs("u", 1, `"s":"uncacheable"`))
	q := query("Observation", cl(pPatient, vRef("Patient", "sp-1")), cl(pCode, vSysCode("x", "1")))
	sorted := *q
	sorted.Sort = []search.Sort{desc(pID)}
	// want is what other, with no cache, finds: the same resources, JSON
	// and compartments, in the same order.
	same := func(what string, q *search.Query) *store.SearchResult {
		t.Helper()
		got, err := cached.Search(ctx, q, store.PageRequest{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		want, err := other.Search(ctx, q, store.PageRequest{})
		if err != nil {
			t.Fatalf("%s, without the cache: %v", what, err)
		}
		if len(got.Matches) != len(want.Matches) {
			t.Fatalf("%s: %v, want %v", what, ids(got.Matches), ids(want.Matches))
		}
		for i := range want.Matches {
			sameResource(t, what, &got.Matches[i], want.Matches[i])
			if !slices.Equal(got.Matches[i].Patients, want.Matches[i].Patients) {
				t.Errorf("%s: %s has patients %v, want %v", what, got.Matches[i].ID, got.Matches[i].Patients, want.Matches[i].Patients)
			}
		}
		return got
	}
	for _, sq := range []*search.Query{q, &sorted} {
		same("first search", sq)
		before := stats()
		same("second search", sq)
		after := stats()
		if after.SearchHits-before.SearchHits != 3 || after.SearchMisses-before.SearchMisses != 1 {
			t.Fatalf("second search: %d hits and %d misses, want the 3 cacheable matches from the cache and the other read",
				after.SearchHits-before.SearchHits, after.SearchMisses-before.SearchMisses)
		}
	}

	// Another process updates one and deletes another.
	put(t, other, obs("s1", 2, `"n":2`))
	put(t, other, deletion("Observation", "s2", 2, epoch.Add(2*time.Second)))
	for _, sq := range []*search.Query{q, &sorted} {
		if got := same("after the other store's writes", sq); len(got.Matches) != 3 {
			t.Fatalf("after the other store's writes: %v, want s1, s3 and u", ids(got.Matches))
		}
	}

	// A transaction of this store writes a version, searches (seeing
	// it), and rolls back; the other store then commits different
	// content under the same version number. Nothing of the rolled-back
	// version may have been kept.
	rollback := errors.New("roll back")
	err := cached.Tx(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, obs("s3", 2, `"n":"rolled back"`)); err != nil {
			return err
		}
		res, err := tx.Search(ctx, q, store.PageRequest{})
		if err != nil {
			return err
		}
		seen := false
		for _, m := range res.Matches {
			seen = seen || m.ID == "s3" && bytes.Contains(m.JSON, []byte("rolled back"))
		}
		if !seen {
			t.Errorf("the transaction's search did not see its own write: %v", ids(res.Matches))
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("Tx: %v, want the rollback", err)
	}
	put(t, other, obs("s3", 2, `"n":"committed"`))
	for _, sq := range []*search.Query{q, &sorted} {
		same("after a rolled-back transaction", sq)
	}
	if got, err := cached.Read(ctx, "Observation", "s3"); err != nil || !bytes.Contains(got.JSON, []byte(`"committed"`)) {
		t.Fatalf("Read after a rolled-back transaction: %v, %v; want the committed version 2", got, err)
	}

	// While the other store rewrites the matches, every match's body is
	// of the version it was found in.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			sq := q
			if r%2 == 1 {
				sq = &sorted
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := cached.Search(ctx, sq, store.PageRequest{})
				if err != nil {
					t.Errorf("Search: %v", err)
					failures.Add(1)
					return
				}
				for _, m := range res.Matches {
					if !bytes.Contains(m.JSON, fmt.Appendf(nil, `"versionId":"%d"`, m.Version)) || !slices.Equal(m.Patients, []string{"sp-1", "sp-" + m.ID}) {
						t.Errorf("Search: %s version %d with body %q and patients %v", m.ID, m.Version, m.JSON, m.Patients)
						failures.Add(1)
						return
					}
				}
			}
		}(r)
	}
	for v := int64(3); v <= 80 && failures.Load() == 0; v++ {
		var by store.Store = cached
		if v%3 != 0 {
			by = other
		}
		put(t, by, obs("s1", v, fmt.Sprintf(`"n":%d`, v)), obs("s3", v, fmt.Sprintf(`"n":%d`, v)))
	}
	close(stop)
	wg.Wait()
}
