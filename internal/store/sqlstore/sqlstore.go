// Package sqlstore implements store.Store on a relational database: the
// schema, the translation of search.Query into parameterised SQL, paging
// cursors, includes and the write path. The SQL it writes is the common
// subset of SQLite and PostgreSQL; what differs between them (placeholders,
// list arguments, column types, locks, error codes, how connections and
// transactions are managed) comes from a Backend and its Dialect, which
// packages sqlite and postgres provide.
//
// Layout of the data (see schema.go): every version of every resource is a
// row of the resources table. The current version of a resource always
// keeps the row, and so the primary key (pk), that its first version got:
// a new version overwrites that row and the version it replaces moves to a
// new history row. Search index entries and compartment membership belong
// to the current version and are keyed by that stable pk, so a resource
// keeps its place in pk order when it changes, which makes search paging
// stable under concurrent updates.
//
// Values never reach SQL text: every value is a bound parameter. Search
// parameter codes, which do become part of index keys, are bound too.
// The package never imports net/http or policy packages.
package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// Querier runs SQL statements written with "?" placeholders; a Querier
// for a database that numbers its placeholders ($1, $2, …) renumbers them.
type Querier interface {
	// Query runs a statement that returns rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Statement is an SQL statement with "?" placeholders and its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// Inserter is implemented by Queriers that report, with the number of
// rows an INSERT changed, the pk it gave the last row (SQLite's
// last_insert_rowid): one statement instead of the INSERT and
// Dialect.LastInsertPK.
type Inserter interface {
	ExecInsert(ctx context.Context, query string, args ...any) (n, pk int64, err error)
}

// Batcher is implemented by Queriers that can run several statements in
// one round trip to the database. ExecBatch runs them in order and stops
// at the first error.
type Batcher interface {
	ExecBatch(ctx context.Context, stmts []Statement) error
}

// execAll runs stmts, in one round trip when q is a Batcher.
func execAll(ctx context.Context, q Querier, stmts []Statement) error {
	if b, ok := q.(Batcher); ok && len(stmts) > 1 {
		return b.ExecBatch(ctx, stmts)
	}
	for _, st := range stmts {
		if _, err := q.Exec(ctx, st.SQL, st.Args...); err != nil {
			return err
		}
	}
	return nil
}

// Rows is the result of Querier.Query. Scan destinations are pointers to
// int64, float64, string, bool (columns that are never NULL), []byte
// (nil for NULL) or any.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Backend is a database under a Store: its dialect and how to run reads
// and writes on it.
type Backend interface {
	Dialect() Dialect
	// View runs fn with a Querier for reads. With snapshot, every
	// statement fn runs MUST see the same consistent state of the
	// database; without, each statement sees committed data.
	View(ctx context.Context, snapshot bool, fn func(Querier) error) error
	// Update runs fn in one transaction. It MUST return nil only once the
	// writes fn made are durable, and MUST keep none of them when fn or
	// the commit fails; it then returns that error. fn MUST NOT call
	// Update or View itself.
	Update(ctx context.Context, fn func(Querier) error) error
	Ping(ctx context.Context) error
	Close() error
}

// Dialect is what differs in the SQL of two databases.
type Dialect interface {
	// Migrations returns the schema, as statements that bring it from
	// version i to i+1 at index i.
	Migrations() [][]string
	// InList renders "expr IN (the members of one list argument)"; List
	// converts []int64 or []string to that argument.
	InList(expr string) string
	List(values any) any
	// Contains renders a test that the text column holds the text of one
	// argument anywhere in it.
	Contains(column string) string
	// InsertVerb starts the multi-row INSERT statements that write index
	// rows, whose keys never collide ("INSERT" or an equivalent that
	// spares the database undo work for a failure that cannot happen).
	InsertVerb() string
	// LastInsertPK is the statement that reads the pk of the row the
	// previous INSERT into resources made, or "" to have the INSERT
	// return it (RETURNING pk).
	LastInsertPK() string
	// SortedArm renders one arm of a UNION ALL whose rows an index gives
	// in the order of the union's ORDER BY (order, such as "1" or
	// "2 DESC, 1"), so that the union merges the arms and a LIMIT above
	// stops it early (SQLite merges plain arms; PostgreSQL only arms with
	// an ORDER BY of their own).
	SortedArm(sel, order string) string
	// Probe renders a condition on the rows of such a merged union so that
	// the database tests it row by row, with an index probe each, as the
	// rows come: PostgreSQL would otherwise turn an EXISTS into a join,
	// and may choose one that reads every row the condition holds for.
	Probe(cond string) string
	// InProcess reports that a statement costs no round trip to a
	// server (SQLite): a small statement of its own is then cheaper
	// than one combined statement, which SQLite may plan worse.
	InProcess() bool
	// Lock takes the transaction-scoped lock of store.Tx.Lock.
	Lock(ctx context.Context, q Querier, key string) error
	// Err wraps a driver error in the store sentinel it stands for
	// (ErrConflict, ErrUnavailable), or returns it unchanged.
	Err(err error) error
}

// Store is a store.Store over a Backend.
type Store struct {
	b   Backend
	d   Dialect
	now func() time.Time
	// lastSweep is when expired records were last removed (Unix ns).
	lastSweep atomic.Int64
	// cache keeps recently read current versions (CacheReads); nil
	// when off.
	cache *readCache
	// walkFrom and walkRows are WalkDates' thresholds; 0 for the
	// defaults.
	walkFrom, walkRows int
}

var _ store.Store = (*Store)(nil)

// New returns a Store over b, whose schema MUST already be migrated (see
// Migrate).
func New(b Backend) *Store {
	return &Store{b: b, d: b.Dialect(), now: time.Now}
}

// Read implements store.Store.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	c := s.cache
	var (
		cached  *cacheEntry
		stamp   CommitStamp
		stamped bool
	)
	if c != nil {
		// The stamp first: an entry confirmed after it is current as of it.
		stamp, stamped = c.stamp()
		if e, ok := c.get(typ, id); ok {
			if stamped && e.stamped && e.stamp == stamp {
				// Nothing committed since the database last confirmed it.
				c.hits.Add(1)
				r := e.res
				return &r, nil
			}
			cached = e
		}
	}
	var res *store.Resource
	err := s.b.View(ctx, false, func(q Querier) error {
		if cached != nil {
			// Served only while it is still the current version.
			v, err := currentVersion(ctx, q, typ, id)
			if err != nil {
				return err
			}
			if v == cached.res.Version {
				c.hits.Add(1)
				r := cached.res
				res = &r
				if stamped {
					c.restamp(cached, stamp)
				}
				return nil
			}
			c.drop(typ, id)
		}
		if c != nil {
			c.misses.Add(1)
		}
		var err error
		res, err = readCurrent(ctx, q, typ, id)
		if err == nil && c != nil {
			c.put(res, stamp, stamped)
		}
		return err
	})
	return res, s.wrap(err)
}

