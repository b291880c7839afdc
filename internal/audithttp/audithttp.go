// Package audithttp puts the audit trail in front of Warden's HTTP
// surfaces other than the FHIR API (which describes its requests itself):
// the SMART authorization server and the admin API. Every request gets an
// audit event; its response is held in memory and released only once the
// event is durable, and if the trail cannot take the event the answer is
// 503 and nothing of the held response leaves (ARCHITECTURE: nothing is
// served unaudited; fail closed).
//
// Handlers say what only they know (the authenticated client, the user,
// the token issued) through audit.AnnotationsFrom(r.Context()). The
// request's own values go only into the local event, with credential
// parameters redacted by package audit; this package never logs them.
package audithttp

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/reqid"
)

// Held is a response kept in memory until its audit event is durable.
type Held struct {
	header http.Header
	status int
	body   []byte
	// written, when set, is called once the adopted body is no longer
	// needed (see AdoptRecycled).
	written func()
}

// NewHeld returns an empty held response.
func NewHeld() *Held { return &Held{header: http.Header{}} }

// Header implements http.ResponseWriter.
func (h *Held) Header() http.Header { return h.header }

// WriteHeader implements http.ResponseWriter; the first status wins.
func (h *Held) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

// Write implements http.ResponseWriter.
func (h *Held) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	if h.body == nil {
		// Handlers mostly write the whole body at once: one copy of
		// exactly its size, not a buffer grown by doubling.
		h.body = make([]byte, 0, max(len(b), 512))
	}
	h.body = append(h.body, b...)
	return len(b), nil
}

// Adopt is Write for a body its caller hands over: b becomes the held
// body without a copy, which for a page of search results is a large
// allocation and copy saved. The caller MUST NOT change b afterwards; a
// later Write appends to a copy, never into b's spare capacity.
func (h *Held) Adopt(b []byte) {
	if h.body != nil {
		h.Write(b)
		return
	}
	if h.status == 0 {
		h.status = http.StatusOK
	}
	h.body = b[:len(b):len(b)]
}

// AdoptRecycled is Adopt for a body whose buffer its caller reuses:
// written is called once nothing here refers to b any more, after Release
// has written it (or at once, when b was copied because a body had been
// written before). A Held dropped unreleased never calls it; b is then
// left to the garbage collector.
func (h *Held) AdoptRecycled(b []byte, written func()) {
	if h.body != nil {
		h.Write(b)
		written()
		return
	}
	h.Adopt(b)
	h.written = written
}

// Status is the status written so far (200 if only a body was).
func (h *Held) Status() int {
	if h.status == 0 {
		return http.StatusOK
	}
	return h.status
}

// Release sends the held response to w.
func (h *Held) Release(w http.ResponseWriter) {
	dst := w.Header()
	for k, v := range h.header {
		dst[k] = v
	}
	w.WriteHeader(h.Status())
	w.Write(h.body)
	if h.written != nil {
		// An io.Writer does not keep what it was given.
		h.body = nil
		h.written()
		h.written = nil
	}
}

// Timeout bounds how long a request waits for its audit event.
const Timeout = 10 * time.Second

// Options configures Handler.
type Options struct {
	Sink    audit.Sink
	Surface string // audit.SurfaceAuth or audit.SurfaceAdmin
	// Action names the request's action (see audit.Record.Action).
	Action func(r *http.Request) string
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

// Handler audits every request next serves.
func Handler(o Options, next http.Handler) http.Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := o.Now()
		ctx, notes := audit.WithAnnotations(r.Context())
		r = r.WithContext(ctx)
		held := NewHeld()
		next.ServeHTTP(held, r)
		rec := audit.Record{
			RequestID: reqid.From(ctx),
			Time:      start,
			Duration:  max(o.Now().Sub(start), 0),
			Surface:   o.Surface,
			Action:    o.Action(r),
			Method:    r.Method,
			Path:      validUTF8(r.URL.Path),
			Query:     values(r),
			Status:    held.Status(),
		}
		if rec.RequestID == "" || rec.RequestID == "-" {
			rec.RequestID = reqid.New()
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			rec.PeerAddr = ap.Addr().Unmap()
		}
		rec.CertThumbprint = mtls.PeerThumbprint(r.TLS)
		notes.Apply(&rec)
		if rec.ClientID == "" {
			rec.ClientID = claimedClient(r)
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
		defer cancel()
		if _, err := o.Sink.Append(actx, rec); err != nil {
			o.Logger.Error("audit trail refused an event; request answered 503", "request_id", rec.RequestID, "error", err.Error())
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"The audit trail is unavailable; nothing was done that can be disclosed. Retry later (error id ` + rec.RequestID + `)."}`))
			return
		}
		held.Release(w)
	})
}

// values is the request's query and, when the handler parsed one, its
// form body: the local event keeps them (package audit redacts
// credentials). Invalid UTF-8 is dropped, not recorded.
func values(r *http.Request) url.Values {
	out := url.Values{}
	add := func(q url.Values) {
		for k, vs := range q {
			if !utf8.ValidString(k) {
				continue
			}
			for _, v := range vs {
				if utf8.ValidString(v) {
					out[k] = append(out[k], v)
				}
			}
		}
	}
	add(r.URL.Query())
	add(r.PostForm)
	if len(out) == 0 {
		return nil
	}
	return out
}

// claimedClient is the client_id the request names (query, form or HTTP
// Basic), for requests whose handler did not authenticate a client.
func claimedClient(r *http.Request) string {
	if id := r.URL.Query().Get("client_id"); id != "" {
		return printable(id)
	}
	if id := r.PostForm.Get("client_id"); id != "" {
		return printable(id)
	}
	if id, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(id); err == nil {
			return printable(u)
		}
	}
	return ""
}

// printable keeps a claimed identifier only if it is short, valid and
// free of control characters (it is attacker-supplied).
func printable(s string) string {
	if len(s) > 256 || !utf8.ValidString(s) {
		return ""
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return ""
		}
	}
	return s
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return "/"
}
