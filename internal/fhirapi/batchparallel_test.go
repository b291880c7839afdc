package fhirapi_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/store"
)

// concurrentTx is a store that counts how many transactions run at once
// (each held a little, so that those let run together overlap).
type concurrentTx struct {
	store.Store
	now, most atomic.Int64
}

func (c *concurrentTx) Tx(ctx context.Context, fn func(store.Tx) error) error {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	time.Sleep(2 * time.Millisecond)
	return c.Store.Tx(ctx, fn)
}

// A batch Bundle's entries run Options.BatchParallel at a time (16 by
// default), each in its own transaction, and every one is written.
func TestBatchParallel(t *testing.T) {
	for _, tc := range []struct{ set, want int }{{0, 16}, {1, 1}, {64, 64}} {
		t.Run(fmt.Sprint(tc.set), func(t *testing.T) {
			var c *concurrentTx
			ts := newTestServerOn(t, func(st store.Store) store.Store {
				c = &concurrentTx{Store: st}
				return c
			}, func(o *fhirapi.Options) { o.Unauthenticated = true; o.BatchParallel = tc.set })
			const n = 80
			entries := make([]any, n)
			for i := range entries {
				entries[i] = map[string]any{
					"resource": map[string]any{"resourceType": "Patient", "id": fmt.Sprintf("bp%d", i)},
					"request":  map[string]any{"method": "PUT", "url": fmt.Sprintf("Patient/bp%d", i)},
				}
			}
			c.most.Store(0) // count the batch's transactions only
			r := ts.do("POST", "", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": entries})
			if r.status != 200 {
				t.Fatalf("batch: %d %s", r.status, r.body)
			}
			if most := c.most.Load(); most > int64(tc.want) || most <= int64(tc.want/2) {
				t.Fatalf("BatchParallel %d: %d transactions at once, want %d (more than half of them at least)", tc.set, most, tc.want)
			}
			for i := range n {
				if r := ts.do("GET", fmt.Sprintf("/Patient/bp%d", i), nil); r.status != 200 {
					t.Fatalf("Patient/bp%d: %d", i, r.status)
				}
			}
		})
	}
}
