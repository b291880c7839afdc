// Package storetest is the conformance suite of store.Store: one set of
// tests that every backend (SQLite, PostgreSQL, and later others) MUST
// pass, run from each backend's own tests with Run.
//
// The suite builds resources, index entries and queries by hand, so it
// exercises the store contract alone: versions, deletion markers and
// history; every kind of search clause with exact expected results;
// sorting, paging and its stability under concurrent writes; includes;
// totals; transactions, conflicts and locks under concurrency.
//
// Only test code may import this package.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// Run runs the conformance suite. open MUST return a new, empty store
// for each call; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	fresh := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	t.Run("Versions", func(t *testing.T) { testVersions(t, fresh(t)) })
	t.Run("Conflicts", func(t *testing.T) { testConflicts(t, fresh(t)) })
	t.Run("History", func(t *testing.T) { testHistory(t, fresh(t)) })
	t.Run("Rollback", func(t *testing.T) { testRollback(t, fresh(t)) })
	t.Run("OwnWrites", func(t *testing.T) { testOwnWrites(t, fresh(t)) })
	t.Run("IndexReplaced", func(t *testing.T) { testIndexReplaced(t, fresh(t)) })
	t.Run("ConcurrentTx", func(t *testing.T) { testConcurrentTx(t, fresh(t)) })
	t.Run("ConcurrentConflicts", func(t *testing.T) { testConcurrentConflicts(t, fresh(t)) })
	t.Run("Lock", func(t *testing.T) { testLock(t, fresh(t)) })
	t.Run("LongValues", func(t *testing.T) { testLongValues(t, fresh(t)) })
	t.Run("Search", func(t *testing.T) {
		s := fresh(t)
		at := load(t, s)
		t.Run("Clauses", func(t *testing.T) { testSearch(t, s, at) })
		t.Run("Totals", func(t *testing.T) { testSearchTotals(t, s) })
		t.Run("Includes", func(t *testing.T) { testIncludes(t, s) })
		t.Run("BadCursor", func(t *testing.T) { testBadCursor(t, s) })
		t.Run("InTx", func(t *testing.T) { testSearchInTx(t, s) })
	})
	t.Run("Paging", func(t *testing.T) { testPaging(t, fresh(t)) })
	t.Run("PagingConcurrentWrites", func(t *testing.T) { testPagingConcurrent(t, fresh(t)) })
	t.Run("Patients", func(t *testing.T) { testPatients(t, fresh(t)) })
	t.Run("PatientTokens", func(t *testing.T) { testPatientTokens(t, fresh(t)) })
	t.Run("Records", func(t *testing.T) { testRecords(t, fresh(t)) })
	t.Run("Ping", func(t *testing.T) {
		if err := fresh(t).Ping(context.Background()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

// put writes ws in one transaction.
func put(t testing.TB, s store.Store, ws ...store.Write) {
	t.Helper()
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		for _, w := range ws {
			if err := tx.Put(context.Background(), w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Tx: %v", err)
	}
}

// tryPut writes w in a transaction of its own and returns the error.
func tryPut(s store.Store, w store.Write) error {
	return s.Tx(context.Background(), func(tx store.Tx) error { return tx.Put(context.Background(), w) })
}

func sameResource(t *testing.T, what string, got *store.Resource, want store.Resource) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil resource", what)
		return
	}
	if got.Type != want.Type || got.ID != want.ID || got.Version != want.Version || got.Deleted != want.Deleted ||
		!got.LastUpdated.Equal(want.LastUpdated) || !bytes.Equal(got.JSON, want.JSON) {
		t.Errorf("%s: got %s/%s v%d deleted=%v at %v %q, want %s/%s v%d deleted=%v at %v %q", what,
			got.Type, got.ID, got.Version, got.Deleted, got.LastUpdated, got.JSON,
			want.Type, want.ID, want.Version, want.Deleted, want.LastUpdated, want.JSON)
	}
	if want.Deleted && got.JSON != nil {
		t.Errorf("%s: deletion marker with JSON %q", what, got.JSON)
	}
}

func testVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Read(ctx, "Patient", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Read before create: %v, want ErrNotFound", err)
	}
	v1 := write("Patient", "a", 1, epoch, []searchparam.Entry{strE("name", "One")})
	v2 := write("Patient", "a", 2, epoch.Add(time.Second), []searchparam.Entry{strE("name", "Two")})
	v3 := deletion("Patient", "a", 3, epoch.Add(2*time.Second))
	v4 := write("Patient", "a", 4, epoch.Add(3*time.Second), []searchparam.Entry{strE("name", "Four")})
	// Microsecond precision survives.
	v2.Resource.LastUpdated = v2.Resource.LastUpdated.Add(123456 * time.Microsecond)
	other := write("Patient", "b", 1, epoch, nil)

	put(t, s, v1, other)
	got, err := s.Read(ctx, "Patient", "a")
	if err != nil {
		t.Fatalf("Read v1: %v", err)
	}
	sameResource(t, "Read v1", got, v1.Resource)

	put(t, s, v2)
	got, err = s.Read(ctx, "Patient", "a")
	if err != nil {
		t.Fatalf("Read v2: %v", err)
	}
	sameResource(t, "Read v2", got, v2.Resource)

	put(t, s, v3)
	got, err = s.Read(ctx, "Patient", "a")
	if !errors.Is(err, store.ErrDeleted) {
		t.Fatalf("Read after delete: %v, want ErrDeleted", err)
	}
	sameResource(t, "Read after delete", got, v3.Resource)

	put(t, s, v4)
	got, err = s.Read(ctx, "Patient", "a")
	if err != nil {
		t.Fatalf("Read v4: %v", err)
	}
	sameResource(t, "Read v4", got, v4.Resource)

	for _, w := range []store.Write{v1, v2, v3, v4} {
		got, err := s.VRead(ctx, "Patient", "a", w.Resource.Version)
		if err != nil {
			t.Errorf("VRead %d: %v", w.Resource.Version, err)
			continue
		}
		sameResource(t, fmt.Sprintf("VRead %d", w.Resource.Version), got, w.Resource)
	}
	for _, c := range []struct {
		typ, id string
		v       int64
	}{{"Patient", "a", 5}, {"Patient", "a", 0}, {"Patient", "zz", 1}, {"Observation", "a", 1}} {
		if _, err := s.VRead(ctx, c.typ, c.id, c.v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("VRead %s/%s/%d: %v, want ErrNotFound", c.typ, c.id, c.v, err)
		}
	}
	if _, err := s.Read(ctx, "Observation", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read of another type: %v, want ErrNotFound", err)
	}
	got, err = s.Read(ctx, "Patient", "b")
	if err != nil {
		t.Fatal(err)
	}
	sameResource(t, "Read b", got, other.Resource)

	// A deleted resource is not found by search; a recreated one is, by
	// its new values only.
	res, err := s.Search(ctx, query("Patient", cl(pName, vStr("four"))), store.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Matches); !slices.Equal(got, []string{"Patient/a"}) {
		t.Errorf("search after recreate: %v", got)
	}
	for _, old := range []string{"one", "two"} {
		res, err := s.Search(ctx, query("Patient", cl(pName, vStr(old))), store.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Matches) != 0 {
			t.Errorf("search %q found %v: old versions must not be indexed", old, ids(res.Matches))
		}
	}
	put(t, s, deletion("Patient", "a", 5, epoch.Add(4*time.Second)))
	res, err = s.Search(ctx, query("Patient"), store.PageRequest{WantTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Matches); !slices.Equal(got, []string{"Patient/b"}) || res.Total != 1 {
		t.Errorf("search after delete: %v total %d, want [Patient/b] 1", got, res.Total)
	}
	// A deletion of a resource that never existed is a version 1 marker.
	put(t, s, deletion("Patient", "never", 1, epoch))
	if _, err := s.Read(ctx, "Patient", "never"); !errors.Is(err, store.ErrDeleted) {
		t.Errorf("Read of a deleted-at-birth resource: %v, want ErrDeleted", err)
	}
}

func testConflicts(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, write("Patient", "a", 1, epoch, nil))
	put(t, s, write("Patient", "a", 2, epoch, nil))
	for _, c := range []struct {
		name string
		w    store.Write
	}{
		{"create existing", write("Patient", "a", 1, epoch, nil)},
		{"same version", write("Patient", "a", 2, epoch, nil)},
		{"skipped version", write("Patient", "a", 4, epoch, nil)},
		{"version 0", write("Patient", "b", 0, epoch, nil)},
		{"new at version 2", write("Patient", "b", 2, epoch, nil)},
		{"delete at a stale version", deletion("Patient", "a", 2, epoch)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := tryPut(s, c.w); !errors.Is(err, store.ErrConflict) {
				t.Errorf("Put: %v, want ErrConflict", err)
			}
		})
	}
	got, err := s.Read(ctx, "Patient", "a")
	if err != nil || got.Version != 2 {
		t.Errorf("after conflicts: %v %v, want version 2", got, err)
	}
	if _, err := s.Read(ctx, "Patient", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read b: %v, want ErrNotFound", err)
	}
	// A failed Put inside a transaction leaves the transaction's other
	// writes intact when the function goes on.
	err = s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, write("Patient", "c", 1, epoch, []searchparam.Entry{strE("name", "Cee")})); err != nil {
			return err
		}
		if err := tx.Put(ctx, write("Patient", "a", 7, epoch, nil)); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("conflicting Put: %v, want ErrConflict", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Tx: %v", err)
	}
	if _, err := s.Read(ctx, "Patient", "c"); err != nil {
		t.Errorf("Read c: %v", err)
	}
}

func testHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	// a: 3 versions, the last a deletion; b: 2 versions; c: an
	// Observation. Each version a second after the previous one.
	var all []store.Write
	tick := epoch
	add := func(w store.Write) {
		tick = tick.Add(time.Second)
		w.Resource.LastUpdated = tick
		all = append(all, w)
		put(t, s, w)
	}
	add(write("Patient", "a", 1, epoch, nil))
	add(write("Patient", "b", 1, epoch, nil))
	add(write("Patient", "a", 2, epoch, nil))
	add(write("Observation", "c", 1, epoch, nil))
	add(deletion("Patient", "a", 3, epoch))
	add(write("Patient", "b", 2, epoch, nil))
	newest := func(keep func(store.Resource) bool) []store.Resource {
		var out []store.Resource
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i].Resource) {
				out = append(out, all[i].Resource)
			}
		}
		return out
	}
	since := all[2].Resource.LastUpdated
	for _, c := range []struct {
		name string
		q    store.HistoryQuery
		want []store.Resource
	}{
		{"instance", store.HistoryQuery{Type: "Patient", ID: "a"}, newest(func(r store.Resource) bool { return r.ID == "a" })},
		{"type", store.HistoryQuery{Type: "Patient"}, newest(func(r store.Resource) bool { return r.Type == "Patient" })},
		{"system", store.HistoryQuery{}, newest(func(store.Resource) bool { return true })},
		{"instance since", store.HistoryQuery{Type: "Patient", ID: "a", Since: since}, newest(func(r store.Resource) bool { return r.ID == "a" && !r.LastUpdated.Before(since) })},
		{"type since", store.HistoryQuery{Type: "Patient", Since: since}, newest(func(r store.Resource) bool { return r.Type == "Patient" && !r.LastUpdated.Before(since) })},
		{"system since", store.HistoryQuery{Since: since}, newest(func(r store.Resource) bool { return !r.LastUpdated.Before(since) })},
		{"since the future", store.HistoryQuery{Since: tick.Add(time.Hour)}, nil},
		{"other type", store.HistoryQuery{Type: "Observation"}, newest(func(r store.Resource) bool { return r.Type == "Observation" })},
	} {
		for _, count := range []int{1, 2, 100} {
			t.Run(fmt.Sprintf("%s/count %d", c.name, count), func(t *testing.T) {
				q := c.q
				q.Count = count
				var got []store.Resource
				for pages := 0; ; pages++ {
					if pages > len(all)+1 {
						t.Fatal("history pages do not end")
					}
					page, err := s.History(ctx, q)
					if err != nil {
						t.Fatalf("History: %v", err)
					}
					if page.Total != len(c.want) {
						t.Errorf("Total %d, want %d", page.Total, len(c.want))
					}
					if len(page.Versions) > count {
						t.Errorf("page of %d versions, Count %d", len(page.Versions), count)
					}
					got = append(got, page.Versions...)
					if page.Next == "" {
						break
					}
					q.After = page.Next
				}
				if len(got) != len(c.want) {
					t.Fatalf("%d versions, want %d", len(got), len(c.want))
				}
				for i := range got {
					sameResource(t, fmt.Sprintf("version %d", i), &got[i], c.want[i])
				}
			})
		}
	}
	if _, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "nobody", Count: 10}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("instance history of an unknown resource: %v, want ErrNotFound", err)
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Count: 0})
	if err != nil || page.Total != 5 || len(page.Versions) != 0 {
		t.Errorf("Count 0: %v, %+v; want Total 5 and no versions", err, page)
	}

	// System history less a type, with a cursor after each version, as
	// the audit trail's index merges its AuditEvents into it.
	want := newest(func(r store.Resource) bool { return r.Type != "Observation" })
	q := store.HistoryQuery{Except: "Observation", Count: 100, EachCursor: true}
	page, err = s.History(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != len(want) || len(page.Versions) != len(want) || len(page.After) != len(want) {
		t.Fatalf("Except: total %d, %d versions, %d cursors; want %d of each", page.Total, len(page.Versions), len(page.After), len(want))
	}
	for i := range want {
		sameResource(t, fmt.Sprintf("Except, version %d", i), &page.Versions[i], want[i])
		rest, err := s.History(ctx, store.HistoryQuery{Except: "Observation", Count: 100, After: page.After[i]})
		if err != nil {
			t.Fatal(err)
		}
		if len(rest.Versions) != len(want)-i-1 {
			t.Fatalf("after version %d: %d versions, want %d", i, len(rest.Versions), len(want)-i-1)
		}
		for k := range rest.Versions {
			sameResource(t, fmt.Sprintf("after version %d, version %d", i, k), &rest.Versions[k], want[i+1+k])
		}
	}
	if page, err := s.History(ctx, store.HistoryQuery{Count: 2}); err != nil || page.After != nil {
		t.Errorf("cursors after each version unasked: %v, %v", page.After, err)
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, write("Patient", "kept", 1, epoch, []searchparam.Entry{strE("name", "Kept")}, "kept"))
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx store.Tx) error {
		for _, w := range []store.Write{
			write("Patient", "gone", 1, epoch, []searchparam.Entry{strE("name", "Gone"), tokE("gender", "", "male")}, "gone"),
			write("Observation", "gone", 1, epoch, []searchparam.Entry{refE("subject", "Patient", "kept")}, "kept"),
			write("Patient", "kept", 2, epoch, []searchparam.Entry{strE("name", "Changed")}, "kept"),
		} {
			if err := tx.Put(ctx, w); err != nil {
				return err
			}
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx: %v, want the function's error", err)
	}
	if _, err := s.Read(ctx, "Patient", "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read of a rolled back create: %v, want ErrNotFound", err)
	}
	got, err := s.Read(ctx, "Patient", "kept")
	if err != nil || got.Version != 1 {
		t.Errorf("Read of a rolled back update: %+v %v, want version 1", got, err)
	}
	for _, q := range []*search.Query{
		query("Patient", cl(pName, vStr("gone"))),
		query("Patient", cl(pName, vStr("changed"))),
		query("Patient", cl(pGender, vCode("male"))),
		query("Observation"),
		withCompartment(query("Observation"), "kept"),
	} {
		res, err := s.Search(ctx, q, store.PageRequest{WantTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Matches) != 0 || res.Total != 0 {
			t.Errorf("search %v after rollback found %v", q.Clauses, ids(res.Matches))
		}
	}
	res, err := s.Search(ctx, query("Patient", cl(pName, vStr("kept"))), store.PageRequest{})
	if err != nil || len(res.Matches) != 1 {
		t.Errorf("search of the kept version: %v %v", ids(res.Matches), err)
	}
	page, err := s.History(ctx, store.HistoryQuery{Count: 10})
	if err != nil || page.Total != 1 {
		t.Errorf("history after rollback: %v total %d, want 1", err, page.Total)
	}
	// A panic in the function rolls back and reaches the caller.
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("Tx swallowed a panic")
			}
		}()
		s.Tx(ctx, func(tx store.Tx) error {
			tx.Put(ctx, write("Patient", "panicked", 1, epoch, nil))
			panic("boom")
		})
	}()
	if _, err := s.Read(ctx, "Patient", "panicked"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read after a panicking Tx: %v, want ErrNotFound", err)
	}
	// A cancelled context fails the transaction and keeps nothing.
	cctx, cancel := context.WithCancel(ctx)
	err = s.Tx(cctx, func(tx store.Tx) error {
		if err := tx.Put(cctx, write("Patient", "cancelled", 1, epoch, nil)); err != nil {
			return err
		}
		cancel()
		return tx.Put(cctx, write("Patient", "cancelled2", 1, epoch, nil))
	})
	if err == nil {
		t.Errorf("Tx with a context cancelled midway returned nil")
	}
	if _, err := s.Read(ctx, "Patient", "cancelled"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read after a cancelled Tx: %v, want ErrNotFound", err)
	}
}

func testOwnWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, write("Patient", "old", 1, epoch, []searchparam.Entry{strE("name", "Old")}))
	err := s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.Put(ctx, write("Patient", "new", 1, epoch, []searchparam.Entry{strE("name", "New")})); err != nil {
			return err
		}
		if err := tx.Put(ctx, deletion("Patient", "old", 2, epoch)); err != nil {
			return err
		}
		got, err := tx.Read(ctx, "Patient", "new")
		if err != nil || got.Version != 1 {
			return fmt.Errorf("Read own create: %v %v", got, err)
		}
		if _, err := tx.Read(ctx, "Patient", "old"); !errors.Is(err, store.ErrDeleted) {
			return fmt.Errorf("Read own delete: %v, want ErrDeleted", err)
		}
		res, err := tx.Search(ctx, query("Patient"), store.PageRequest{WantTotal: true})
		if err != nil {
			return err
		}
		if got := ids(res.Matches); !slices.Equal(got, []string{"Patient/new"}) || res.Total != 1 {
			return fmt.Errorf("Search in Tx: %v total %d, want [Patient/new] 1", got, res.Total)
		}
		// Outside the transaction nothing shows yet.
		if _, err := s.Read(ctx, "Patient", "new"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Read outside an open Tx: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testIndexReplaced(t *testing.T, s store.Store) {
	ctx := context.Background()
	every := []searchparam.Entry{
		strE("name", "Alpha"), tokE("gender", "", "male"), refE("general-practitioner", "Practitioner", "x"),
		dateE("birthdate", "2000"), uriE("_profile", "http://a"), tokE("identifier", "s", "1"),
	}
	put(t, s, write("Patient", "a", 1, epoch, every, "a"), write("Practitioner", "x", 1, epoch, nil))
	put(t, s, write("Patient", "a", 2, epoch, []searchparam.Entry{strE("name", "Beta")}))
	for _, q := range []*search.Query{
		query("Patient", cl(pName, vStr("alpha"))),
		query("Patient", cl(pGender, vCode("male"))),
		query("Patient", cl(pGP, vRef("Practitioner", "x"))),
		query("Patient", cl(pBirthdate, vDate(search.Eq, "2000"))),
		query("Patient", cl(pProfile, search.Value{Exact: "http://a"})),
		query("Patient", cl(pIdentifier, vCode("1"))),
		withCompartment(query("Observation"), "a"),
	} {
		res, err := s.Search(ctx, q, store.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Matches) != 0 {
			t.Errorf("%v: found %v after the values were replaced", q.Clauses, ids(res.Matches))
		}
	}
	res, err := s.Search(ctx, query("Patient", cl(pName, vStr("beta"))), store.PageRequest{})
	if err != nil || len(res.Matches) != 1 || res.Matches[0].Version != 2 {
		t.Errorf("search of the new value: %v %v", ids(res.Matches), err)
	}
}

func testConcurrentTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("w%d-%d", g, i)
				err := s.Tx(ctx, func(tx store.Tx) error {
					if err := tx.Put(ctx, write("Patient", id, 1, epoch, []searchparam.Entry{tokE("identifier", "w", fmt.Sprint(g))}, id)); err != nil {
						return err
					}
					if i%5 == 4 {
						return errors.New("rolled back on purpose")
					}
					return tx.Put(ctx, write("Observation", id, 1, epoch, []searchparam.Entry{refE("subject", "Patient", id)}, id))
				})
				if err != nil && i%5 != 4 {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
				if err == nil && i%5 == 4 {
					errs <- fmt.Errorf("%s: rolled back transaction returned nil", id)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	kept := writers * each * 4 / 5
	for _, typ := range []string{"Patient", "Observation"} {
		res, err := s.Search(ctx, query(typ), store.PageRequest{OnlyCount: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != kept {
			t.Errorf("%d %ss, want %d", res.Total, typ, kept)
		}
	}
	res, err := s.Search(ctx, query("Patient", cl(pIdentifier, vSysCode("w", "3"))), store.PageRequest{OnlyCount: true})
	if err != nil || res.Total != each*4/5 {
		t.Errorf("writer 3 has %d patients (%v), want %d", res.Total, err, each*4/5)
	}
}

func testConcurrentConflicts(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, write("Patient", "hot", 1, epoch, nil))
	const racers = 12
	for round := int64(2); round < 6; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		won, lost := 0, 0
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := tryPut(s, write("Patient", "hot", round, epoch, []searchparam.Entry{tokE("identifier", "racer", fmt.Sprint(i))}))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, store.ErrConflict):
					lost++
				default:
					t.Errorf("racer %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if won != 1 || lost != racers-1 {
			t.Errorf("round %d: %d won, %d conflicts; want 1 and %d", round, won, lost, racers-1)
		}
	}
	// Concurrent creates of one id: one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := tryPut(s, write("Patient", "born", 1, epoch, nil))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("create racer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d concurrent creates of one id succeeded, want 1", won)
	}
	page, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "hot", Count: 100})
	if err != nil || page.Total != 5 {
		t.Errorf("history of the raced resource: total %d, %v; want 5", page.Total, err)
	}
	res, err := s.Search(ctx, query("Patient", cl(pIdentifier, vSys("racer"))), store.PageRequest{WantTotal: true})
	if err != nil || res.Total != 1 {
		t.Errorf("index of the raced resource: %d matches, %v; want 1", res.Total, err)
	}
}

