package sqlstore

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// matcher is a compiled condition on resources of one type.
//
// filter renders the condition on a resources row alias (correlated SQL,
// cheap per candidate row); driver, when set, selects the pks of all
// current, non-deleted resources of the type that match, from an index,
// so it can produce the candidates. rank estimates how few rows the
// driver yields (lower is fewer); the search drives from the lowest.
type matcher struct {
	all, none bool // matches every resource / no resource; filter is nil
	filter    func(alias string) sqlText
	driver    *sqlText
	// unordered, when set, selects the driver's pks in no particular
	// order, which costs less to count (manyMatches).
	unordered *sqlText
	rank      int
	// byPK reports that filter uses only the pk of its alias, so it can
	// run on the driver's pks before their rows are read.
	byPK bool
	// anchor, when set, is the id (as kept in the index) of a Patient
	// that every resource the matcher matches is in the compartment of
	// or refers to: such resources have it, or "*", in idx_token.patient
	// (tokenPatient).
	anchor string
	// withPatient, when set, renders the matcher's driver restricted to
	// the resources whose idx_token.patient is the given Patient or "*"
	// (a token clause), in pk order and unordered: with an anchor, the
	// search drives from it.
	withPatient func(patient string) (driver, unordered sqlText)
}

// Driver ranks, most selective first.
const (
	rankID          = iota // _id
	rankPatientCode        // a token clause of one Patient's resources (compiler.patientDriver)
	rankReference          // a reference to one resource, a compartment
	rankExact              // system|code, uri, :exact, identifier, canonical url
	rankCode               // a code in any system
	rankJoin               // chains and _has
	rankPrefix             // string prefix and :contains
	rankRange              // dates, numbers, quantities, system|, :text
	rankPresent            // :missing=false
)

var (
	matchAll  = &matcher{all: true}
	matchNone = &matcher{none: true}
)

// errUnsupported reports a query the store cannot run: the search layer
// refuses such queries before they get here.
var errUnsupported = errors.New("sqlstore: unsupported search")

// compiler turns search clauses into matchers.
type compiler struct {
	d      Dialect
	now    time.Time
	nested int // chains and _has compiled so far, to name their aliases apart
}

// aliases returns table aliases for a chain or _has, distinct from those
// of any enclosing or enclosed one.
func (c *compiler) aliases(names ...string) []string {
	c.nested++
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%s%d", n, c.nested)
	}
	return out
}

// liveFilter is the condition that alias is a current, non-deleted
// resource of typ.
func liveFilter(alias, typ string) sqlText {
	return text(alias+".type = ? AND "+alias+".is_current AND NOT "+alias+".deleted", typ)
}

// set returns SQL selecting the pks of the resources of typ that m
// matches: its driver, or a scan of the type filtered by m.
func (m *matcher) set(typ string) sqlText {
	if m.driver != nil {
		return *m.driver
	}
	var w sqlBuf
	w.s("SELECT x.pk FROM resources x WHERE ").t(liveFilter("x", typ))
	if !m.all {
		w.s(" AND ").t(m.filter("x"))
	}
	return w.text()
}

// clause compiles one clause of a search on typ.
func (c *compiler) clause(typ string, cl *search.Clause) (*matcher, error) {
	switch {
	case cl.Has != nil:
		return c.has(typ, cl.Has)
	case cl.Param == nil:
		return nil, fmt.Errorf("%w: a clause without a parameter", errUnsupported)
	case cl.Chain != nil:
		return c.chain(typ, cl)
	}
	switch cl.Param.Code {
	case paramID:
		return c.id(typ, cl)
	case paramLastUpdated:
		return c.lastUpdated(typ, cl)
	}
	return c.indexed(typ, cl)
}

