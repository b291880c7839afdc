package audithttp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/reqid"
)

// recordingSink keeps what it is given; err makes it refuse. wait, when
// set, is closed by the test to let Append return.
type recordingSink struct {
	mu      sync.Mutex
	records []audit.Record
	err     error
	entered chan struct{}
	wait    chan struct{}
}

func (s *recordingSink) Append(ctx context.Context, r audit.Record) (audit.Receipt, error) {
	if s.entered != nil {
		close(s.entered)
	}
	if s.wait != nil {
		<-s.wait
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return audit.Receipt{}, s.err
	}
	s.records = append(s.records, r)
	return audit.Receipt{EventID: "e1"}, nil
}

// secretHandler answers like a token endpoint: a credential in the body.
var secretHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	notes := audit.AnnotationsFrom(r.Context())
	notes.Client("app-1")
	notes.User("user-7", "Practitioner/p1")
	notes.Patient("pat-1")
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"access_token":"SECRET-TOKEN"}`))
})

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	r = r.WithContext(reqid.With(r.Context(), "req-1"))
	r.RemoteAddr = "192.0.2.7:5555"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func tokenRequest() *http.Request {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"AUTHCODE"}, "client_id": {"claimed"}, "password": {"pw"}}
	r := httptest.NewRequest(http.MethodPost, "/auth/token?x=1", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func options(s audit.Sink) Options {
	return Options{Sink: s, Surface: audit.SurfaceAuth, Action: func(*http.Request) string { return "token" }}
}

// The audit trail refusing the event means 503, and none of the held
// response (here a token) leaves.
func TestFailsClosed(t *testing.T) {
	for _, err := range []error{audit.ErrLog, audit.ErrStore, context.DeadlineExceeded} {
		s := &recordingSink{err: err}
		w := serve(Handler(options(s), secretHandler), tokenRequest())
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%v: status %d, want 503", err, w.Code)
		}
		if b := w.Body.String(); strings.Contains(b, "SECRET-TOKEN") || !strings.Contains(b, "req-1") {
			t.Fatalf("%v: body %q leaks the held response or lacks the request id", err, b)
		}
		if w.Header().Get("Retry-After") == "" {
			t.Errorf("%v: no Retry-After", err)
		}
	}
}

// Nothing reaches the client before the event is durable.
func TestHeldUntilDurable(t *testing.T) {
	s := &recordingSink{entered: make(chan struct{}), wait: make(chan struct{})}
	srv := httptest.NewServer(Handler(options(s), secretHandler))
	defer srv.Close()
	got := make(chan string, 1)
	go func() {
		resp, err := http.PostForm(srv.URL+"/auth/token", url.Values{"grant_type": {"client_credentials"}})
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-s.entered
	select {
	case b := <-got:
		t.Fatalf("response %q released before the event was durable", b)
	default:
	}
	close(s.wait)
	if b := <-got; !strings.Contains(b, "SECRET-TOKEN") {
		t.Fatalf("after the event: %q", b)
	}
}

// The event says what the handler learnt, where the request came from,
// and keeps the form only locally with credentials redacted.
func TestRecord(t *testing.T) {
	s := &recordingSink{}
	w := serve(Handler(options(s), secretHandler), tokenRequest())
	if w.Code != 200 || !strings.Contains(w.Body.String(), "SECRET-TOKEN") {
		t.Fatalf("status %d body %q", w.Code, w.Body)
	}
	if len(s.records) != 1 {
		t.Fatalf("%d records", len(s.records))
	}
	r := s.records[0]
	if r.ClientID != "app-1" || r.Subject != "user-7" || r.FHIRUser != "Practitioner/p1" || r.RequestID != "req-1" ||
		r.PeerAddr.String() != "192.0.2.7" || r.Status != 200 || r.Action != "token" || r.Surface != audit.SurfaceAuth ||
		len(r.Patients) != 1 || r.Patients[0] != "pat-1" {
		t.Fatalf("record %+v", r)
	}
	if r.Query.Get("x") != "1" || r.Query.Get("grant_type") != "authorization_code" {
		t.Fatalf("query/form not kept: %v", r.Query)
	}
	ev, err := audit.Build(r, "https://warden.example/fhir")
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"AUTHCODE", "pw", "SECRET-TOKEN"} {
		if strings.Contains(string(c), secret) {
			t.Errorf("event contains %q", secret)
		}
	}
}

// A refused request still names the client it claimed to be, and only a
// printable, bounded claim.
func TestClaimedClient(t *testing.T) {
	for claim, want := range map[string]string{"app-9": "app-9", "bad\x01id": "", strings.Repeat("a", 300): ""} {
		s := &recordingSink{}
		refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.ParseForm()
			audit.AnnotationsFrom(r.Context()).Denied("invalid-client")
			http.Error(w, "no", http.StatusUnauthorized)
		})
		r := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(url.Values{"client_id": {claim}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		serve(Handler(options(s), refuse), r)
		got := s.records[0]
		if got.ClientID != want || got.DenyRule != "invalid-client" || got.Status != 401 {
			t.Errorf("claim %q: client %q deny %q status %d", claim, got.ClientID, got.DenyRule, got.Status)
		}
	}
	s := &recordingSink{}
	r := httptest.NewRequest(http.MethodPost, "/auth/introspect", nil)
	r.SetBasicAuth("basic%2Dclient", "secret")
	serve(Handler(options(s), http.NotFoundHandler()), r)
	if s.records[0].ClientID != "basic-client" {
		t.Errorf("basic auth client %q", s.records[0].ClientID)
	}
}

// TestHeldAdopt: an adopted body is held without a copy and released as
// it was; a later write appends to a copy, never into the adopted
// slice's spare capacity (which may be shared: a cached response's
// bytes); a write before it makes Adopt append.
func TestHeldAdopt(t *testing.T) {
	shared := make([]byte, 5, 64)
	copy(shared, "hello")
	h := NewHeld()
	h.Adopt(shared)
	if &h.body[0] != &shared[0] {
		t.Error("Adopt copied the body")
	}
	if h.Status() != http.StatusOK {
		t.Errorf("status %d, want 200", h.Status())
	}
	h.Write([]byte(" world"))
	if spare := shared[:cap(shared)][5:11]; string(spare) == " world" {
		t.Error("a later Write went into the adopted slice's spare capacity")
	}
	rec := httptest.NewRecorder()
	h.Release(rec)
	if got := rec.Body.String(); got != "hello world" {
		t.Errorf("released %q, want %q", got, "hello world")
	}
	if string(shared) != "hello" {
		t.Errorf("the adopted slice changed: %q", shared)
	}

	h = NewHeld()
	h.WriteHeader(http.StatusCreated)
	h.Write([]byte("a"))
	h.Adopt([]byte("b"))
	rec = httptest.NewRecorder()
	h.Release(rec)
	if rec.Code != http.StatusCreated || rec.Body.String() != "ab" {
		t.Errorf("released %d %q, want 201 \"ab\"", rec.Code, rec.Body.String())
	}
}

// TestHeldAdoptRecycled: the callback that lets the caller reuse the
// body's buffer runs only once the body is written, exactly once, and at
// once when the body was copied; a Held never released never calls it.
func TestHeldAdoptRecycled(t *testing.T) {
	body := []byte("page")
	calls := 0
	h := NewHeld()
	h.AdoptRecycled(body, func() {
		calls++
		copy(body, "XXXX") // the buffer's next user
	})
	if calls != 0 {
		t.Fatal("recycled before the body was written")
	}
	rec := &checkingWriter{ResponseRecorder: httptest.NewRecorder(), calls: &calls}
	h.Release(rec)
	if calls != 1 || rec.Body.String() != "page" {
		t.Fatalf("after Release: %d calls, body %q; want 1 and \"page\"", calls, rec.Body.String())
	}
	if rec.sawCall {
		t.Error("recycled while the body was being written")
	}

	calls = 0
	h = NewHeld()
	h.Write([]byte("a"))
	h.AdoptRecycled([]byte("b"), func() { calls++ })
	if calls != 1 {
		t.Fatalf("a body copied at once: %d calls, want 1", calls)
	}
	rec2 := httptest.NewRecorder()
	h.Release(rec2)
	if calls != 1 || rec2.Body.String() != "ab" {
		t.Errorf("after Release: %d calls, body %q; want 1 and \"ab\"", calls, rec2.Body.String())
	}

	calls = 0
	NewHeld().AdoptRecycled([]byte("dropped"), func() { calls++ })
	if calls != 0 {
		t.Error("a Held never released recycled its body")
	}
}

// checkingWriter notes whether the recycle callback had run when Write
// was called.
type checkingWriter struct {
	*httptest.ResponseRecorder
	calls   *int
	sawCall bool
}

func (w *checkingWriter) Write(b []byte) (int, error) {
	w.sawCall = w.sawCall || *w.calls > 0
	return w.ResponseRecorder.Write(b)
}
