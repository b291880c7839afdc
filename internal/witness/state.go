package witness

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Record is the latest checkpoint a witness cosigned for one log.
type Record struct {
	Size       uint64
	Root       []byte // the checkpoint's root hash
	Checkpoint []byte // the signed checkpoint as received, kept as evidence
}

// errStateMoved reports a lost compare-and-swap.
var errStateMoved = errors.New("witness: state moved")

// State is the durable record of the latest cosigned checkpoint per log, in
// a SQLite database (WAL, synchronous=FULL: a swap that returned is on
// disk). It is safe for concurrent use.
type State struct {
	db *sql.DB
}

// OpenState opens (creating on first use, mode 0600) the state database at
// path.
func OpenState(ctx context.Context, path string) (*State, error) {
	if strings.ContainsAny(path, "?#%") {
		return nil, fmt.Errorf("%w: state path %q contains ?, # or %%", ErrBadOptions, path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("witness: state: %w", err)
	}
	f.Close()
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("witness: state: %w", err)
	}
	// One connection: swaps are serialised in-process and a second
	// connection could only wait on SQLite's lock.
	db.SetMaxOpenConns(1)
	const schema = `CREATE TABLE IF NOT EXISTS checkpoints (
		origin     TEXT PRIMARY KEY,
		size       INTEGER NOT NULL,
		root       BLOB NOT NULL,
		checkpoint BLOB NOT NULL
	) STRICT;
	CREATE TABLE IF NOT EXISTS evidence (
		id       INTEGER PRIMARY KEY,
		origin   TEXT NOT NULL,
		received INTEGER NOT NULL,
		reason   TEXT NOT NULL,
		request  BLOB NOT NULL
	) STRICT;
	CREATE INDEX IF NOT EXISTS evidence_origin ON evidence (origin, id)`
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("witness: state %s: %w", path, err)
	}
	return &State{db: db}, nil
}

// Close closes the database.
func (s *State) Close() error { return s.db.Close() }

// Latest returns the latest cosigned checkpoint for origin; found is false
// (and the Record zero) if the witness never cosigned one.
func (s *State) Latest(ctx context.Context, origin string) (r Record, found bool, err error) {
	var size int64
	err = s.db.QueryRowContext(ctx, `SELECT size, root, checkpoint FROM checkpoints WHERE origin = ?`, origin).
		Scan(&size, &r.Root, &r.Checkpoint)
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("witness: state read: %w", err)
	}
	// Sizes are stored as the int64 with the same bits: a tree size above
	// 2^63-1 round-trips.
	r.Size = uint64(size)
	return r, true, nil
}

// Swap records next as origin's latest checkpoint if, and only if, the
// latest is still prev (nil: none recorded). Otherwise it changes nothing
// and returns errStateMoved.
func (s *State) Swap(ctx context.Context, origin string, prev *Record, next Record) error {
	var res sql.Result
	var err error
	if prev == nil {
		res, err = s.db.ExecContext(ctx,
			`INSERT INTO checkpoints (origin, size, root, checkpoint) VALUES (?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING`,
			origin, int64(next.Size), next.Root, next.Checkpoint)
	} else {
		res, err = s.db.ExecContext(ctx,
			`UPDATE checkpoints SET size = ?, root = ?, checkpoint = ? WHERE origin = ? AND size = ? AND root = ?`,
			int64(next.Size), next.Root, next.Checkpoint, origin, int64(prev.Size), prev.Root)
	}
	if err != nil {
		return fmt.Errorf("witness: state write: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("witness: state write: %w", err)
	}
	if n != 1 {
		return errStateMoved
	}
	return nil
}

// MaxEvidencePerLog bounds the refused requests kept per log; the oldest go
// first.
const MaxEvidencePerLog = 100

// Evidence is a request the witness refused although the log's key had
// signed its checkpoint (a fork, a rewritten tree, a bad proof): possible
// proof of log misbehaviour, kept as c2sp.org/tlog-witness allows.
type Evidence struct {
	Received time.Time
	Reason   string
	Request  []byte // the add-checkpoint body as received
}

// AddEvidence keeps a refused request for origin.
func (s *State) AddEvidence(ctx context.Context, origin string, e Evidence) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO evidence (origin, received, reason, request) VALUES (?, ?, ?, ?)`,
		origin, e.Received.Unix(), e.Reason, e.Request)
	if err == nil {
		_, err = s.db.ExecContext(ctx,
			`DELETE FROM evidence WHERE origin = ? AND id <= (SELECT id FROM evidence WHERE origin = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
			origin, origin, MaxEvidencePerLog)
	}
	if err != nil {
		return fmt.Errorf("witness: evidence write: %w", err)
	}
	return nil
}

// Evidence returns the refused requests kept for origin, oldest first.
func (s *State) Evidence(ctx context.Context, origin string) ([]Evidence, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT received, reason, request FROM evidence WHERE origin = ? ORDER BY id`, origin)
	if err != nil {
		return nil, fmt.Errorf("witness: evidence read: %w", err)
	}
	defer rows.Close()
	var out []Evidence
	for rows.Next() {
		var e Evidence
		var received int64
		if err := rows.Scan(&received, &e.Reason, &e.Request); err != nil {
			return nil, fmt.Errorf("witness: evidence read: %w", err)
		}
		e.Received = time.Unix(received, 0)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("witness: evidence read: %w", err)
	}
	return out, nil
}
