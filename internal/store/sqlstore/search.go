package sqlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// needsSnapshot reports whether a search may run more than one statement
// (a count or includes besides the page), which must then agree.
func needsSnapshot(q *search.Query, page store.PageRequest) bool {
	if page.OnlyCount || q.Count <= 0 {
		return false
	}
	return page.WantTotal || len(q.Includes)+len(q.RevIncludes) > 0
}

// plan is a compiled search: the condition on resources aliased r and
// the sort keys.
type plan struct {
	none  bool    // matches nothing
	where sqlText // condition on r, including the driver when there is one
	keys  []sortKey
	// With a driver: drv selects the pks that pass the driver and the
	// filters that need only a pk (column pk), rest is the condition of
	// the other filters on resources aliased x ("" when none).
	drv  *sqlText
	rest sqlText
	// anchor is the Patient (as indexed) that every match belongs to,
	// from a compartment or a reference clause ("" when none); ms are
	// the clauses' matchers, which a date walk tests row by row.
	anchor string
	ms     []*matcher
	// candidates selects the driver's pks alone, in no particular
	// order, a superset of the matches (nil without a driver).
	candidates *sqlText
}

// sortKey is one _sort key: an expression on r and the Go type of its
// value (for cursors).
type sortKey struct {
	expr sqlText
	desc bool
	kind keyKind
	// date is the param column of a date parameter's index rows, ""
	// for other keys.
	date string
}

type keyKind int

const (
	keyText keyKind = iota
	keyInt
	keyReal
)

// compile turns q into a plan. The clause with the most selective index
// lookup drives (r.pk IN (…)); the others filter with correlated EXISTS
// subqueries, which each cost one index probe per candidate.
func (s *Store) compile(q *search.Query) (*plan, error) {
	c := &compiler{d: s.d, now: s.now()}
	var ms []*matcher
	if q.Compartment != nil {
		m, err := c.compartment(q.Type, q.Compartment)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	for i := range q.Clauses {
		m, err := c.clause(q.Type, &q.Clauses[i])
		if err != nil {
			return nil, err
		}
		if m.none {
			return &plan{none: true}, nil
		}
		if !m.all {
			ms = append(ms, m)
		}
	}
	p := &plan{ms: ms, anchor: combineAnchor(ms)}
	drive := -1
	for i, m := range ms {
		if m.driver != nil && (drive < 0 || m.rank < ms[drive].rank) {
			drive = i
		}
	}
	var parts []sqlText
	if drive >= 0 {
		// Filters that need only the pk run inside the driver, so that
		// rows are read only for matches.
		var inner []sqlText
		for i, m := range ms {
			if i != drive && m.byPK {
				f := m.filter("d")
				if ms[drive].rank == rankPatientCode {
					// The driver's rows come merged in pk order
					// (patientDriver): test them as they come.
					f.sql = c.d.Probe(f.sql)
				}
				inner = append(inner, f)
			}
		}
		drv := *ms[drive].driver
		cand := drv
		if ms[drive].unordered != nil {
			cand = *ms[drive].unordered
		}
		p.candidates = &cand
		if len(inner) > 0 {
			var w sqlBuf
			w.s("SELECT d.pk FROM (").t(drv).s(") d WHERE ").t(join(inner, " AND ", false))
			drv = w.text()
		}
		parts = append(parts, text("r.pk IN (").join(drv, ")"))
		p.drv = &drv
		var rest []sqlText
		for i, m := range ms {
			if i != drive && !m.byPK {
				rest = append(rest, m.filter("x"))
			}
		}
		p.rest = join(rest, " AND ", false)
	} else {
		parts = append(parts, liveFilter("r", q.Type))
	}
	for i, m := range ms {
		if i != drive && !(drive >= 0 && m.byPK) {
			parts = append(parts, m.filter("r"))
		}
	}
	p.where = join(parts, " AND ", false)
	for _, srt := range q.Sort {
		k, err := sortKeyOf(q.Type, srt)
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, k)
	}
	return p, nil
}

