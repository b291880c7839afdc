package sqlite

import (
	"context"
	"sync/atomic"
	"time"
)

// checkpointer copies committed pages from the write-ahead log into the
// database file on a connection and goroutine of its own, so that commits
// do not wait for it (the writer's automatic checkpoints are off). Each
// run copies what was committed since the previous one; runs are at
// least checkpointEvery apart, so a page changed by many commits is
// copied once per run rather than once per commit.
//
// The log starts over from its beginning only when a writer finds it
// fully copied, which a busy writer never does while the checkpointer
// works beside it. So once the log is longer than restartFrames, the
// checkpointer asks the writer to restart it (see writer.batch), between
// two transactions, where that costs the writer only the pages copied
// since the last run.
type checkpointer struct {
	c       *conn
	kick    chan struct{}
	restart atomic.Bool // the writer should restart the log
	quit    chan struct{}
	stopped chan struct{}
}

const (
	checkpointEvery = 200 * time.Millisecond
	restartFrames   = 8192 // 32 MB of 4 kB pages
)

func newCheckpointer(c *conn) *checkpointer {
	k := &checkpointer{c: c, kick: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	go k.run()
	return k
}

// committed tells the checkpointer that the log grew.
func (k *checkpointer) committed() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

func (k *checkpointer) run() {
	defer close(k.stopped)
	for {
		select {
		case <-k.kick:
		case <-k.quit:
			// Leave a small log behind.
			k.c.Exec(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
			return
		}
		k.checkpoint("PASSIVE")
		select {
		case <-time.After(checkpointEvery):
		case <-k.quit:
			k.c.Exec(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
			return
		}
	}
}

// checkpoint runs one checkpoint in mode. Failures are left for the next
// run: the log keeps the data safe meanwhile.
func (k *checkpointer) checkpoint(mode string) {
	frames, err := checkpoint(k.c, mode)
	if err == nil && frames > restartFrames {
		k.restart.Store(true)
	}
}

// checkpoint runs PRAGMA wal_checkpoint(mode) on c and returns the number
// of frames in the log.
func checkpoint(c *conn, mode string) (int64, error) {
	rows, err := c.Query(context.Background(), "PRAGMA wal_checkpoint("+mode+")")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var busy, frames, done int64
	if rows.Next() {
		if err := rows.Scan(&busy, &frames, &done); err != nil {
			return 0, err
		}
	}
	return frames, rows.Err()
}

func (k *checkpointer) close() {
	close(k.quit)
	<-k.stopped
}
