package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	sqlite "modernc.org/sqlite"

	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// stmtCacheSize bounds the prepared statements kept per connection.
const stmtCacheSize = 256

// conn is one SQLite connection with its cache of prepared statements. It
// is used by one goroutine at a time.
//
// It talks to the driver directly, not through database/sql: the store
// already pools its connections itself (one writer, a channel of
// readers), and database/sql's pool, its per-call locks and context
// watchers and its copying Scan cost a read by id about a third of its
// time for nothing the store needs.
type conn struct {
	c     driver.Conn              // nil once the connection is dropped
	stmts map[string]*list.Element // SQL → element of lru holding *cached
	lru   *list.List               // most recently used first
	// nv is the arguments of the statement being started, reused: the
	// driver binds them before Query or Exec returns and keeps none.
	nv []driver.NamedValue
}

type cached struct {
	query string
	stmt  driver.Stmt
}

// openConn opens a connection to the database named by dsn (see dsn).
func openConn(dsn string) (*conn, error) {
	var d sqlite.Driver
	c, err := d.Open(dsn)
	if err != nil {
		return nil, err
	}
	return newConn(c), nil
}

func newConn(c driver.Conn) *conn {
	return &conn{c: c, stmts: map[string]*list.Element{}, lru: list.New()}
}

// errDropped reports a use of a connection that was dropped.
var errDropped = errors.New("sqlite: connection dropped")

// stmt returns the prepared statement for query, preparing it on first
// use and evicting the least recently used one when the cache is full.
func (c *conn) stmt(ctx context.Context, query string) (driver.Stmt, error) {
	if e, ok := c.stmts[query]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cached).stmt, nil
	}
	if c.c == nil {
		return nil, errDropped
	}
	st, err := c.c.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.lru.Len() >= stmtCacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		oc := old.Value.(*cached)
		delete(c.stmts, oc.query)
		oc.stmt.Close()
	}
	c.stmts[query] = c.lru.PushFront(&cached{query: query, stmt: st})
	return st, nil
}

