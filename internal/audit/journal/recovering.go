package journal

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Recovering is a journal that reopens itself after a write failure. The
// failing batch, and every Append until the file can be written again,
// get errors (their requests are refused: fail closed); nothing that was
// acknowledged is lost, since reopening scans the file like Open; and
// appends resume by themselves once the cause is gone (disk space freed,
// the device back), without restarting the server.
type Recovering struct {
	dir   string
	retry time.Duration

	mu         sync.RWMutex
	j          *Journal
	lastTry    time.Time
	before     uint64 // commits of the files replaced
	beforeRead uint64 // bytes read from them
}

// OpenRecovering opens the journal in dir (see Open); after a failure it
// tries to reopen at most once per retry.
func OpenRecovering(dir string, retry time.Duration) (*Recovering, error) {
	j, err := Open(dir)
	if err != nil {
		return nil, err
	}
	return &Recovering{dir: dir, retry: retry, j: j}, nil
}

// File is the path of the journal's file, for ReadFrame.
func (r *Recovering) File() string { return File(r.dir) }

func (r *Recovering) current() *Journal {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.j
}

// Append is Journal.Append; an error from a failed or closed journal
// starts a reopen (rate-limited) for the Appends that follow.
func (r *Recovering) Append(ctx context.Context, entry []byte) (uint64, error) {
	j := r.current()
	seq, err := j.Append(ctx, entry)
	if err != nil && (j.failure() != nil || errors.Is(err, ErrClosed)) {
		r.reopen(j)
	}
	return seq, err
}

// reopen replaces the failed journal, unless another caller already did
// or the last try was too recent.
func (r *Recovering) reopen(failed *Journal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.j != failed || time.Since(r.lastTry) < r.retry {
		return
	}
	r.lastTry = time.Now()
	failed.Close() // waits for its writer; its queued Appends fail
	if j, err := Open(r.dir); err == nil {
		r.before += failed.Commits()
		r.beforeRead += failed.ReadBytes()
		r.j = j
	}
}

// Read is Journal.Read on the current file.
func (r *Recovering) Read(from uint64, fn func(seq uint64, entry []byte) error) error {
	return r.current().Read(from, fn)
}

// ScanFrames is Journal.ScanFrames on the current file.
func (r *Recovering) ScanFrames(from uint64, fn func(seq uint64, off int64, entry []byte) error) error {
	return r.current().ScanFrames(from, fn)
}

// Scan is Journal.Scan on the current file.
func (r *Recovering) Scan(from uint64, fn func(seq uint64, entry []byte) error) error {
	return r.current().Scan(from, fn)
}

// Commits is how many group commits the journal made since
// OpenRecovering, across reopens.
func (r *Recovering) Commits() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.before + r.j.Commits()
}

// ReadBytes is how many bytes of the journal its readers read since
// OpenRecovering, across reopens.
func (r *Recovering) ReadBytes() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.beforeRead + r.j.ReadBytes()
}

// SyncMode is Journal.SyncMode of the current file.
func (r *Recovering) SyncMode() string { return r.current().SyncMode() }

// Len is Journal.Len of the current file.
func (r *Recovering) Len() uint64 { return r.current().Len() }

// Close closes the current file.
func (r *Recovering) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.j.Close()
}
