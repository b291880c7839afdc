package eventdb

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// Search answers an AuditEvent search as store.Store.Search does, in the
// same order: by the _sort keys (date, _lastUpdated), then in the order
// the events were stored. Queries beyond what the trail needs fail with
// ErrUnsupported: chains, _has, includes, other sort keys.
func (d *DB) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	if q.Type != "AuditEvent" {
		return nil, unsupported("_type", "the audit trail holds AuditEvents only")
	}
	if len(q.Includes)+len(q.RevIncludes) > 0 {
		return nil, unsupported("_include", "not supported on AuditEvent")
	}
	keys, err := sortKeys(q.Sort)
	if err != nil {
		return nil, err
	}
	spec := sortSpec(keys)
	var cur *cursor
	if page.Cursor != "" {
		c, err := decodeCursor(page.Cursor)
		if err != nil {
			return nil, err
		}
		if c.spec != spec {
			return nil, fmt.Errorf("%w: from another search", store.ErrBadCursor)
		}
		cur = &c
	}
	ev, done, err := d.evaluator(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	next := ev.next
	res := &store.SearchResult{Total: -1}
	unfiltered := q.Compartment == nil && len(q.Clauses) == 0
	if page.WantTotal || page.OnlyCount {
		if unfiltered {
			// Every event has one ordinal.
			res.Total = int(next)
		} else {
			all, err := ev.query(q)
			if err != nil {
				return nil, err
			}
			res.Total = len(all)
		}
	}
	if page.OnlyCount || q.Count <= 0 {
		return res, nil
	}
	var at row
	if cur != nil {
		at.p = cur.at
		if dated(keys) {
			one := []row{at}
			if err := ev.dates(one); err != nil {
				return nil, err
			}
			at = one[0]
		}
	}
	order := compareRows(keys)
	back := cur != nil && cur.back
	// The page order, as the FHIR store's: the sort keys, then the
	// order events were stored in. A page reads only the buckets that
	// can hold its events when it can tell which: in the order stored,
	// from the cursor's bucket on; by date or _lastUpdated alone, the
	// buckets whose bounds for it reach the page's, either way.
	// Otherwise every match is sorted.
	var list []row
	switch {
	case len(keys) == 0:
		matches, err := ev.near(q, cur, q.Count+1)
		if err != nil {
			return nil, err
		}
		list = rowsOf(matches)
	case len(keys) == 1:
		// A page back is the rows before the cursor's: the first of
		// them in the reverse order, put back in order.
		scan := order
		if back {
			scan = func(a, b row) int { return order(b, a) }
		}
		var ok bool
		if list, ok, err = ev.byBounds(q, keys[0], back, scan, at, cur != nil, q.Count+1); err != nil {
			return nil, err
		}
		if ok {
			if back {
				slices.Reverse(list)
			}
			break
		}
		fallthrough
	default:
		matches, err := ev.query(q)
		if err != nil {
			return nil, err
		}
		list = rowsOf(matches)
		if dated(keys) {
			if err := ev.dates(list); err != nil {
				return nil, err
			}
		}
		slices.SortFunc(list, order)
	}
	var rows []row
	more := false
	switch {
	case cur == nil:
		rows = list[:min(q.Count, len(list))]
		more = len(list) > q.Count
	case !back:
		// The first row after the cursor's.
		i, _ := slices.BinarySearchFunc(list, at, func(r, c row) int {
			if order(r, c) > 0 {
				return 1
			}
			return -1
		})
		rows = list[i:min(i+q.Count, len(list))]
		more = len(list)-i > q.Count
	default:
		// The rows before the cursor's.
		k, _ := slices.BinarySearchFunc(list, at, func(r, c row) int {
			if order(r, c) < 0 {
				return -1
			}
			return 1
		})
		rows = list[max(0, k-q.Count):k]
		more = k > q.Count
	}
	mark := func(i int, back bool) string { return cursor{at: rows[i].p, spec: spec, back: back}.encode() }
	// Nothing on this side of the cursor any more: offer the way back.
	turned := func() string {
		c := *cur
		c.back = !back
		return c.encode()
	}
	res.Next, res.Prev = store.PageLinks(len(rows), more, back, cur != nil, mark, turned)
	res.Matches = make([]store.Resource, len(rows))
	for i, r := range rows {
		if res.Matches[i], err = d.event(r.p); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// sortKey is one _sort key: date or _lastUpdated, either way.
type sortKey struct {
	date bool // date; _lastUpdated when false
	desc bool
}

// sortKeys checks that a search sorts by the keys the trail's index
// has, date and _lastUpdated.
func sortKeys(srt []search.Sort) ([]sortKey, error) {
	keys := make([]sortKey, 0, len(srt))
	for _, k := range srt {
		if k.Param == nil || (k.Param.Code != "date" && k.Param.Code != "_lastUpdated") {
			return nil, unsupported("_sort", "AuditEvents sort by date or _lastUpdated only")
		}
		keys = append(keys, sortKey{date: k.Param.Code == "date", desc: k.Desc})
	}
	return keys, nil
}

// sortSpec names a sort order in a cursor, which only a search in the
// same order may use.
func sortSpec(keys []sortKey) string {
	b := make([]byte, 0, 2*len(keys))
	for _, k := range keys {
		c, dir := byte('l'), byte('+')
		if k.date {
			c = 'd'
		}
		if k.desc {
			dir = '-'
		}
		b = append(b, c, dir)
	}
	return string(b)
}

func dated(keys []sortKey) bool {
	return slices.ContainsFunc(keys, func(k sortKey) bool { return k.date })
}

// row is a match with what it sorts by.
type row struct {
	p      pos
	lo, hi int64 // its date, when dated
	dated  bool
}

// compareRows orders rows by keys, then in the order they were stored;
// without a date, a row sorts after those with one, either way (as the
// FHIR store's NULLS LAST).
func compareRows(keys []sortKey) func(a, b row) int {
	return func(a, b row) int {
		for _, k := range keys {
			var c int
			if k.date {
				switch {
				case !a.dated && !b.dated:
					continue
				case !a.dated:
					return 1
				case !b.dated:
					return -1
				}
				if k.desc {
					c = cmp.Compare(a.hi, b.hi)
				} else {
					c = cmp.Compare(a.lo, b.lo)
				}
			} else {
				c = cmp.Compare(a.p.micros(), b.p.micros())
			}
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.p.ordinal(), b.p.ordinal())
	}
}

// dates fills in the dates of rows, which are in position order: by one
// seek each when they are few, by one pass over the list of all events
// when they are many (a newest-first page of the whole trail).
func (ev *evaluator) dates(rows []row) error {
	if len(rows) == 0 {
		return nil
	}
	it, err := ev.r.NewIter(nil)
	if err != nil {
		return fault(err)
	}
	fill := func(r *row) error {
		v, err := it.ValueAndErr()
		if err != nil {
			return fault(err)
		}
		r.lo, r.hi, r.dated = sortDate(v)
		return nil
	}
	key := func(r *row) []byte { return inBucket(r.p.bucket(), allKey(r.p)) }
	if uint64(len(rows))*seekCost < ev.next {
		for i := range rows {
			k := key(&rows[i])
			if it.SeekGE(k) && bytes.Equal(it.Key(), k) {
				if err := fill(&rows[i]); err != nil {
					it.Close()
					return err
				}
			}
		}
		return it.Close()
	}
	// A pass over each bucket's list, seeking only to its start.
	var ok bool
	bucket := uint32(metaBucket)
	for i := 0; i < len(rows); {
		if b := rows[i].p.bucket(); b != bucket {
			bucket = b
			ok = it.SeekGE(inBucket(b, []byte{prefixAll}))
		}
		if !ok {
			break
		}
		k := key(&rows[i])
		switch c := bytes.Compare(it.Key(), k); {
		case c < 0:
			ok = it.Next()
		case c == 0:
			if err := fill(&rows[i]); err != nil {
				it.Close()
				return err
			}
			i++
			ok = it.Next()
		default: // no entry for this row (every event has one)
			i++
		}
	}
	return it.Close()
}

// seekCost is how many keys a pass reads in the time of one seek, about:
// rows fewer than the trail's events over this are found by seeking.
const seekCost = 16

// cursor is where a page ends: the position of its last event (first,
// going back) and the sort order of the search.
type cursor struct {
	at   pos
	spec string
	back bool
}

func (c cursor) encode() string {
	dir := "f"
	if c.back {
		dir = "b"
	}
	return "E" + dir + hex.EncodeToString(c.at[:]) + "." + c.spec
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	if len(s) < 3+2*posLen || s[0] != 'E' || (s[1] != 'f' && s[1] != 'b') || s[2+2*posLen] != '.' {
		return c, store.ErrBadCursor
	}
	if _, err := hex.Decode(c.at[:], []byte(s[2:2+2*posLen])); err != nil {
		return c, store.ErrBadCursor
	}
	c.back, c.spec = s[1] == 'b', s[3+2*posLen:]
	return c, nil
}

// evaluator holds d open and returns an evaluator on a snapshot of its
// index; done releases both.
func (d *DB) evaluator(ctx context.Context) (ev *evaluator, done func(), err error) {
	if err := d.hold(); err != nil {
		return nil, nil, err
	}
	snap := d.db.NewSnapshot()
	done = func() {
		snap.Close()
		d.open.RUnlock()
	}
	next, err := getUint64(snap, metaKey(metaNextOrdinal))
	if err != nil {
		done()
		return nil, nil, fault(err)
	}
	return &evaluator{ctx: ctx, r: snap, ids: d.ids, next: next, to: buckets(next), nowMicro: d.now().UnixMicro()}, done, nil
}

// evaluator computes the matches of one query on one snapshot.
type evaluator struct {
	ctx context.Context
	r   pebble.Reader // a snapshot of the index
	ids pebble.Reader
	// next is the snapshot's next ordinal: events at or above it are not
	// in it (the ids store, read live, may have them).
	next uint64
	// from and to are the buckets [from, to) a query reads.
	from, to uint32
	nowMicro int64 // for ap (FHIR R4 §3.1.1.4.5)
}

// matcher is what one clause selects: a set of positions (sorted), the
// complement of one, a condition on the position, everything or nothing.
type matcher struct {
	kind matchKind
	set  []pos          // matchSet, matchExclude
	pred func(pos) bool // matchPred
}

type matchKind int

const (
	matchSet matchKind = iota
	matchExclude
	matchPred
	matchEverything
	matchNothing
)

var (
	matchAll  = &matcher{kind: matchEverything}
	matchNone = &matcher{kind: matchNothing}
)

// query returns the matches of q, in position order.
func (ev *evaluator) query(q *search.Query) ([]pos, error) {
	var ms []*matcher
	if c := q.Compartment; c != nil {
		if c.Type != "Patient" {
			return nil, unsupported("_compartment", "AuditEvents are searched in Patient compartments only")
		}
		set, err := ev.scan(patientPrefix(c.ID), nil)
		if err != nil {
			return nil, err
		}
		ms = append(ms, &matcher{kind: matchSet, set: set})
	}
	for i := range q.Clauses {
		m, err := ev.clause(&q.Clauses[i])
		if err != nil {
			return nil, err
		}
		switch m.kind {
		case matchNothing:
			return nil, nil
		case matchEverything:
			continue
		}
		ms = append(ms, m)
	}
	// The smallest set drives; the others filter.
	var cand []pos
	drive := -1
	for i, m := range ms {
		if m.kind == matchSet && (drive < 0 || len(m.set) < len(ms[drive].set)) {
			drive = i
		}
	}
	if drive >= 0 {
		cand = ms[drive].set
	} else {
		var err error
		if cand, err = ev.all(); err != nil {
			return nil, err
		}
	}
	// Sets and their complements by merging sorted lists, conditions on
	// what is left.
	out := slices.Clone(cand)
	var preds []func(pos) bool
	for i, m := range ms {
		switch {
		case i == drive:
		case m.kind == matchPred:
			preds = append(preds, m.pred)
		case m.kind == matchExclude:
			out = subtract(out, m.set)
		default:
			out = intersect(out, m.set)
		}
	}
	if len(preds) > 0 {
		out = slices.DeleteFunc(out, func(p pos) bool {
			for _, f := range preds {
				if !f(p) {
					return true
				}
			}
			return false
		})
	}
	return out, nil
}

// intersect keeps in a (sorted, distinct, reused) the positions also in
// b (sorted, distinct).
func intersect(a, b []pos) []pos {
	out, j := a[:0], 0
	for _, p := range a {
		for j < len(b) && b[j].less(p) {
			j++
		}
		if j < len(b) && b[j] == p {
			out = append(out, p)
		}
	}
	return out
}

// subtract keeps in a (sorted, distinct, reused) the positions not in b
// (sorted, distinct).
func subtract(a, b []pos) []pos {
	out, j := a[:0], 0
	for _, p := range a {
		for j < len(b) && b[j].less(p) {
			j++
		}
		if j == len(b) || b[j] != p {
			out = append(out, p)
		}
	}
	return out
}

// clause compiles one clause (FHIR R4 §3.1.1: its values are alternatives).
func (ev *evaluator) clause(cl *search.Clause) (*matcher, error) {
	switch {
	case cl.Has != nil:
		return nil, unsupported("_has", "not supported on AuditEvent")
	case cl.Param == nil:
		return nil, unsupported("", "a clause without a parameter")
	case cl.Chain != nil:
		return nil, unsupported(cl.Param.Code, "chained parameters are not supported on AuditEvent")
	}
	switch cl.Param.Code {
	case "_id":
		return ev.id(cl)
	case "_lastUpdated":
		return ev.lastUpdated(cl)
	}
	p := cl.Param
	if cl.Modifier == search.ModMissing {
		if len(cl.Values) != 1 {
			return nil, unsupported(p.Code, ":missing takes one value")
		}
		var present []pos
		var err error
		if p.Code == dateParam {
			present, err = ev.allWhere(func(dates []byte) bool { return len(dates) > 0 })
		} else {
			present, err = ev.scan(paramPrefix(p.Code), nil)
		}
		if err != nil {
			return nil, err
		}
		if cl.Values[0].Missing {
			return &matcher{kind: matchExclude, set: present}, nil
		}
		return &matcher{kind: matchSet, set: present}, nil
	}
	mod := cl.Modifier
	if mod == search.ModNot {
		mod = search.ModNone
	}
	var sets [][]pos
	for i := range cl.Values {
		set, ok, err := ev.value(p, cl.TargetType, mod, &cl.Values[i])
		if err != nil {
			return nil, err
		}
		if ok {
			sets = append(sets, set)
		}
	}
	union := unite(sets)
	if cl.Modifier == search.ModNot {
		if len(sets) == 0 {
			return matchAll, nil
		}
		return &matcher{kind: matchExclude, set: union}, nil
	}
	if len(sets) == 0 {
		return matchNone, nil
	}
	return &matcher{kind: matchSet, set: union}, nil
}

// value returns the events that one value matches; ok is false when it
// can match nothing.
func (ev *evaluator) value(p *searchparam.Param, target string, mod search.Modifier, v *search.Value) (set []pos, ok bool, err error) {
	code := p.Code
	switch p.Type {
	case searchparam.String:
		switch mod {
		case search.ModExact:
			set, err = ev.scan(postingPrefix(code, kindString, searchparam.NormalizeString(v.Exact), v.Exact), nil)
		case search.ModContains:
			want := sqlstore.IndexKey(v.Text)
			set, err = ev.scan(postingPrefix(code, kindString), func(k []byte) bool {
				norm, _, _ := bytes.Cut(k, []byte{0})
				return strings.Contains(string(norm), want)
			})
		default:
			set, err = ev.scan(textPrefix(code, kindString, v.Text), nil)
		}
		return set, true, err
	case searchparam.Token:
		if mod == search.ModText {
			if v.Text == "" {
				set, err = ev.scan(postingPrefix(code, kindToken), nil)
			} else {
				set, err = ev.scan(textPrefix(code, kindDisplay, v.Text), nil)
			}
			return set, true, err
		}
		set, err = ev.token(code, v)
		return set, true, err
	case searchparam.Reference:
		switch {
		case mod == search.ModIdentifier:
			set, err = ev.token(code, v)
		case v.URL != "":
			set, err = ev.scan(postingPrefix(code, kindURL, v.URL), nil)
		case v.RefID != "":
			typ := v.RefType
			if typ == "" {
				typ = target
			}
			if typ == "" {
				set, err = ev.scan(postingPrefix(code, kindRef, v.RefID), nil)
			} else {
				set, err = ev.scan(postingPrefix(code, kindRef, v.RefID, typ), nil)
			}
		default:
			return nil, false, nil
		}
		return set, true, err
	case searchparam.Date:
		if err := checkPrefix(v.Prefix); err != nil {
			return nil, false, err
		}
		vv := *v
		if code == dateParam {
			set, err = ev.allWhere(func(dates []byte) bool {
				for ; len(dates) >= 16; dates = dates[16:] {
					if ev.dateMatch(dateOf(dates[:8]), dateOf(dates[8:16]), &vv) {
						return true
					}
				}
				return false
			})
			return set, true, err
		}
		set, err = ev.scan(postingPrefix(code, kindDate), func(k []byte) bool {
			return len(k) == 16 && ev.dateMatch(dateOf(k[:8]), dateOf(k[8:16]), &vv)
		})
		return set, true, err
	case searchparam.URI:
		set, err = ev.scan(postingPrefix(code, kindURL, v.Exact), nil)
		return set, true, err
	}
	return nil, false, unsupported(p.Code, "not supported on AuditEvent")
}

// token matches a token value (FHIR R4 §3.1.1.4.10): code, system|code,
// |code (no system) or system| (any code of the system).
func (ev *evaluator) token(code string, v *search.Value) ([]pos, error) {
	switch {
	case v.AnySystem:
		return ev.scan(postingPrefix(code, kindToken, v.Code), nil)
	case v.AnyCode:
		want := []byte(sqlstore.IndexKey(v.System))
		return ev.scan(postingPrefix(code, kindToken), func(k []byte) bool {
			_, rest, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return false
			}
			system, _, ok := bytes.Cut(rest, []byte{0})
			return ok && bytes.Equal(system, want)
		})
	}
	return ev.scan(postingPrefix(code, kindToken, v.Code, v.System), nil)
}

// id matches _id, which every event has.
func (ev *evaluator) id(cl *search.Clause) (*matcher, error) {
	switch cl.Modifier {
	case search.ModMissing:
		if len(cl.Values) == 1 && cl.Values[0].Missing {
			return matchNone, nil
		}
		return matchAll, nil
	case search.ModText:
		return matchNone, nil
	}
	if len(cl.Values) == 0 {
		if cl.Modifier == search.ModNot {
			return matchAll, nil
		}
		return matchNone, nil
	}
	var set []pos
	for _, v := range cl.Values {
		b, closer, err := ev.ids.Get([]byte(v.Code))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fault(err)
		}
		if len(b) != posLen {
			closer.Close()
			return nil, errCorrupt
		}
		var p pos
		copy(p[:], b)
		closer.Close()
		if p.ordinal() < ev.next && p.bucket() >= ev.from && p.bucket() < ev.to {
			set = append(set, p)
		}
	}
	set = sortedSet(set)
	if cl.Modifier == search.ModNot {
		return &matcher{kind: matchExclude, set: set}, nil
	}
	if len(set) == 0 {
		return matchNone, nil
	}
	return &matcher{kind: matchSet, set: set}, nil
}

