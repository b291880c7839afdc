// Package sqlite is Warden's embedded resource store: store.Store on an
// SQLite database file, through modernc.org/sqlite (pure Go, no cgo).
//
// The database runs in WAL mode. One connection writes, on a goroutine of
// its own that runs the functions of concurrent Tx calls one after the
// other and commits them together (see writer); several connections
// read, each from a consistent snapshot, without waiting for the writer.
// Commits are synced to disk before Tx returns (synchronous=FULL) unless
// Options.Synchronous says "normal". Another goroutine copies committed
// pages from the log into the database file (see checkpointer).
//
// One process serves a database file at a time. Short-lived commands
// (import, the admin commands) may write to it beside that server: each
// waits on SQLite's lock while the other writes (Options.BusyTimeout),
// and the server's read cache sees their commits (CommitStamp).
package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// Options configure Open.
type Options struct {
	// Synchronous is "full" (the default, also for ""): a commit is on
	// disk before Tx returns, and survives a power failure. "normal":
	// WAL commits are synced only at checkpoints, so a commit survives a
	// crash of the process but the last ones may be lost when the
	// machine loses power.
	Synchronous string
	// ReadConns is the number of read connections: 0 means
	// max(4, GOMAXPROCS).
	ReadConns int
	// BusyTimeout bounds the wait for a lock held by another connection;
	// 0 means 10 seconds.
	BusyTimeout time.Duration
	// MaxBatch bounds how many concurrent Tx calls are committed
	// together; 0 means 64, 1 commits each on its own.
	MaxBatch int
}

