package eventdb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// System history through Route lists the FHIR store's versions and the
// trail's AuditEvents in one order, newest first, and every version once
// however it is paged: the FHIR store's own AuditEvents (left from before
// the trail had its index) are not listed, ties in lastUpdated between the
// two are broken the same way on every page, and a version written while
// a client pages appears only before the pages it has reached.
func TestSystemHistoryMergesTheTrail(t *testing.T) {
	ctx := context.Background()
	fhir, err := sqlite.Open(ctx, t.TempDir()+"/fhir.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fhir.Close() })
	d := open(t, t.TempDir())
	st := eventdb.Route(fhir, d)

	// want holds every version listed, as "Type/id at" strings, in the
	// order system history lists them.
	type version struct {
		key  string
		at   time.Time
		fhir bool
		seq  int
	}
	var all []version
	putFHIR := func(typ, id string, ver int64, at time.Time) {
		t.Helper()
		w := store.Write{Resource: store.Resource{Type: typ, ID: id, Version: ver, LastUpdated: at,
			JSON: fmt.Appendf(nil, `{"resourceType":%q,"id":%q}`, typ, id)}}
		if err := fhir.Tx(ctx, func(tx store.Tx) error { return tx.Put(ctx, w) }); err != nil {
			t.Fatal(err)
		}
		if typ != "AuditEvent" {
			all = append(all, version{fmt.Sprintf("%s/%s/%d", typ, id, ver), at, true, len(all)})
		}
	}
	// Events at whole seconds from t0; FHIR versions between them, and
	// some at the same microsecond as an event.
	var evs []store.Write
	for i := range 23 {
		evs = append(evs, event(i, "p1"))
		all = append(all, version{fmt.Sprintf("AuditEvent/ev-%d/1", i), evs[i].Resource.LastUpdated, false, len(all)})
	}
	if err := d.Put(ctx, evs, uint64(len(evs))); err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		putFHIR("Patient", fmt.Sprint("p", i%4), int64(i/4+1), t0.Add(time.Duration(i)*2500*time.Millisecond))
	}
	putFHIR("Observation", "o1", 1, t0.Add(7*time.Second)) // the same µs as ev-7
	putFHIR("Observation", "o2", 1, t0.Add(7*time.Second))
	putFHIR("AuditEvent", "old-1", 1, t0.Add(3*time.Second))
	putFHIR("Observation", "o3", 1, t0.Add(time.Hour))

	// Newest first; in a tie, the FHIR store's versions first (by when
	// they were written, newest first), then the events (newest first).
	want := func(since time.Time) []string {
		vs := slices.Clone(all)
		slices.SortStableFunc(vs, func(a, b version) int {
			if c := b.at.Compare(a.at); c != 0 {
				return c
			}
			if a.fhir != b.fhir {
				if a.fhir {
					return -1
				}
				return 1
			}
			return b.seq - a.seq
		})
		var out []string
		for _, v := range vs {
			if !v.at.Before(since) {
				out = append(out, v.key)
			}
		}
		return out
	}
	key := func(r store.Resource) string { return fmt.Sprintf("%s/%s/%d", r.Type, r.ID, r.Version) }

	for _, since := range []time.Time{{}, t0.Add(7 * time.Second)} {
		exp := want(since)
		for _, count := range []int{1, 2, 3, 5, 8, 100} {
			t.Run(fmt.Sprintf("since %s/count %d", since.Format(time.TimeOnly), count), func(t *testing.T) {
				q := store.HistoryQuery{Since: since, Count: count}
				var got []string
				for pages := 0; ; pages++ {
					if pages > len(exp)+1 {
						t.Fatal("pages do not end")
					}
					p, err := st.History(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if p.Total != len(exp) {
						t.Errorf("total %d, want %d", p.Total, len(exp))
					}
					if len(p.Versions) > count {
						t.Errorf("%d versions on a page of %d", len(p.Versions), count)
					}
					for _, v := range p.Versions {
						got = append(got, key(v))
					}
					if p.Next == "" {
						break
					}
					q.After = p.Next
				}
				if !slices.Equal(got, exp) {
					t.Errorf("got  %v\nwant %v", got, exp)
				}
			})
		}
	}

	// A page of the newest three, then a new version and a new event:
	// the next pages go on where the first stopped.
	first, err := st.History(ctx, store.HistoryQuery{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	before := want(time.Time{})
	putFHIR("Patient", "late", 1, t0.Add(2*time.Hour))
	if err := d.Put(ctx, []store.Write{event(99, "p1")}, uint64(len(evs)+1)); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, v := range first.Versions {
		got = append(got, key(v))
	}
	for after := first.Next; after != ""; {
		p, err := st.History(ctx, store.HistoryQuery{Count: 4, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range p.Versions {
			got = append(got, key(v))
		}
		after = p.Next
	}
	if !slices.Equal(got, before) {
		t.Errorf("paged across writes:\ngot  %v\nwant %v", got, before)
	}

	if p, err := st.History(ctx, store.HistoryQuery{}); err != nil || p.Total != len(all)+1 || len(p.Versions) != 0 {
		t.Errorf("count only: %+v, %v; want total %d", p, err, len(all)+1)
	}
	for _, bad := range []string{"zz", "m", "mAA", "m!.-", "m-.zz", "mYWJj.-"} {
		if _, err := st.History(ctx, store.HistoryQuery{Count: 2, After: bad}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
		}
	}
	// The two types' histories stay their own.
	p, err := st.History(ctx, store.HistoryQuery{Type: "Observation", Count: 10})
	if err != nil || p.Total != 3 {
		t.Errorf("Observation history: %+v, %v", p, err)
	}
}
