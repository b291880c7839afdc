package sqlite

import (
	"container/list"
	"context"
	"database/sql"

	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// stmtCacheSize bounds the prepared statements kept per connection.
const stmtCacheSize = 256

// conn is one SQLite connection with its cache of prepared statements. It
// is used by one goroutine at a time.
type conn struct {
	c     *sql.Conn
	stmts map[string]*list.Element // SQL → element of lru holding *cached
	lru   *list.List               // most recently used first
}

type cached struct {
	query string
	stmt  *sql.Stmt
}

func newConn(c *sql.Conn) *conn {
	return &conn{c: c, stmts: map[string]*list.Element{}, lru: list.New()}
}

// stmt returns the prepared statement for query, preparing it on first
// use and evicting the least recently used one when the cache is full.
func (c *conn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if e, ok := c.stmts[query]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cached).stmt, nil
	}
	st, err := c.c.PrepareContext(ctx, query)
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

// Query implements sqlstore.Querier.
func (c *conn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// Exec implements sqlstore.Querier.
func (c *conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
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
	return c.c.Close()
}

// sqlRows adapts *sql.Rows to sqlstore.Rows.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

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