// Open opens (creating if needed) the database at path, migrates its
// schema, and returns a store over it. Close it when done.
func Open(ctx context.Context, path string, opts Options) (*sqlstore.Store, error) {
	b, err := openMigrated(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	return sqlstore.New(b), nil
}

// openMigrated is Open without the store: the backend, migrated.
func openMigrated(ctx context.Context, path string, opts Options) (*backend, error) {
	b, err := open(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, b); err != nil {
		b.Close()
		return nil, err
	}
	// The connections have the log's index (the -shm file) open by now;
	// it says something only in WAL mode, which a file system may refuse.
	if wal, err := b.walMode(ctx); err != nil {
		b.Close()
		return nil, err
	} else if wal {
		b.watch = watchCommits(path)
	}
	return b, nil
}

// walMode reports whether the database runs in WAL mode.
func (b *backend) walMode(ctx context.Context) (bool, error) {
	var mode string
	err := b.View(ctx, false, func(q sqlstore.Querier) error {
		rows, err := q.Query(ctx, "PRAGMA journal_mode")
		if err != nil {
			return err
		}
		defer rows.Close()
		if rows.Next() {
			if err := rows.Scan(&mode); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	return strings.EqualFold(mode, "wal"), err
}

// backend is the sqlstore.Backend of an SQLite database.
type backend struct {
	readDSN   string // opens read connections
	w         *writer
	ckpt      *checkpointer
	readers   chan *conn
	nreaders  int
	watch     *commitWatch // nil when the -shm file cannot be mapped
	closeOnce sync.Once
	closeErr  error
}

func open(ctx context.Context, path string, opts Options) (*backend, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	syncMode := "FULL"
	switch strings.ToLower(opts.Synchronous) {
	case "", "full":
	case "normal":
		syncMode = "NORMAL"
	default:
		return nil, fmt.Errorf("sqlite: synchronous %q: want full or normal", opts.Synchronous)
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	nread := opts.ReadConns
	if nread <= 0 {
		nread = max(4, runtime.GOMAXPROCS(0))
	}
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = 64
	}
	common := []string{
		"busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")",
		// Reads go through a memory map of the file (SQLite caps the
		// size at its compile-time maximum), so a read costs no system
		// call and the page caches can stay small.
		"mmap_size(1099511627776)",
		"temp_store(MEMORY)",
		"journal_size_limit(67108864)", // the log file shrinks back to 64 MB after a restart
	}

	// On failure, undo what was opened, last first.
	var undo []func()
	fail := func(err error) (*backend, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	conn1 := func(dsn string) (*conn, error) {
		c, err := openConn(dsn)
		if err != nil {
			return nil, fmt.Errorf("sqlite: opening %s: %w", path, mapErr(err))
		}
		undo = append(undo, func() { c.close() })
		return c, nil
	}

	// The file holds patient data: only its owner may read it. SQLite
	// gives its -wal and -shm files the database file's permissions.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: creating %s: %w: %w", path, store.ErrUnavailable, err)
	}

	b := &backend{readers: make(chan *conn, nread), nreaders: nread}
	// The writer's connection sets the journal mode, which the others
	// then find in the file. Its automatic checkpoints are off: the
	// checkpointer runs them. Its page cache holds the pages writes
	// change (clean pages come from the memory map): 16 MB, which writes
	// as fast as 64 MB did and keeps the server's memory at about half
	// (bench/phases.sh: RSS after reads 193 → 103 MB).
	wc, err := conn1(dsn(path, append(slices.Clone(common), "journal_mode(WAL)", "synchronous("+syncMode+")", "wal_autocheckpoint(0)", "cache_size(-16384)")))
	if err != nil {
		return fail(err)
	}
	cc, err := conn1(dsn(path, append(slices.Clone(common), "synchronous("+syncMode+")", "cache_size(-8192)")))
	if err != nil {
		return fail(err)
	}
	b.readDSN = dsn(path, append(slices.Clone(common), "query_only(1)", "cache_size(-8192)"))
	for i := 0; i < nread; i++ {
		rc, err := conn1(b.readDSN)
		if err != nil {
			return fail(err)
		}
		b.readers <- rc
	}
	b.ckpt = newCheckpointer(cc)
	b.w = newWriter(wc, maxBatch, busy, b.ckpt)
	return b, nil
}

// dsn builds a file: URI for modernc.org/sqlite with the given pragmas.
func dsn(path string, pragmas []string) string {
	var b strings.Builder
	b.WriteString("file:")
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("?_txlock=immediate")
	for _, p := range pragmas {
		b.WriteString("&_pragma=")
		b.WriteString(p)
	}
	return b.String()
}

func (b *backend) Dialect() sqlstore.Dialect { return dialect{} }

// CommitStamp implements sqlstore.CommitWatcher.
func (b *backend) CommitStamp() (sqlstore.CommitStamp, bool) {
	if b.watch == nil {
		return sqlstore.CommitStamp{}, false
	}
	return b.watch.CommitStamp()
}

// View runs fn on a read connection, inside a read transaction when a
// snapshot is wanted (WAL readers see the database as of their first
// read and never wait for the writer).
func (b *backend) View(ctx context.Context, snapshot bool, fn func(sqlstore.Querier) error) (err error) {
	var c *conn
	select {
	case c = <-b.readers:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { b.readers <- c }()
	if c == nil {
		return errClosed
	}
	if c.c == nil {
		// Its connection broke last time: open another.
		nc, err := openConn(b.readDSN)
		if err != nil {
			return mapErr(err)
		}
		*c = *nc
	}
	if !snapshot {
		return fn(c)
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	defer func() {
		if _, rerr := c.Exec(context.Background(), "ROLLBACK"); rerr != nil {
			// A connection left inside a transaction would serve a
			// stale snapshot: drop it.
			c.close()
		}
	}()
	return fn(c)
}

// Update runs fn on the writer (see writer).
func (b *backend) Update(ctx context.Context, fn func(sqlstore.Querier) error) error {
	return b.w.update(ctx, fn)
}

func (b *backend) Ping(ctx context.Context) error {
	return b.View(ctx, false, func(q sqlstore.Querier) error {
		_, err := q.Exec(ctx, "SELECT 1")
		return err
	})
}

// Close stops the writer after its batch in progress and the
// checkpointer after a last checkpoint, then closes every connection.
// Reads in progress finish first. Later calls return the first result.
func (b *backend) Close() error {
	b.closeOnce.Do(func() {
		if b.watch != nil {
			b.watch.close() // before the connections that keep the file whole
		}
		var errs []error
		if b.w != nil {
			b.w.close()
			errs = append(errs, b.w.c.close())
		}
		if b.ckpt != nil {
			b.ckpt.close()
			errs = append(errs, b.ckpt.c.close())
		}
		for i := 0; i < b.nreaders; i++ {
			c := <-b.readers
			if c != nil {
				errs = append(errs, c.close())
			}
		}
		// Later Views find a nil connection and report the store closed.
		b.readers <- nil
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// dialect is SQLite's sqlstore.Dialect.
type dialect struct{}

var migrations = sqlstore.Schema(sqlstore.Types{
	PK:           "INTEGER PRIMARY KEY",
	Int:          "INTEGER",
	Real:         "REAL",
	Text:         "TEXT",
	Bool:         "INTEGER",
	Blob:         "BLOB",
	WithoutRowID: " WITHOUT ROWID",
})

func (dialect) Migrations() [][]string { return migrations }

// InList reads the list from a JSON array argument.
func (dialect) InList(expr string) string { return expr + " IN (SELECT value FROM json_each(?))" }

func (dialect) List(values any) any {
	b, err := json.Marshal(values)
	if err != nil {
		panic(fmt.Sprintf("sqlite: encoding a list argument: %v", err))
	}
	return string(b)
}

func (dialect) Contains(column string) string { return "instr(" + column + ", ?) > 0" }

// SortedArm leaves the arm as it is: SQLite merges a compound SELECT's
// arms for its ORDER BY, taking each in index order.
func (dialect) SortedArm(sel, order string) string { return sel }

// Probe leaves cond as it is: SQLite runs a correlated EXISTS for each
// row.
func (dialect) Probe(cond string) string { return cond }

// InProcess is true: SQLite runs in the process.
func (dialect) InProcess() bool { return true }

// InsertVerb is INSERT OR IGNORE: a multi-row INSERT that may abort on a
// constraint makes SQLite keep a statement journal, a copy of every page
// the statement changes, to undo it. Index rows have unique keys by
// construction and no NULLs, so there is nothing to ignore.
func (dialect) InsertVerb() string { return "INSERT OR IGNORE" }

// LastInsertPK avoids RETURNING, which SQLite runs as a trigger, making
// the INSERT keep a statement journal.
func (dialect) LastInsertPK() string { return "SELECT last_insert_rowid()" }

// Lock needs to do nothing: one writer runs at a time.
func (dialect) Lock(context.Context, sqlstore.Querier, string) error { return nil }

func (dialect) Err(err error) error { return mapErr(err) }

// mapErr wraps SQLite errors in the store sentinels: a uniqueness
// violation is a conflicting version, an I/O error, a full disk, a
// read-only or locked file mean the store is unavailable.
func mapErr(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch code := se.Code(); {
	case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %v", store.ErrConflict, err)
	default:
		switch code & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
	}
	return err
}
