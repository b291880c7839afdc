// Package server runs Warden's listeners: the public HTTPS listener in
// front of the FHIR API (request ids, limits, access logs without PHI,
// security headers, panic recovery) and the admin listener with metrics
// and health. It owns timeouts and graceful shutdown, nothing else.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wardenfhir/warden/internal/reqid"
)

// Options configure the listeners.
type Options struct {
	// Around, when set, wraps the public router inside the request id,
	// logging and recovery of every request (per-route client
	// certificate rules).
	Around            func(http.Handler) http.Handler
	Addr              string
	TLS               *tls.Config // nil only with InsecureAllowHTTP
	InsecureAllowHTTP bool        // plain HTTP; callers allow it only on loopback
	AdminAddr         string      // "" disables the admin listener
	AdminPprof        bool        // serve /debug/pprof/ on the admin listener
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	MaxBodyBytes      int64
	// MaxHeaderCount is the most header fields a request may carry
	// (RFC 6585 §5: 431 above it); 0 means DefaultMaxHeaderCount.
	MaxHeaderCount int
	// MaxURLBytes is the longest request target accepted (RFC 9110
	// §15.5.15: 414 above it); 0 means DefaultMaxURLBytes.
	MaxURLBytes int
	// MaxQueryParams is the most query parameters a request may carry
	// (400 above it); 0 means DefaultMaxQueryParams.
	MaxQueryParams int
	// TrustedProxies are the reverse proxies whose Forwarded (RFC 7239,
	// preferred when present) or X-Forwarded-For is believed: the
	// request's RemoteAddr becomes the client they name.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// Ready reports whether the server can serve (for /healthz).
	Ready func(ctx context.Context) error
}

// Defaults of the request limits a zero Options field takes.
const (
	DefaultMaxHeaderCount = 100
	DefaultMaxURLBytes    = 8 << 10
	DefaultMaxQueryParams = 200
)

// Server is the running set of listeners.
type Server struct {
	opts     Options
	handler  http.Handler
	registry *prometheus.Registry
	metrics  *metrics
	ready    atomic.Bool

	mux           *http.ServeMux
	public, admin *http.Server
	publicLn      net.Listener
	adminAPI      atomic.Pointer[http.Handler]
	adminLn       net.Listener
}

// New prepares a server. Routes are added with Handle before Serve;
// /healthz is always there.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxHeaderCount <= 0 {
		opts.MaxHeaderCount = DefaultMaxHeaderCount
	}
	if opts.MaxURLBytes <= 0 {
		opts.MaxURLBytes = DefaultMaxURLBytes
	}
	if opts.MaxQueryParams <= 0 {
		opts.MaxQueryParams = DefaultMaxQueryParams
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	s := &Server{opts: opts, registry: reg, metrics: newMetrics(reg)}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", s.healthz)
	var inner http.Handler = s.mux
	if opts.Around != nil {
		inner = opts.Around(s.mux)
	}
	s.handler = s.wrap(inner)
	return s
}

// Handle registers h for a subtree of the public listener: prefix and
// everything below it. It must be called before Serve.
func (s *Server) Handle(prefix string, h http.Handler) {
	s.mux.Handle(prefix+"/", h)
	s.mux.Handle(prefix, h)
}

// SetAdminAPI serves h under /admin/ on the admin listener (set after
// Start, when the components behind it are wired).
func (s *Server) SetAdminAPI(h http.Handler) { s.adminAPI.Store(&h) }

// Mux is the public listener's router, for components that mount several
// routes of their own (the authorization server).
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Metrics is the registry /metrics serves, for other components' metrics.
func (s *Server) Metrics() prometheus.Registerer { return s.registry }

// Close releases the listeners of a server that will not Serve.
func (s *Server) Close() {
	if s.publicLn != nil {
		s.publicLn.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
}

// Start binds the listeners; Serve must follow.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("server: listening on %s: %w", s.opts.Addr, err)
	}
	if !s.opts.InsecureAllowHTTP {
		if s.opts.TLS == nil {
			ln.Close()
			return errors.New("server: TLS configuration missing")
		}
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.publicLn = ln
	s.public = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
		TLSConfig:         s.opts.TLS,
	}
	if s.opts.AdminAddr != "" {
		aln, err := net.Listen("tcp", s.opts.AdminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("server: admin listener on %s: %w", s.opts.AdminAddr, err)
		}
		s.adminLn = aln
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", s.healthz)
		mux.Handle("/admin/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := s.adminAPI.Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			http.NotFound(w, r)
		}))
		if s.opts.AdminPprof {
			mux.HandleFunc("GET /debug/pprof/", pprof.Index)
			mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		}
		s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	return nil
}

