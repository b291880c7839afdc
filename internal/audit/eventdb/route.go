package eventdb

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// Route returns a store that answers for AuditEvents from d and for
// every other type from fhir: what the FHIR API serves once the trail is
// indexed here rather than in the FHIR store. The FHIR store's system
// history then lists no AuditEvents (AuditEvent/_history does), and a
// search of another type that reaches AuditEvents (_revinclude or _has
// through them) is refused as unsupported.
func Route(fhir store.Store, d *DB) store.Store { return routed{Store: fhir, d: d} }

type routed struct {
	store.Store
	d *DB
}

func (r routed) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	if typ == "AuditEvent" {
		return r.d.Read(ctx, typ, id)
	}
	return r.Store.Read(ctx, typ, id)
}

func (r routed) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	if typ != "AuditEvent" {
		return r.Store.VRead(ctx, typ, id, version)
	}
	res, err := r.d.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if version != 1 {
		return nil, fmt.Errorf("%w: %s/%s version %d", store.ErrNotFound, typ, id, version)
	}
	return res, nil
}

func (r routed) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	if q.Type == "AuditEvent" {
		return r.d.History(ctx, q)
	}
	return r.Store.History(ctx, q)
}

func (r routed) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	if q.Type == "AuditEvent" {
		return r.d.Search(ctx, q, page)
	}
	if err := reachesTrail(q); err != nil {
		return nil, err
	}
	return r.Store.Search(ctx, q, page)
}

// reachesTrail refuses a search of another type that would need
// AuditEvents from the FHIR store, which no longer holds them.
func reachesTrail(q *search.Query) error {
	for _, inc := range q.RevIncludes {
		if inc.SourceType == "AuditEvent" {
			return unsupported("_revinclude", "AuditEvents are not included in searches of other types")
		}
	}
	for _, inc := range q.Includes {
		if inc.TargetType == "AuditEvent" {
			return unsupported("_include", "AuditEvents are not included in searches of other types")
		}
	}
	var walk func(cl *search.Clause) error
	walk = func(cl *search.Clause) error {
		switch {
		case cl.Has != nil:
			if cl.Has.Type == "AuditEvent" {
				return unsupported("_has", "not supported through AuditEvent")
			}
			return walk(&cl.Has.Clause)
		case cl.Chain != nil:
			if cl.TargetType == "AuditEvent" {
				return unsupported(cl.Param.Code, "chains into AuditEvent are not supported")
			}
			return walk(cl.Chain)
		}
		return nil
	}
	for i := range q.Clauses {
		if err := walk(&q.Clauses[i]); err != nil {
			return err
		}
	}
	return nil
}

// History lists AuditEvents newest first (FHIR R4 §3.1.0.11): one
// event's (each has one version) or the trail's, from Since on.
func (d *DB) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	if q.Type != "AuditEvent" {
		return nil, fmt.Errorf("eventdb: history of %q", q.Type)
	}
	page := &store.HistoryPage{}
	if q.ID != "" {
		res, err := d.Read(ctx, q.Type, q.ID)
		if err != nil {
			return nil, err
		}
		if !q.Since.IsZero() && res.LastUpdated.Before(q.Since) {
			return page, nil
		}
		page.Total = 1
		if q.Count >= 1 && q.After == "" {
			page.Versions = []store.Resource{*res}
		}
		return page, nil
	}
	ev, done, err := d.evaluator(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var after *pos
	if q.After != "" {
		b, err := hex.DecodeString(q.After)
		if err != nil || len(b) != posLen {
			return nil, store.ErrBadCursor
		}
		after = (*pos)(b)
	}
	all, err := ev.all()
	if err != nil {
		return nil, err
	}
	if !q.Since.IsZero() {
		since := q.Since.UnixMicro()
		all = slices.DeleteFunc(all, func(p pos) bool { return p.micros() < since })
	}
	page.Total = len(all)
	if q.Count < 1 {
		return page, nil
	}
	// Newest first, as the FHIR store lists history: by lastUpdated,
	// then the later stored first.
	newest := func(a, b pos) int {
		if c := cmp.Compare(b.micros(), a.micros()); c != 0 {
			return c
		}
		return cmp.Compare(b.ordinal(), a.ordinal())
	}
	slices.SortFunc(all, newest)
	if after != nil {
		i, _ := slices.BinarySearchFunc(all, *after, func(a, b pos) int {
			if newest(a, b) > 0 {
				return 1
			}
			return -1
		})
		all = all[i:]
	}
	list := all[:min(q.Count, len(all))]
	if len(all) > q.Count {
		last := list[len(list)-1]
		page.Next = hex.EncodeToString(last[:])
	}
	for _, p := range list {
		res, err := d.event(p)
		if err != nil {
			return nil, err
		}
		page.Versions = append(page.Versions, res)
	}
	return page, nil
}
