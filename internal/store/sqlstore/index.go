package sqlstore

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// MaxKeyBytes bounds every text value kept in an index row. Longer values
// are cut (at a character boundary) and search values are cut the same
// way, so matching compares the first MaxKeyBytes bytes. The bound keeps
// index rows inside B-tree limits (PostgreSQL refuses index entries above
// about 2.7 kB).
const MaxKeyBytes = 512

// IndexKey is the form in which a text value is kept in an index and
// compared by a search; other indexes of FHIR search entries (the audit
// trail's) use it to match exactly as this store does.
func IndexKey(s string) string { return key(s) }

// key makes s fit an index row: valid UTF-8 without NUL (which
// PostgreSQL text refuses), each replaced by U+FFFD, cut to MaxKeyBytes.
// Index values and search values pass through it alike.
func key(s string) string {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	if len(s) <= MaxKeyBytes {
		return s
	}
	n := MaxKeyBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// table is one index table.
type table int

const (
	tString table = iota
	tToken
	tReference
	tDate
	tNumber
	tQuantity
	tURI
	tCompartment
	nTables
)

// tables describes the index tables: name and the columns after
// (pk, param, seq, comp), or all columns for the compartment.
var tables = [nTables]struct {
	name string
	cols []string
}{
	tString:      {"idx_string", []string{"norm", "exact"}},
	tToken:       {"idx_token", []string{"system", "code", "display", "patient"}},
	tReference:   {"idx_reference", []string{"ref_type", "ref_id", "url", "system", "code"}},
	tDate:        {"idx_date", []string{"lo", "hi", "patient"}},
	tNumber:      {"idx_number", []string{"num", "lo", "hi"}},
	tQuantity:    {"idx_quantity", []string{"num", "lo", "hi", "system", "code", "unit"}},
	tURI:         {"idx_uri", []string{"uri"}},
	tCompartment: {"compartment", []string{"patient_id", "rtype"}},
}

// tableOf returns the table holding entries of a parameter type.
func tableOf(t searchparam.Type) (table, bool) {
	switch t {
	case searchparam.String:
		return tString, true
	case searchparam.Token:
		return tToken, true
	case searchparam.Reference:
		return tReference, true
	case searchparam.Date:
		return tDate, true
	case searchparam.Number:
		return tNumber, true
	case searchparam.Quantity:
		return tQuantity, true
	case searchparam.URI:
		return tURI, true
	}
	return 0, false
}

// indexRows are the index rows of one version, per table, as flat lists
// of column values: (param, seq, comp, cols…) for index tables, (patient_id,
// rtype) for the compartment; the pk is added when they are inserted.
type indexRows struct {
	vals [nTables][]any
	mask int64 // bit t set when vals[t] is not empty
	// patient is the patient column of the version's token and date
	// rows (tokenPatient).
	patient any
}

// Parameters whose values come from the resources table itself rather
// than from index rows.
const (
	paramID          = "_id"
	paramLastUpdated = "_lastUpdated"
)

// buildIndex turns the entries and compartments of w into index rows.
// A deletion has none.
func buildIndex(w *store.Write) *indexRows {
	ix := &indexRows{}
	if w.Resource.Deleted {
		return ix
	}
	typ := w.Resource.Type
	ix.patient = tokenPatient(w)
	seq := int64(0)
	for i := range w.Entries {
		e := &w.Entries[i]
		if e.Param == paramID || e.Param == paramLastUpdated {
			continue
		}
		p := paramKey(typ, e.Param)
		if e.Type == searchparam.Composite {
			ok := len(e.Components) > 0
			for j := range e.Components {
				ok = ok && indexable(&e.Components[j])
			}
			if !ok {
				continue
			}
			for j := range e.Components {
				ix.add(componentKey(p, j), seq, int64(j), &e.Components[j])
			}
			seq++
			continue
		}
		if indexable(e) {
			ix.add(p, seq, 0, e)
			seq++
		}
	}
	seen := map[string]bool{}
	for _, id := range w.Patients {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		ix.vals[tCompartment] = append(ix.vals[tCompartment], key(id), typ)
		ix.mask |= 1 << tCompartment
	}
	return ix
}

// tokenPatient is the patient column of the token rows of w: the one
// Patient among w's Patient compartments and the Patients its relative
// references point at (typed Patient, or untyped), "*" when there are
// several, NULL when there is none. A resource in Patient X's
// compartment, or whose reference entries match Patient/X, thus has X or
// "*" there: a search anchored on one Patient can drive from
// idx_token_patient and still find all of them (compiler.patientDriver).
// Migration 3 fills the column of older rows by the same rule.
func tokenPatient(w *store.Write) any {
	var one string
	several := false
	note := func(id string) {
		id = key(id)
		switch {
		case one == "":
			one = id
		case id != one:
			several = true
		}
	}
	for _, id := range w.Patients {
		if id != "" {
			note(id)
		}
	}
	var refs func(es []searchparam.Entry)
	refs = func(es []searchparam.Entry) {
		for i := range es {
			e := &es[i]
			if e.Type == searchparam.Composite {
				refs(e.Components)
				continue
			}
			if e.Type == searchparam.Reference && e.RefID != "" && e.URL == "" && (e.RefType == "Patient" || e.RefType == "") {
				note(e.RefID)
			}
		}
	}
	refs(w.Entries)
	switch {
	case several:
		return patientSeveral
	case one != "":
		return one
	}
	return nil
}

// patientToken reports whether the token rows of param (a param
// column value) carry their Patient (tokenPatient) and so are in
// idx_token_patient: not the components of composites, nor tags,
// security labels and identifiers, which are seldom searched together
// with a Patient (an identifier finds few resources on its own). Leaving
// them out makes the index a third smaller and writes cheaper. Migration
// 3 and compiler.indexed follow the same rule.
func patientToken(param string) bool {
	if strings.Contains(param, "$") {
		return false
	}
	_, code, _ := strings.Cut(param, ".")
	switch code {
	case "_tag", "_security", "identifier":
		return false
	}
	return true
}

// patientSeveral is the patient column of a resource of several Patients.
// No id is "*" (FHIR ids are [A-Za-z0-9\-.]).
const patientSeveral = "*"

// indexable reports whether e can be stored: a known type and finite
// numbers.
func indexable(e *searchparam.Entry) bool {
	if _, ok := tableOf(e.Type); !ok {
		return false
	}
	switch e.Type {
	case searchparam.Number, searchparam.Quantity:
		for _, f := range []float64{e.Num, e.NumLo, e.NumHi} {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return false
			}
		}
	case searchparam.Reference:
		return e.RefID != "" || e.URL != "" || e.Code != ""
	}
	return true
}