// indexed compiles a clause on a parameter kept in an index table.
func (c *compiler) indexed(typ string, cl *search.Clause) (*matcher, error) {
	p := cl.Param
	param := paramKey(typ, p.Code)
	ptype := p.Type
	if ptype == searchparam.Composite {
		if len(p.Components) == 0 {
			return nil, fmt.Errorf("%w: composite %s without components", errUnsupported, p.Code)
		}
		ptype = p.Components[0].Type
		param = componentKey(param, 0)
	}
	tbl, ok := tableOf(ptype)
	if !ok {
		return nil, fmt.Errorf("%w: %s parameters", errUnsupported, p.Type)
	}
	name := tables[tbl].name
	exists := func(cond *sqlText) func(string) sqlText {
		return func(alias string) sqlText {
			var w sqlBuf
			w.s("EXISTS (SELECT 1 FROM ", name, " a WHERE a.pk = ", alias, ".pk AND a.param = ").arg(param)
			if cond != nil {
				w.s(" AND (").t(*cond).s(")")
			}
			return w.s(")").text()
		}
	}

	if cl.Modifier == search.ModMissing {
		if len(cl.Values) != 1 {
			return nil, fmt.Errorf("%w: :missing takes one value", errUnsupported)
		}
		present := exists(nil)
		if cl.Values[0].Missing {
			return &matcher{byPK: true, filter: func(alias string) sqlText {
				t := present(alias)
				t.sql = "NOT " + t.sql
				return t
			}}, nil
		}
		drv := text("SELECT pk FROM "+name+" WHERE param = ? AND comp = 0", param)
		return &matcher{filter: present, driver: &drv, rank: rankPresent, byPK: true}, nil
	}

	mod := cl.Modifier
	if mod == search.ModNot {
		mod = search.ModNone
	}
	var conds []sqlText
	rank := 0
	for i := range cl.Values {
		cond, r, ok, err := c.value("a", p, cl.TargetType, mod, &cl.Values[i], param)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		conds = append(conds, cond)
		rank = max(rank, r)
	}
	if cl.Modifier == search.ModNot {
		if len(conds) == 0 {
			return matchAll, nil
		}
		or := join(conds, " OR ", true)
		has := exists(&or)
		return &matcher{byPK: true, filter: func(alias string) sqlText {
			t := has(alias)
			t.sql = "NOT " + t.sql
			return t
		}}, nil
	}
	if len(conds) == 0 {
		return matchNone, nil
	}
	or := join(conds, " OR ", true)
	var drv sqlBuf
	for i, cond := range conds {
		if i > 0 {
			drv.s(" UNION ")
		}
		drv.s("SELECT a.pk FROM ", name, " a WHERE a.param = ").arg(param).s(" AND a.comp = 0 AND (").t(cond).s(")")
	}
	d := drv.text()
	m := &matcher{filter: exists(&or), driver: &d, rank: rank, byPK: true}
	switch {
	case ptype == searchparam.Token && p.Type == searchparam.Token && cl.Modifier == search.ModNone && patientToken(param):
		m.withPatient = func(patient string) (sqlText, sqlText) { return c.patientDriver(param, conds, patient) }
	case ptype == searchparam.Reference && p.Type == searchparam.Reference && len(cl.Values) == 1 &&
		(cl.Modifier == search.ModNone || cl.Modifier == search.ModType):
		m.anchor = patientAnchor(p, cl.TargetType, &cl.Values[0])
	}
	return m, nil
}

// patientAnchor returns the id, as indexed, of the Patient that a
// reference value v names (Patient/X, or X with a Patient type modifier,
// or X of a parameter that only targets Patient), or "" when it names
// something else.
func patientAnchor(p *searchparam.Param, target string, v *search.Value) string {
	if v.URL != "" || v.RefID == "" {
		return ""
	}
	typ := v.RefType
	if typ == "" {
		typ = target
	}
	if typ == "" && len(p.Targets) == 1 {
		// An untyped value matches any reference with that id (see
		// typedValue); a parameter that targets only Patient indexes
		// only references to Patients, and untyped ones, which
		// tokenPatient counts as well.
		typ = p.Targets[0]
	}
	if typ != "Patient" {
		return ""
	}
	return key(v.RefID)
}

// patientDriver selects the pks of the resources whose token rows of
// param match one of conds and carry patient, or "*", in their patient
// column (tokenPatient): a superset of the matches of the token clause
// among the resources of that Patient, read from idx_token_patient in
// one range scan per value instead of one probe per resource of the
// Patient. The ranges are merged in pk order (ORDER BY with a LIMIT,
// which SQLite does not drop from a subquery; each arm as
// Dialect.SortedArm renders it), so that a page stops reading early.
// unordered is the same union of the ranges, unmerged.
func (c *compiler) patientDriver(param string, conds []sqlText, patient string) (driver, unordered sqlText) {
	var w, u sqlBuf
	for i, cond := range conds {
		for j, p := range [2]string{patient, patientSeveral} {
			if i+j > 0 {
				w.s(" UNION ALL ")
				u.s(" UNION ALL ")
			}
			var arm sqlBuf
			arm.s("SELECT a.pk FROM idx_token a WHERE a.patient = ").arg(p).s(" AND a.param = ").arg(param).s(" AND a.comp = 0 AND (").t(cond).s(")")
			t := arm.text()
			u.t(t)
			t.sql = c.d.SortedArm(t.sql, "1")
			w.t(t)
		}
	}
	return w.s(" ORDER BY 1 LIMIT ").arg(int64(math.MaxInt64)).text(), u.text()
}