// lastUpdated matches _lastUpdated, an instant: the range [t, t+1µs).
func (ev *evaluator) lastUpdated(cl *search.Clause) (*matcher, error) {
	if cl.Modifier == search.ModMissing {
		if len(cl.Values) == 1 && cl.Values[0].Missing {
			return matchNone, nil
		}
		return matchAll, nil
	}
	if len(cl.Values) == 0 {
		return matchNone, nil
	}
	for i := range cl.Values {
		if err := checkPrefix(cl.Values[i].Prefix); err != nil {
			return nil, err
		}
	}
	values := slices.Clone(cl.Values)
	return &matcher{kind: matchPred, pred: func(p pos) bool {
		t := p.micros()
		for i := range values {
			if ev.dateMatch(t, t+1, &values[i]) {
				return true
			}
		}
		return false
	}}, nil
}

func checkPrefix(p search.Prefix) error {
	switch p {
	case "", search.Eq, search.Ne, search.Gt, search.Lt, search.Ge, search.Le, search.Sa, search.Eb, search.Ap:
		return nil
	}
	return unsupported("", "unknown prefix")
}

// dateMatch compares a target range [lo, hi) with a search value (FHIR R4
// §3.1.1.4.5), as the FHIR store does.
func (ev *evaluator) dateMatch(lo, hi int64, v *search.Value) bool {
	vlo, vhi := v.Lo, v.Hi
	switch v.Prefix {
	case search.Eq, "":
		return lo >= vlo && hi <= vhi
	case search.Ne:
		return lo < vlo || hi > vhi
	case search.Gt:
		return hi > vhi
	case search.Lt:
		return lo < vlo
	case search.Ge:
		return hi > vlo && (hi > vhi || lo >= vlo)
	case search.Le:
		return lo < vhi && (lo < vlo || hi <= vhi)
	case search.Sa:
		return lo >= vhi
	case search.Eb:
		return hi <= vlo
	case search.Ap:
		// Within 10% of the gap between now and the date.
		gap := ev.nowMicro - vlo
		if gap < 0 {
			gap = -gap
		}
		return lo < vhi+gap/10 && hi > vlo-gap/10
	}
	return false
}

