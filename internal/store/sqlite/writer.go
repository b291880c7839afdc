package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// writer owns the one connection that writes. SQLite allows one writer at
// a time; instead of making concurrent Tx calls queue for the database
// lock, the writer runs their functions one after the other on its own
// goroutine and commits them together (group commit): it opens a
// transaction, runs the first call, then each call that arrived meanwhile
// in a SAVEPOINT of its own, and commits once for all of them, so that
// one disk sync makes a whole batch durable. A call that fails rolls back
// to its savepoint (the first call: the whole transaction, which holds
// nothing else yet) and leaves the others' writes alone. Callers get
// their result only after the commit.
//
// If the transaction itself is lost (an I/O error, the disk full: SQLite
// may then roll back everything), every call of the batch fails.
type writer struct {
	c        *conn
	maxBatch int
	busy     time.Duration // the connection's busy timeout
	ckpt     *checkpointer
	reqs     chan *writeReq
	quit     chan struct{}
	stopped  chan struct{}
}

// writeReq is one Tx call waiting for the writer.
type writeReq struct {
	ctx    context.Context
	fn     func(sqlstore.Querier) error
	err    error
	panic  any // a panic of fn, repanicked in the caller
	result chan struct{}
}

func (r *writeReq) finish(err error, p any) {
	r.err, r.panic = err, p
	close(r.result)
}

func newWriter(c *conn, maxBatch int, busy time.Duration, ckpt *checkpointer) *writer {
	w := &writer{c: c, maxBatch: maxBatch, busy: busy, ckpt: ckpt, reqs: make(chan *writeReq), quit: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

// errClosed is returned by writes after Close.
var errClosed = fmt.Errorf("%w: sqlite store closed", store.ErrUnavailable)

// update runs fn in a transaction on the writer goroutine and returns its
// result once the transaction has committed (or failed). Until the writer
// has taken the call, ctx can abandon it; after that the caller waits for
// the verdict, so that a nil error always means a durable write.
func (w *writer) update(ctx context.Context, fn func(sqlstore.Querier) error) error {
	r := &writeReq{ctx: ctx, fn: fn, result: make(chan struct{})}
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.quit:
		return errClosed
	}
	<-r.result
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// close stops the writer after the batch in progress.
func (w *writer) close() {
	close(w.quit)
	<-w.stopped
}

func (w *writer) run() {
	defer close(w.stopped)
	for {
		select {
		case r := <-w.reqs:
			w.batch(r)
			if w.ckpt.restart.CompareAndSwap(true, false) {
				w.restartLog()
			}
		case <-w.quit:
			return
		}
	}
}

// restartLog checkpoints and restarts the write-ahead log between two
// transactions (see checkpointer). The restart waits for readers of
// older snapshots, but only briefly: writes must not stall behind a long
// read, and a later attempt will do.
func (w *writer) restartLog() {
	w.exec("PRAGMA busy_timeout = 100")
	if _, err := checkpoint(w.c, "RESTART"); err != nil {
		w.ckpt.restart.Store(true)
	}
	w.exec("PRAGMA busy_timeout = " + strconv.FormatInt(w.busy.Milliseconds(), 10))
}

// exec runs a transaction control statement; callers' contexts never
// reach them.
func (w *writer) exec(query string) error {
	_, err := w.c.Exec(context.Background(), query)
	return err
}

// batch runs r and the calls that arrive while it runs, up to maxBatch,
// in one transaction.
func (w *writer) batch(r *writeReq) {
	b := &batch{w: w}
	for n := 1; r != nil; n++ {
		b.run(r)
		r = nil
		if n < w.maxBatch {
			select {
			case r = <-w.reqs:
			default:
			}
		}
	}
	b.commit()
}

// batch is the state of one group transaction.
type batch struct {
	w    *writer
	open bool        // a transaction is open
	done []*writeReq // calls that succeeded, waiting for the commit
}

// The first call of a transaction runs without a savepoint: when it
// fails, the whole transaction rolls back, and it holds nothing else. The
// savepoints of the later calls cost SQLite a copy of every page they
// change (the statement journal), so one call alone pays none.

// abort fails every call waiting for the commit and rolls back.
func (b *batch) abort(cause error) {
	err := fmt.Errorf("%w: sqlite transaction failed: %v", store.ErrUnavailable, cause)
	for _, r := range b.done {
		r.finish(err, nil)
	}
	b.done = nil
	if b.open {
		b.w.exec("ROLLBACK")
		b.open = false
	}
}

func (b *batch) run(r *writeReq) {
	if err := r.ctx.Err(); err != nil {
		r.finish(err, nil)
		return
	}
	if !b.open {
		if err := b.w.exec("BEGIN IMMEDIATE"); err != nil {
			r.finish(err, nil)
			return
		}
		b.open = true
		p, err := b.call(r)
		if err == nil && p == nil {
			b.done = append(b.done, r)
			return
		}
		b.w.exec("ROLLBACK")
		b.open = false
		r.finish(err, p)
		return
	}
	if err := b.w.exec("SAVEPOINT warden_tx"); err != nil {
		b.abort(err)
		r.finish(err, nil)
		return
	}
	p, err := b.call(r)
	if err == nil && p == nil {
		b.done = append(b.done, r)
		if err := b.w.exec("RELEASE warden_tx"); err != nil {
			b.abort(err)
		}
		return
	}
	rerr := errors.Join(b.w.exec("ROLLBACK TO warden_tx"), b.w.exec("RELEASE warden_tx"))
	r.finish(err, p)
	if rerr != nil {
		// The savepoint is gone: SQLite rolled the transaction back.
		b.abort(rerr)
	}
}

// call runs r.fn, turning a panic into a value to repanic in the caller.
func (b *batch) call(r *writeReq) (p any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p = v
			if err == nil {
				err = fmt.Errorf("sqlite: transaction function panicked: %v", v)
			}
		}
	}()
	return nil, r.fn(writeQuerier{b.w.c})
}

func (b *batch) commit() {
	if !b.open {
		return
	}
	if err := b.w.exec("COMMIT"); err != nil {
		b.abort(err)
		return
	}
	b.open = false
	for _, r := range b.done {
		r.finish(nil, nil)
	}
	b.done = nil
	b.w.ckpt.committed()
}