// VRead implements store.Store.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	var res *store.Resource
	err := s.b.View(ctx, false, func(q Querier) error {
		rows, err := q.Query(ctx, `SELECT `+resourceColumns+` FROM resources r WHERE r.type = ? AND r.id = ? AND r.version = ?`, typ, id, version)
		if err != nil {
			return err
		}
		list, err := scanResources(rows)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return fmt.Errorf("%w: %s/%s/_history/%d", store.ErrNotFound, typ, id, version)
		}
		res = &list[0].Resource
		return nil
	})
	return res, s.wrap(err)
}

// Search implements store.Store.
func (s *Store) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	var res *store.SearchResult
	snapshot := needsSnapshot(q, page)
	run := func(db Querier) error {
		var err error
		res, err = s.search(ctx, db, q, page, s.cache, snapshot)
		return err
	}
	err := s.b.View(ctx, snapshot, run)
	if errors.Is(err, errMoved) {
		// A write came between the statements of one outside a snapshot.
		snapshot = true
		err = s.b.View(ctx, true, run)
	}
	return res, s.wrap(err)
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, hq store.HistoryQuery) (*store.HistoryPage, error) {
	var page *store.HistoryPage
	err := s.b.View(ctx, true, func(q Querier) error {
		var err error
		page, err = history(ctx, q, hq)
		return err
	})
	return page, s.wrap(err)
}

