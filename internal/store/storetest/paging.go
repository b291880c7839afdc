package storetest

import (
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
)

// pagingFixture writes n Patients whose family names, birthdates and
// genders repeat (ties) and are sometimes absent (NULL sort keys).
func pagingFixture(t *testing.T, s store.Store, n int) {
	var ws []store.Write
	for i := 0; i < n; i++ {
		var e []searchparam.Entry
		if i%4 != 3 {
			e = append(e, strE("family", fmt.Sprintf("Family%d", i%5)))
		}
		if i%3 != 0 {
			e = append(e, dateE("birthdate", fmt.Sprintf("19%02d", 50+i%7)))
		}
		if i%6 != 5 {
			e = append(e, tokE("gender", "", []string{"male", "female"}[i%2]))
		}
		e = append(e, numE("probability", fmt.Sprintf("%d.5", i%4)))
		ws = append(ws, write("Patient", fmt.Sprintf("pg%02d", i), 1, epoch.Add(time.Duration(i%9)*time.Minute), e))
	}
	put(t, s, ws...)
}

// walk pages through q forward from the start and returns the pages.
func walk(t *testing.T, s store.Store, q *search.Query) (pages [][]string, last string) {
	t.Helper()
	cursor := ""
	for n := 0; ; n++ {
		if n > 1000 {
			t.Fatal("pages do not end")
		}
		res, err := s.Search(context.Background(), q, store.PageRequest{Cursor: cursor})
		if err != nil {
			t.Fatalf("Search page %d: %v", n, err)
		}
		if (n == 0) != (res.Prev == "") {
			t.Errorf("page %d: Prev %q", n, res.Prev)
		}
		pages = append(pages, ids(res.Matches))
		if res.Next == "" {
			return pages, res.Prev
		}
		cursor = res.Next
	}
}

func testPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 23
	pagingFixture(t, s, n)
	pProb := param("Patient", "probability", searchparam.Number)
	for _, sort := range [][]search.Sort{
		nil,
		{asc(pFamily)},
		{desc(pFamily)},
		{asc(pBirthdate), desc(pFamily)},
		{desc(pBirthdate), asc(pGender), desc(pID)},
		{asc(pLastUpdated)},
		{desc(pProb), asc(pGender)},
	} {
		for _, count := range []int{1, 2, 5, 7, 23, 50} {
			var keys []string
			for _, k := range sort {
				keys = append(keys, fmt.Sprintf("%s desc=%v", k.Param.Code, k.Desc))
			}
			t.Run(fmt.Sprintf("%v count %d", keys, count), func(t *testing.T) {
				full := withSort(query("Patient"), sort...)
				full.Count = 1000
				all, err := s.Search(ctx, full, store.PageRequest{})
				if err != nil {
					t.Fatal(err)
				}
				want := ids(all.Matches)
				if len(want) != n {
					t.Fatalf("%d matches, want %d", len(want), n)
				}

				q := withSort(query("Patient"), sort...)
				q.Count = count
				pages, prev := walk(t, s, q)
				var got []string
				for i, p := range pages {
					if len(p) != count && i != len(pages)-1 {
						t.Errorf("page %d has %d matches, want %d", i, len(p), count)
					}
					got = append(got, p...)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("pages in order %v\nwant %v", got, want)
				}
				// Back from the last page to the first.
				back := [][]string{pages[len(pages)-1]}
				for cursor := prev; cursor != ""; {
					res, err := s.Search(ctx, q, store.PageRequest{Cursor: cursor})
					if err != nil {
						t.Fatal(err)
					}
					if res.Next == "" {
						t.Errorf("backward page without Next")
					}
					back = append(back, ids(res.Matches))
					cursor = res.Prev
				}
				slices.Reverse(back)
				if !slices.EqualFunc(back, pages, slices.Equal) {
					t.Errorf("backward pages %v\nforward pages %v", back, pages)
				}
			})
		}
	}
	t.Run("next of a previous page", func(t *testing.T) {
		q := query("Patient")
		q.Count = 4
		p1, err := s.Search(ctx, q, store.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		p2, err := s.Search(ctx, q, store.PageRequest{Cursor: p1.Next})
		if err != nil {
			t.Fatal(err)
		}
		back, err := s.Search(ctx, q, store.PageRequest{Cursor: p2.Prev})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(back.Matches), ids(p1.Matches)) || back.Prev != "" {
			t.Errorf("previous of page 2 %v (Prev %q), want %v", ids(back.Matches), back.Prev, ids(p1.Matches))
		}
		again, err := s.Search(ctx, q, store.PageRequest{Cursor: back.Next})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(again.Matches), ids(p2.Matches)) {
			t.Errorf("next of the previous page %v, want %v", ids(again.Matches), ids(p2.Matches))
		}
	})
}

// testPagingConcurrent pages through a search while other goroutines
// update the matching resources (without changing their sort keys),
// create new ones and create non-matching ones: every resource that
// matched before and after appears exactly once.
func testPagingConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 60
	var ws []store.Write
	entries := func(i int) []searchparam.Entry {
		return []searchparam.Entry{tokE("gender", "", "male"), strE("family", fmt.Sprintf("F%02d", i%10))}
	}
	for i := 0; i < n; i++ {
		ws = append(ws, write("Patient", fmt.Sprintf("c%02d", i), 1, epoch, entries(i)))
	}
	put(t, s, ws...)
	var created atomic.Int64
	for _, sort := range [][]search.Sort{nil, {asc(pFamily)}, {desc(pFamily), desc(pID)}} {
		t.Run(fmt.Sprintf("sort %d keys", len(sort)), func(t *testing.T) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for g := 0; g < 3; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A bounded number of writes, so that the walk ends even
					// when creates outrun it.
					for j := 0; j < 60; j++ {
						select {
						case <-stop:
							return
						default:
						}
						i := (j*7 + g*13) % n
						var err error
						switch j % 3 {
						case 0, 1:
							err = s.Tx(ctx, func(tx store.Tx) error {
								cur, err := tx.Read(ctx, "Patient", fmt.Sprintf("c%02d", i))
								if err != nil {
									return err
								}
								return tx.Put(ctx, write("Patient", cur.ID, cur.Version+1, epoch, entries(i)))
							})
						case 2:
							k := created.Add(1)
							gender := "female"
							if k%2 == 0 {
								gender = "male"
							}
							err = tryPut(s, write("Patient", fmt.Sprintf("new%d-%d", g, k), 1, epoch, []searchparam.Entry{tokE("gender", "", gender), strE("family", "F05")}))
						}
						// Two goroutines may update one resource at once.
						if err != nil && !errors.Is(err, store.ErrConflict) {
							t.Errorf("concurrent write: %v", err)
							return
						}
					}
				}()
			}
			q := withSort(query("Patient", cl(pGender, vCode("male"))), sort...)
			q.Count = 7
			pages, _ := walk(t, s, q)
			close(stop)
			wg.Wait()
			seen := map[string]bool{}
			for _, p := range pages {
				for _, id := range p {
					if seen[id] {
						t.Errorf("%s appears twice", id)
					}
					seen[id] = true
				}
			}
			for i := 0; i < n; i++ {
				if id := fmt.Sprintf("Patient/c%02d", i); !seen[id] {
					t.Errorf("%s missing", id)
				}
			}
		})
	}
}