// value renders the condition one value puts on an index row aliased a
// (the param column aside) and its driver rank; ok is false when the
// value can match nothing. param is the row's param key, used to reach
// the other components of a composite.
func (c *compiler) value(a string, p *searchparam.Param, target string, mod search.Modifier, v *search.Value, param string) (cond sqlText, rank int, ok bool, err error) {
	if p.Type == searchparam.Composite {
		return c.composite(a, p, v, param)
	}
	return c.typedValue(a, p.Type, target, mod, v)
}

// typedValue renders the condition of a value of a parameter of type t.
func (c *compiler) typedValue(a string, t searchparam.Type, target string, mod search.Modifier, v *search.Value) (sqlText, int, bool, error) {
	col := func(name string) string { return a + "." + name }
	switch t {
	case searchparam.String:
		switch mod {
		case search.ModExact:
			return text(col("norm")+" = ? AND "+col("exact")+" = ?", key(searchparam.NormalizeString(v.Exact)), key(v.Exact)), rankExact, true, nil
		case search.ModContains:
			return text(c.d.Contains(col("norm")), key(v.Text)), rankPrefix, true, nil
		}
		return prefix(col("norm"), key(v.Text)), rankPrefix, true, nil
	case searchparam.Token:
		if mod == search.ModText {
			return prefix(col("display"), key(v.Text)), rankRange, true, nil
		}
		cond, rank := token(a, v)
		return cond, rank, true, nil
	case searchparam.Reference:
		switch {
		case mod == search.ModIdentifier:
			cond, rank := token(a, v)
			cond.sql += " AND " + col("code") + " IS NOT NULL"
			return cond, rank, true, nil
		case v.URL != "":
			// Absolute references match as written (see buildIndex).
			return text(col("url")+" = ?", key(v.URL)), rankExact, true, nil
		case v.RefID != "":
			typ := v.RefType
			if typ == "" {
				typ = target
			}
			if typ == "" {
				return text(col("ref_id")+" = ?", key(v.RefID)), rankReference, true, nil
			}
			return text(col("ref_id")+" = ? AND "+col("ref_type")+" = ?", key(v.RefID), typ), rankReference, true, nil
		}
		return sqlText{}, 0, false, nil
	case searchparam.Date:
		cond, err := c.date(col("lo"), col("hi"), v)
		return cond, rankRange, err == nil, err
	case searchparam.Number, searchparam.Quantity:
		apLo, apHi := v.NumLo, v.NumHi
		if v.Prefix == search.Ap {
			// FHIR R4 §3.1.1.4.5: ap is within 10% of the stated value.
			m := math.Abs(v.Num) / 10
			apLo, apHi = math.Min(v.NumLo, v.Num-m), math.Max(v.NumHi, v.Num+m)
		}
		cond, err := ranged(col("lo"), col("hi"), v.Prefix, v.NumLo, v.NumHi, apLo, apHi)
		if err != nil || t == searchparam.Number {
			return cond, rankRange, err == nil, err
		}
		// FHIR R4 §3.1.1.4.11: the unit, when given, must match: system
		// and code, or with no system the code or the unit as written.
		switch {
		case v.System != "" && v.Code != "":
			cond.sql += " AND " + col("system") + " = ? AND " + col("code") + " = ?"
			cond.args = append(cond.args, key(v.System), key(v.Code))
		case v.Code != "":
			unit := v.Text
			if unit == "" {
				unit = searchparam.NormalizeString(v.Code)
			}
			cond.sql += " AND (" + col("code") + " = ? OR " + col("unit") + " = ?)"
			cond.args = append(cond.args, key(v.Code), key(unit))
		case v.System != "":
			cond.sql += " AND " + col("system") + " = ?"
			cond.args = append(cond.args, key(v.System))
		}
		return cond, rankRange, true, nil
	case searchparam.URI:
		return text(col("uri")+" = ?", key(v.Exact)), rankExact, true, nil
	}
	return sqlText{}, 0, false, fmt.Errorf("%w: %s values", errUnsupported, t)
}

