package eventdb

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// Route returns a store that answers for AuditEvents from d and for
// every other type from fhir: what the FHIR API serves once the trail is
// indexed here rather than in the FHIR store. System history merges the
// two (the FHIR store's versions less any AuditEvents it holds from before,
// and the trail's events), and a search of another type that reaches
// AuditEvents (_revinclude or _has through them) is refused as unsupported.
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
	switch q.Type {
	case "AuditEvent":
		return r.d.History(ctx, q)
	case "":
		return r.systemHistory(ctx, q)
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
	since := int64(math.MinInt64)
	if !q.Since.IsZero() {
		since = q.Since.UnixMicro()
	}
	list, total, more, ok, err := ev.newest(since, after, q.Count)
	if err != nil {
		return nil, err
	}
	if !ok {
		// A bucket written before its lastUpdated bounds were kept:
		// every event, sorted.
		all, err := ev.all()
		if err != nil {
			return nil, err
		}
		all = slices.DeleteFunc(all, func(p pos) bool { return p.micros() < since })
		total = len(all)
		slices.SortFunc(all, newer)
		if after != nil {
			all = all[afterPos(all, *after):]
		}
		list, more = all[:min(max(q.Count, 0), len(all))], len(all) > q.Count
	}
	page.Total = total
	if q.Count < 1 {
		return page, nil
	}
	if more && len(list) > 0 {
		last := list[len(list)-1]
		page.Next = hex.EncodeToString(last[:])
	}
	for _, p := range list {
		res, err := d.event(p)
		if err != nil {
			return nil, err
		}
		page.Versions = append(page.Versions, res)
		if q.EachCursor {
			page.After = append(page.After, hex.EncodeToString(p[:]))
		}
	}
	return page, nil
}

// newer orders events newest first, as the FHIR store lists history: by
// lastUpdated, then the later stored first.
func newer(a, b pos) int {
	if c := cmp.Compare(b.micros(), a.micros()); c != 0 {
		return c
	}
	return cmp.Compare(b.ordinal(), a.ordinal())
}

// afterPos is where the events of list (sorted newer first) that come
// after the event at p begin.
func afterPos(list []pos, p pos) int {
	i, _ := slices.BinarySearchFunc(list, p, func(a, b pos) int {
		if newer(a, b) > 0 {
			return 1
		}
		return -1
	})
	return i
}

// newest returns the first n events newer first (newer) whose lastUpdated
// is at or after since (µs), after the event at after when it is set;
// how many events are at or after since; and whether more follow the n.
// It reads the buckets in the order of their lastUpdated bounds and stops
// at the first that cannot hold one of the n found so far, so that a page
// of a long trail reads a bucket or two, not every event. ok is false when
// a bucket's bounds are unknown (written before they were kept).
func (ev *evaluator) newest(since int64, after *pos, n int) (list []pos, total int, more, ok bool, err error) {
	type bucket struct {
		b      uint32
		lo, hi int64
	}
	var bs []bucket
	for b := ev.from; b < ev.to; b++ {
		v, closer, err := ev.r.Get(inBucket(b, boundKey))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil, 0, false, false, nil
		}
		if err != nil {
			return nil, 0, false, false, fault(err)
		}
		bd, valid := decodeBound(v)
		closer.Close()
		if !valid || !bd.luSet {
			return nil, 0, false, false, nil
		}
		bs = append(bs, bucket{b, bd.luLo, bd.luHi})
	}
	// The events of bucket b from the snapshot, at or after since.
	eventsIn := func(b uint32) ([]pos, error) {
		from, to := ev.from, ev.to
		ev.from, ev.to = b, b+1
		defer func() { ev.from, ev.to = from, to }()
		ps, err := ev.all()
		return slices.DeleteFunc(ps, func(p pos) bool { return p.micros() < since }), err
	}
	for _, bk := range bs {
		switch {
		case bk.hi < since:
		case bk.lo >= since:
			// Every event of the bucket: ordinals are dense.
			first := uint64(bk.b) << bucketBits
			total += int(min(ev.next, first+bucketSize) - first)
		default:
			ps, err := eventsIn(bk.b)
			if err != nil {
				return nil, 0, false, false, err
			}
			total += len(ps)
		}
	}
	if n < 1 {
		return nil, total, false, true, nil
	}
	slices.SortFunc(bs, func(x, y bucket) int { return cmp.Compare(y.hi, x.hi) })
	var found []pos
	for i, bk := range bs {
		if bk.hi < since {
			continue
		}
		// n found, the rest in buckets none of whose events is newer
		// than the nth (a tie in lastUpdated may be: the later stored
		// comes first).
		if len(found) >= n && bk.hi < found[n-1].micros() {
			more = more || slices.ContainsFunc(bs[i:], func(b bucket) bool { return b.hi >= since })
			break
		}
		ps, err := eventsIn(bk.b)
		if err != nil {
			return nil, 0, false, false, err
		}
		if after != nil {
			ps = slices.DeleteFunc(ps, func(p pos) bool { return newer(p, *after) <= 0 })
		}
		found = append(found, ps...)
		slices.SortFunc(found, newer)
		if len(found) > n {
			more, found = true, found[:n]
		}
	}
	return found, total, more, true, nil
}