func (ix *indexRows) add(param string, seq, comp int64, e *searchparam.Entry) {
	t, _ := tableOf(e.Type)
	v := ix.vals[t]
	v = append(v, param, seq, comp)
	switch t {
	case tString:
		v = append(v, key(e.Text), key(e.Exact))
	case tToken:
		var patient any
		if comp == 0 && patientToken(param) {
			patient = ix.patient
		}
		v = append(v, key(e.System), key(e.Code), key(e.Text), patient)
	case tReference:
		var sys, code any
		if e.Code != "" {
			sys, code = key(e.System), key(e.Code)
		}
		// An absolute URL names a resource on some server, which may not
		// be this one (searchparam.Registry.PatientCompartment): it is
		// kept as a URL only, so that it never matches, resolves or
		// includes as a local Type/id.
		refType, refID := nullable(e.RefType), nullable(e.RefID)
		if e.URL != "" {
			refType, refID = nil, nil
		}
		v = append(v, refType, refID, nullable(e.URL), sys, code)
	case tDate:
		var patient any
		if comp == 0 {
			patient = ix.patient
		}
		v = append(v, e.Lo, e.Hi, patient)
	case tNumber:
		v = append(v, e.Num, e.NumLo, e.NumHi)
	case tQuantity:
		v = append(v, e.Num, e.NumLo, e.NumHi, key(e.System), key(e.Code), key(e.Text))
	case tURI:
		v = append(v, key(e.Exact))
	}
	ix.vals[t] = v
	ix.mask |= 1 << t
}

// nullable is NULL for "" and the cut value otherwise.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return key(s)
}

// paramKey is the param column of an index row: "Type.code".
func paramKey(typ, code string) string { return typ + "." + code }

