package fhirapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/fhirapi"
)

// alertLog records the detection's alerts.
type alertLog struct {
	mu     sync.Mutex
	alerts []detect.Alert
}

func (l *alertLog) Send(a detect.Alert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.Signals = slices.Clone(a.Signals)
	l.alerts = append(l.alerts, a)
}

// signalled reports whether an alert named signal.
func (l *alertLog) signalled(signal string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.alerts {
		for _, s := range a.Signals {
			if s.Name == signal {
				return true
			}
		}
	}
	return false
}

// detectFixture is the authorization fixture with the default detection
// policy, a clock the test moves, and requests sent straight to the
// handler so that each can come from its own address.
type detectFixture struct {
	*authzFixture
	alerts  *alertLog
	now     time.Time
	spoofed bool
}

func newDetectFixture(t *testing.T, start time.Time, tune ...func(*detect.Policy)) *detectFixture {
	t.Helper()
	f := &detectFixture{alerts: &alertLog{}, now: start}
	pol := detect.DefaultPolicy()
	for _, fn := range tune {
		fn(&pol)
	}
	eng, err := detect.New(pol, detect.Options{Sinks: []detect.Sink{f.alerts}})
	if err != nil {
		t.Fatal(err)
	}
	f.authzFixture = newAuthzFixture(t, func(o *fhirapi.Options) {
		o.Detector = eng
		o.Now = func() time.Time { return f.now }
		o.Spoofed = func(context.Context) bool { return f.spoofed }
	})
	// One token per name (the fixture's share an id per client).
	for name, p := range f.tokens() {
		p.TokenID = "jti-" + name
	}
	return f
}

// from sends a request with token from peer and returns the status.
func (f *detectFixture) from(peer, token, path string) int {
	f.t.Helper()
	r := httptest.NewRequest(http.MethodGet, f.url+path, nil)
	r.RemoteAddr = peer + ":40000"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.api.ServeHTTP(w, r)
	f.now = f.now.Add(time.Second)
	return w.Code
}

func refusal(status int) bool { return status == 401 || status == 403 || status == 429 }