// testLock runs conditional creates: under Lock, each transaction
// searches for the identifier and creates a resource only when none
// exists, so exactly one per identifier must result.
func testLock(t *testing.T, s store.Store) {
	ctx := context.Background()
	const racers, keys = 10, 3
	var wg sync.WaitGroup
	for k := 0; k < keys; k++ {
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ident := fmt.Sprint(k)
				err := s.Tx(ctx, func(tx store.Tx) error {
					if err := tx.Lock(ctx, "Patient?identifier=lock|"+ident); err != nil {
						return err
					}
					res, err := tx.Search(ctx, query("Patient", cl(pIdentifier, vSysCode("lock", ident))), store.PageRequest{})
					if err != nil {
						return err
					}
					if len(res.Matches) > 0 {
						return nil
					}
					// Give the others time to run into the lock.
					time.Sleep(5 * time.Millisecond)
					return tx.Put(ctx, write("Patient", fmt.Sprintf("k%d-%d", k, i), 1, epoch, []searchparam.Entry{tokE("identifier", "lock", ident)}))
				})
				if err != nil {
					t.Errorf("key %d racer %d: %v", k, i, err)
				}
			}()
		}
	}
	wg.Wait()
	for k := 0; k < keys; k++ {
		res, err := s.Search(ctx, query("Patient", cl(pIdentifier, vSysCode("lock", fmt.Sprint(k)))), store.PageRequest{WantTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != 1 {
			t.Errorf("key %d: %d resources created, want 1", k, res.Total)
		}
	}
}

// testLongValues checks values beyond MaxKeyBytes-sized index keys: they
// are stored and searchable by their beginning.
func testLongValues(t *testing.T, s store.Store) {
	ctx := context.Background()
	long := string(bytes.Repeat([]byte("é"), 3000))
	put(t, s, write("Patient", "long", 1, epoch, []searchparam.Entry{
		strE("name", long), tokE("identifier", long, long), uriE("_profile", long), refURLE("general-practitioner", "urn:x:"+long),
	}, long))
	for _, q := range []*search.Query{
		query("Patient", cl(pName, vStr("éé"))),
		query("Patient", clMod(pName, search.ModExact, vStr(long))),
		query("Patient", cl(pIdentifier, vSysCode(long, long))),
		query("Patient", cl(pProfile, search.Value{Exact: long})),
		query("Patient", cl(pGP, vURL("urn:x:"+long))),
		withCompartment(query("Patient"), long),
	} {
		res, err := s.Search(ctx, q, store.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res.Matches); !slices.Equal(got, []string{"Patient/long"}) {
			t.Errorf("%v: %v", q.Clauses, got)
		}
	}
}

func testSearchInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	boom := errors.New("rollback")
	err := s.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.Search(ctx, query("Observation", cl(pCode, vCode("1234-5"))), store.PageRequest{WantTotal: true})
		if err != nil {
			return err
		}
		if res.Total != 5 {
			return fmt.Errorf("Total %d in Tx, want 5", res.Total)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Error(err)
	}
}
