package webhook_test

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/detect/webhook"
)

const secret = "0123456789abcdef0123456789abcdef-test-secret"

func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func alert() detect.Alert {
	return detect.Alert{Time: time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC), Client: "ehr", User: "Practitioner/7", Token: "jti-1",
		Action: detect.ActionQuarantine, Scope: detect.ScopeUser, Score: 6,
		Signals: []detect.Signal{{Name: detect.SigVelocity, Score: 4.5, Detail: "600 distinct patients in the last hour (threshold 100)", Scope: detect.ScopeUser}}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  webhook.Config
	}{
		{"no URL", webhook.Config{}},
		{"relative URL", webhook.Config{URL: "/alerts"}},
		{"plain http to a remote host", webhook.Config{URL: "http://alerts.example.org/hook"}},
		{"another scheme", webhook.Config{URL: "ftp://alerts.example.org/hook"}},
		{"credentials in the URL", webhook.Config{URL: "https://user:pw@alerts.example.org/hook"}},
		{"missing secret file", webhook.Config{URL: "https://alerts.example.org/hook", SecretFile: "/nonexistent/secret"}},
		{"short secret", webhook.Config{URL: "https://alerts.example.org/hook", SecretFile: secretFile(t, "  short \n")}},
		{"negative queue", webhook.Config{URL: "https://alerts.example.org/hook", QueueSize: -1}},
		{"too many attempts", webhook.Config{URL: "https://alerts.example.org/hook", Attempts: 1000}},
		{"backoff above its maximum", webhook.Config{URL: "https://alerts.example.org/hook", Backoff: time.Minute, MaxBackoff: time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := webhook.New(c.cfg)
			if !errors.Is(err, webhook.ErrInvalidConfig) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error echoes the URL's password: %v", err)
			}
		})
	}
}

func TestDeliversSignedJSON(t *testing.T) {
	type got struct {
		body      []byte
		sig, ts   string
		ctype     string
		userAgent string
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{b, r.Header.Get(webhook.HeaderSignature), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get("Content-Type"), r.UserAgent()}
	}))
	defer srv.Close()
	s, err := webhook.New(webhook.Config{URL: srv.URL, SecretFile: secretFile(t, secret+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.Contains(s.String(), secret) {
		t.Error("String shows the secret")
	}
	s.Send(alert())
	var g got
	select {
	case g = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	if g.ctype != "application/json" {
		t.Errorf("Content-Type %q", g.ctype)
	}
	sec, err := strconv.ParseInt(g.ts, 10, 64)
	if err != nil {
		t.Fatalf("timestamp %q: %v", g.ts, err)
	}
	if want := webhook.Sign([]byte(secret), time.Unix(sec, 0), g.body); !hmac.Equal([]byte(g.sig), []byte(want)) {
		t.Errorf("signature %q, want %q", g.sig, want)
	}
	// A tampered body or another secret does not verify.
	if webhook.Sign([]byte(secret), time.Unix(sec, 0), append(g.body, ' ')) == g.sig ||
		webhook.Sign([]byte(secret+"x"), time.Unix(sec, 0), g.body) == g.sig ||
		webhook.Sign([]byte(secret), time.Unix(sec+1, 0), g.body) == g.sig {
		t.Error("signature does not bind body, secret and timestamp")
	}
	var p map[string]any
	if err := json.Unmarshal(g.body, &p); err != nil {
		t.Fatal(err)
	}
	if p["action"] != "quarantine" || p["scope"] != "user" || p["client"] != "ehr" || p["token"] != "jti-1" {
		t.Errorf("payload %v", p)
	}
	sigs, _ := p["signals"].([]any)
	if len(sigs) != 1 || sigs[0].(map[string]any)["name"] != "velocity" {
		t.Errorf("signals %v", p["signals"])
	}
	waitFor(t, "delivered count", func() bool { return s.Delivered() == 1 })
}

func TestRetriesWithBackoffThenGivesUp(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s, err := webhook.New(webhook.Config{URL: srv.URL, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Send(alert())
	waitFor(t, "delivery after two 503s", func() bool { return s.Delivered() == 1 })
	if h := hits.Load(); h != 3 {
		t.Errorf("%d attempts, want 3", h)
	}

	// A receiver that keeps failing: given up after Attempts.
	var down atomic.Int32
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer bad.Close()
	s2, err := webhook.New(webhook.Config{URL: bad.URL, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.Send(alert())
	waitFor(t, "failure after 3 attempts", func() bool { return s2.Failed() == 1 })
	if d := down.Load(); d != 3 {
		t.Errorf("%d attempts, want 3", d)
	}

	// A 4xx other than 408/429 is not retried.
	var refused atomic.Int32
	no := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	defer no.Close()
	s3, err := webhook.New(webhook.Config{URL: no.URL, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	s3.Send(alert())
	waitFor(t, "failure on 403", func() bool { return s3.Failed() == 1 })
	if r := refused.Load(); r != 1 {
		t.Errorf("%d attempts on a 403, want 1", r)
	}
}

func TestSendNeverBlocksAndCountsDrops(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	s, err := webhook.New(webhook.Config{URL: srv.URL, QueueSize: 2, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 100; i++ {
		s.Send(alert())
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 Sends to a stuck receiver took %s", d)
	}
	// One is in flight, two queued: at least 97 dropped.
	if d := s.Dropped(); d < 97 {
		t.Errorf("dropped %d, want at least 97", d)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a stuck receiver")
	}
	if d := s.Dropped(); d < 99 {
		t.Errorf("after Close dropped %d, want the queued ones counted too", d)
	}
}
