package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/server"
)

// logBuffer is a bytes.Buffer safe for the server's goroutines and the
// test's to share.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the JSON log records written so far.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// accessLog waits for the access-log record of the request with id.
func (b *logBuffer) accessLog(t *testing.T, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, rec := range b.records(t) {
			if rec["msg"] == "request" && rec["request_id"] == id {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access-log record for request %s in:\n%s", id, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testServer is a running server and clients for it.
type testServer struct {
	srv    *server.Server
	base   string // https://127.0.0.1:port (or http:// with InsecureAllowHTTP)
	admin  string // http://127.0.0.1:port
	client *http.Client
	log    *logBuffer
	cancel context.CancelFunc
	served chan error // Serve's result
}

// devTLS returns the TLS configuration of a fresh development PKI and a
// pool holding its CA.
func devTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	p, err := mtls.EnsureDevPKI(t.TempDir(), []string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, err := mtls.NewListener(mtls.ServerOptions{CertFile: p.CertFile, KeyFile: p.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.TLSConfig()
	caPEM, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in ca.pem")
	}
	return cfg, roots
}

// start starts a server with opts (Addr, AdminAddr, TLS, Logger and
// ShutdownTimeout filled in when zero), routes registered, and waits until
// /healthz answers.
func start(t *testing.T, opts server.Options, routes map[string]http.Handler) *testServer {
	t.Helper()
	ts := &testServer{log: &logBuffer{}, served: make(chan error, 1)}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.AdminAddr == "" {
		opts.AdminAddr = "127.0.0.1:0"
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(ts.log, nil))
	}
	transport := &http.Transport{}
	scheme := "http"
	if !opts.InsecureAllowHTTP {
		cfg, roots := devTLS(t)
		opts.TLS = cfg
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: "localhost"}
		scheme = "https"
	}
	ts.client = &http.Client{Transport: transport, Timeout: 10 * time.Second}
	t.Cleanup(transport.CloseIdleConnections)

	ts.srv = server.New(opts)
	for prefix, h := range routes {
		ts.srv.Handle(prefix, h)
	}
	if err := ts.srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ts.base = scheme + "://" + ts.srv.Addr().String()
	ts.admin = "http://" + ts.srv.AdminAddr().String()

	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.served <- ts.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})

	ready := opts.Ready
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := ts.client.Get(ts.base + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// With a failing Ready, 503 is all /healthz will say.
			if resp.StatusCode == http.StatusOK || (ready != nil && ready(context.Background()) != nil) {
				return ts
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not serving: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do performs a request and returns the response with its body read.
func (ts *testServer) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

func (ts *testServer) get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ts.do(t, req)
}

func ok(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})
}

func TestStartRefusesMissingTLS(t *testing.T) {
	s := server.New(server.Options{Addr: "127.0.0.1:0"})
	err := s.Start()
	if err == nil {
		s.Close()
		t.Fatal("Start without TLS and without InsecureAllowHTTP succeeded")
	}
	if !strings.Contains(err.Error(), "TLS") {
		t.Errorf("error = %v; want it to name TLS", err)
	}
}

