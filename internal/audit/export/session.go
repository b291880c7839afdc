package export

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// syslogExport is one run of Export in FormatSyslog.
type syslogExport struct {
	opts Options
	addr string
	tls  *tls.Config
}

func newSyslogExport(opts Options) (*syslogExport, error) {
	if opts.Cursors == nil {
		return nil, fmt.Errorf("%w: syslog needs a record store for its cursor", ErrOptions)
	}
	if opts.CAFile == "" {
		return nil, fmt.Errorf("%w: syslog over TLS needs the receiver's CA file", ErrOptions)
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both its certificate and key files", ErrOptions)
	}
	u, err := url.Parse(opts.To)
	if err != nil || u.Scheme != "tls" || u.Hostname() == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: the receiver must be tls://host:port", ErrOptions)
	}
	port := u.Port()
	if port == "" {
		port = "6514" // RFC 5425 §4.1: syslog-tls
	}
	pem, err := os.ReadFile(opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the CA file: %w", ErrOptions, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: the CA file holds no PEM certificate", ErrOptions)
	}
	// RFC 5425 §5.2 and RFC 9325: certificate path validation against
	// the configured CA and the receiver's name; TLS 1.2 at least.
	cfg := &tls.Config{RootCAs: roots, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: loading the client certificate: %w", ErrOptions, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if opts.Name == "" {
		opts.Name = opts.To
	}
	if opts.Hostname == "" {
		opts.Hostname = defaultHostname()
	}
	opts.Hostname = printable(opts.Hostname, 255)
	if opts.SessionEvents <= 0 {
		opts.SessionEvents = 2000
	}
	if opts.SessionAge <= 0 {
		opts.SessionAge = 2 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	return &syslogExport{opts: opts, addr: net.JoinHostPort(u.Hostname(), port), tls: cfg}, nil
}

// run sends sessions until the end (or ctx), reconnecting with backoff.
func (s *syslogExport) run(ctx context.Context) error {
	next, err := loadCursor(ctx, s.opts.Cursors, s.opts.Name, s.opts.From)
	if err != nil {
		return err
	}
	end := s.opts.Journal.Len()
	backoff := s.opts.MinBackoff
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.opts.Follow {
			end = s.opts.Journal.Len()
		}
		if next >= end {
			if !s.opts.Follow {
				return nil
			}
			// Idle: hold no connection while nothing is pending.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(s.opts.Poll):
			}
			continue
		}
		acked, err := s.session(ctx, next, end)
		if err == nil {
			if err := s.opts.Cursors.PutRecord(ctx, store.Record{Kind: KindCursor, Key: s.opts.Name, Value: strconv.AppendUint(nil, acked, 10)}); err != nil {
				return err
			}
			next, backoff = acked, s.opts.MinBackoff
			continue
		}
		if errors.Is(err, ErrUntrustedReceiver) || errors.Is(err, ErrRefused) || errors.Is(err, errEvent) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.opts.Log != nil {
			s.opts.Log.Warn("audit export: syslog session failed; resending from the cursor", "receiver", s.addr, "cursor", next, "retry_in", backoff, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// errEvent marks a journal entry the exporter cannot send: retrying
// would not help, and skipping it would drop an event.
var errEvent = errors.New("export: journal entry cannot be exported")

// session sends the entries from next on in one TLS session and returns
// the cursor after the last one the receiver acknowledged by answering
// our close_notify. Without Follow it stops at end.
func (s *syslogExport) session(ctx context.Context, next, end uint64) (uint64, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: s.opts.Timeout}, Config: s.tls}
	dctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	c, err := d.DialContext(dctx, "tcp", s.addr)
	cancel()
	if err != nil {
		return next, classify(err)
	}
	conn := c.(*tls.Conn)
	defer conn.Close()
	// Closing the connection when ctx ends unblocks writes and reads.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// The receiver sends nothing but its close_notify (io.EOF) or an
	// alert; anything else is an error of the session.
	peer := make(chan error, 1)
	go func() {
		var b [512]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				peer <- err
				return
			}
		}
	}()

	// fail prefers the receiver's own reason (an alert refusing us) to
	// the broken pipe a write then meets.
	fail := func(err error) (uint64, error) {
		select {
		case perr := <-peer:
			if e := classify(perr); errors.Is(e, ErrRefused) {
				return next, e
			}
		case <-time.After(100 * time.Millisecond):
		}
		return next, classify(err)
	}

	w := bufio.NewWriterSize(conn, 64<<10)
	start := time.Now()
	sent := next
	var msg, frame []byte
	for {
		if s.opts.Follow {
			end = s.opts.Journal.Len()
		}
		limit := min(end, next+uint64(s.opts.SessionEvents))
		if sent < limit {
			err := s.opts.Journal.Read(sent, func(seq uint64, entry []byte) error {
				if seq >= limit {
					return errStop
				}
				ev, err := decodeEvent(entry, s.opts.StripQuery)
				if err != nil {
					return fmt.Errorf("%w: entry %d: %w", errEvent, seq, err)
				}
				if msg, err = AppendMessage(msg[:0], syslogMessage(ev, s.opts.Hostname)); err != nil {
					return fmt.Errorf("%w: entry %d: %w", errEvent, seq, err)
				}
				frame = AppendFrame(frame[:0], msg)
				conn.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
				if _, err := w.Write(frame); err != nil {
					return err
				}
				sent = seq + 1
				return nil
			})
			if errors.Is(err, errEvent) {
				return next, err
			}
			if err != nil && !errors.Is(err, errStop) {
				return fail(err)
			}
			conn.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
			if err := w.Flush(); err != nil {
				return fail(err)
			}
		}
		select {
		case err := <-peer:
			// The receiver ended the session before we did: what it
			// read of it is unknown.
			return next, fmt.Errorf("export: the receiver closed the session early: %w", classify(err))
		default:
		}
		if sent-next >= uint64(s.opts.SessionEvents) || time.Since(start) >= s.opts.SessionAge || (!s.opts.Follow && sent >= end) {
			break
		}
		if sent >= end {
			// Following and caught up: wait for more within the session.
			select {
			case <-ctx.Done():
				return next, ctx.Err()
			case err := <-peer:
				return next, fmt.Errorf("export: the receiver closed the session early: %w", classify(err))
			case <-time.After(min(s.opts.Poll, s.opts.SessionAge-time.Since(start))):
			}
		}
	}

	// RFC 5425 §4.4: the sender ends with close_notify; the receiver
	// answers with its own, after reading everything before ours.
	conn.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
	if err := conn.CloseWrite(); err != nil {
		return fail(err)
	}
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	select {
	case err := <-peer:
		if errors.Is(err, io.EOF) {
			return sent, nil
		}
		return next, classify(err)
	case <-timer.C:
		return next, errors.New("export: the receiver did not acknowledge the session")
	case <-ctx.Done():
		return next, ctx.Err()
	}
}

// classify marks the errors that retrying cannot fix: an untrusted
// receiver certificate and a TLS alert from the receiver.
func classify(err error) error {
	var verr *tls.CertificateVerificationError
	var herr x509.HostnameError
	var uerr x509.UnknownAuthorityError
	var ierr x509.CertificateInvalidError
	if errors.As(err, &verr) || errors.As(err, &herr) || errors.As(err, &uerr) || errors.As(err, &ierr) {
		return fmt.Errorf("%w: %w", ErrUntrustedReceiver, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" { // crypto/tls: an alert from the peer
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return err
}