// date renders a date value on the range [lo, hi) of a target.
func (c *compiler) date(lo, hi string, v *search.Value) (sqlText, error) {
	apLo, apHi := v.Lo, v.Hi
	if v.Prefix == search.Ap {
		// FHIR R4 §3.1.1.4.5: ap on a date is within 10% of the gap
		// between now and the date.
		gap := c.now.UnixMicro() - v.Lo
		if gap < 0 {
			gap = -gap
		}
		apLo, apHi = v.Lo-gap/10, v.Hi+gap/10
	}
	return ranged(lo, hi, v.Prefix, v.Lo, v.Hi, apLo, apHi)
}

// token renders a token value (FHIR R4 §3.1.1.4.10) on the system and code
// columns of alias a.
func token(a string, v *search.Value) (sqlText, int) {
	switch {
	case v.AnySystem:
		return text(a+".code = ?", key(v.Code)), rankCode
	case v.AnyCode:
		return text(a+".system = ?", key(v.System)), rankRange
	}
	return text(a+".code = ? AND "+a+".system = ?", key(v.Code), key(v.System)), rankExact
}

// prefix renders "col starts with p" as a range, which a B-tree index
// serves in every collation-free database.
func prefix(col, p string) sqlText {
	if p == "" {
		return text("1 = 1")
	}
	end, ok := prefixEnd(p)
	if !ok {
		return text(col+" >= ?", p)
	}
	return text(col+" >= ? AND "+col+" < ?", p, end)
}

// ranged renders an ordered comparison (FHIR R4 §3.1.1.4.5) between the
// target range [lo, hi) of an index row and the search range [vlo, vhi);
// ap compares with [apLo, apHi) instead.
func ranged[T int64 | float64](lo, hi string, p search.Prefix, vlo, vhi, apLo, apHi T) (sqlText, error) {
	switch p {
	case search.Eq, "":
		// The search range contains the target range.
		return text(lo+" >= ? AND "+hi+" <= ?", vlo, vhi), nil
	case search.Ne:
		return text("("+lo+" < ? OR "+hi+" > ?)", vlo, vhi), nil
	case search.Gt:
		// The range above the search value overlaps the target.
		return text(hi+" > ?", vhi), nil
	case search.Lt:
		// The range below the search value overlaps the target.
		return text(lo+" < ?", vlo), nil
	case search.Ge:
		// gt, or eq: hi > vlo is implied by both and can use an index.
		return text(hi+" > ? AND ("+hi+" > ? OR "+lo+" >= ?)", vlo, vhi, vlo), nil
	case search.Le:
		return text(lo+" < ? AND ("+lo+" < ? OR "+hi+" <= ?)", vhi, vlo, vhi), nil
	case search.Sa:
		// Starts after: no overlap, the target above.
		return text(lo+" >= ?", vhi), nil
	case search.Eb:
		// Ends before.
		return text(hi+" <= ?", vlo), nil
	case search.Ap:
		return text(lo+" < ? AND "+hi+" > ?", apHi, apLo), nil
	}
	return sqlText{}, fmt.Errorf("%w: prefix %q", errUnsupported, p)
}

// composite renders a composite value (FHIR R4 §3.1.1.4.17): component 0
// on the row aliased a, each further component on a row of its own table
// with the same pk and seq.
func (c *compiler) composite(a string, p *searchparam.Param, v *search.Value, param string) (sqlText, int, bool, error) {
	if len(v.Components) != len(p.Components) {
		return sqlText{}, 0, false, nil
	}
	base := strings.TrimSuffix(param, "$0")
	var w sqlBuf
	rank := 0
	for i, comp := range p.Components {
		alias := a
		if i > 0 {
			alias = fmt.Sprintf("%s%d", a, i)
		}
		cond, r, ok, err := c.typedValue(alias, comp.Type, "", search.ModNone, &v.Components[i])
		if err != nil || !ok {
			return sqlText{}, 0, ok, err
		}
		if i == 0 {
			rank = r
			w.t(cond)
			continue
		}
		tbl, ok := tableOf(comp.Type)
		if !ok {
			return sqlText{}, 0, false, fmt.Errorf("%w: component type %s", errUnsupported, comp.Type)
		}
		w.s(" AND EXISTS (SELECT 1 FROM ", tables[tbl].name, " ", alias, " WHERE ", alias, ".pk = ", a, ".pk AND ", alias, ".param = ").
			arg(componentKey(base, i)).s(" AND ", alias, ".seq = ", a, ".seq AND ").t(cond).s(")")
	}
	return w.text(), rank, true, nil
}