// Addr is the bound public address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.publicLn.Addr() }

// AdminAddr is the bound admin address, or nil.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Serve serves until ctx is cancelled, then drains in-flight requests for
// up to ShutdownTimeout.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.public.Serve(s.publicLn) }()
	if s.admin != nil {
		go func() { errc <- s.admin.Serve(s.adminLn) }()
	}
	s.ready.Store(true)
	select {
	case err := <-errc:
		s.ready.Store(false)
		s.public.Close()
		if s.admin != nil {
			s.admin.Close()
		}
		return err
	case <-ctx.Done():
	}
	s.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := s.public.Shutdown(sctx)
	if s.admin != nil {
		s.admin.Shutdown(sctx)
	}
	return err
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.ready.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	w.Write([]byte("ok\n"))
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap adds what every request gets: an id, a body limit, security
// headers, panic recovery, metrics and one access-log line. The log line
// holds the method, the path without its query string (queries carry
// names and identifiers), the status, size and duration: no PHI.
func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		spoofed := forwardedByUntrusted(r, s.opts.TrustedProxies)
		if len(s.opts.TrustedProxies) > 0 {
			hops := r.Header.Values("X-Forwarded-For")
			if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
				hops = forwardedFor(fwd)
			}
			r.RemoteAddr = clientAddr(r.RemoteAddr, hops, s.opts.TrustedProxies)
		}
		id := reqid.New()
		ctx := reqid.With(r.Context(), id)
		if spoofed {
			s.metrics.spoofed.Inc()
			ctx = context.WithValue(ctx, spoofedKey{}, true)
		}
		r = r.WithContext(ctx)
		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		if !s.opts.InsecureAllowHTTP {
			h.Set("Strict-Transport-Security", "max-age=63072000")
		}
		if s.opts.MaxBodyBytes > 0 && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes+1)
		}
		sw := &statusWriter{ResponseWriter: w}
		if code, msg := s.refuse(r); code != 0 {
			h.Set("Content-Type", "application/fhir+json")
			h.Set("Connection", "close")
			sw.WriteHeader(code)
			sw.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"` + msg + `","diagnostics":"` + http.StatusText(code) + ` (request id ` + id + `)"}]}`))
			d := time.Since(start)
			s.metrics.observe(r.Method, sw.status, d)
			s.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "request refused",
				slog.String("request_id", id), slog.String("method", r.Method),
				slog.Int("status", sw.status), slog.Duration("duration", d), slog.String("peer", r.RemoteAddr))
			return
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				// The panic value may hold request data (PHI): log its type
				// and the stack, never the value.
				s.opts.Logger.LogAttrs(ctx, slog.LevelError, "panic", slog.String("request_id", id), slog.String("panic_type", fmt.Sprintf("%T", p)), slog.String("stack", string(debug.Stack())))
				if sw.status == 0 {
					for k := range h {
						switch k {
						case "X-Request-Id", "X-Content-Type-Options", "Cache-Control", "Referrer-Policy", "Strict-Transport-Security":
						default:
							h.Del(k)
						}
					}
					h.Set("Content-Type", "application/fhir+json")
					sw.WriteHeader(http.StatusInternalServerError)
					sw.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"Internal error (error id ` + id + `)"}]}`))
				}
			}
			d := time.Since(start)
			s.metrics.observe(r.Method, sw.status, d)
			s.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.status),
				slog.Int64("bytes", sw.bytes),
				slog.Duration("duration", d),
				slog.String("peer", r.RemoteAddr),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