// systemHistory is the FHIR store's system history with the trail's
// AuditEvents merged in, newest first: the FHIR store's versions less
// any AuditEvents it still holds from before the trail had its own index,
// and this index's events. A page takes the newest of both; its cursor
// holds where each history continues (a version of the FHIR store first
// when both were updated in the same microsecond), so a client paging
// through sees every version once, as it would from one store.
func (r routed) systemHistory(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	cur, err := decodeMerged(q.After)
	if err != nil {
		return nil, err
	}
	fq := q
	fq.Except, fq.EachCursor = "AuditEvent", true
	eq := q
	eq.Type, eq.EachCursor = "AuditEvent", true
	page := func(h func(context.Context, store.HistoryQuery) (*store.HistoryPage, error), q store.HistoryQuery, c part) (*store.HistoryPage, error) {
		if c.done {
			// Only its total is wanted.
			q.Count, q.After = 0, ""
		} else {
			q.After = c.after
		}
		return h(ctx, q)
	}
	fp, err := page(r.Store.History, fq, cur[0])
	if err != nil {
		return nil, err
	}
	ep, err := page(r.d.History, eq, cur[1])
	if err != nil {
		return nil, err
	}
	out := &store.HistoryPage{Total: fp.Total + ep.Total}
	if q.Count < 1 {
		return out, nil
	}
	i, j := 0, 0
	for len(out.Versions) < q.Count && (i < len(fp.Versions) || j < len(ep.Versions)) {
		if j == len(ep.Versions) || i < len(fp.Versions) && !fp.Versions[i].LastUpdated.Before(ep.Versions[j].LastUpdated) {
			out.Versions = append(out.Versions, fp.Versions[i])
			i++
		} else {
			out.Versions = append(out.Versions, ep.Versions[j])
			j++
		}
	}
	next := [2]part{
		cur[0].advance(fp, i),
		cur[1].advance(ep, j),
	}
	if !next[0].done || !next[1].done {
		out.Next = encodeMerged(next)
	}
	return out, nil
}

// part is where one of the two merged histories continues.
type part struct {
	after string // its own cursor ("" from its newest)
	done  bool   // nothing of it is left
}

// advance is where a history continues after the first n versions of
// its page p were taken.
func (c part) advance(p *store.HistoryPage, n int) part {
	switch {
	case c.done:
		return c
	case n < len(p.Versions):
		if n == 0 {
			return c
		}
		return part{after: p.After[n-1]}
	case p.Next == "":
		return part{done: true}
	case n == 0:
		return c
	}
	return part{after: p.After[n-1]}
}

// A merged cursor is "m" and the two parts, each "-" when done or its
// cursor in base64url (empty from the newest), separated by ".".
func encodeMerged(c [2]part) string {
	enc := func(p part) string {
		if p.done {
			return "-"
		}
		return base64.RawURLEncoding.EncodeToString([]byte(p.after))
	}
	return "m" + enc(c[0]) + "." + enc(c[1])
}

func decodeMerged(s string) ([2]part, error) {
	var c [2]part
	if s == "" {
		return c, nil
	}
	body, ok := strings.CutPrefix(s, "m")
	a, b, ok2 := strings.Cut(body, ".")
	if !ok || !ok2 {
		return c, store.ErrBadCursor
	}
	for i, e := range []string{a, b} {
		if e == "-" {
			c[i].done = true
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(e)
		if err != nil {
			return c, store.ErrBadCursor
		}
		c[i].after = string(raw)
	}
	return c, nil
}