// TestDetectThroughAPI drives each attack at the API and checks that
// its signal is raised and the caller is then refused, while a normal
// caller in the same process is not.
func TestDetectThroughAPI(t *testing.T) {
	day := time.Date(2026, 3, 3, 14, 0, 0, 0, time.UTC) // a Tuesday afternoon
	t.Run("ID walking", func(t *testing.T) {
		f := newDetectFixture(t, day)
		var refused bool
		for i := range 200 {
			if refusal(f.from("10.1.0.1", "p1-read", fmt.Sprintf("/Patient/%d", 1000+i))) {
				refused = true
				break
			}
		}
		if !refused || !f.alerts.signalled(detect.SigProbing) {
			t.Fatalf("sequential ids: refused %v, alerts %+v", refused, f.alerts.alerts)
		}
		if s := f.from("10.1.0.9", "p2-all", "/Patient/p2"); s != 200 {
			t.Errorf("another patient's app, meanwhile: %d", s)
		}
	})
	t.Run("BOLA probing", func(t *testing.T) {
		f := newDetectFixture(t, day)
		var refused bool
		for i := range 200 {
			// Other patients' resources, by guessed ids: each one 404.
			if refusal(f.from("10.1.0.2", "p1-read", fmt.Sprintf("/Observation/%x-%d", i*7919, i))) {
				refused = true
				break
			}
		}
		if !refused || !(f.alerts.signalled(detect.SigErrors) || f.alerts.signalled(detect.SigProbing)) {
			t.Fatalf("404 burst: refused %v, alerts %+v", refused, f.alerts.alerts)
		}
	})
	t.Run("token replay from a second network", func(t *testing.T) {
		f := newDetectFixture(t, day)
		var refused bool
		for i := range 60 {
			peer := "10.2.0.1"
			if i%2 == 1 {
				peer = "172.16.9.1"
			}
			if refusal(f.from(peer, "p1-read", "/Patient/p1")) {
				refused = true
				break
			}
		}
		if !refused || !f.alerts.signalled(detect.SigNetworks) {
			t.Fatalf("one token from two networks: refused %v, alerts %+v", refused, f.alerts.alerts)
		}
	})
	t.Run("bulk-shaped queries from a patient app", func(t *testing.T) {
		f := newDetectFixture(t, day)
		var refused bool
		for range 100 {
			if refusal(f.from("10.3.0.1", "p1-read", "/Observation?_count=1000&_include=Observation:patient&_revinclude=Provenance:target&_include=Observation:performer")) {
				refused = true
				break
			}
		}
		if !f.alerts.signalled(detect.SigBulk) {
			t.Fatalf("bulk queries: refused %v, alerts %+v", refused, f.alerts.alerts)
		}
	})
	t.Run("break the glass without a care relationship", func(t *testing.T) {
		// Alone the signal weighs little by default; weighted up here to
		// see it reach an alert through the API.
		f := newDetectFixture(t, day, func(p *detect.Policy) { p.Signals.Unrelated.Threshold = 1 })
		for range 10 {
			if s := f.from("10.4.0.1", "prac-p2-glass", "/Patient/p2"); s != 200 && !refusal(s) {
				t.Fatalf("glass read: %d", s)
			}
		}
		if !f.alerts.signalled(detect.SigUnrelated) {
			t.Fatalf("no care relationship: alerts %+v", f.alerts.alerts)
		}
	})
	t.Run("spoofed forwarding headers", func(t *testing.T) {
		f := newDetectFixture(t, day, func(p *detect.Policy) { p.Signals.SpoofedForwarding.Weight = 3 })
		f.spoofed = true
		for range 40 {
			f.from("10.5.0.1", "p1-read", "/Patient/p1")
		}
		if !f.alerts.signalled(detect.SigSpoofedForwarding) {
			t.Fatalf("spoofed headers: alerts %+v", f.alerts.alerts)
		}
	})
	t.Run("a clinician at 3 am", func(t *testing.T) {
		f := newDetectFixture(t, time.Date(2026, 3, 4, 3, 0, 0, 0, time.UTC), func(p *detect.Policy) { p.Signals.Hours.Weight = 3 })
		for range 30 {
			f.from("10.6.0.1", "prac-p1", "/Observation?patient=p1")
		}
		if !f.alerts.signalled(detect.SigHours) {
			t.Fatalf("after hours: alerts %+v", f.alerts.alerts)
		}
	})
	t.Run("scraping many patients", func(t *testing.T) {
		f := newDetectFixture(t, day)
		var entries []any
		for i := range 400 {
			p := patient("Scraped", fmt.Sprint(i), "female", "1970-01-01")
			p["id"] = scrapedID(i)
			entries = append(entries, map[string]any{"resource": p, "request": map[string]any{"method": "PUT", "url": "Patient/" + p["id"].(string)}})
			// pr1 has seen every one of them: a care relationship, so
			// only the pace can tell.
			enc := map[string]any{"resourceType": "Encounter", "id": fmt.Sprintf("enc%d", i), "status": "finished",
				"class":       map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
				"subject":     map[string]any{"reference": "Patient/" + scrapedID(i)},
				"participant": []any{map[string]any{"individual": map[string]any{"reference": "Practitioner/pr1"}}}}
			entries = append(entries, map[string]any{"resource": enc, "request": map[string]any{"method": "PUT", "url": fmt.Sprintf("Encounter/enc%d", i)}})
		}
		body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		if _, err := f.api.ProcessBundle(fhirapi.Trusted(context.Background()), body, fhirapi.BundleOptions{}); err != nil {
			t.Fatal(err)
		}
		var refused bool
		for i := range 400 {
			if s := f.from("10.7.0.1", "backend-obs-all", "/Patient/"+scrapedID(i)); refusal(s) {
				refused = true
				break
			}
		}
		// A backend may read many patients: bulk is its job. The same
		// pace by a clinician's user is scraping.
		if refused {
			t.Fatalf("a backend service reading 400 patients was refused: %+v", f.alerts.alerts)
		}
		for i := range 400 {
			// A new EHR launch for each patient, the same user.
			f.tokens()["prac-p1"].Patient = scrapedID(i)
			if s := f.from("10.7.0.2", "prac-p1", "/Patient/"+scrapedID(i)); refusal(s) {
				refused = true
				break
			}
		}
		if !refused || !f.alerts.signalled(detect.SigVelocity) {
			t.Fatalf("a clinician user reading 400 patients: refused %v, alerts %v", refused, signalsOf(f.alerts))
		}
	})
}

// scrapedID is a server-style random id (not enumerable).
func scrapedID(i int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(i*2654435761), i*40503%65536, i*17%4096, i*31%4096, uint64(i)*11400714819323198485>>16)
}

func signalsOf(l *alertLog) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, a := range l.alerts {
		for _, s := range a.Signals {
			out = append(out, a.Action.String()+":"+s.Name)
		}
	}
	return out
}

// TestBatchNotFoundAlike: in a batch, a read of another patient's
// resource and of a missing one answer alike (the status, and an
// outcome that differs only by the id asked for).
func TestBatchNotFoundAlike(t *testing.T) {
	f := newAuthzFixture(t)
	batch := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/o2"}},
		map[string]any{"request": map[string]any{"method": "GET", "url": "Observation/nosuch"}},
	}}
	r := f.as("p1-read", "POST", "", batch)
	f.mustStatus(r, 200)
	var b struct {
		Entry []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != 2 {
		t.Fatalf("%v %s", err, r.body)
	}
	hiddenOut := strings.ReplaceAll(string(b.Entry[0].Response.Outcome), "o2", "nosuch")
	if b.Entry[0].Response.Status != "404 Not Found" || b.Entry[0].Response.Status != b.Entry[1].Response.Status || hiddenOut != string(b.Entry[1].Response.Outcome) {
		t.Errorf("another patient's: %s %s; a missing one: %s %s", b.Entry[0].Response.Status, b.Entry[0].Response.Outcome, b.Entry[1].Response.Status, b.Entry[1].Response.Outcome)
	}
}
