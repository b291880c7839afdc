// Package postgres is Warden's resource store for deployments beyond one
// machine: store.Store on PostgreSQL, through github.com/jackc/pgx/v5 and
// its connection pool. Several Warden processes may share one database.
//
// Writes run in READ COMMITTED transactions. A new version replaces the
// current row only if that row still holds the version the writer read
// (compare and swap), so of two concurrent writers of one resource one
// gets store.ErrConflict; concurrent creates collide on the unique
// (type, id, version) index, also ErrConflict. Tx.Lock takes a
// transaction-scoped advisory lock. Searches that run more than one
// statement (a page and its total or includes) read one REPEATABLE READ
// snapshot.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// Options configure Open.
type Options struct {
	// MaxConns bounds the pool of connections; 0 keeps pgx's default
	// (the larger of 4 and the number of CPUs).
	MaxConns int
}

// Open connects to the database at url (a postgres:// URL or key=value
// DSN as pgx reads them; a search_path parameter selects the schema),
// migrates its schema and returns a store over it. Close it when done.
func Open(ctx context.Context, url string, opts Options) (*sqlstore.Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error can quote the URL, password included.
		return nil, errors.New("postgres: invalid connection URL")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = int32(min(opts.MaxConns, 1<<20))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", mapErr(err))
	}
	b := &backend{pool: pool}
	if err := b.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := sqlstore.Migrate(ctx, b); err != nil {
		pool.Close()
		return nil, err
	}
	return sqlstore.New(b), nil
}

// backend is the sqlstore.Backend of a PostgreSQL database.
type backend struct {
	pool *pgxpool.Pool
}

func (b *backend) Dialect() sqlstore.Dialect { return dialect{} }

// View runs fn on the pool, or for a snapshot on one connection in a
// REPEATABLE READ, READ ONLY transaction, whose BEGIN travels with the
// first statement (see snapshot).
func (b *backend) View(ctx context.Context, consistent bool, fn func(sqlstore.Querier) error) error {
	if !consistent {
		return fn(querier{b.pool})
	}
	c, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection released inside a transaction is closed, not reused.
	defer c.Release()
	s := &snapshot{c: c.Conn()}
	err = fn(s)
	if s.began {
		if _, rerr := c.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// snapshot is a Querier for View: it begins its transaction in the same
// round trip as its first statement.
type snapshot struct {
	c     *pgx.Conn
	began bool
}

const beginSnapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

func (s *snapshot) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	if s.began {
		return querier{s.c}.Query(ctx, query, args...)
	}
	s.began = true
	b := &pgx.Batch{}
	b.Queue(beginSnapshot)
	b.Queue(numbered(query), args...)
	br := s.c.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return batchRows{Rows: rows, br: br}, nil
}

func (s *snapshot) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if !s.began {
		s.began = true
		if _, err := s.c.Exec(ctx, beginSnapshot); err != nil {
			return 0, err
		}
	}
	return querier{s.c}.Exec(ctx, query, args...)
}

// batchRows are the rows of a batch's last statement; closing them ends
// the batch.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r batchRows) Close() {
	r.Rows.Close()
	r.br.Close()
}

func (b *backend) Update(ctx context.Context, fn func(sqlstore.Querier) error) error {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return err
	}
	// Rolls back when fn fails or panics; a no-op after Commit.
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(querier{tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			// A statement failed and the function went on: PostgreSQL
			// aborted the transaction, so nothing was written.
			return fmt.Errorf("postgres: transaction aborted by an earlier failed statement: %w", err)
		}
		return err
	}
	return nil
}

func (b *backend) Ping(ctx context.Context) error {
	if err := b.pool.Ping(ctx); err != nil {
		return mapErr(err)
	}
	return nil
}

func (b *backend) Close() error {
	b.pool.Close()
	return nil
}

// conn is what pgxpool.Pool, pgx.Tx and pgx.Conn have in common.
type conn interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// querier runs sqlstore's statements, whose "?" placeholders it numbers.
type querier struct{ c conn }

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.c.Query(ctx, numbered(query), args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.c.Exec(ctx, numbered(query), args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// ExecBatch implements sqlstore.Batcher with a pipeline of statements.
func (q querier) ExecBatch(ctx context.Context, stmts []sqlstore.Statement) error {
	b := &pgx.Batch{}
	for _, st := range stmts {
		b.Queue(numbered(st.SQL), st.Args...)
	}
	br := q.c.SendBatch(ctx, b)
	for range stmts {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// numberedSQL caches numbered: statements repeat. Search statements vary
// with the query, so the cache stops growing at maxNumbered entries.
var (
	numberedSQL   sync.Map
	numberedCount atomic.Int64
)

const maxNumbered = 4096

// numbered rewrites the "?" placeholders of query as $1, $2, …, outside
// quoted literals and identifiers.
func numbered(query string) string {
	if s, ok := numberedSQL.Load(query); ok {
		return s.(string)
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	s := b.String()
	if numberedCount.Load() < maxNumbered {
		if _, loaded := numberedSQL.LoadOrStore(query, s); !loaded {
			numberedCount.Add(1)
		}
	}
	return s
}

// dialect is PostgreSQL's sqlstore.Dialect.
type dialect struct{}

var migrations = sqlstore.Schema(sqlstore.Types{
	PK:   "bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
	Int:  "bigint",
	Real: "double precision",
	// Byte order, whatever the database's locale: range scans for
	// prefixes then use the indexes.
	Text: `text COLLATE "C"`,
	Bool: "boolean",
	Blob: "bytea",
})

func (dialect) Migrations() [][]string { return migrations }

// InList reads the list from an array argument.
func (dialect) InList(expr string) string { return expr + " = ANY(?)" }

func (dialect) List(values any) any { return values }

func (dialect) Contains(column string) string { return "strpos(" + column + ", ?) > 0" }

func (dialect) InsertVerb() string { return "INSERT" }

// SortedArm orders the arm itself: PostgreSQL 15 sorts the rows of plain
// arms for the union's ORDER BY, reading all of them, but merges arms
// that are each in order.
func (dialect) SortedArm(sel, order string) string { return "(" + sel + " ORDER BY " + order + ")" }

// Probe puts cond in a scalar subquery of its own, which the planner
// keeps as a subplan run for each row: cond's EXISTS cannot become a
// join there, since it refers to no table of that subquery.
func (dialect) Probe(cond string) string { return "(SELECT 1 WHERE " + cond + ") IS NOT NULL" }

// InProcess is false: every statement is a round trip to the server.
func (dialect) InProcess() bool { return false }

func (dialect) LastInsertPK() string { return "" }

// lockClass is the first key of Warden's advisory locks, keeping them
// apart from other users of the database.
const lockClass = 0x57415244 // "WARD"

// Lock takes a transaction-scoped advisory lock on key (hashed to 32
// bits: two keys may share a lock, which only serialises more).
func (dialect) Lock(ctx context.Context, q sqlstore.Querier, key string) error {
	_, err := q.Exec(ctx, "SELECT pg_advisory_xact_lock("+strconv.Itoa(lockClass)+", hashtext(?))", key)
	return err
}

func (dialect) Err(err error) error { return mapErr(err) }

// mapErr wraps PostgreSQL errors in the store sentinels: uniqueness
// violations, serialization failures and deadlocks are conflicts with
// concurrent writers; lost connections, a server shutting down, full
// disks and I/O errors mean the store is unavailable.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505", pe.Code == "40001", pe.Code == "40P01":
			return fmt.Errorf("%w: %v", store.ErrConflict, err)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "58"),
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "25006":
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "closed pool") || strings.Contains(err.Error(), "conn closed") {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}