func TestStartAddressInUse(t *testing.T) {
	ts := start(t, server.Options{}, nil)
	cfg, _ := devTLS(t)
	for _, tc := range []struct {
		name string
		opts server.Options
	}{
		{"public", server.Options{Addr: ts.srv.Addr().String(), TLS: cfg}},
		{"admin", server.Options{Addr: "127.0.0.1:0", AdminAddr: ts.srv.AdminAddr().String(), TLS: cfg}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := server.New(tc.opts)
			if err := s.Start(); err == nil {
				s.Close()
				t.Fatal("Start on a bound address succeeded")
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	var mu sync.Mutex
	var readyErr error
	ready := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}
	ts := start(t, server.Options{Ready: ready}, nil)

	for _, url := range []string{ts.base + "/healthz", ts.admin + "/healthz"} {
		resp, body := ts.get(t, url)
		if resp.StatusCode != http.StatusOK || body != "ok\n" {
			t.Errorf("GET %s = %d %q, want 200 \"ok\\n\"", url, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s Cache-Control = %q, want no-store", url, got)
		}
	}

	mu.Lock()
	readyErr = errors.New("database at 10.0.0.5 unreachable")
	mu.Unlock()
	for _, url := range []string{ts.base + "/healthz", ts.admin + "/healthz"} {
		resp, body := ts.get(t, url)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s with a failing Ready = %d, want 503", url, resp.StatusCode)
		}
		if strings.Contains(body, "10.0.0.5") {
			t.Errorf("GET %s leaks the Ready error: %q", url, body)
		}
	}

	t.Run("POST is not allowed", func(t *testing.T) {
		resp, err := ts.client.Post(ts.base+"/healthz", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
		}
	})
}

func TestPlainHTTPToTLSPortFails(t *testing.T) {
	ts := start(t, server.Options{}, nil)
	plain := &http.Client{Timeout: 5 * time.Second}
	resp, err := plain.Get("http://" + ts.srv.Addr().String() + "/healthz")
	if err != nil {
		return // refused outright
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// net/http answers a plain request on a TLS connection with a bare
	// 400 before any handler runs.
	if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "ok") {
		t.Errorf("plain HTTP to the TLS port = %d %q; want a failure", resp.StatusCode, body)
	}
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		t.Errorf("plain HTTP request reached the handler (request id %s)", id)
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := start(t, server.Options{}, map[string]http.Handler{
		"/fhir": ok("{}"),
		"/boom": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
	})
	want := map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"Cache-Control":             "no-store",
		"Referrer-Policy":           "no-referrer",
		"Strict-Transport-Security": "max-age=63072000",
	}
	ids := map[string]bool{}
	paths := []string{"/fhir/Patient", "/healthz", "/no-such-route", "/boom"}
	for i := range 20 {
		path := paths[i%len(paths)]
		resp, _ := ts.get(t, ts.base+path)
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", path, k, got, v)
			}
		}
		id := resp.Header.Get("X-Request-Id")
		if len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("GET %s: X-Request-Id = %q, want 24 hex digits", path, id)
		}
		if ids[id] {
			t.Errorf("GET %s: X-Request-Id %q repeated", path, id)
		}
		ids[id] = true
	}
}

func TestPanicRecovery(t *testing.T) {
	const secret = "SECRET-PANIC-VALUE Patient/123 John Smith"
	ts := start(t, server.Options{}, map[string]http.Handler{
		"/boom": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Leak", "1")
			panic(secret)
		}),
		"/boom-error": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic(errors.New(secret))
		}),
	})
	for _, path := range []string{"/boom", "/boom-error"} {
		t.Run(path, func(t *testing.T) {
			resp, body := ts.get(t, ts.base+path)
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status = %d, want 500", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/fhir+json" {
				t.Errorf("Content-Type = %q, want application/fhir+json", ct)
			}
			if strings.Contains(body, "SECRET") || strings.Contains(body, "Smith") {
				t.Errorf("body leaks the panic value: %s", body)
			}
			var oo struct {
				ResourceType string `json:"resourceType"`
				Issue        []struct {
					Severity    string `json:"severity"`
					Code        string `json:"code"`
					Diagnostics string `json:"diagnostics"`
				} `json:"issue"`
			}
			if err := json.Unmarshal([]byte(body), &oo); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, body)
			}
			id := resp.Header.Get("X-Request-Id")
			if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != "exception" {
				t.Errorf("body = %s, want one exception issue in an OperationOutcome", body)
			} else if id == "" || !strings.Contains(oo.Issue[0].Diagnostics, id) {
				t.Errorf("diagnostics %q do not quote the request id %q", oo.Issue[0].Diagnostics, id)
			}
			// The log keeps the detail under the same id.
			rec := ts.log.accessLog(t, id)
			if rec["status"] != float64(http.StatusInternalServerError) {
				t.Errorf("access log status = %v, want 500", rec["status"])
			}
			found := false
			for _, r := range ts.log.records(t) {
				if r["msg"] == "panic" && r["request_id"] == id {
					found = true
				}
			}
			if !found {
				t.Errorf("no panic log record with request id %s", id)
			}
		})
	}

	// The server keeps serving.
	if resp, body := ts.get(t, ts.base+"/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("after panics, /healthz = %d %q", resp.StatusCode, body)
	}
}

