// Package webhook delivers detection alerts as JSON POSTs to one HTTPS
// endpoint. It owns a bounded queue and one delivery goroutine: Send
// never blocks (a full queue drops the alert and counts it), failed
// deliveries are retried with exponential backoff, and each body can be
// signed with HMAC-SHA256 under a secret read from a file.
//
// It never sends more than a detect.Alert holds (counts and the caller's
// own identifiers, never PHI) and never logs the secret or a body.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("webhook: invalid configuration")

// The headers of a delivery. The signature is
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)), the
// timestamp being Unix seconds, so a receiver can refuse stale replays.
const (
	HeaderSignature = "X-Warden-Signature"
	HeaderTimestamp = "X-Warden-Timestamp"
)

// Config is the webhook's configuration.
type Config struct {
	// URL is where alerts are POSTed: https, or http to a loopback
	// address only.
	URL string
	// SecretFile names a file holding the HMAC secret (at least 32
	// bytes; surrounding white space is trimmed). Empty: unsigned.
	SecretFile string
	// QueueSize bounds the alerts waiting for delivery (default 1024).
	QueueSize int
	// Timeout bounds one delivery attempt (default 5s).
	Timeout time.Duration
	// Attempts is how many times one alert is tried (default 5).
	Attempts int
	// Backoff is the wait before the first retry, doubled after each
	// (with jitter), at most MaxBackoff (defaults 500ms and 30s).
	Backoff, MaxBackoff time.Duration
	// Client sends the requests (default: a client with Timeout that
	// does not follow redirects).
	Client *http.Client
}

// Sink is a detect.Sink that POSTs alerts.
type Sink struct {
	cfg    Config
	u      *url.URL
	secret []byte
	queue  chan detect.Alert
	now    func() time.Time

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	delivered, failed, dropped atomic.Uint64
}

var _ detect.Sink = (*Sink)(nil)

// New checks cfg, reads the secret and starts the delivery goroutine;
// Close stops it.
func New(cfg Config) (*Sink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: url: not an absolute URL", ErrInvalidConfig)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: url: carries credentials; use secret_file for signing", ErrInvalidConfig)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: url: http is allowed to a loopback address only", ErrInvalidConfig)
		}
	default:
		return nil, fmt.Errorf("%w: url: scheme %q: want https", ErrInvalidConfig, u.Scheme)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	switch {
	case cfg.QueueSize < 1 || cfg.QueueSize > 1_000_000:
		return nil, fmt.Errorf("%w: queue_size %d: must be from 1 to 1000000", ErrInvalidConfig, cfg.QueueSize)
	case cfg.Timeout < time.Millisecond || cfg.Timeout > time.Minute:
		return nil, fmt.Errorf("%w: timeout %s: must be from 1ms to 1m", ErrInvalidConfig, cfg.Timeout)
	case cfg.Attempts < 1 || cfg.Attempts > 20:
		return nil, fmt.Errorf("%w: attempts %d: must be from 1 to 20", ErrInvalidConfig, cfg.Attempts)
	case cfg.Backoff < time.Millisecond || cfg.MaxBackoff < cfg.Backoff || cfg.MaxBackoff > time.Hour:
		return nil, fmt.Errorf("%w: backoff %s, max_backoff %s: want 1ms ≤ backoff ≤ max_backoff ≤ 1h", ErrInvalidConfig, cfg.Backoff, cfg.MaxBackoff)
	}
	s := &Sink{cfg: cfg, u: u, queue: make(chan detect.Alert, cfg.QueueSize), now: time.Now, done: make(chan struct{})}
	if cfg.SecretFile != "" {
		b, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("%w: secret_file: %w", ErrInvalidConfig, err)
		}
		s.secret = bytes.TrimSpace(b)
		if len(s.secret) < 32 {
			return nil, fmt.Errorf("%w: secret_file: the secret is %d bytes; want at least 32", ErrInvalidConfig, len(s.secret))
		}
	}
	if s.cfg.Client == nil {
		s.cfg.Client = &http.Client{Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send queues a for delivery; when the queue is full it drops a and
// counts it. It never blocks.
func (s *Sink) Send(a detect.Alert) {
	a.Signals = append([]detect.Signal(nil), a.Signals...)
	select {
	case s.queue <- a:
	default:
		s.dropped.Add(1)
	}
}

// Close stops delivery: the alert being delivered is abandoned between
// attempts, and queued ones are counted as dropped.
func (s *Sink) Close() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		for {
			select {
			case <-s.queue:
				s.dropped.Add(1)
			default:
				return
			}
		}
	})
	return nil
}