// Tx implements store.Store. fn MUST NOT call Tx itself: backends that
// serialise writers would wait for themselves.
//
// Once a statement of the transaction fails, the transaction is spoilt:
// the database may have rolled it back or kept part of a Put. Its later
// calls return that error and Tx fails even if fn returns nil. Failures
// decided before anything is written (a version conflict found by Put, a
// resource not found) do not spoil it.
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) error {
	err := s.b.Update(ctx, func(q Querier) error {
		t := &tx{s: s}
		t.q = txQuerier{t: t, q: q}
		if err := fn(t); err != nil {
			return err
		}
		if err := t.flush(ctx); err != nil {
			return err
		}
		if t.failed != nil {
			return fmt.Errorf("sqlstore: the transaction failed: %w", t.failed)
		}
		return nil
	})
	return s.wrap(err)
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.wrap(s.b.Ping(ctx)) }

// Close implements store.Store.
func (s *Store) Close() error { return s.b.Close() }

// wrap maps driver errors to store sentinels; errors that already wrap
// one, context errors and nil pass unchanged.
func (s *Store) wrap(err error) error {
	switch {
	case err == nil,
		errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted),
		errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrUnavailable),
		errors.Is(err, store.ErrBadCursor),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return s.d.Err(err)
}

// tx is a store.Tx on the Querier of a Backend.Update.
type tx struct {
	s       *Store
	q       Querier
	failed  error        // the first statement error, which spoils the transaction
	pending pendingIndex // index rows not yet inserted
}

// flush inserts the pending index rows.
func (t *tx) flush(ctx context.Context) error {
	return t.pending.flush(ctx, t.q, t.s.d.InsertVerb())
}

// txQuerier records the first error of a statement in its tx and refuses
// statements after it.
type txQuerier struct {
	t *tx
	q Querier
}

func (q txQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	if q.t.failed != nil {
		return nil, q.t.failed
	}
	rows, err := q.q.Query(ctx, query, args...)
	if err != nil {
		q.t.failed = err
		return nil, err
	}
	return txRows{Rows: rows, t: q.t}, nil
}

func (q txQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if q.t.failed != nil {
		return 0, q.t.failed
	}
	n, err := q.q.Exec(ctx, query, args...)
	if err != nil {
		q.t.failed = err
	}
	return n, err
}

// ExecInsert is Inserter's, when the tx's querier is an Inserter.
func (q txQuerier) ExecInsert(ctx context.Context, query string, args ...any) (n, pk int64, err error) {
	if q.t.failed != nil {
		return 0, 0, q.t.failed
	}
	ins, ok := q.q.(Inserter)
	if !ok {
		return 0, 0, errNoInserter
	}
	n, pk, err = ins.ExecInsert(ctx, query, args...)
	if err != nil {
		q.t.failed = err
	}
	return n, pk, err
}

var errNoInserter = errors.New("sqlstore: the querier cannot report inserted rows' pks")

// inserterOf returns q as an Inserter when it, or the querier of the tx
// it is, is one.
func inserterOf(q Querier) (Inserter, bool) {
	if tq, ok := q.(txQuerier); ok {
		_, ok := tq.q.(Inserter)
		return tq, ok
	}
	ins, ok := q.(Inserter)
	return ins, ok
}

func (q txQuerier) ExecBatch(ctx context.Context, stmts []Statement) error {
	if q.t.failed != nil {
		return q.t.failed
	}
	err := execAll(ctx, q.q, stmts)
	if err != nil {
		q.t.failed = err
	}
	return err
}

type txRows struct {
	Rows
	t *tx
}

func (r txRows) Err() error {
	err := r.Rows.Err()
	if err != nil && r.t.failed == nil {
		r.t.failed = err
	}
	return err
}

func (t *tx) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	res, err := readCurrent(ctx, t.q, typ, id)
	return res, t.s.wrap(err)
}

func (t *tx) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	if err := t.flush(ctx); err != nil {
		return nil, t.s.wrap(err)
	}
	// Without the read cache: a version this transaction wrote is not
	// committed, and must not be kept.
	res, err := t.s.search(ctx, t.q, q, page, nil, true)
	return res, t.s.wrap(err)
}

