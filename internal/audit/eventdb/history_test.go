package eventdb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// TestHistoryAcrossBuckets pages the trail's history across two buckets,
// newest first with ties in lastUpdated (the later stored first), an event
// stored long before its time and one long after, with and without
// _since: every event once, in the FHIR store's order, and the right
// total. It does the same with the buckets' lastUpdated bounds taken
// away, as an index written before they were kept has them, where history
// sorts every event.
func TestHistoryAcrossBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 17,000 events")
	}
	ctx := context.Background()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	const n = 17_000
	type ev struct {
		id string
		at time.Time
		i  int // order stored
	}
	var evs []ev
	var ws []store.Write
	for i := range n {
		// Three events a millisecond; the first stored is the newest,
		// the last stored the oldest.
		at := t0.Add(time.Duration(i/3) * time.Millisecond)
		switch i {
		case 0:
			at = t0.Add(time.Hour)
		case n - 1:
			at = t0.Add(-time.Hour)
		}
		id := fmt.Sprintf("ev-%d", i)
		evs = append(evs, ev{id, at, i})
		ws = append(ws, store.Write{
			Resource: store.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: at,
				JSON: []byte(`{"id":"` + id + `","resourceType":"AuditEvent"}`)},
			Entries: []searchparam.Entry{{Param: "date", Type: searchparam.Date, Lo: at.UnixMicro(), Hi: at.UnixMicro() + 1}},
		})
		if len(ws) == 1000 || i == n-1 {
			if err := d.Put(ctx, ws, uint64(i+1)); err != nil {
				t.Fatal(err)
			}
			ws = ws[:0]
		}
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return cmp.Compare(b.i, a.i)
	})
	check := func(name string, since time.Time, count int) {
		t.Helper()
		var want []string
		for _, e := range evs {
			if since.IsZero() || !e.at.Before(since) {
				want = append(want, e.id)
			}
		}
		var got []string
		after, pages := "", 0
		for {
			p, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: count, After: after, Since: since})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if p.Total != len(want) {
				t.Fatalf("%s: total %d, want %d", name, p.Total, len(want))
			}
			got = append(got, ids(p.Versions)...)
			if pages++; p.Next == "" || pages > len(want) {
				break
			}
			after = p.Next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %d events listed, want %d; first %v, want %v", name, len(got), len(want), got[:min(5, len(got))], want[:min(5, len(want))])
		}
		p, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", Since: since})
		if err != nil || p.Total != len(want) || len(p.Versions) != 0 {
			t.Fatalf("%s: count only: %d, %d versions, %v", name, p.Total, len(p.Versions), err)
		}
	}
	check("all, pages of 1,000", time.Time{}, 1000)
	check("since the middle, pages of 7", t0.Add(2800*time.Millisecond), 7)
	check("since the last bucket's oldest", t0.Add(5461*time.Millisecond), 500)

	// An index written before the buckets kept their lastUpdated bounds.
	b := d.db.NewBatch()
	for bk := uint32(0); bk < buckets(n); bk++ {
		bd, err := d.bound(bk)
		if err != nil {
			t.Fatal(err)
		}
		bd.luSet = false
		if err := b.Set(inBucket(bk, boundKey), bd.encode()[:17], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if bd, _ := d.bound(0); !bd.luUnknown {
		t.Fatal("the old bounds were not taken for old ones")
	}
	check("old bounds: since the middle, pages of 7", t0.Add(2800*time.Millisecond), 7)
}

func ids(rs []store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
