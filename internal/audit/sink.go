package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Sink is where the request path sends every Record. It is the contract
// between the HTTP layer and the audit trail (ARCHITECTURE: "Audit is a
// sink with a durable Append that returns when the entry is sequenced").
//
// Append MUST return only when the event is durable: its commitment
// sequenced in the transparency log and the event itself kept (in the
// event store, or in a durable spool that recovery drains). Append MUST
// be safe for concurrent use. An implementation MUST NOT send anything but
// a commitment leaf to a shared log, and MUST NOT put a Record's values in
// its error texts.
//
// The caller MUST NOT release a response that discloses data before
// Append returned without error, and MUST answer 503 when it returns an
// error (fail closed). The caller MUST NOT retry Append for the same
// request after an error: the request is refused instead.
type Sink interface {
	Append(ctx context.Context, r Record) (Receipt, error)
}

// Receipt identifies the durable entry of one event.
type Receipt struct {
	Index   uint64 // the leaf index in the transparency log
	EventID string // the AuditEvent id in the event store
}

// Log is the transparency log as the Pipeline uses it; tlog.Log satisfies
// it. Append MUST return only once leaf is sequenced durably, with its
// index; on error the leaf may or may not have been sequenced.
type Log interface {
	Append(ctx context.Context, leaf []byte) (uint64, error)
}

// EventStore keeps full events locally, next to the resources (the lead
// implements it over the FHIR store). Put MUST be durable when it returns
// nil, and MUST be idempotent: a Put of an id already stored with the same
// canonical bytes, nonce and index succeeds (recovery may repeat a Put
// whose success was never reported). patients are the ids the event
// concerns (for the Patient compartment and search by patient); t is the
// event's recorded time.
type EventStore interface {
	Put(ctx context.Context, id string, canonical []byte, nonce [32]byte, index uint64, patients []string, t time.Time) error
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	// Base is the server's FHIR base URL, recorded as the observer.
	Base string
	// SpoolDir is the directory that keeps events whose leaf is in the
	// log but which the event store refused. Required.
	SpoolDir string
	// StoreAttempts is how many times a Put is tried before the event is
	// spooled; default 3.
	StoreAttempts int
	// RetryDelay is the pause between attempts, doubled after each; default 20ms.
	RetryDelay time.Duration
	// MaxSpooled bounds the spool (files); default 10,000. A full spool
	// fails Append with ErrSpool.
	MaxSpooled int
}

// Pipeline is the Sink: for each Record it builds the AuditEvent, gives it
// a random id, encodes it canonically, commits to it, appends the leaf to
// the Log and then stores the event with its leaf index.
//
// Order and failures:
//  1. Build/Canonical/Commit fail: nothing was sent anywhere; error.
//  2. Log.Append fails: the event is not stored; the error wraps ErrLog.
//     If the log did sequence the leaf anyway, it is a commitment without
//     an event (it reveals nothing; verification reports it as missing).
//  3. The log accepted: Put is tried StoreAttempts times (without the
//     request's cancellation: a client hanging up must not lose an event
//     whose leaf is already in the log). If every attempt fails, the
//     event is written to the spool (file fsync'd, then the directory) and
//     Append returns the Receipt with an error wrapping ErrStore; if the
//     spool fails too, the error also wraps ErrSpool and the event is lost.
//  4. Recover, run at start, stores every spooled event and removes it.
//
// A crash between steps 2 and 3 leaves a leaf without an event, but no
// response was released for it: Append had not returned.
type Pipeline struct {
	log    Log
	events EventStore
	base   string
	tries  int
	delay  time.Duration
	spool  *spool
}

// NewPipeline returns a Pipeline over log and events, spooling in
// opts.SpoolDir (created if missing).
func NewPipeline(log Log, events EventStore, opts PipelineOptions) (*Pipeline, error) {
	if log == nil || events == nil {
		return nil, errors.New("audit: pipeline needs a log and an event store")
	}
	if opts.StoreAttempts <= 0 {
		opts.StoreAttempts = 3
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 20 * time.Millisecond
	}
	if opts.MaxSpooled <= 0 {
		opts.MaxSpooled = 10000
	}
	sp, err := openSpool(opts.SpoolDir, opts.MaxSpooled)
	if err != nil {
		return nil, err
	}
	return &Pipeline{log: log, events: events, base: opts.Base, tries: opts.StoreAttempts, delay: opts.RetryDelay, spool: sp}, nil
}

// Append records r; see Pipeline for the order of steps and what each
// error means.
func (p *Pipeline) Append(ctx context.Context, r Record) (Receipt, error) {
	ev, err := Build(r, p.base)
	if err != nil {
		return Receipt{}, err
	}
	id := newEventID()
	ev["id"] = id
	canonical, err := Canonical(ev)
	if err != nil {
		return Receipt{}, err
	}
	c, err := Commit(canonical)
	if err != nil {
		return Receipt{}, err
	}
	index, err := p.log.Append(ctx, c.Leaf)
	if err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrLog, err)
	}
	rec := Receipt{Index: index, EventID: id}
	patients, _ := patientIDs(r.Patients) // Build checked them
	e := spooled{ID: id, Canonical: canonical, Nonce: c.Nonce, Index: index, Patients: patients, Time: r.Time.Add(r.Duration).UTC()}
	if err := p.put(context.WithoutCancel(ctx), e); err != nil {
		if serr := p.spool.keep(e); serr != nil {
			return rec, fmt.Errorf("%w (%w), %w", ErrStore, err, serr)
		}
		return rec, fmt.Errorf("%w, event spooled: %w", ErrStore, err)
	}
	return rec, nil
}

// put tries to store e up to p.tries times, backing off between tries.
func (p *Pipeline) put(ctx context.Context, e spooled) error {
	delay := p.delay
	var err error
	for i := range p.tries {
		if i > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			}
			delay *= 2
		}
		if err = p.events.Put(ctx, e.ID, e.Canonical, e.Nonce, e.Index, e.Patients, e.Time); err == nil {
			return nil
		}
	}
	return err
}

// Recover stores every spooled event (each checked against the
// commitment recorded with it) and removes it from the spool, in leaf
// index order, and returns how many it stored. Call it at start, before
// serving requests.
//
// A store failure stops it, leaving the rest spooled, and is reported
// wrapping ErrStore. A spool file that is unreadable or does not match
// its commitment is not stored: it is renamed with the suffix ".rejected"
// (kept for the investigation, never replayed), the others are recovered,
// and the error wraps ErrSpool.
func (p *Pipeline) Recover(ctx context.Context) (int, error) {
	names, err := p.spool.list()
	if err != nil {
		return 0, err
	}
	n := 0
	var rejected error
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		e, err := p.spool.read(name)
		if err != nil {
			rejected = errors.Join(rejected, err, p.spool.reject(name))
			continue
		}
		if err := p.put(ctx, e); err != nil {
			return n, fmt.Errorf("%w: recovering spooled event: %w", ErrStore, err)
		}
		if err := p.spool.remove(name); err != nil {
			return n, err
		}
		n++
	}
	return n, rejected
}

// Spooled returns the number of events waiting in the spool.
func (p *Pipeline) Spooled() int { return p.spool.count() }

// newEventID returns a random AuditEvent id: 128 bits, hex (a valid FHIR id).
func newEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