func TestMaxBodyBytes(t *testing.T) {
	const limit = 1024
	type result struct {
		n   int
		err error
	}
	results := make(chan result, 8)
	ts := start(t, server.Options{MaxBodyBytes: limit}, map[string]http.Handler{
		"/echo": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			results <- result{len(b), err}
			if err != nil {
				http.Error(w, "too large", http.StatusRequestEntityTooLarge)
				return
			}
			io.WriteString(w, "read")
		}),
	})
	post := func(t *testing.T, body io.Reader) (result, int) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, ts.base+"/echo", body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ts.client.Do(req)
		if err != nil {
			// The server may close the connection before the
			// client finished sending; the handler result counts.
			return <-results, 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return <-results, resp.StatusCode
	}

	// The ways around the limit first: a declared length and a chunked
	// body of unknown length.
	over := []struct {
		name string
		body func() io.Reader
	}{
		{"Content-Length over the limit", func() io.Reader { return bytes.NewReader(make([]byte, 4*limit)) }},
		{"chunked over the limit", func() io.Reader { return io.MultiReader(strings.NewReader(strings.Repeat("a", 4*limit))) }},
		{"just over the slack byte", func() io.Reader { return bytes.NewReader(make([]byte, limit+2)) }},
	}
	for _, tc := range over {
		t.Run(tc.name, func(t *testing.T) {
			res, status := post(t, tc.body())
			var mbe *http.MaxBytesError
			if !errors.As(res.err, &mbe) {
				t.Fatalf("handler read %d bytes with error %v; want *http.MaxBytesError", res.n, res.err)
			}
			if res.n > limit+1 {
				t.Errorf("handler read %d bytes, more than the limit %d (+1)", res.n, limit)
			}
			if status != 0 && status != http.StatusRequestEntityTooLarge {
				t.Errorf("status = %d, want 413", status)
			}
		})
	}

	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"at the limit", limit},
		// One byte more is readable so that a handler reading limit+1
		// bytes can tell "too large" itself (fhirapi answers 413 so).
		{"one byte over, for the handler to detect", limit + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, status := post(t, bytes.NewReader(make([]byte, tc.size)))
			if res.err != nil || res.n != tc.size {
				t.Errorf("handler read %d bytes with error %v; want %d and no error", res.n, res.err, tc.size)
			}
			if status != http.StatusOK {
				t.Errorf("status = %d, want 200", status)
			}
		})
	}
}

func TestAccessLog(t *testing.T) {
	ts := start(t, server.Options{}, map[string]http.Handler{
		"/fhir": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "created")
		}),
	})
	resp, _ := ts.get(t, ts.base+"/fhir/Patient?name=SECRETNAME&birthdate=1970-01-01")
	id := resp.Header.Get("X-Request-Id")
	rec := ts.log.accessLog(t, id)

	want := map[string]any{
		"method":     "GET",
		"path":       "/fhir/Patient",
		"status":     float64(http.StatusCreated),
		"request_id": id,
		"bytes":      float64(len("created")),
		"level":      "INFO",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("access log %s = %v, want %v", k, rec[k], v)
		}
	}
	if _, ok := rec["duration"]; !ok {
		t.Error("access log has no duration")
	}
	logs := ts.log.String()
	for _, leak := range []string{"SECRETNAME", "name=", "1970-01-01", "birthdate"} {
		if strings.Contains(logs, leak) {
			t.Errorf("log contains %q from the query string:\n%s", leak, logs)
		}
	}
}