// refuse checks the request line and headers against the limits before
// any handler sees them: the status to answer (0 to serve) and the
// OperationOutcome issue code.
func (s *Server) refuse(r *http.Request) (int, string) {
	if len(r.RequestURI) > s.opts.MaxURLBytes {
		return http.StatusRequestURITooLong, "too-long"
	}
	n := 0
	for _, v := range r.Header {
		n += len(v)
	}
	if r.Host != "" {
		n++ // net/http moves Host out of the header map
	}
	if n > s.opts.MaxHeaderCount {
		return http.StatusRequestHeaderFieldsTooLarge, "too-long"
	}
	if q := r.URL.RawQuery; q != "" && strings.Count(q, "&")+1 > s.opts.MaxQueryParams {
		return http.StatusBadRequest, "too-costly"
	}
	return 0, ""
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	spoofed  prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_http_requests_total", Help: "HTTP requests by method and status code."}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "warden_http_request_duration_seconds", Help: "HTTP request latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"method"}),
	}
	m.spoofed = prometheus.NewCounter(prometheus.CounterOpts{Name: "warden_http_spoofed_forwarding_total",
		Help: "Requests with X-Forwarded-For, Forwarded or X-Real-IP from a peer that is not a trusted proxy (the headers are ignored)."})
	reg.MustRegister(m.requests, m.duration, m.spoofed)
	return m
}

func (m *metrics) observe(method string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead:
	default:
		method = "other"
	}
	m.requests.WithLabelValues(method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
}

// clientAddr is the address of the client behind trusted proxies: when the
// direct peer is a trusted proxy, X-Forwarded-For is read from the right
// (the hop nearest to us) past every trusted proxy to the first address
// that is not one; everything left of it is the client's own claim and is
// ignored. A peer that is not trusted gets no say: its header is ignored.
// An unparsable entry stops the walk at the last trusted hop.
func clientAddr(remote string, xff []string, trusted []netip.Prefix) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil || !isTrusted(ap.Addr(), trusted) {
		return remote
	}
	var hops []string
	for _, h := range xff {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := ap.Addr()
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = a.Unmap().WithZone("")
		if !isTrusted(client, trusted) {
			break
		}
	}
	if client == ap.Addr() {
		return remote
	}
	return netip.AddrPortFrom(client, 0).String()
}

// forwardedFor lists the for= nodes of Forwarded header values
// (RFC 7239 §4), left to right, as plain addresses for clientAddr. A
// quoted IPv6 node ("[2001:db8::1]:4711") loses its brackets and port,
// an IPv4 node its port (§6). An element without for= and an obfuscated
// or "unknown" node (§6.2, §6.3) become "unknown", which stops the walk
// there: nothing left of an unidentified hop is believed.
func forwardedFor(values []string) []string {
	var hops []string
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			node := "unknown"
			for pair := range strings.SplitSeq(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					node = forwardedNode(val)
				}
			}
			hops = append(hops, node)
		}
	}
	return hops
}

// forwardedNode is the address of one RFC 7239 §6 node, or "unknown".
func forwardedNode(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return "unknown"
		}
		if rest := v[end+1:]; rest != "" && rest[0] != ':' {
			return "unknown"
		}
		v = v[1:end]
	} else if host, _, ok := strings.Cut(v, ":"); ok {
		v = host
	}
	if _, err := netip.ParseAddr(v); err != nil {
		return "unknown"
	}
	return v
}

// spoofedKey marks a request whose forwarding headers were ignored.
type spoofedKey struct{}

// ForwardedSpoofed reports whether the request in ctx carried
// X-Forwarded-For, Forwarded or X-Real-IP from a peer that is not a
// trusted proxy: the headers were ignored (the TCP peer is the client
// address), and the abuse detection counts it as a signal.
func ForwardedSpoofed(ctx context.Context) bool {
	v, _ := ctx.Value(spoofedKey{}).(bool)
	return v
}

// forwardedByUntrusted reports whether r names a client in forwarding
// headers although its TCP peer is not a trusted proxy.
func forwardedByUntrusted(r *http.Request, trusted []netip.Prefix) bool {
	h := r.Header
	if h.Get("X-Forwarded-For") == "" && h.Get("Forwarded") == "" && h.Get("X-Real-Ip") == "" {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err != nil || !isTrusted(ap.Addr(), trusted)
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