// Delivered, Failed and Dropped count alerts answered 2xx, given up after
// every attempt (or refused with a 4xx other than 408 and 429), and never
// tried because the queue was full or the sink closed.
func (s *Sink) Delivered() uint64 { return s.delivered.Load() }
func (s *Sink) Failed() uint64    { return s.failed.Load() }
func (s *Sink) Dropped() uint64   { return s.dropped.Load() }

func (s *Sink) run(ctx context.Context) {
	defer close(s.done)
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-s.queue:
			s.deliver(ctx, a)
		}
	}
}

// payload is the JSON body of one alert.
type payload struct {
	Time    time.Time `json:"time"`
	Client  string    `json:"client,omitempty"`
	User    string    `json:"user,omitempty"`
	Token   string    `json:"token,omitempty"`
	Peer    string    `json:"peer,omitempty"`
	Action  string    `json:"action"`
	Scope   string    `json:"scope"`
	Until   string    `json:"until,omitempty"`
	Score   float64   `json:"score"`
	Signals []signal  `json:"signals"`
}

type signal struct {
	Name   string  `json:"name"`
	Score  float64 `json:"score"`
	Detail string  `json:"detail"`
}

// Body is the JSON document an alert is delivered as.
func Body(a detect.Alert) ([]byte, error) {
	p := payload{Time: a.Time.UTC(), Client: a.Client, User: a.User, Token: a.Token, Action: a.Action.String(),
		Scope: a.Scope.String(), Score: a.Score, Signals: make([]signal, 0, len(a.Signals))}
	if a.Peer.IsValid() {
		p.Peer = a.Peer.String()
	}
	if !a.Until.IsZero() {
		p.Until = a.Until.UTC().Format(time.RFC3339)
	}
	for _, sg := range a.Signals {
		p.Signals = append(p.Signals, signal{sg.Name, sg.Score, sg.Detail})
	}
	return json.Marshal(p)
}

// Sign is the signature header value of body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (s *Sink) deliver(ctx context.Context, a detect.Alert) {
	body, err := Body(a)
	if err != nil {
		s.failed.Add(1)
		return
	}
	wait := s.cfg.Backoff
	for attempt := 1; ; attempt++ {
		retry := s.attempt(ctx, body)
		if !retry {
			return
		}
		if attempt >= s.cfg.Attempts {
			s.failed.Add(1)
			return
		}
		jitter := time.Duration(rand.Int64N(int64(wait)/2 + 1))
		t := time.NewTimer(wait/2 + jitter + wait/4)
		select {
		case <-ctx.Done():
			t.Stop()
			s.dropped.Add(1)
			return
		case <-t.C:
		}
		wait = min(2*wait, s.cfg.MaxBackoff)
	}
}

// attempt POSTs body once and reports whether to try again.
func (s *Sink) attempt(ctx context.Context, body []byte) (retry bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.u.String(), bytes.NewReader(body))
	if err != nil {
		s.failed.Add(1)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "warden-detect-webhook")
	if s.secret != nil {
		ts := s.now()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set(HeaderSignature, Sign(s.secret, ts, body))
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return true
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		s.delivered.Add(1)
		return false
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true
	default:
		s.failed.Add(1)
		return false
	}
}

// String describes the sink without its secret.
func (s *Sink) String() string {
	if s.secret != nil {
		return "webhook " + s.u.Redacted() + " (signed)"
	}
	return "webhook " + s.u.Redacted()
}
