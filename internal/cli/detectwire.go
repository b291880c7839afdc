package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenfhir/warden/internal/adminapi"
	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/detect/promsink"
	"github.com/wardenfhir/warden/internal/detect/webhook"
	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/reqid"
	"github.com/wardenfhir/warden/internal/store"
)

// newDetector builds the abuse detection cfg asks for, with its alerts
// going to the audit trail (when there is one), Prometheus and the
// webhook. The closer stops the alert deliveries.
//
// The standing actions (step-up, throttle, quarantine) are shared through
// rec with every other process serving the same database; the returned
// Releaser lifts them everywhere (standingSync).
func newDetector(cfg config.Config, reg prometheus.Registerer, trail audit.Sink, rec store.Records, log *slog.Logger) (*detect.Engine, adminapi.Releaser, io.Closer, error) {
	dc := cfg.Detect
	if dc.Disabled {
		log.Error("ABUSE DETECTION IS OFF (detection.disabled): scraping and enumeration go unnoticed; never run this in production")
		return nil, nil, nil, nil
	}
	p := detect.DefaultPolicy()
	if dc.File != "" {
		b, err := os.ReadFile(dc.File)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("detection.file: %w", err)
		}
		if p, err = detect.ParsePolicy(b); err != nil {
			return nil, nil, nil, fmt.Errorf("detection.file %s: %w", dc.File, err)
		}
	}
	loc := time.UTC
	if dc.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(dc.Timezone); err != nil {
			return nil, nil, nil, fmt.Errorf("detection.timezone: %w", err)
		}
	}
	var closers closeAll
	metrics, err := promsink.New(reg)
	if err != nil {
		return nil, nil, nil, err
	}
	sinks := []detect.Sink{metrics}
	if trail != nil {
		a := newAuditAlerts(trail, log)
		sinks = append(sinks, a)
		closers = append(closers, a)
	}
	if dc.WebhookURL != "" {
		wh, err := webhook.New(webhook.Config{URL: dc.WebhookURL, SecretFile: dc.WebhookSecretFile})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("detection.webhook_url: %w", err)
		}
		sinks = append(sinks, wh)
		closers = append(closers, closerFunc(func() error { wh.Close(); return nil }))
	}
	shared := newStandingSync(rec, log)
	e, err := detect.New(p, detect.Options{Location: loc, Sinks: sinks, OnStand: shared.offer})
	if err != nil {
		closers.Close()
		return nil, nil, nil, err
	}
	shared.d = e
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); shared.run(ctx) }()
	closers = append(closeAll{closerFunc(func() error { stop(); <-done; return nil })}, closers...)
	return e, syncedRelease{d: e, s: shared}, closers, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// closeAll closes several things, in order.
type closeAll []io.Closer

