package eventdb_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/store"
)

// BenchmarkSearch pages a trail of 100,000 events (seven index buckets)
// as an auditor would: newest first, one patient's, a page deep in the
// order stored, and the trail's history (AuditEvent/_history).
//
//	go test ./internal/audit/eventdb -run XXX -bench Search
func BenchmarkSearch(b *testing.B) {
	ctx := context.Background()
	d, err := eventdb.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	putMany(b, d, 100_000, func(i int) store.Write { return event(i, fmt.Sprintf("p%d", i%100)) })
	deep, err := d.Search(ctx, parse(b, "_count=50"), store.PageRequest{})
	if err != nil {
		b.Fatal(err)
	}
	for range 500 { // page 500 of 2,000
		if deep, err = d.Search(ctx, parse(b, "_count=50"), store.PageRequest{Cursor: deep.Next}); err != nil {
			b.Fatal(err)
		}
	}
	hist, err := d.History(ctx, store.HistoryQuery{Type: "AuditEvent", Count: 50})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		q    store.HistoryQuery
	}{
		{"history-newest", store.HistoryQuery{Type: "AuditEvent", Count: 50}},
		{"history-page-2", store.HistoryQuery{Type: "AuditEvent", Count: 50, After: hist.Next}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if _, err := d.History(ctx, c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, c := range []struct {
		name, q string
		page    store.PageRequest
	}{
		{"newest-first", "_sort=-date&_count=50", store.PageRequest{WantTotal: true}},
		{"newest-first-lastUpdated", "_sort=-_lastUpdated&_count=50", store.PageRequest{WantTotal: true}},
		{"patient-newest-first", "patient=p7&_sort=-date&_count=50", store.PageRequest{WantTotal: true}},
		{"stored-order-page-501", "_count=50", store.PageRequest{Cursor: deep.Next}},
		{"outcome-count", "outcome=4&_summary=count", store.PageRequest{OnlyCount: true}},
	} {
		q := parse(b, c.q)
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if _, err := d.Search(ctx, q, c.page); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
