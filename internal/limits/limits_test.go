package limits_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/limits/limitstest"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want limits.Rate
		bad  bool
	}{
		{in: "100/s", want: limits.Rate{Count: 100, Period: time.Second}},
		{in: "6000/min", want: limits.Rate{Count: 6000, Period: time.Minute}},
		{in: " 5000 / h ", want: limits.Rate{Count: 5000, Period: time.Hour}},
		{in: "20000/day", want: limits.Rate{Count: 20000, Period: 24 * time.Hour}},
		{in: "50/10s", want: limits.Rate{Count: 50, Period: 10 * time.Second}},
		{in: "off", want: limits.Rate{}},
		{in: "", bad: true},
		{in: "100", bad: true},
		{in: "0/s", bad: true},
		{in: "-5/s", bad: true},
		{in: "5/0s", bad: true},
		{in: "5/-1s", bad: true},
		{in: "5/fortnight", bad: true},
		{in: "2000000/s", bad: true}, // finer than 1µs
		{in: "1/8d", bad: true},
		{in: "1/200h", bad: true},
		{in: "1e3/s", bad: true},
		{in: "99999999999999999999/s", bad: true},
	} {
		got, err := limits.ParseRate(tc.in)
		if tc.bad {
			if !errors.Is(err, limits.ErrBadRate) {
				t.Errorf("ParseRate(%q) = %v, %v; want ErrBadRate", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestConfigRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, mention string
	}{
		{"unknown top-level key", "stroe: memory", "stroe"},
		{"unknown class key", "classes: {patient-app: {rat: 5/s}}", "rat"},
		{"unknown class", "classes: {robot: {concurrency: 3}}", "classes.robot"},
		{"zero period", "per_address: {rate: 5/0s, burst: 5}", `line 1: limits: invalid rate: "5/0s": the period must be positive`},
		{"negative burst", "per_address: {rate: 5/s, burst: -1}", "per_address.burst"},
		{"zero burst", "classes: {backend: {client: {rate: 5/s, burst: 0}}}", "classes.backend.client.burst"},
		{"burst with rate off", "per_certificate: {rate: \"off\", burst: 3}", "per_certificate.burst"},
		{"negative concurrency", "classes: {backend: {concurrency: -2}}", "classes.backend.concurrency"},
		{"zero distinct patients", "classes: {patient-app: {distinct_patients: {user: {count: 0, window: 1h}}}}", "distinct_patients.user.count"},
		{"zero window", "classes: {patient-app: {distinct_patients: {user: {count: 3, window: 0s}}}}", "distinct_patients.user.window"},
		{"negative window", "classes: {patient-app: {distinct_patients: {user: {count: 3, window: -1h}}}}", "distinct_patients.user.window"},
		{"refill too long", "per_address: {rate: 1/day, burst: 30}", "per_address"},
		{"password in store URL", "store: redis://:pw@127.0.0.1:6379/0", "store_password_file"},
		{"unknown store", "store: etcd://x", "limits.store"},
		{"bad on_store_error", "on_store_error: maybe", "on_store_error"},
		{"store timeout too long", "store_timeout: 1m", "store_timeout"},
		{"named client without class", "clients: {abc: {concurrency: 3}}", "clients.abc.class"},
		{"named client with unknown key", "clients: {abc: {class: backend, burst: 3}}", "burst"},
		{"negative cost", "costs: {read: -1}", "costs.read"},
		{"free search", "costs: {search: 0}", "costs.search"},
		{"repeated key", "store: memory\nstore: memory", "already"},
		{"bad ipv6 prefix", "ipv6_prefix: 8", "ipv6_prefix"},
		{"bad default class", "default_class: anyone", "default_class"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := limits.ParseConfig([]byte(tc.yaml))
			if !errors.Is(err, limits.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), ":pw@") {
				t.Fatal("the error repeats the password")
			}
		})
	}
}