func (c closeAll) Close() error {
	var first error
	for _, x := range c {
		if err := x.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// auditAlerts writes detection alerts to the audit trail, off the
// request path: Send queues, a goroutine appends.
type auditAlerts struct {
	trail   audit.Sink
	log     *slog.Logger
	queue   chan detect.Alert
	done    chan struct{}
	dropped atomic.Int64
}

func newAuditAlerts(trail audit.Sink, log *slog.Logger) *auditAlerts {
	a := &auditAlerts{trail: trail, log: log, queue: make(chan detect.Alert, 1024), done: make(chan struct{})}
	go a.run()
	return a
}

// Send implements detect.Sink; it never blocks (a full queue drops the
// alert and counts it: Prometheus and the webhook still have it).
func (a *auditAlerts) Send(al detect.Alert) {
	al.Signals = append([]detect.Signal(nil), al.Signals...)
	select {
	case a.queue <- al:
	default:
		a.dropped.Add(1)
	}
}

func (a *auditAlerts) run() {
	defer close(a.done)
	for al := range a.queue {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := a.trail.Append(ctx, alertRecord(al)); err != nil {
			a.log.Error("a detection alert could not be written to the audit trail", "error", err.Error())
		}
		cancel()
	}
}

// Close stops after the queued alerts are written.
func (a *auditAlerts) Close() error {
	close(a.queue)
	<-a.done
	if n := a.dropped.Load(); n > 0 {
		a.log.Error("detection alerts not written to the audit trail (queue full)", "dropped", n)
	}
	return nil
}

// alertRecord is an alert as an audit event of the admin surface: the
// action says what the detection did, the deny rule why (signals and
// score; no PHI).
func alertRecord(al detect.Alert) audit.Record {
	var why []string
	for _, s := range al.Signals {
		why = append(why, fmt.Sprintf("%s=%.2f (%s)", s.Name, s.Score, s.Detail))
	}
	rule := fmt.Sprintf("detect %s on %s, score %.2f: %s", al.Action, al.Scope, al.Score, strings.Join(why, "; "))
	if !al.Until.IsZero() {
		rule += "; until " + al.Until.UTC().Format(time.RFC3339)
	}
	rec := audit.Record{RequestID: reqid.New(), Time: al.Time, Surface: audit.SurfaceAdmin, Action: "detection-alert", Method: "-", Path: "/detection",
		Status: 200, DenyRule: rule, ClientID: al.Client, TokenID: al.Token, PeerAddr: al.Peer}
	if strings.HasPrefix(al.User, "Practitioner/") || strings.HasPrefix(al.User, "RelatedPerson/") {
		rec.FHIRUser = al.User
	}
	return rec
}

// detectAuth lets the abuse detection see the authorization server. No
// client is verified before it answers, so each request is observed as
// its source address's: refused client authentications (401), refused
// requests (403), unknown paths (404), unknown or spent grants
// ("invalid_grant") and failed sign-ins (an audit deny rule on a page
// answered 200) count toward the peer-errors signal, whose alerts go
// where every alert goes. An address that stands throttled or
// quarantined (here or on the FHIR API: the standing is the address's)
// is refused before its request is handled.
func detectAuth(d *detect.Engine, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var peer netip.Addr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			peer = ap.Addr().Unmap()
		}
		now := time.Now()
		switch act, until := d.CheckUntil("", "", "", peer, now); act {
		case detect.ActionThrottle:
			secs := int64(1)
			if !until.IsZero() {
				secs = max(int64(until.Sub(now).Seconds()+0.999), 1)
			}
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			audit.AnnotationsFrom(r.Context()).Denied("detect: throttle")
			limits.WriteAuthError(w, r, http.StatusTooManyRequests, "Requests from this network address are slowed down after unusual activity; retry after "+strconv.FormatInt(secs, 10)+" s.")
			return
		case detect.ActionQuarantine:
			audit.AnnotationsFrom(r.Context()).Denied("detect: quarantine")
			limits.WriteAuthError(w, r, http.StatusForbidden, "Access from this network address is suspended after unusual activity; the site's security team has been alerted.")
			return
		}
		sw := &authAnswer{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		var rec audit.Record
		audit.AnnotationsFrom(r.Context()).Apply(&rec)
		if rec.DenyRule != "" || (status == http.StatusBadRequest && bytes.Contains(sw.head, []byte(`"invalid_grant"`))) {
			status = http.StatusUnauthorized // a failed sign-in or grant, whatever page or code answered it
		}
		d.Observe(detect.Event{Time: now, Peer: peer, Interaction: detect.Other, Status: status})
	})
}

// authAnswer passes a response through, noting its status and the start
// of its body.
type authAnswer struct {
	http.ResponseWriter
	status int
	head   []byte
}

func (a *authAnswer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *authAnswer) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if n := min(len(b), 256-len(a.head)); n > 0 {
		a.head = append(a.head, b[:n]...)
	}
	return a.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (a *authAnswer) Unwrap() http.ResponseWriter { return a.ResponseWriter }