// id compiles _id (FHIR R4 §3.1.1.4.1) on the resources table.
func (c *compiler) id(typ string, cl *search.Clause) (*matcher, error) {
	switch cl.Modifier {
	case search.ModMissing:
		if len(cl.Values) == 1 && cl.Values[0].Missing {
			return matchNone, nil
		}
		return matchAll, nil
	case search.ModText:
		return matchNone, nil
	}
	var ids []any
	for _, v := range cl.Values {
		ids = append(ids, v.Code)
	}
	if len(ids) == 0 {
		if cl.Modifier == search.ModNot {
			return matchAll, nil
		}
		return matchNone, nil
	}
	list := "(" + strings.Repeat("?, ", len(ids)-1) + "?)"
	if cl.Modifier == search.ModNot {
		return &matcher{filter: func(alias string) sqlText {
			return text(alias+".id NOT IN "+list, ids...)
		}}, nil
	}
	drv := text("SELECT pk FROM resources WHERE type = ? AND id IN "+list+" AND is_current AND NOT deleted", append([]any{typ}, ids...)...)
	return &matcher{
		filter: func(alias string) sqlText { return text(alias+".id IN "+list, ids...) },
		driver: &drv,
		rank:   rankID,
	}, nil
}

// lastUpdated compiles _lastUpdated on the resources table, where a
// version's last_updated instant is the range [t, t+1µs).
func (c *compiler) lastUpdated(typ string, cl *search.Clause) (*matcher, error) {
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
		if _, err := c.date("lo", "hi", &cl.Values[i]); err != nil {
			return nil, err
		}
	}
	filter := func(alias string) sqlText {
		parts := make([]sqlText, 0, len(cl.Values))
		for i := range cl.Values {
			t, _ := c.date(alias+".last_updated", "("+alias+".last_updated + 1)", &cl.Values[i])
			parts = append(parts, t)
		}
		return join(parts, " OR ", true)
	}
	var w sqlBuf
	w.s("SELECT x.pk FROM resources x WHERE ").t(liveFilter("x", typ)).s(" AND (").t(filter("x")).s(")")
	drv := w.text()
	return &matcher{filter: filter, driver: &drv, rank: rankRange}, nil
}

// chain compiles a chained parameter (FHIR R4 §3.1.1.4.15): resources whose
// reference cl.Param points at a current resource (of cl.TargetType, or
// of any target type of the parameter) matching cl.Chain.
func (c *compiler) chain(typ string, cl *search.Clause) (*matcher, error) {
	if cl.Param.Type != searchparam.Reference {
		return nil, fmt.Errorf("%w: chain through a %s parameter", errUnsupported, cl.Param.Type)
	}
	targets := cl.Param.Targets
	if cl.TargetType != "" {
		targets = []string{cl.TargetType}
	}
	param := paramKey(typ, cl.Param.Code)
	type part struct {
		typ   string
		inner *matcher
	}
	var parts []part
	for _, t := range targets {
		inner, err := c.clause(t, cl.Chain)
		if err != nil {
			return nil, err
		}
		if !inner.none {
			parts = append(parts, part{t, inner})
		}
	}
	if len(parts) == 0 {
		return matchNone, nil
	}
	al := c.aliases("ref", "t")
	ref, t := al[0], al[1]
	var drv sqlBuf
	for i, p := range parts {
		if i > 0 {
			drv.s(" UNION ")
		}
		drv.s("SELECT ", ref, ".pk FROM idx_reference ", ref, " WHERE ", ref, ".param = ").arg(param).
			s(" AND ", ref, ".comp = 0 AND ", ref, ".ref_type = ").arg(p.typ).
			s(" AND ", ref, ".ref_id IN (SELECT ", t, ".id FROM resources ", t, " WHERE ", t, ".pk IN (").t(p.inner.set(p.typ)).s("))")
	}
	d := drv.text()
	filter := func(alias string) sqlText {
		var w sqlBuf
		w.s("EXISTS (SELECT 1 FROM idx_reference ", ref, " JOIN resources ", t, " ON ", t, ".type = ", ref, ".ref_type AND ", t, ".id = ", ref, ".ref_id AND ",
			t, ".is_current AND NOT ", t, ".deleted WHERE ", ref, ".pk = ", alias, ".pk AND ", ref, ".param = ").arg(param).s(" AND (")
		for i, p := range parts {
			if i > 0 {
				w.s(" OR ")
			}
			w.s("(", t, ".type = ").arg(p.typ)
			if !p.inner.all {
				w.s(" AND ").t(p.inner.filter(t))
			}
			w.s(")")
		}
		return w.s("))").text()
	}
	return &matcher{filter: filter, driver: &d, rank: rankJoin, byPK: true}, nil
}