func (t *tx) Put(ctx context.Context, w store.Write) error {
	return t.s.wrap(t.s.put(ctx, t, t.q, w))
}

func (t *tx) Lock(ctx context.Context, key string) error {
	return t.s.wrap(t.s.d.Lock(ctx, t.q, key))
}

// resourceColumns are the columns scanResources reads, on alias r. The
// last is the current version's Patient compartments, space-separated
// (ids never hold spaces), NULL for other versions; string_agg is in both
// PostgreSQL and SQLite (3.44+).
var resourceColumns = `r.pk, r.type, r.id, r.version, r.last_updated, r.deleted, r.json, ` + patientsColumn("r")

// patientsColumn is the compartments column of resourceColumns for the
// resources row aliased alias.
func patientsColumn(alias string) string {
	return `CASE WHEN ` + alias + `.is_current THEN (SELECT string_agg(c.patient_id, ' ') FROM compartment c WHERE c.pk = ` + alias + `.pk) END`
}

// splitPatients reads the compartments column.
func splitPatients(v *string) []string {
	if v == nil || *v == "" {
		return nil
	}
	out := strings.Fields(*v)
	slices.Sort(out)
	return out
}

// row is a resources row: a resource version and its pk.
type row struct {
	store.Resource
	pk int64
}

// lightColumns are resourceColumns without the JSON and the compartments.
const lightColumns = `r.pk, r.type, r.id, r.version, r.last_updated, r.deleted`

// scanResources reads rows of resourceColumns and closes rows.
func scanResources(rows Rows) ([]row, error) { return scanRows(rows, false, 0) }

// scanRows reads rows of resourceColumns, or of lightColumns with light,
// into a slice made with room for n, and closes rows.
func scanRows(rows Rows, light bool, n int) ([]row, error) {
	defer rows.Close()
	out := make([]row, 0, n)
	// One set of destinations for all rows: made for each, they would
	// each escape to the heap.
	var (
		r        row
		lu       int64
		js       []byte
		patients *string
	)
	dest := []any{&r.pk, &r.Type, &r.ID, &r.Version, &lu, &r.Deleted, &js, &patients}
	if light {
		dest = dest[:6]
	}
	for rows.Next() {
		r, js, patients = row{}, nil, nil
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		r.Patients = splitPatients(patients)
		r.LastUpdated = timeOf(lu)
		if !r.Deleted {
			r.JSON = js
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// readCurrent reads the current version of typ/id: the highest version,
// which always lives in the resource's current row.
func readCurrent(ctx context.Context, q Querier, typ, id string) (*store.Resource, error) {
	rows, err := q.Query(ctx, `SELECT `+resourceColumns+` FROM resources r WHERE r.type = ? AND r.id = ? ORDER BY r.version DESC LIMIT 1`, typ, id)
	if err != nil {
		return nil, err
	}
	list, err := scanResources(rows)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: %s/%s", store.ErrNotFound, typ, id)
	}
	res := &list[0].Resource
	if res.Deleted {
		return res, fmt.Errorf("%w: %s/%s", store.ErrDeleted, typ, id)
	}
	return res, nil
}

// timeOf converts a last_updated column value.
func timeOf(micros int64) time.Time { return time.UnixMicro(micros).UTC() }

// ReplaceJSON replaces the stored JSON of one version of a resource if
// it still equals old (compare-and-swap): store.ErrConflict when it
// changed, store.ErrNotFound when there is no such version. The search
// index is not touched. It is for re-encrypting sealed content in place
// (package sealing's re-encryption job), which changes no searchable
// value and must not make a new version.
func (s *Store) ReplaceJSON(ctx context.Context, typ, id string, version int64, old, new []byte) error {
	if s.cache != nil {
		// Never cached when cacheable is right (sealed content); the
		// drop is for a cacheable that is not.
		defer s.cache.drop(typ, id)
	}
	err := s.b.Update(ctx, func(q Querier) error {
		n, err := q.Exec(ctx, `UPDATE resources SET json = ? WHERE type = ? AND id = ? AND version = ? AND json = ?`,
			new, typ, id, version, old)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("sqlstore: %s/%s version %d changed or is gone: %w", typ, id, version, store.ErrConflict)
		}
		return nil
	})
	return s.wrap(err)
}