func TestMetrics(t *testing.T) {
	ts := start(t, server.Options{}, map[string]http.Handler{"/fhir": ok("{}")})
	for range 3 {
		ts.get(t, ts.base+"/fhir/Patient")
	}
	req, err := http.NewRequest("PROPFIND", ts.base+"/fhir/Patient", nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.do(t, req)

	resp, body := ts.get(t, ts.admin+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		"# TYPE warden_http_requests_total counter",
		`warden_http_requests_total{code="200",method="GET"}`,
		`warden_http_requests_total{code="200",method="other"}`,
		"warden_http_request_duration_seconds_bucket",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "PROPFIND") {
		t.Error("/metrics has an unbounded method label")
	}

	t.Run("not on the public listener", func(t *testing.T) {
		resp, _ := ts.get(t, ts.base+"/metrics")
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics is served on the public listener")
		}
	})
	t.Run("no pprof unless asked", func(t *testing.T) {
		resp, _ := ts.get(t, ts.admin+"/debug/pprof/")
		if resp.StatusCode == http.StatusOK {
			t.Error("/debug/pprof/ is served without AdminPprof")
		}
	})
}

func TestGracefulShutdown(t *testing.T) {
	entered := make(chan struct{})
	ts := start(t, server.Options{}, map[string]http.Handler{
		"/slow": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			time.Sleep(300 * time.Millisecond)
			io.WriteString(w, "done")
		}),
	})
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := ts.client.Get(ts.base + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()

	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("slow handler never ran")
	}
	ts.cancel()

	res := <-got
	if res.err != nil || res.status != http.StatusOK || res.body != "done" {
		t.Errorf("in-flight request = %d %q %v, want 200 \"done\"", res.status, res.body, res.err)
	}
	select {
	case err := <-ts.served:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		ts.served <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}

	// The listeners are closed.
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: ts.client.Transport.(*http.Transport).TLSClientConfig}, Timeout: 2 * time.Second}
	for _, url := range []string{ts.base + "/healthz", ts.admin + "/healthz"} {
		if resp, err := fresh.Get(url); err == nil {
			resp.Body.Close()
			t.Errorf("GET %s after shutdown = %d; want a connection error", url, resp.StatusCode)
		}
	}
}

func TestInsecureAllowHTTP(t *testing.T) {
	ts := start(t, server.Options{InsecureAllowHTTP: true}, map[string]http.Handler{"/fhir": ok("{}")})
	if !strings.HasPrefix(ts.base, "http://") {
		t.Fatalf("base = %s", ts.base)
	}
	resp, body := ts.get(t, ts.base+"/fhir/Patient")
	if resp.StatusCode != http.StatusOK || body != "{}" {
		t.Errorf("GET over plain HTTP = %d %q, want 200", resp.StatusCode, body)
	}
	if resp.TLS != nil {
		t.Error("response came over TLS")
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts != "" {
		t.Errorf("plain HTTP response carries HSTS %q", hsts)
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("plain HTTP response lacks the common headers")
	}

	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 2 * time.Second}
	if resp, err := tlsClient.Get("https://" + ts.srv.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("TLS to a plain HTTP listener succeeded")
	}
}

func TestHandlePrefix(t *testing.T) {
	ts := start(t, server.Options{}, map[string]http.Handler{"/fhir": ok("fhir")})
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/fhirx", http.StatusNotFound},
		{"/other", http.StatusNotFound},
		{"/fhir", http.StatusOK},
		{"/fhir/", http.StatusOK},
		{"/fhir/Patient/1/_history/2", http.StatusOK},
	} {
		resp, _ := ts.get(t, ts.base+tc.path)
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}
}