// has compiles _has (FHIR R4 §3.1.1.4.16): resources referred to through
// h.Ref by a current resource of h.Type matching h.Clause.
func (c *compiler) has(typ string, h *search.Has) (*matcher, error) {
	if h.Ref == nil || h.Type == "" {
		return nil, fmt.Errorf("%w: _has without a type and reference parameter", errUnsupported)
	}
	inner, err := c.clause(h.Type, &h.Clause)
	if err != nil {
		return nil, err
	}
	if inner.none {
		return matchNone, nil
	}
	param := paramKey(h.Type, h.Ref.Code)
	al := c.aliases("x", "ref", "h")
	x, ref, hr := al[0], al[1], al[2]
	var drv sqlBuf
	drv.s("SELECT ", x, ".pk FROM resources ", x, " WHERE ").t(liveFilter(x, typ)).
		s(" AND ", x, ".id IN (SELECT ", ref, ".ref_id FROM idx_reference ", ref, " WHERE ", ref, ".comp = 0 AND ", ref, ".param = ").arg(param).
		s(" AND ", ref, ".ref_type = ").arg(typ).s(" AND ", ref, ".pk IN (").t(inner.set(h.Type)).s("))")
	d := drv.text()
	filter := func(alias string) sqlText {
		var w sqlBuf
		w.s("EXISTS (SELECT 1 FROM idx_reference ", ref, " JOIN resources ", hr, " ON ", hr, ".pk = ", ref, ".pk WHERE ", ref, ".ref_id = ", alias, ".id AND ",
			ref, ".comp = 0 AND ", ref, ".ref_type = ").arg(typ).s(" AND ", ref, ".param = ").arg(param)
		if !inner.all {
			w.s(" AND ").t(inner.filter(hr))
		}
		return w.s(")").text()
	}
	return &matcher{filter: filter, driver: &d, rank: rankJoin}, nil
}

// compartment compiles a compartment restriction. Only Patient
// compartments are recorded; a Patient is in its own compartment.
func (c *compiler) compartment(typ string, comp *search.Compartment) (*matcher, error) {
	if comp.Type != "Patient" {
		return nil, fmt.Errorf("%w: %s compartments", errUnsupported, comp.Type)
	}
	id := key(comp.ID)
	var drv sqlBuf
	drv.s("SELECT pk FROM compartment WHERE patient_id = ").arg(id).s(" AND rtype = ").arg(typ)
	if typ == "Patient" {
		drv.s(" UNION SELECT pk FROM resources WHERE type = 'Patient' AND id = ").arg(comp.ID).s(" AND is_current AND NOT deleted")
	}
	d := drv.text()
	filter := func(alias string) sqlText {
		var w sqlBuf
		if typ == "Patient" {
			w.s("(", alias, ".id = ").arg(comp.ID).s(" OR ")
		}
		w.s("EXISTS (SELECT 1 FROM compartment c WHERE c.patient_id = ").arg(id).s(" AND c.rtype = ").arg(typ).s(" AND c.pk = ", alias, ".pk)")
		if typ == "Patient" {
			w.s(")")
		}
		return w.text()
	}
	m := &matcher{filter: filter, driver: &d, rank: rankReference, byPK: typ != "Patient"}
	if typ != "Patient" {
		// A Patient is in its own compartment whether or not it was
		// recorded there, so only other types anchor.
		m.anchor = id
	}
	return m, nil
}
