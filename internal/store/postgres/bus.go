package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bus carries change notices between Warden replicas sharing one
// database (PostgreSQL LISTEN/NOTIFY): a replica that revokes a token,
// grant or client publishes; the others reload their view at once. A
// notice carries no data, only "look again": what changed is read from
// the database, so a lost notice delays a reload until the next periodic
// one and never loses a revocation.
type Bus struct {
	url string
}

// NewBus returns a bus over the database at url.
func NewBus(url string) *Bus { return &Bus{url: url} }

// Publish sends a notice on channel (pg_notify; delivered when its
// transaction commits, here at once).
func (b *Bus) Publish(ctx context.Context, channel string) error {
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT pg_notify($1, '')", channel)
	return mapErr(err)
}

// Listen calls fn for every notice on channel until ctx ends, on a
// connection of its own; it reconnects after failures (with a pause) and
// calls fn after each reconnection too, since notices sent while it was
// away are lost.
func (b *Bus) Listen(ctx context.Context, channel string, ready func(), fn func()) error {
	return b.listenLoop(ctx, channel, ready, fn, nil)
}

func (b *Bus) listenLoop(ctx context.Context, channel string, ready, fn, down func()) error {
	first := true
	for ctx.Err() == nil {
		// A failed connection is retried after a pause; the periodic
		// reload covers the gap.
		b.listen(ctx, channel, func() {
			if first {
				first = false
				if ready != nil {
					ready()
				}
			} else {
				fn()
			}
		}, fn)
		if down != nil {
			down()
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return ctx.Err()
}

func (b *Bus) listen(ctx context.Context, channel string, connected, fn func()) error {
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		fn()
	}
}

// Channel is one channel of a Bus, as coherence.Notifier wants it.
type Channel struct {
	b    *Bus
	name string
}

// Channel returns the bus's channel called name.
func (b *Bus) Channel(name string) Channel { return Channel{b, name} }

// Publish sends a notice on the channel.
func (c Channel) Publish(ctx context.Context) error { return c.b.Publish(ctx, c.name) }

// Listen is Bus.Listen on the channel; down is called whenever the
// listening connection is lost (and once when ctx ends).
func (c Channel) Listen(ctx context.Context, ready, notice, down func()) error {
	return c.b.listenLoop(ctx, c.name, ready, notice, down)
}