func TestConfigOverlaysDefaults(t *testing.T) {
	cfg, err := limits.ParseConfig([]byte(`
store: redis://127.0.0.1:6379/2
classes:
  patient-app:
    client: {rate: 600/min, burst: 60}
    distinct_patients: {user: {count: 1, window: 1h}}
clients:
  bulk-exporter:
    class: backend
    concurrency: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	pa := cfg.Classes[limits.PatientApp]
	if pa.Client.Rate.String() != "600/min" || pa.Client.Burst != 60 || pa.DistinctPatients.User.Count != 1 {
		t.Fatalf("patient-app: %+v", pa)
	}
	if pa.User != nil {
		t.Fatalf("patient-app user limit should be left out (inherited at New): %+v", pa.User)
	}
	l, err := limits.New(cfg, limits.NewMemoryStore())
	if err != nil {
		t.Fatal(err)
	}
	// The inherited user limit still applies: the built-in burst of 120.
	k := limits.Keys{Client: "app", Class: limits.PatientApp, User: "pat"}
	n := 0
	for range 200 {
		if d, _ := l.Allow(context.Background(), k, 1); d.Allowed {
			n++
		}
	}
	if n != 60 { // the client burst of 60 is tighter than the user's 120
		t.Fatalf("%d allowed, want 60", n)
	}
	// The named client keeps the backend values except its concurrency.
	bk := limits.Keys{Client: "bulk-exporter", Class: limits.PatientApp}
	_, r1 := l.Acquire(bk)
	_, r2 := l.Acquire(bk)
	if d, _ := l.Acquire(bk); d.Allowed || !strings.Contains(d.Limit, "backend, named client") {
		t.Fatalf("third slot: %+v", d)
	}
	r1()
	r2()
	if d, _ := l.Touch(context.Background(), k, []string{"p1"}); !d.Allowed {
		t.Fatal(d)
	}
	if d, _ := l.Touch(context.Background(), k, []string{"p2"}); d.Allowed {
		t.Fatal("second patient for a patient-app user with a budget of 1")
	}
}

func TestDefaultsAreOnAndValid(t *testing.T) {
	cfg := limits.Default()
	if cfg.Disabled || cfg.OnStoreError != "closed" || cfg.PerAddress.Rate.Off() {
		t.Fatalf("defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := limits.ParseConfig(nil); err != nil {
		t.Fatal(err)
	}
}

func TestCost(t *testing.T) {
	read := limits.Request{Interaction: limits.Read, Type: "Patient"}
	for _, tc := range []struct {
		name string
		r    limits.Request
		want int
	}{
		{"read", read, 1},
		{"vread", limits.Request{Interaction: limits.VRead}, 1},
		{"create", limits.Request{Interaction: limits.Create}, 2},
		{"search default page", limits.Request{Interaction: limits.Search, Type: "Observation"}, 3},
		{"search _count=1000", limits.Request{Interaction: limits.Search, Count: 1000}, 22},
		{"search _count=1000 + 2 includes", limits.Request{Interaction: limits.Search, Count: 1000, Includes: 2}, 66},
		{"… and :iterate", limits.Request{Interaction: limits.Search, Count: 1000, Includes: 2, Iterate: true}, 132},
		{"_summary=count", limits.Request{Interaction: limits.Search, Summary: true}, 2},
		{"chained", limits.Request{Interaction: limits.Search, Chains: 2}, 7},
		{"history", limits.Request{Interaction: limits.History, Count: 100}, 4},
		{"$everything", limits.Request{Interaction: limits.Operation, Operation: "$everything"}, 50},
		{"$export", limits.Request{Interaction: limits.Operation, Operation: "$export"}, 500},
		{"other operation", limits.Request{Interaction: limits.Operation, Operation: "$validate"}, 5},
		{"transaction of 10", limits.Request{Interaction: limits.Transaction, Entries: 10}, 22},
		{"unknown interaction is never free", limits.Request{Interaction: "teleport"}, 5},
		{"hostile counts are capped", limits.Request{Interaction: limits.Search, Count: 1 << 62, Includes: 1 << 40, Iterate: true, Chains: 1 << 40}, 1_000_000},
		{"negative counts are not credits", limits.Request{Interaction: limits.Search, Count: -5, Includes: -3, Chains: -9, Entries: -1}, 3},
	} {
		if got := limits.Cost(tc.r); got != tc.want {
			t.Errorf("%s: Cost = %d, want %d", tc.name, got, tc.want)
		}
	}
	if e, r := limits.Cost(limits.Request{Interaction: limits.Operation, Operation: "$everything"}), limits.Cost(read); e != 50*r {
		t.Errorf("$everything = %d reads", e/r)
	}
	if got := (limits.CostModel{}).Cost(read); got != 1 {
		t.Errorf("an empty model makes a read cost %d", got)
	}
}

func TestConcurrencyCap(t *testing.T) {
	l, _ := limitstest.NewLimiter(t, limits.NewMemoryStore(), nil) // clinician-app: 4 in flight
	k := limits.Keys{Client: "busy", Class: limits.ClinicianApp}
	var inflight, peak, refused atomic.Int32
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range 32 {
		wg.Go(func() {
			<-gate
			d, release := l.Acquire(k)
			if !d.Allowed {
				refused.Add(1)
				release() // a no-op, and harmless
				return
			}
			n := inflight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(5 * time.Millisecond)
			inflight.Add(-1)
			release()
			release() // twice: must not free a second slot
		})
	}
	close(gate)
	wg.Wait()
	if peak.Load() > 4 || peak.Load() < 1 {
		t.Fatalf("peak in flight %d, cap 4", peak.Load())
	}
	if refused.Load() == 0 {
		t.Fatal("32 simultaneous requests and none refused")
	}
	// All slots are back, and a double release freed no extra one.
	var rel []func()
	for range 4 {
		d, r := l.Acquire(k)
		if !d.Allowed {
			t.Fatal("a slot was not returned")
		}
		rel = append(rel, r)
	}
	if d, _ := l.Acquire(k); d.Allowed || d.Limit != "concurrent requests per client (clinician-app)" {
		t.Fatalf("fifth slot: %+v", d)
	}
	for _, r := range rel {
		r()
	}
	// Another client is not affected.
	if d, _ := l.Acquire(limits.Keys{Client: "calm", Class: limits.ClinicianApp}); !d.Allowed {
		t.Fatal("another client refused")
	}
}

func TestDisabled(t *testing.T) {
	l, _ := limitstest.NewLimiter(t, limits.NewMemoryStore(), func(c *limits.Config) { c.Disabled = true })
	k := limits.Keys{Client: "x", Class: limits.ClinicianApp, Address: netip.MustParseAddr("192.0.2.1")}
	for range 100 {
		if d, err := l.Allow(context.Background(), k, 1000); err != nil || !d.Allowed {
			t.Fatal(d, err)
		}
	}
}

type failingStore struct{}

func (failingStore) Take(context.Context, time.Time, []limits.Bucket, []limits.BucketState) error {
	return errors.New("connection refused")
}

func (failingStore) Touch(context.Context, time.Time, []limits.Budget, []string, []limits.BudgetState) error {
	return errors.New("connection refused")
}

func TestStoreErrorFailsClosedByDefault(t *testing.T) {
	l, _ := limitstest.NewLimiter(t, failingStore{}, nil)
	k := limits.Keys{Client: "x", Class: limits.ClinicianApp, User: "u"}
	if d, err := l.Allow(context.Background(), k, 1); !errors.Is(err, limits.ErrUnavailable) || d.Allowed {
		t.Fatalf("Allow: %+v %v", d, err)
	}
	if d, err := l.Touch(context.Background(), k, []string{"p"}); !errors.Is(err, limits.ErrUnavailable) || d.Allowed {
		t.Fatalf("Touch: %+v %v", d, err)
	}
	h := limits.Middleware(l, func(*http.Request) (limits.Keys, int) { return k, 1 }, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("served while the store is down")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/fhir/Patient/1", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
}

func TestWriteTooMany(t *testing.T) {
	for _, tc := range []struct {
		retry time.Duration
		want  string
	}{
		{0, "1"}, {time.Microsecond, "1"}, {time.Second, "1"}, {time.Second + time.Microsecond, "2"}, {57 * time.Minute, "3420"},
	} {
		rec := httptest.NewRecorder()
		limits.WriteTooMany(rec, limits.Decision{RetryAfter: tc.retry, Limit: "user rate (clinician-app)", Policy: "user", Quota: 200, Window: 10 * time.Second})
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("status %d", rec.Code)
		}
		if got := rec.Header().Get("Retry-After"); got != tc.want {
			t.Errorf("Retry-After for %v = %q, want %q", tc.retry, got, tc.want)
		}
		if got, want := rec.Header().Get("RateLimit"), `"user";r=0;t=`+tc.want; got != want && tc.retry > 0 {
			t.Errorf("RateLimit = %q, want %q", got, want)
		}
	}
	rec := httptest.NewRecorder()
	limits.WriteTooMany(rec, limits.Decision{RetryAfter: 2500 * time.Millisecond, Limit: "distinct patients per user (patient-app)", Policy: "patients-user", Quota: 10, Window: time.Hour})
	if got := rec.Header().Get("RateLimit-Policy"); got != `"patients-user";q=10;w=3600` {
		t.Errorf("RateLimit-Policy = %q", got)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var oo struct {
		ResourceType string
		Issue        []struct{ Severity, Code, Diagnostics string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil {
		t.Fatal(err)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != "throttled" ||
		!strings.Contains(oo.Issue[0].Diagnostics, "distinct patients per user (patient-app)") || !strings.Contains(oo.Issue[0].Diagnostics, "3 s") {
		t.Errorf("outcome: %+v", oo)
	}
}

// The Limit of every decision names a class of limit, never the caller.
func TestDecisionsCarryNoIdentifier(t *testing.T) {
	l, _ := limitstest.NewLimiter(t, limits.NewMemoryStore(), nil)
	k := limits.Keys{Client: "client-SECRET", Class: limits.ClinicianApp, User: "user-SECRET", Patient: "patient-SECRET",
		Address: netip.MustParseAddr("203.0.113.9"), Cert: "cert-SECRET"}
	for i := range 40 {
		d, _ := l.Allow(context.Background(), k, 1)
		td, _ := l.Touch(context.Background(), k, []string{"patient-SECRET-" + string(rune('a'+i%26))})
		cd, rel := l.Acquire(k)
		rel()
		for _, s := range []string{d.Limit, d.Policy, td.Limit, td.Policy, cd.Limit} {
			if strings.Contains(s, "SECRET") || strings.Contains(s, "203.0.113") {
				t.Fatalf("decision text %q names the caller", s)
			}
		}
		rec := httptest.NewRecorder()
		limits.WriteTooMany(rec, d)
		if strings.Contains(rec.Body.String()+strings.Join(rec.Header().Values("RateLimit"), ""), "SECRET") {
			t.Fatal("the 429 names the caller")
		}
	}
}

func TestMiddleware(t *testing.T) {
	l, _ := limitstest.NewLimiter(t, limits.NewMemoryStore(), nil)
	served := 0
	h := limits.Middleware(l, func(r *http.Request) (limits.Keys, int) {
		return limits.Keys{Client: r.Header.Get("X-Test-Client"), Class: limits.ClinicianApp}, 1
	}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }))
	codes := map[int]int{}
	for range 15 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/fhir/Patient/1", nil)
		req.Header.Set("X-Test-Client", "m")
		h.ServeHTTP(rec, req)
		codes[rec.Code]++
		if rec.Code == http.StatusOK && rec.Header().Get("RateLimit") == "" {
			t.Error("an allowed response without RateLimit")
		}
	}
	if served != 10 || codes[http.StatusTooManyRequests] != 5 {
		t.Fatalf("served %d, codes %v", served, codes)
	}
}

func TestDecodeNode(t *testing.T) {
	var doc struct {
		Limits yaml.Node `yaml:"limits"`
	}
	if err := yaml.Unmarshal([]byte("limits:\n  on_store_error: open\n  classes: {backend: {concurrency: 3}}\n"), &doc); err != nil {
		t.Fatal(err)
	}
	cfg, err := limits.DecodeNode(&doc.Limits)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OnStoreError != "open" || *cfg.Classes[limits.Backend].Concurrency != 3 || cfg.Store != "memory" {
		t.Fatalf("%+v", cfg)
	}
	if err := yaml.Unmarshal([]byte("limits:\n  on_store_eror: open\n"), &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := limits.DecodeNode(&doc.Limits); !errors.Is(err, limits.ErrInvalidConfig) {
		t.Fatalf("a typo in the node: %v", err)
	}
}

// The authorization server's budget is per source address (IPv6 by its
// /64), apart from the FHIR API's: spending one leaves the other whole.
func TestAllowAuth(t *testing.T) {
	l, clock := limitstest.NewLimiter(t, limits.NewMemoryStore(), func(c *limits.Config) {
		c.AuthPerAddress = limits.RateLimit{Rate: limits.Rate{Count: 1, Period: time.Second}, Burst: 3}
	})
	ctx := context.Background()
	a := netip.MustParseAddr("192.0.2.10")
	for i := range 3 {
		if d, err := l.AllowAuth(ctx, a); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
	}
	d, err := l.AllowAuth(ctx, a)
	if err != nil || d.Allowed || d.RetryAfter != time.Second || d.Policy != "auth-address" {
		t.Fatalf("over the burst: %+v %v", d, err)
	}
	// The FHIR API's budget of the same address is untouched.
	if d, err := l.Allow(ctx, limits.Keys{Address: a}, 1); err != nil || !d.Allowed || d.Remaining != 4 {
		t.Fatalf("FHIR budget of the address: %+v %v", d, err)
	}
	// Another address has its own budget; another host of the same IPv6 /64 does not.
	if d, _ := l.AllowAuth(ctx, netip.MustParseAddr("192.0.2.11")); !d.Allowed {
		t.Fatal("another address was refused")
	}
	v6 := netip.MustParseAddr("2001:db8::1")
	for range 3 {
		l.AllowAuth(ctx, v6)
	}
	if d, _ := l.AllowAuth(ctx, netip.MustParseAddr("2001:db8::ffff:2")); d.Allowed {
		t.Fatal("another host of the same /64 got a budget of its own")
	}
	// The IPv4-mapped form of an address is the address.
	if d, _ := l.AllowAuth(ctx, netip.MustParseAddr("::ffff:192.0.2.10")); d.Allowed {
		t.Fatal("the IPv4-mapped form escaped the address's budget")
	}
	clock.Advance(time.Second)
	if d, _ := l.AllowAuth(ctx, a); !d.Allowed {
		t.Fatal("refused after the refill")
	}
	// Off, or no address: not metered.
	off, _ := limitstest.NewLimiter(t, limits.NewMemoryStore(), func(c *limits.Config) { c.AuthPerAddress = limits.RateLimit{} })
	for range 10 {
		if d, _ := off.AllowAuth(ctx, a); !d.Allowed {
			t.Fatal("auth_per_address off, but refused")
		}
	}
}

func TestAuthMiddleware(t *testing.T) {
	l, _ := limitstest.NewLimiter(t, limits.NewMemoryStore(), func(c *limits.Config) {
		c.AuthPerAddress = limits.RateLimit{Rate: limits.Rate{Count: 1, Period: time.Minute}, Burst: 2}
	})
	served := 0
	h := limits.AuthMiddleware(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }))
	call := func(addr, accept string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/auth/token", strings.NewReader("grant_type=client_credentials"))
		req.RemoteAddr = addr
		req.Header.Set("Accept", accept)
		h.ServeHTTP(rec, req)
		return rec
	}
	for range 2 {
		if rec := call("198.51.100.7:4000", "application/json"); rec.Code != http.StatusOK {
			t.Fatalf("within the burst: %d", rec.Code)
		}
	}
	// Another source port is the same address.
	rec := call("198.51.100.7:4001", "application/json")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "60" || rec.Header().Get("RateLimit") == "" {
		t.Fatalf("over the burst: %d %v", rec.Code, rec.Header())
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != "temporarily_unavailable" || !strings.Contains(body["error_description"], "retry after 60 s") {
		t.Fatalf("body %s (%v)", rec.Body, err)
	}
	if strings.Contains(rec.Body.String(), "198.51.100.7") {
		t.Error("the refusal names the caller's address")
	}
	// A browser gets a page.
	rec = call("198.51.100.7:4002", "text/html,application/xhtml+xml")
	if rec.Code != http.StatusTooManyRequests || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || !strings.Contains(rec.Body.String(), "retry after") {
		t.Fatalf("browser: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if served != 2 {
		t.Fatalf("served %d, want 2", served)
	}
	// The store down: 503, nothing served.
	lf, _ := limitstest.NewLimiter(t, failingStore{}, nil)
	hf := limits.AuthMiddleware(lf, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("served while the store is down") }))
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/auth/token", nil)
	req.RemoteAddr = "198.51.100.8:1"
	hf.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("store down: %d", rec.Code)
	}
}