// namedArgs converts args to the driver's positional arguments: the types
// the driver binds as they are, others through the default conversions
// of database/sql (int → int64, named string types → string, …). The
// slice is c's own, valid until its next statement; release it with
// c.releaseArgs once the driver has bound it.
func (c *conn) namedArgs(args []any) ([]driver.NamedValue, error) {
	if cap(c.nv) < len(args) {
		c.nv = make([]driver.NamedValue, len(args))
	}
	nv := c.nv[:len(args)]
	for i, a := range args {
		switch a.(type) {
		case nil, int64, float64, bool, []byte, string:
		default:
			v, err := driver.DefaultParameterConverter.ConvertValue(a)
			if err != nil {
				clear(nv)
				return nil, fmt.Errorf("sqlite: argument %d: %w", i+1, err)
			}
			a = v
		}
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv, nil
}

// releaseArgs drops the references the reused arguments hold (a
// resource's JSON among them), so that they do not outlive the statement.
func (c *conn) releaseArgs(nv []driver.NamedValue) { clear(nv) }

// Query implements sqlstore.Querier.
func (c *conn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	nv, err := c.namedArgs(args)
	if err != nil {
		return nil, err
	}
	rs, err := st.(driver.StmtQueryContext).QueryContext(ctx, nv)
	c.releaseArgs(nv)
	if err != nil {
		return nil, err
	}
	return &rows{r: rs, vals: make([]driver.Value, len(rs.Columns()))}, nil
}

// Exec implements sqlstore.Querier.
func (c *conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.exec(ctx, query, args)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ExecInsert is Exec also returning the rowid of the last row inserted
// (sqlstore.Inserter), which the driver reads with the changes count.
func (c *conn) ExecInsert(ctx context.Context, query string, args ...any) (n, pk int64, err error) {
	res, err := c.exec(ctx, query, args)
	if err != nil {
		return 0, 0, err
	}
	if n, err = res.RowsAffected(); err != nil {
		return 0, 0, err
	}
	pk, err = res.LastInsertId()
	return n, pk, err
}

func (c *conn) exec(ctx context.Context, query string, args []any) (driver.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	nv, err := c.namedArgs(args)
	if err != nil {
		return nil, err
	}
	res, err := st.(driver.StmtExecContext).ExecContext(ctx, nv)
	c.releaseArgs(nv)
	return res, err
}

// close releases the statements and the connection.
func (c *conn) close() error {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*cached).stmt.Close()
	}
	c.stmts, c.lru = map[string]*list.Element{}, list.New()
	if c.c == nil {
		return nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}

// rows adapts driver.Rows to sqlstore.Rows.
type rows struct {
	r    driver.Rows
	vals []driver.Value
	err  error
}

func (r *rows) Next() bool {
	if r.err != nil {
		return false
	}
	if err := r.r.Next(r.vals); err != nil {
		if err != io.EOF {
			r.err = err
		}
		return false
	}
	return true
}

func (r *rows) Err() error { return r.err }

func (r *rows) Close() { r.r.Close() }

// Scan assigns the current row to dest, which holds the destinations
// sqlstore.Rows allows. The driver hands out a new slice for every BLOB
// value it reads, so a []byte destination takes it without a copy.
func (r *rows) Scan(dest ...any) error {
	if len(dest) != len(r.vals) {
		return fmt.Errorf("sqlite: scan: %d destinations for %d columns", len(dest), len(r.vals))
	}
	for i, d := range dest {
		if err := assign(d, r.vals[i]); err != nil {
			return fmt.Errorf("sqlite: scan column %d: %w", i, err)
		}
	}
	return nil
}

// errScanType reports a destination or a value Scan does not convert.
var errScanType = errors.New("unsupported conversion")

// assign stores the driver value v (int64, float64, string, []byte or
// nil) in the destination d.
func assign(d any, v driver.Value) error {
	switch d := d.(type) {
	case *any:
		*d = v
		return nil
	case *[]byte:
		switch v := v.(type) {
		case nil:
			*d = nil
		case []byte:
			*d = v
		case string:
			*d = []byte(v)
		default:
			return fmt.Errorf("%w: %T into []byte", errScanType, v)
		}
		return nil
	case **string:
		switch v := v.(type) {
		case nil:
			*d = nil
		case string:
			*d = &v
		case []byte:
			s := string(v)
			*d = &s
		default:
			return fmt.Errorf("%w: %T into *string", errScanType, v)
		}
		return nil
	case *string:
		switch v := v.(type) {
		case string:
			*d = v
		case []byte:
			*d = string(v)
		default:
			return fmt.Errorf("%w: %T into string", errScanType, v)
		}
		return nil
	}
	n, ok := v.(int64)
	if !ok {
		if f, isFloat := v.(float64); isFloat {
			if d, ok := d.(*float64); ok {
				*d = f
				return nil
			}
		}
		return fmt.Errorf("%w: %T into %T", errScanType, v, d)
	}
	switch d := d.(type) {
	case *int64:
		*d = n
	case *int:
		*d = int(n)
	case *float64:
		*d = float64(n)
	case *bool:
		*d = n != 0
	default:
		return fmt.Errorf("%w: int64 into %T", errScanType, d)
	}
	return nil
}

// writeQuerier runs the statements of a write transaction on the writer
// connection. It checks the caller's context before each statement but
// never lets it interrupt one: SQLite rolls back the whole transaction
// when a write statement is interrupted, and the transaction may hold
// other callers' writes (see writer).
type writeQuerier struct{ c *conn }

func (q writeQuerier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return q.c.Query(context.Background(), query, args...)
}

func (q writeQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return q.c.Exec(context.Background(), query, args...)
}

func (q writeQuerier) ExecInsert(ctx context.Context, query string, args ...any) (n, pk int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	return q.c.ExecInsert(context.Background(), query, args...)
}