// combineAnchor returns the Patient a search is anchored on (a
// compartment, or a reference clause naming a Patient: the first such
// clause), or "", and lets a token clause of an anchored search drive
// from idx_token_patient: the anchor then filters that driver's few pks.
// The token clause's driver, restricted to the Patient, applies its
// whole condition, so the clause needs no filter of its own when it
// drives. (The anchoring clause is never the one replaced: only token
// clauses have withPatient.)
func combineAnchor(ms []*matcher) string {
	anchor := ""
	for _, m := range ms {
		if m.anchor != "" {
			anchor = m.anchor
			break
		}
	}
	if anchor == "" {
		return ""
	}
	for i, m := range ms {
		if m.withPatient != nil {
			d, u := m.withPatient(anchor)
			ms[i] = &matcher{filter: m.filter, driver: &d, unordered: &u, rank: rankPatientCode, byPK: true}
			break
		}
	}
	return anchor
}

// join appends more SQL to t.
func (t sqlText) join(more sqlText, tail string) sqlText {
	return sqlText{sql: t.sql + more.sql + tail, args: append(slices.Clip(t.args), more.args...)}
}

// sortKeyOf renders the value a resource sorts by (FHIR R4 §3.1.1.5.1):
// ascending by its lowest value, descending by its highest; resources
// without a value come last either way.
func sortKeyOf(typ string, srt search.Sort) (sortKey, error) {
	if srt.Param == nil {
		return sortKey{}, fmt.Errorf("%w: _sort without a parameter", errUnsupported)
	}
	k := sortKey{desc: srt.Desc}
	switch srt.Param.Code {
	case paramID:
		k.expr, k.kind = text("r.id"), keyText
		return k, nil
	case paramLastUpdated:
		k.expr, k.kind = text("r.last_updated"), keyInt
		return k, nil
	}
	agg := "MIN"
	if srt.Desc {
		agg = "MAX"
	}
	var col string // over the index rows aliased a
	switch srt.Param.Type {
	case searchparam.String:
		col, k.kind = "a.norm", keyText
	case searchparam.Token:
		col, k.kind = "a.code", keyText
	case searchparam.Reference:
		col, k.kind = "COALESCE(a.ref_type || '/' || a.ref_id, a.url)", keyText
	case searchparam.Date:
		col, k.kind = "a.lo", keyInt
		if srt.Desc {
			col = "a.hi"
		}
	case searchparam.Number, searchparam.Quantity:
		col, k.kind = "a.num", keyReal
	case searchparam.URI:
		col, k.kind = "a.uri", keyText
	default:
		return sortKey{}, fmt.Errorf("%w: sorting by a %s parameter", errUnsupported, srt.Param.Type)
	}
	tbl, _ := tableOf(srt.Param.Type)
	k.expr = text("(SELECT "+agg+"("+col+") FROM "+tables[tbl].name+" a WHERE a.pk = r.pk AND a.param = ?)", paramKey(typ, srt.Param.Code))
	if tbl == tDate {
		k.date = paramKey(typ, srt.Param.Code)
	}
	return k, nil
}