// scan returns the positions listed by the index keys that begin with
// prefix in some bucket (and that keep accepts, given the key after the
// prefix), sorted and distinct.
func (ev *evaluator) scan(prefix []byte, keep func(rest []byte) bool) ([]pos, error) {
	var out []pos
	err := ev.each(prefix, func(k, v []byte) error {
		if keep != nil && !keep(k) {
			return nil
		}
		if len(v)%posLen != 0 {
			return errCorrupt
		}
		for ; len(v) > 0; v = v[posLen:] {
			out = append(out, pos(v[:posLen]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortedSet(out), nil
}

// allWhere returns the events whose dates (allValue) keep accepts, in
// position order.
func (ev *evaluator) allWhere(keep func(dates []byte) bool) ([]pos, error) {
	var out []pos
	err := ev.each([]byte{prefixAll}, func(k, v []byte) error {
		if keep != nil && !keep(v) {
			return nil
		}
		if len(k) != posLen {
			return errCorrupt
		}
		out = append(out, pos(k))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortedSet(out), nil
}

// all returns every event of the snapshot, in position order.
func (ev *evaluator) all() ([]pos, error) { return ev.allWhere(nil) }

// each calls fn with the rest of every index key beginning with prefix
// in some bucket, and its value, bucket by bucket.
func (ev *evaluator) each(prefix []byte, fn func(rest, value []byte) error) error {
	it, err := ev.r.NewIter(nil)
	if err != nil {
		return fault(err)
	}
	n := 0
	for b := ev.from; b < ev.to; b++ {
		lo := inBucket(b, prefix)
		for ok := it.SeekGE(lo); ok && bytes.HasPrefix(it.Key(), lo); ok = it.Next() {
			if n++; n%4096 == 0 {
				if err := ev.ctx.Err(); err != nil {
					it.Close()
					return err
				}
			}
			v, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return fault(err)
			}
			if err := fn(it.Key()[len(lo):], v); err != nil {
				it.Close()
				return err
			}
		}
	}
	return it.Close()
}

// sortedSet sorts ps and removes repeats.
func sortedSet(ps []pos) []pos {
	slices.SortFunc(ps, func(a, b pos) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(ps)
}

// unite returns the union of sorted sets.
func unite(sets [][]pos) []pos {
	switch len(sets) {
	case 0:
		return nil
	case 1:
		return sets[0]
	}
	var out []pos
	for _, s := range sets {
		out = append(out, s...)
	}
	return sortedSet(out)
}

// paramPrefix begins every index entry of a parameter.
func paramPrefix(param string) []byte {
	return append(append([]byte{prefixPosting}, param...), 0)
}

// textPrefix begins the entries of a parameter and kind whose first field
// starts with s.
func textPrefix(param string, kind byte, s string) []byte {
	return append(postingPrefix(param, kind), sqlstore.IndexKey(s)...)
}

// unsupported is ErrUnsupported for a query parameter, also a
// *search.Error so that the API answers 400 naming the parameter.
func unsupported(param, reason string) error {
	return fmt.Errorf("%w: %w", ErrUnsupported, &search.Error{Param: param, Reason: reason})
}

// near returns up to n matches of q on the cursor's side of it (all of
// them from the start without one), in position order: the buckets are
// read one at a time from the cursor's, until n are found.
func (ev *evaluator) near(q *search.Query, cur *cursor, n int) ([]pos, error) {
	back := cur != nil && cur.back
	start, step := uint32(0), 1
	switch {
	case cur != nil && cur.at.bucket() >= ev.to:
		start = ev.to - 1
	case cur != nil:
		start = cur.at.bucket()
	}
	if back {
		step = -1
	}
	all, last := ev.from, ev.to
	defer func() { ev.from, ev.to = all, last }()
	var out []pos
	for b := int64(start); b >= int64(all) && b < int64(last) && len(out) < n; b += int64(step) {
		ev.from, ev.to = uint32(b), uint32(b)+1
		ms, err := ev.query(q)
		if err != nil {
			return nil, err
		}
		if cur != nil {
			ms = slices.DeleteFunc(ms, func(p pos) bool {
				if back {
					return !p.less(cur.at)
				}
				return !cur.at.less(p)
			})
		}
		if back {
			// Keep the n nearest the cursor: the last ones.
			out = append(ms[max(0, len(ms)-(n-len(out))):], out...)
		} else {
			out = append(out, ms[:min(len(ms), n-len(out))]...)
		}
	}
	return out, nil
}

// rowsOf makes rows of positions.
func rowsOf(ps []pos) []row {
	rows := make([]row, len(ps))
	for i, p := range ps {
		rows[i].p = p
	}
	return rows
}

// byBounds returns the first n matches of q in order, which sorts by one
// key (date or _lastUpdated), in reverse when reversed, after the row at
// when after is set. It reads the buckets in the order of their bounds
// for that key and stops at the first whose bound cannot reach the n
// found so far; ok is false when a bucket's bounds cannot tell (an event
// without a date, which sorts last, or a bucket written before its
// lastUpdated bounds were kept): the caller sorts everything.
func (ev *evaluator) byBounds(q *search.Query, key sortKey, reversed bool, order func(a, b row) int, at row, after bool, n int) (rows []row, ok bool, err error) {
	type bucket struct {
		b      uint32
		lo, hi int64 // every row's value (below) is within them
	}
	var bs []bucket
	for b := ev.from; b < ev.to; b++ {
		v, closer, err := ev.r.Get(inBucket(b, boundKey))
		if err != nil {
			// A bucket without bounds (written before they were kept).
			if errors.Is(err, pebble.ErrNotFound) {
				return nil, false, nil
			}
			return nil, false, fault(err)
		}
		bd, valid := decodeBound(v)
		closer.Close()
		switch {
		case !valid, key.date && bd.undated, !key.date && !bd.luSet:
			return nil, false, nil
		case key.date:
			bs = append(bs, bucket{b, bd.lo, bd.hi})
		default:
			bs = append(bs, bucket{b, bd.luLo, bd.luHi})
		}
	}
	// What a row sorts by (compareRows): a date's hi newest first, its
	// lo oldest first; a lastUpdated either way. Reversed, the order runs
	// the other way over the same value.
	value := func(r row) int64 {
		switch {
		case !key.date:
			return r.p.micros()
		case key.desc:
			return r.hi
		}
		return r.lo
	}
	desc := key.desc != reversed
	slices.SortFunc(bs, func(x, y bucket) int {
		if desc {
			return cmp.Compare(y.hi, x.hi)
		}
		return cmp.Compare(x.lo, y.lo)
	})
	all, last := ev.from, ev.to
	defer func() { ev.from, ev.to = all, last }()
	for _, bk := range bs {
		if len(rows) >= n {
			if v := value(rows[n-1]); desc && bk.hi < v || !desc && bk.lo > v {
				break
			}
		}
		ev.from, ev.to = bk.b, bk.b+1
		ms, err := ev.query(q)
		if err != nil {
			return nil, false, err
		}
		more := rowsOf(ms)
		if key.date {
			if err := ev.dates(more); err != nil {
				return nil, false, err
			}
		}
		if after {
			more = slices.DeleteFunc(more, func(r row) bool { return order(r, at) <= 0 })
		}
		rows = append(rows, more...)
		slices.SortFunc(rows, order)
		rows = rows[:min(n, len(rows))]
	}
	return rows, true, nil
}
