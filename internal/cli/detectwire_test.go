package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/detect"
)

// TestAlertRecord: a detection alert becomes a valid audit event that
// says what was done and why, and names a patient user by no id.
func TestAlertRecord(t *testing.T) {
	al := detect.Alert{Time: time.Date(2026, 3, 3, 3, 0, 0, 0, time.UTC), Client: "app", User: "Patient/*", Token: "jti-1",
		Peer: netip.MustParseAddr("10.0.0.7"), Action: detect.ActionQuarantine, Scope: detect.ScopeToken, Score: 5.5,
		Signals: []detect.Signal{{Name: detect.SigNetworks, Score: 5.5, Detail: "3 network switches (threshold 3)"}}}
	rec := alertRecord(al)
	ev, err := audit.Build(rec, "https://w.example/fhir")
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	b, _ := json.Marshal(ev)
	for _, want := range []string{"detection-alert", "quarantine on token", "networks=5.50", "jti-1", "10.0.0.7"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the event lacks %q: %s", want, b)
		}
	}
	if strings.Contains(string(b), "Patient/") {
		t.Errorf("the event names a patient: %s", b)
	}
}

// TestDetectAuth: the authorization server's failures count against the
// source address whatever code answered them (a failed sign-in is a page
// answered 200; an unknown grant a 400), its other answers do not (a
// DPoP nonce request is a 400 by design), and an address throttled
// stands refused in OAuth's error form.
func TestDetectAuth(t *testing.T) {
	p, err := detect.ParsePolicy([]byte("ladder:\n  - {at: 1, action: alert}\n  - {at: 2, action: throttle, for: 10m}\n" +
		"signals:\n  peer_errors: {weight: 1, scope: peer, threshold: 2, half_life: 1h, empty_search: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]http.HandlerFunc{
		"/auth/login": func(w http.ResponseWriter, r *http.Request) {
			audit.AnnotationsFrom(r.Context()).Denied("invalid-credentials")
			w.Write([]byte("<p>The username, password or code is wrong.</p>"))
		},
		"/auth/token": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant","error_description":"The refresh token is unknown."}`))
		},
		"/auth/nonce": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"use_dpop_nonce"}`))
		},
		"/auth/jwks": func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":[]}`)) },
	}
	mux := http.NewServeMux()
	for path, h := range answers {
		mux.Handle(path, h)
	}
	call := func(h http.Handler, path, peer string) *httptest.ResponseRecorder {
		ctx, _ := audit.WithAnnotations(context.Background())
		req := httptest.NewRequest("POST", path, nil).WithContext(ctx)
		req.RemoteAddr = peer + ":5000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		path  string
		fails bool
	}{{"/auth/login", true}, {"/auth/token", true}, {"/auth/nonce", false}, {"/auth/jwks", false}} {
		t.Run(tc.path, func(t *testing.T) {
			e, err := detect.New(p, detect.Options{})
			if err != nil {
				t.Fatal(err)
			}
			h := detectAuth(e, mux)
			for range 5 {
				call(h, tc.path, "198.51.100.9")
			}
			rec := call(h, "/auth/jwks", "198.51.100.9")
			if !tc.fails {
				if rec.Code != http.StatusOK {
					t.Fatalf("5 answers that are no failure, then %d: %s", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "temporarily_unavailable") {
				t.Fatalf("after 5 failures: %d %v %s", rec.Code, rec.Header(), rec.Body)
			}
			// Another address is not affected.
			if rec := call(h, "/auth/jwks", "198.51.100.10"); rec.Code != http.StatusOK {
				t.Fatalf("another address: %d", rec.Code)
			}
		})
	}
}