// search runs q on db.
//
// With a read cache c (nil for none), the page's rows are read without
// their JSON and compartments, which fill then takes from the cache where
// it holds the same version, reading only the others. snapshot tells
// whether db is one snapshot of the database.
func (s *Store) search(ctx context.Context, db Querier, q *search.Query, page store.PageRequest, c *readCache, snapshot bool) (*store.SearchResult, error) {
	res := &store.SearchResult{Total: -1}
	// The stamp before any statement: the versions the search finds are
	// current as of it (see readCache.put).
	var stamp CommitStamp
	var stamped bool
	if c != nil {
		stamp, stamped = c.stamp()
	}
	var cur *cursor
	if page.Cursor != "" {
		var err error
		if cur, err = decodeCursor(page.Cursor, cursorSearch); err != nil {
			return nil, err
		}
		if len(cur.Keys) != len(q.Sort) {
			return nil, fmt.Errorf("%w: from another search", store.ErrBadCursor)
		}
	}
	p, err := s.compile(q)
	if err != nil {
		return nil, err
	}
	if p.none {
		if page.WantTotal || page.OnlyCount {
			res.Total = 0
		}
		return res, nil
	}
	wantTotal := page.WantTotal || page.OnlyCount
	if page.OnlyCount || q.Count <= 0 {
		if wantTotal {
			n, err := count(ctx, db, p)
			if err != nil {
				return nil, err
			}
			res.Total = n
		}
		return res, nil
	}

	back := cur != nil && cur.Back
	rows, keys, err := s.fetch(ctx, db, q, p, cur, c != nil)
	if err != nil {
		return nil, err
	}
	more := len(rows) > q.Count
	if more {
		rows, keys = rows[:q.Count], keys[:q.Count]
	}
	if c != nil {
		// The page only: the row past it tells that there is more.
		if err := fill(ctx, db, c, rows, snapshot, stamp, stamped); err != nil {
			return nil, err
		}
	}
	if back {
		slices.Reverse(rows)
		slices.Reverse(keys)
	}
	at := func(i int, back bool) string {
		c := cursor{Kind: cursorSearch, PK: rows[i].pk, Keys: keys[i], Back: back}
		return c.encode()
	}
	// Nothing on this side of the cursor any more: offer the way back.
	turned := func() string {
		c := *cur
		c.Back = !back
		return c.encode()
	}
	res.Next, res.Prev = store.PageLinks(len(rows), more, back, cur != nil, at, turned)

	if wantTotal {
		if cur == nil && !more {
			res.Total = len(rows)
		} else if res.Total, err = count(ctx, db, p); err != nil {
			return nil, err
		}
	}
	res.Matches = make([]store.Resource, len(rows))
	for i := range rows {
		res.Matches[i] = rows[i].Resource
	}
	if len(q.Includes)+len(q.RevIncludes) > 0 && len(rows) > 0 {
		if res.Included, err = s.include(ctx, db, q, rows); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// presize bounds the rows a page's slices are made room for at first.
const presize = 128

// errMoved is a search whose rows were read by two statements outside a
// snapshot, between which a matched resource changed: fill found another
// version, or none, in its row. The search runs again in a snapshot.
var errMoved = errors.New("sqlstore: a matched resource changed during the search")

// fill gives the rows read without their JSON and compartments (fetch's
// light) both: from the read cache where it holds a row's version (a
// version's content never changes, see readCache), else from the
// database, in one statement for all the others, which the cache then
// keeps. Outside a snapshot that statement may see a later commit than
// the one that found the rows: fill then returns errMoved rather than
// mix the two.
func fill(ctx context.Context, db Querier, c *readCache, rows []row, snapshot bool, stamp CommitStamp, stamped bool) error {
	var missed []int
	for i := range rows {
		r := &rows[i]
		if r.Deleted {
			continue // no JSON, no compartments (search matches none)
		}
		if e, ok := c.get(r.Type, r.ID); ok && e.res.Version == r.Version {
			r.JSON, r.Patients = e.res.JSON, e.res.Patients
			continue
		}
		missed = append(missed, i)
	}
	c.searchHits.Add(uint64(len(rows) - len(missed)))
	c.searchMisses.Add(uint64(len(missed)))
	if len(missed) == 0 {
		return nil
	}
	at := make(map[int64]int, len(missed))
	var w sqlBuf
	w.s("SELECT r.pk, r.version, r.deleted, r.json, ", patientsColumn("r"), " FROM resources r WHERE r.pk IN (")
	for n, i := range missed {
		if n > 0 {
			w.s(", ")
		}
		w.arg(rows[i].pk)
		at[rows[i].pk] = i
	}
	w.s(")")
	t := w.text()
	rs, err := db.Query(ctx, t.sql, t.args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	found := 0
	for rs.Next() {
		var pk, version int64
		var deleted bool
		var js []byte
		var patients *string
		if err := rs.Scan(&pk, &version, &deleted, &js, &patients); err != nil {
			return err
		}
		i, ok := at[pk]
		if !ok {
			return fmt.Errorf("sqlstore: row %d was not asked for", pk)
		}
		r := &rows[i]
		if version != r.Version || deleted != r.Deleted {
			if snapshot {
				return fmt.Errorf("sqlstore: row %d is version %d in the snapshot that matched version %d", pk, version, r.Version)
			}
			return errMoved
		}
		r.JSON, r.Patients = js, splitPatients(patients)
		found++
	}
	if err := rs.Err(); err != nil {
		return err
	}
	if found != len(missed) {
		if snapshot {
			return fmt.Errorf("sqlstore: %d of %d matched rows are gone in their own snapshot", len(missed)-found, len(missed))
		}
		return errMoved
	}
	for _, i := range missed {
		c.put(&rows[i].Resource, stamp, stamped)
	}
	return nil
}

// count counts the matches of p.
func count(ctx context.Context, db Querier, p *plan) (int, error) {
	var w sqlBuf
	if p.drv == nil {
		w.s("SELECT COUNT(*) FROM resources r WHERE ").t(p.where)
	} else {
		// Count the driver's pks without reading their rows, unless
		// other filters need them.
		w.s("SELECT COUNT(*) FROM (SELECT DISTINCT m.pk FROM (").t(*p.drv).s(") m")
		if p.rest.sql != "" {
			w.s(" JOIN resources x ON x.pk = m.pk WHERE ").t(p.rest)
		}
		w.s(") c")
	}
	t := w.text()
	rows, err := db.Query(ctx, t.sql, t.args...)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := scanOne(rows, &n); err != nil {
		return 0, err
	}
	return int(n), nil
}

// fetch reads up to q.Count+1 matches on the cursor's side of it, in page
// order (reversed for a backward page), with their encoded sort keys.
//
// With light, the rows come without their JSON and compartments (see
// fill).
func (s *Store) fetch(ctx context.Context, db Querier, q *search.Query, p *plan, cur *cursor, light bool) ([]row, [][]json.RawMessage, error) {
	back := cur != nil && cur.Back
	limit := int64(q.Count) + 1
	cols := resourceColumns
	if light {
		cols = lightColumns
	}
	if len(p.keys) == 0 {
		order := " ORDER BY r.pk LIMIT "
		if back {
			order = " ORDER BY r.pk DESC LIMIT "
		}
		after := func(col string) string {
			if back {
				return col + " < "
			}
			return col + " > "
		}
		var w sqlBuf
		if p.drv == nil {
			w.s("SELECT ", cols, " FROM resources r WHERE ").t(p.where)
			if cur != nil {
				w.s(" AND ", after("r.pk")).arg(cur.PK)
			}
			w.s(order).arg(limit)
		} else {
			// Page over the driver's pks first, then read the rows of
			// the page: the database then cannot choose to walk the
			// whole resources table in pk order looking for matches.
			var conds []sqlText
			if p.rest.sql != "" {
				conds = append(conds, p.rest)
			}
			if cur != nil {
				conds = append(conds, text(after("m.pk")+"?", cur.PK))
			}
			w.s("SELECT ", cols, " FROM (SELECT DISTINCT m.pk FROM (").t(*p.drv).s(") m")
			if p.rest.sql != "" {
				w.s(" JOIN resources x ON x.pk = m.pk")
			}
			if len(conds) > 0 {
				w.s(" WHERE ").t(join(conds, " AND ", false))
			}
			// The page is put back in order below, which costs less
			// than having the database sort rows with their JSON.
			w.s(strings.Replace(order, "r.pk", "m.pk", 1)).arg(limit).s(") p JOIN resources r ON r.pk = p.pk")
		}
		t := w.text()
		rs, err := db.Query(ctx, t.sql, t.args...)
		if err != nil {
			return nil, nil, err
		}
		list, err := scanRows(rs, light, int(min(limit, presize)))
		if err != nil {
			return nil, nil, err
		}
		slices.SortFunc(list, func(a, b row) int {
			if back {
				return cmp.Compare(b.pk, a.pk)
			}
			return cmp.Compare(a.pk, b.pk)
		})
		return list, make([][]json.RawMessage, len(list)), nil
	}

	// Sorted: compute the keys of every match in a derived table, page
	// over (keys…, pk), and only then read the rows of the page.
	var order strings.Builder
	for i, k := range p.keys {
		desc := k.desc != back
		dir := " ASC NULLS LAST, "
		switch {
		case desc && !back:
			dir = " DESC NULLS LAST, "
		case desc && back:
			dir = " DESC NULLS FIRST, "
		case !desc && back:
			dir = " ASC NULLS FIRST, "
		}
		fmt.Fprintf(&order, "y.k%d%s", i, dir)
	}
	if back {
		order.WriteString("y.pk DESC")
	} else {
		order.WriteString("y.pk")
	}
	var w sqlBuf
	w.s("SELECT o.pk, o.type, o.id, o.version, o.last_updated, o.deleted")
	if !light {
		w.s(", o.json, ", patientsColumn("o"))
	}
	for i := range p.keys {
		w.s(fmt.Sprintf(", y.k%d", i))
	}
	var vals []any
	if cur != nil {
		var err error
		if vals, err = cursorKeys(cur, p.keys); err != nil {
			return nil, nil, err
		}
	}
	head := w.text()
	page := func(y sqlText, tagged bool) *sqlText {
		var w sqlBuf
		w.t(head)
		if tagged {
			w.s(", y.src")
		}
		w.s(" FROM (").t(y).s(") y JOIN resources o ON o.pk = y.pk ORDER BY ", order.String())
		t := w.text()
		return &t
	}
	// general renders the general plan's (pk, k…) of the page; gated,
	// only if the gate's count is below from.
	general := func(gated bool, from int64) sqlText {
		var y sqlBuf
		y.s("SELECT * FROM (SELECT r.pk AS pk")
		for i, k := range p.keys {
			y.s(", ").t(k.expr).s(fmt.Sprintf(" AS k%d", i))
		}
		if gated {
			// The gate first (CROSS JOIN keeps SQLite's loops in this
			// order), so that a count at the threshold stops the plan
			// before it reads the driver's candidates.
			y.s(" FROM gate gt CROSS JOIN resources r WHERE gt.n < ").arg(from).s(" AND ").t(p.where)
		} else {
			y.s(" FROM resources r WHERE ").t(p.where)
		}
		y.s(") y")
		if cur != nil {
			y.s(" WHERE ").t(keyset(p.keys, vals, cur.PK, back))
		}
		y.s(" ORDER BY ", order.String(), " LIMIT ").arg(limit)
		return y.text()
	}
	if canWalk(p, vals, cur, back) {
		gate, from := s.walkGate(p)
		var (
			list   []row
			keys   [][]json.RawMessage
			walked bool
			err    error
		)
		if s.d.InProcess() {
			// SQLite plans the combined statement below worse: the
			// general plan first, gated; only when it gives nothing
			// (nothing matched, or the count reached the threshold) the
			// count on its own, then the walk.
			var t sqlBuf
			t.t(gate).s(" ").t(*page(general(true, from), false))
			list, keys, _, err = scanSorted(ctx, db, ptr(t.text()), p, light, limit, false)
			if err != nil || len(list) > 0 {
				return list, keys, err
			}
			if n, err := s.gateCount(ctx, db, gate); err != nil || n < from {
				return nil, nil, err
			}
			walk := s.dateWalk(p, vals, cur, limit, from, false)
			list, keys, _, err = scanSorted(ctx, db, page(walk, false), p, light, limit, false)
			walked = true
		} else {
			// One statement, one round trip: the candidates counted up
			// to the walk's threshold; below it the general plan's page,
			// from it the walk's, each row tagged with the plan that
			// gave it.
			var y, t sqlBuf
			walk := s.dateWalk(p, vals, cur, limit, from, true)
			y.s("SELECT *, 0 AS src FROM (").t(general(true, from)).s(") g UNION ALL SELECT *, 1 AS src FROM (").t(walk).s(") w")
			t.t(gate).s(" ").t(*page(y.text(), true))
			list, keys, walked, err = scanSorted(ctx, db, ptr(t.text()), p, light, limit, true)
		}
		if err != nil || int64(len(list)) == limit || (len(list) > 0 && !walked) {
			return list, keys, err
		}
		// The walk did not fill the page, or nothing matched: the
		// general plan gives the page.
	}
	list, keys, _, err := scanSorted(ctx, db, page(general(false, 0), false), p, light, limit, false)
	return list, keys, err
}

func ptr[T any](v T) *T { return &v }

// scanSorted runs the statement of a sorted page t and reads its rows
// and their sort keys; tagged, each row ends with its plan's tag (0 the
// general plan, 1 a date walk), and walked reports a walk's rows.
func scanSorted(ctx context.Context, db Querier, t *sqlText, p *plan, light bool, limit int64, tagged bool) (list []row, keys [][]json.RawMessage, walked bool, err error) {
	rs, err := db.Query(ctx, t.sql, t.args...)
	if err != nil {
		return nil, nil, false, err
	}
	defer rs.Close()
	list = make([]row, 0, min(limit, presize))
	keys = make([][]json.RawMessage, 0, min(limit, presize))
	fixed := 8
	if light {
		fixed = 6
	}
	// One set of destinations for all rows (see scanRows).
	var (
		r        row
		lu       int64
		js       []byte
		patients *string
		src      int64
	)
	dest := make([]any, fixed+len(p.keys), fixed+len(p.keys)+1)
	kv := make([]any, len(p.keys))
	dest[0], dest[1], dest[2], dest[3], dest[4], dest[5] = &r.pk, &r.Type, &r.ID, &r.Version, &lu, &r.Deleted
	if !light {
		dest[6], dest[7] = &js, &patients
	}
	for i := range kv {
		dest[fixed+i] = &kv[i]
	}
	if tagged {
		dest = append(dest, &src)
	}
	for rs.Next() {
		r, js, patients = row{}, nil, nil
		clear(kv)
		if err := rs.Scan(dest...); err != nil {
			return nil, nil, false, err
		}
		walked = src == 1
		r.LastUpdated = timeOf(lu)
		r.JSON = js
		r.Patients = splitPatients(patients)
		enc := make([]json.RawMessage, len(kv))
		for i, v := range kv {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			if enc[i], err = json.Marshal(v); err != nil {
				return nil, nil, false, err
			}
		}
		list = append(list, r)
		keys = append(keys, enc)
	}
	return list, keys, walked, rs.Err()
}

// cursorKeys decodes the sort key values of a cursor by the key types.
func cursorKeys(c *cursor, keys []sortKey) ([]any, error) {
	vals := make([]any, len(keys))
	for i, raw := range c.Keys {
		if string(raw) == "null" {
			continue
		}
		var err error
		switch keys[i].kind {
		case keyText:
			var v string
			err = json.Unmarshal(raw, &v)
			vals[i] = v
		case keyInt:
			var v int64
			err = json.Unmarshal(raw, &v)
			vals[i] = v
		case keyReal:
			var v float64
			err = json.Unmarshal(raw, &v)
			vals[i] = v
		}
		if err != nil {
			return nil, fmt.Errorf("%w: sort key %d", store.ErrBadCursor, i)
		}
	}
	return vals, nil
}

// keyset renders "(y.k0, y.k1, …, y.pk) comes after (or, back, before) the
// cursor" in the order of keys, NULLs last.
func keyset(keys []sortKey, vals []any, pk int64, back bool) sqlText {
	var ors []sqlText
	var eqs sqlBuf
	for i, k := range keys {
		col := fmt.Sprintf("y.k%d", i)
		v := vals[i]
		var step sqlText
		switch {
		case v == nil && !back:
			step = sqlText{} // nothing sorts after NULL but NULL
		case v == nil && back:
			step = text(col + " IS NOT NULL")
		case !back && !k.desc:
			step = text("("+col+" > ? OR "+col+" IS NULL)", v)
		case !back && k.desc:
			step = text("("+col+" < ? OR "+col+" IS NULL)", v)
		case back && !k.desc:
			step = text(col+" < ?", v)
		default:
			step = text(col+" > ?", v)
		}
		if step.sql != "" {
			var w sqlBuf
			w.t(eqs.text()).t(step)
			ors = append(ors, w.text())
		}
		if v == nil {
			eqs.s(col + " IS NULL AND ")
		} else {
			eqs.s(col + " = ").arg(v).s(" AND ")
		}
	}
	op := "y.pk > "
	if back {
		op = "y.pk < "
	}
	var w sqlBuf
	w.t(eqs.text()).s(op).arg(pk)
	ors = append(ors, w.text())
	return join(ors, " OR ", true)
}

// walkMatches is how many candidates a search must have for dateWalk
// to be tried at all, and walkRows how many date rows the walk reads
// before it leaves a page to the general plan (Store.WalkDates changes
// both). Below walkMatches, reading every match's sort key costs less
// than walking the Patient's dates. Each walked row costs about what one
// match's key does in the general plan (4–7 µs on SQLite), so a walk
// bounded by walkRows = walkMatches rows wastes at most what the general
// plan then costs, when the matches are too sparse among the Patient's
// dates to fill a page.
const (
	walkMatches = 500
	walkRows    = walkMatches
)

// WalkDates sets when a search anchored on one Patient and sorted by one
// date parameter walks that Patient's dates in order (dateWalk): from
// `from` candidates on, reading at most rows date rows for a page. Tests
// use it to run the walk, and its fallback, on small data; 0, 0 restores
// the defaults. It must not be called while searches run.
func (s *Store) WalkDates(from, rows int) {
	s.walkFrom, s.walkRows = from, rows
}

// walkBounds returns the thresholds of WalkDates, or the defaults.
func (s *Store) walkBounds() (from, rows int64) {
	if s.walkFrom <= 0 {
		return walkMatches, walkRows
	}
	return int64(s.walkFrom), int64(s.walkRows)
}

// walkGate renders what decides between the general plan and a date
// walk: a common table expression gate(n), p's driver's candidates
// counted up to from, the walk's threshold (only these, in no
// particular order, so that a small Patient's count costs a few index
// entries and a large one's stops early).
func (s *Store) walkGate(p *plan) (gate sqlText, from int64) {
	from, _ = s.walkBounds()
	var w sqlBuf
	w.s("WITH gate(n) AS (SELECT COUNT(*) FROM (SELECT 1 FROM (").t(*p.candidates).s(") m LIMIT ").arg(from).s(") c)")
	return w.text(), from
}

// gateCount runs walkGate's count on its own.
func (s *Store) gateCount(ctx context.Context, db Querier, gate sqlText) (int64, error) {
	var w sqlBuf
	w.t(gate).s(" SELECT n FROM gate")
	t := w.text()
	rows, err := db.Query(ctx, t.sql, t.args...)
	if err != nil {
		return 0, err
	}
	var n int64
	err = scanOne(rows, &n)
	return n, err
}

// dateWalk renders the page (pk, k0) of a search anchored on one Patient
// and sorted by one date parameter from that Patient's date rows of the
// parameter, and those of resources of several Patients, read in sort
// order (idx_date_patient_hi, idx_date_patient_lo) up to walkRows (or
// what WalkDates set). Each row's resource is tested against every
// clause and kept only at its own sort key, so that it comes once, where
// the general plan puts it; a page the walk fills is the general plan's
// page, since resources without a date sort last. It applies when
// canWalk says so. gated, the walk reads no date row unless the count of
// walkGate's gate is at least from.
func (s *Store) dateWalk(p *plan, vals []any, cur *cursor, limit, from int64, gated bool) sqlText {
	k := p.keys[0]
	col, dir, after := "a.lo", "", " > "
	if k.desc {
		col, dir, after = "a.hi", " DESC", " < "
	}
	var walk sqlBuf
	for i, patient := range [2]string{p.anchor, patientSeveral} {
		if i > 0 {
			walk.s(" UNION ALL ")
		}
		var arm sqlBuf
		arm.s("SELECT a.pk, ", col, " AS k FROM idx_date a WHERE a.patient = ").arg(patient).s(" AND a.param = ").arg(k.date).s(" AND a.comp = 0")
		if gated {
			// Tested once, before the arm reads a row.
			arm.s(" AND (SELECT n FROM gate) >= ").arg(from)
		}
		if cur != nil {
			arm.s(" AND (", col, after).arg(vals[0]).s(" OR (", col, " = ").arg(vals[0]).s(" AND a.pk > ").arg(cur.PK).s("))")
		}
		t := arm.text()
		t.sql = s.d.SortedArm(t.sql, "2"+dir+", 1")
		walk.t(t)
	}
	_, rows := s.walkBounds()
	walk.s(" ORDER BY 2" + dir + ", 1 LIMIT ").arg(rows)
	var w sqlBuf
	key := k.expr
	key.sql = strings.Replace(key.sql, "a.pk = r.pk", "a.pk = w.pk", 1)
	// Each clause tested on the walk's rows, the most selective first;
	// those that need only the pk test the walk's row itself.
	var filters []sqlText
	walkRow := false
	for _, m := range slices.SortedStableFunc(slices.Values(p.ms), func(a, b *matcher) int { return cmp.Compare(a.rank, b.rank) }) {
		alias := "w"
		if !m.byPK {
			alias, walkRow = "r", true
		}
		f := m.filter(alias)
		f.sql = s.d.Probe(f.sql)
		filters = append(filters, f)
	}
	w.s("SELECT DISTINCT w.pk AS pk, w.k AS k0 FROM (").t(walk.text()).s(") w")
	if walkRow {
		w.s(" JOIN resources r ON r.pk = w.pk")
	}
	w.s(" WHERE ")
	for _, f := range filters {
		w.t(f).s(" AND ")
	}
	w.s("w.k = ").t(key)
	w.s(" ORDER BY k0" + dir + ", pk LIMIT ").arg(limit)
	return w.text()
}

// canWalk reports whether dateWalk applies to the page: a search
// anchored on one Patient, sorted by one date parameter, paging forward,
// from a cursor (if any) among the resources with a date, with a driver
// whose candidates walkGate counts.
func canWalk(p *plan, vals []any, cur *cursor, back bool) bool {
	return p.anchor != "" && p.candidates != nil && len(p.keys) == 1 && p.keys[0].date != "" && !back && (cur == nil || vals[0] != nil)
}
