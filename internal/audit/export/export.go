// Package export sends the audit trail to a SIEM: the events of the audit
// journal (internal/audit/journal), in journal order, as JSON lines to a
// writer or as RFC 5424 syslog messages over TLS (RFC 5425), from a
// cursor, once or following the journal as it grows.
//
// Syslog delivery is at least once: the cursor (a store record) moves
// past an event only when the receiver has acknowledged it, and a broken
// connection resumes from the cursor after a backoff, so an event may
// arrive twice but is never dropped. It never sends over plain TCP or
// TLS older than 1.2, never trusts a receiver without the configured CA,
// never changes an event other than to strip its query (StripQuery), and
// never writes event content into its errors or logs.
package export

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/store"
)

// Source is the journal the exporter reads.
type Source = audit.JournalReader

// Formats of Options.Format.
const (
	FormatJSONL  = "jsonl"
	FormatSyslog = "syslog"
)

// KindCursor is the records kind of syslog cursors: the key is
// Options.Name, the value the decimal sequence number of the next journal
// entry to send.
const KindCursor = "audit-exported"

// Errors returned by Export; test with errors.Is.
var (
	// ErrOptions: the options are incomplete or contradictory.
	ErrOptions = errors.New("export: invalid options")
	// ErrUntrustedReceiver: the receiver's certificate does not verify
	// against the CA file (unknown issuer, wrong name, expired). Not
	// retried.
	ErrUntrustedReceiver = errors.New("export: the syslog receiver's certificate is not trusted")
	// ErrRefused: the receiver refused the TLS session (a TLS alert: no
	// common version, client certificate rejected, ...). Not retried.
	ErrRefused = errors.New("export: the syslog receiver refused the TLS session")
)

// Options configure Export.
type Options struct {
	// Journal is the audit journal to read. Required.
	Journal Source
	// Format is FormatJSONL or FormatSyslog.
	Format string
	// From is the first journal entry to export: for JSON lines always,
	// for syslog when no cursor is persisted yet.
	From uint64
	// Follow keeps exporting as the journal grows until the context
	// ends; otherwise Export stops after the entries durable when it
	// started.
	Follow bool
	// StripQuery removes entity.query (the request's query string, whose
	// values may be PHI) from every event sent.
	StripQuery bool
	// Poll is how often a following export looks for new entries;
	// 200 ms when 0.
	Poll time.Duration

	// Out receives the JSON lines (FormatJSONL).
	Out io.Writer

	// To is the syslog receiver, tls://host:port (port 6514, RFC 5425
	// §4.1, when omitted).
	To string
	// CAFile is the PEM file of the CA(s) the receiver's certificate must
	// chain to. Required for syslog.
	CAFile string
	// CertFile and KeyFile are an optional client certificate (PEM).
	CertFile, KeyFile string
	// Cursors persists the syslog cursor. Required for syslog.
	Cursors store.Records
	// Name is the cursor's key; To when "". Two exports to the same
	// receiver with different names each send everything.
	Name string
	// Hostname is the HOSTNAME of messages; the machine's name when "".
	Hostname string
	// SessionEvents and SessionAge bound a TLS session: after that many
	// events or that long it is closed, which is how the receiver
	// acknowledges (see Export). Defaults 2000 and 2 s.
	SessionEvents int
	SessionAge    time.Duration
	// Timeout bounds dialing, each write and the wait for the
	// receiver's acknowledgement; 10 s when 0.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting
	// after a failure (doubling from the first to the second). Defaults
	// 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Log receives reconnection notices (never event content); nil for
	// none.
	Log *slog.Logger
}

// Export sends the journal's events as opts says. With Follow it runs
// until ctx ends and returns ctx's error; otherwise it returns nil once
// every entry durable at the start was written (JSON lines) or
// acknowledged by the receiver (syslog).
//
// Syslog has no acknowledgements of its own, so Export sends events in
// TLS sessions and takes the receiver's close_notify, answering ours at
// the end of a session (RFC 5425 §4.4), as proof that the receiver read
// every frame before it: only then does it persist the cursor past the
// session's events. A session that fails in any other way is sent again
// from the cursor.
func Export(ctx context.Context, opts Options) error {
	if opts.Journal == nil {
		return fmt.Errorf("%w: no journal", ErrOptions)
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
	}
	switch opts.Format {
	case FormatJSONL:
		if opts.Out == nil {
			return fmt.Errorf("%w: JSON lines need an output", ErrOptions)
		}
		return exportJSONL(ctx, opts)
	case FormatSyslog:
		s, err := newSyslogExport(opts)
		if err != nil {
			return err
		}
		return s.run(ctx)
	}
	return fmt.Errorf("%w: format must be %s or %s", ErrOptions, FormatJSONL, FormatSyslog)
}

// exportJSONL writes one canonical event per line.
func exportJSONL(ctx context.Context, opts Options) error {
	w := bufio.NewWriterSize(opts.Out, 64<<10)
	next := opts.From
	end := opts.Journal.Len()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if opts.Follow {
			end = opts.Journal.Len()
		}
		if next < end {
			err := opts.Journal.Read(next, func(seq uint64, entry []byte) error {
				if seq >= end {
					return errStop
				}
				ev, err := decodeEvent(entry, opts.StripQuery)
				if err != nil {
					return fmt.Errorf("journal entry %d: %w", seq, err)
				}
				w.Write(ev.canonical)
				if err := w.WriteByte('\n'); err != nil {
					return err
				}
				next = seq + 1
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if !opts.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(opts.Poll):
		}
	}
}

var errStop = errors.New("export: stop reading")

// loadCursor returns the persisted cursor of name, or from if none.
func loadCursor(ctx context.Context, rs store.Records, name string, from uint64) (uint64, error) {
	r, err := rs.GetRecord(ctx, KindCursor, name)
	if errors.Is(err, store.ErrNotFound) {
		return from, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(r.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("export: cursor record: %w", err)
	}
	return n, nil
}