// componentKey is the param column of component i of a composite.
func componentKey(param string, i int) string { return param + "$" + strconv.Itoa(i) }

// maxChunk is the most rows one INSERT statement writes. Statements of
// exactly n rows are prepared for n up to exactChunks, beyond which rows
// go in chunks of maxChunk and exactChunks, so that a few statement texts
// per table serve every write and stay in the prepared statement caches.
const (
	maxChunk    = 64
	exactChunks = 16
)

// chunk returns the row count of the next INSERT for n pending rows.
func chunk(n int) int {
	switch {
	case n >= maxChunk:
		return maxChunk
	case n > exactChunks:
		return exactChunks
	}
	return n
}

// insertSQL caches the INSERT statements per verb, table and row count.
var insertSQL sync.Map // insertKey → string

type insertKey struct {
	verb string
	t    table
	n    int
}

func insertStatement(verb string, t table, n int) string {
	k := insertKey{verb, t, n}
	if s, ok := insertSQL.Load(k); ok {
		return s.(string)
	}
	var b strings.Builder
	b.WriteString(verb)
	b.WriteString(" INTO ")
	b.WriteString(tables[t].name)
	cols := tables[t].cols
	w := width(t) + 1
	if t == tCompartment {
		b.WriteString(" (patient_id, rtype, pk) VALUES ")
	} else {
		b.WriteString(" (param, seq, comp, ")
		b.WriteString(strings.Join(cols, ", "))
		b.WriteString(", pk) VALUES ")
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := 0; j < w; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	s := b.String()
	insertSQL.Store(k, s)
	return s
}

// width is the number of values per row of table t in indexRows (without
// the pk).
func width(t table) int {
	if t == tCompartment {
		return 2
	}
	return len(tables[t].cols) + 3
}

// pendingIndex holds the index rows of the versions a transaction wrote,
// to be inserted together: a transaction of many Puts then writes each
// index table with a few multi-row statements instead of several per Put.
// Rows MUST be flushed before the transaction reads index tables or
// commits.
type pendingIndex struct {
	rows  map[int64]*indexRows // by pk: a later Put of the same resource replaces
	order []int64              // pks in the order first seen
}

func (p *pendingIndex) add(pk int64, ix *indexRows) {
	if p.rows == nil {
		p.rows = map[int64]*indexRows{}
	}
	if _, ok := p.rows[pk]; !ok {
		p.order = append(p.order, pk)
	}
	p.rows[pk] = ix
}

// flush inserts the pending rows with INSERT statements of verb (see
// Dialect.InsertVerb).
func (p *pendingIndex) flush(ctx context.Context, q Querier, verb string) error {
	if len(p.order) == 0 {
		return nil
	}
	var stmts []Statement
	for t := table(0); t < nTables; t++ {
		w := width(t)
		total := 0
		for _, pk := range p.order {
			total += len(p.rows[pk].vals[t]) / w
		}
		// Walk the rows of every pk in order, cutting them into chunks.
		k, off := 0, 0 // position: p.order[k], row off of it
		for total > 0 {
			n := chunk(total)
			args := make([]any, 0, n*(w+1))
			for i := 0; i < n; {
				pk := p.order[k]
				vals := p.rows[pk].vals[t]
				if off*w >= len(vals) {
					k, off = k+1, 0
					continue
				}
				args = append(args, vals[off*w:(off+1)*w]...)
				args = append(args, pk)
				off++
				i++
			}
			stmts = append(stmts, Statement{insertStatement(verb, t, n), args})
			total -= n
		}
	}
	p.rows, p.order = nil, nil
	return execAll(ctx, q, stmts)
}

// deleteStatements are the statements removing the index rows of a pk.
var deleteStatements = func() (s [nTables]string) {
	for t := table(0); t < nTables; t++ {
		s[t] = "DELETE FROM " + tables[t].name + " WHERE pk = ?"
	}
	return s
}()

// deleteIndex removes the index rows of pk from the tables in mask.
func deleteIndex(ctx context.Context, q Querier, pk, mask int64) error {
	for t := table(0); t < nTables; t++ {
		if mask&(1<<t) == 0 {
			continue
		}
		if _, err := q.Exec(ctx, deleteStatements[t], pk); err != nil {
			return err
		}
	}
	return nil
}
