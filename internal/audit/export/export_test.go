package export_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/export"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

const base = "https://warden.example/fhir"

type nopLog struct{}

func (nopLog) AppendBatch(_ context.Context, leaves [][]byte) ([]uint64, error) {
	return make([]uint64, len(leaves)), nil
}

// trail is a real journal fed by the real JournaledPipeline, with a
// record store for cursors.
type trail struct {
	j       *journal.Journal
	p       *audit.JournaledPipeline
	db      store.Records
	records []audit.Record
	ids     []string
}

func newTrail(t testing.TB) *trail {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "warden.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	p, err := audit.NewJournaledPipeline(j, nopLog{}, db, base)
	if err != nil {
		t.Fatal(err)
	}
	return &trail{j: j, p: p, db: db}
}

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 123456789, time.UTC)

// record i: successes, denials, server failures, queries with PHI,
// patients, the three surfaces.
func record(i int) audit.Record {
	r := audit.Record{
		RequestID: fmt.Sprintf("req-%d", i),
		Time:      t0.Add(time.Duration(i) * time.Second),
		Duration:  3 * time.Millisecond,
		Surface:   audit.SurfaceFHIR,
		Action:    []string{"read", "search-type", "create", "delete"}[i%4],
		Method:    "GET",
		Path:      "/fhir/Patient",
		Status:    200,
		ClientID:  "app-1",
		PeerAddr:  netip.MustParseAddr("192.0.2.9"),
		Patients:  []string{fmt.Sprintf("p%d", i%3)},
	}
	if i%2 == 1 {
		r.Query = url.Values{"name": {"Doe \"]\\ Jane"}, "birthdate": {"1970-01-01"}}
	}
	switch i % 5 {
	case 2:
		r.Status, r.DenyRule = 403, "compartment"
	case 3:
		r.Status = 503
	case 4:
		r.Outcome, r.Status = audit.OutcomeMajor, 500
	}
	if i%7 == 6 {
		r.Surface, r.Action, r.Path, r.Patients = audit.SurfaceAuth, "token", "/auth/token", nil
	}
	return r
}

func (tr *trail) add(t testing.TB, n int) {
	t.Helper()
	for range n {
		r := record(len(tr.records))
		rc, err := tr.p.Append(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		tr.records = append(tr.records, r)
		tr.ids = append(tr.ids, rc.EventID)
	}
}

// want is the canonical JSON of event i computed from its Record alone
// (audit.Build), without its queries when strip.
func (tr *trail) want(t testing.TB, i int, strip bool) []byte {
	t.Helper()
	ev, err := audit.Build(tr.records[i], base)
	if err != nil {
		t.Fatal(err)
	}
	ev["id"] = tr.ids[i]
	if strip {
		for _, e := range ev["entity"].([]any) {
			delete(e.(map[string]any), "query")
		}
	}
	b, err := audit.Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJSONL(t *testing.T) {
	tr := newTrail(t)
	tr.add(t, 12)
	for _, c := range []struct {
		name  string
		from  int
		strip bool
	}{{"all", 0, false}, {"from a cursor", 5, false}, {"strip query", 0, true}} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := export.Export(context.Background(), export.Options{Journal: tr.j, Format: export.FormatJSONL, Out: &out, From: uint64(c.from), StripQuery: c.strip})
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != len(tr.ids)-c.from {
				t.Fatalf("%d lines, want %d", len(lines), len(tr.ids)-c.from)
			}
			for k, line := range lines {
				if want := tr.want(t, c.from+k, c.strip); line != string(want) {
					t.Fatalf("line %d:\n%s\nwant\n%s", k, line, want)
				}
				if c.strip && strings.Contains(line, `"query"`) {
					t.Fatalf("line %d keeps a query", k)
				}
			}
		})
	}
	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- export.Export(ctx, export.Options{Journal: tr.j, Format: export.FormatJSONL, Out: w, Follow: true, Poll: 10 * time.Millisecond})
		}()
		tr.add(t, 5)
		waitFor(t, func() bool { return strings.Count(w.String(), "\n") == len(tr.ids) })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Export = %v", err)
		}
		if last := strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n")[len(tr.ids)-1]; last != string(tr.want(t, len(tr.ids)-1, false)) {
			t.Fatalf("last line %s", last)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pki is a test CA with a receiver certificate for 127.0.0.1.
type pki struct {
	ca         *testCA
	serverCert tls.Certificate
}

func newPKI(t testing.TB) *pki {
	ca := newCA(t, "test-ca")
	return &pki{ca: ca, serverCert: ca.issue(t, x509.ExtKeyUsageServerAuth, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "127.0.0.1")}
}

func (p *pki) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS12}
}

func (tr *trail) syslogOptions(r *receiver, ca string) export.Options {
	return export.Options{
		Journal: tr.j, Format: export.FormatSyslog, To: "tls://" + r.addr, CAFile: ca, Cursors: tr.db,
		Hostname: "warden-test", Timeout: 5 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
}

func (tr *trail) cursor(t testing.TB, name string) uint64 {
	t.Helper()
	r, err := tr.db.GetRecord(context.Background(), export.KindCursor, name)
	if errors.Is(err, store.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(string(r.Value), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSyslogFields checks every field of every message against values
// computed from the Records.
func TestSyslogFields(t *testing.T) {
	for _, strip := range []bool{false, true} {
		t.Run(fmt.Sprintf("strip=%v", strip), func(t *testing.T) {
			p := newPKI(t)
			tr := newTrail(t)
			tr.add(t, 35)
			r := startReceiver(t, p.serverConfig())
			opts := tr.syslogOptions(r, p.ca.file)
			opts.StripQuery = strip
			if err := export.Export(context.Background(), opts); err != nil {
				t.Fatal(err)
			}
			msgs := r.messages()
			if len(msgs) != len(tr.ids) {
				t.Fatalf("%d messages, want %d", len(msgs), len(tr.ids))
			}
			for i, m := range msgs {
				rec := tr.records[i]
				ev, _ := audit.Build(rec, base)
				outcome := ev["outcome"].(string)
				sev := map[string]int{"0": 6, "4": 4, "8": 3, "12": 2}[outcome]
				subtype := ev["subtype"].([]any)
				code := subtype[len(subtype)-1].(map[string]any)["code"].(string)
				want := export.Message{
					Facility: 10, Severity: sev, Timestamp: rec.Time.Add(rec.Duration).Truncate(time.Microsecond),
					Hostname: "warden-test", AppName: "warden", MsgID: ev["action"].(string),
					Data: []export.Element{{ID: "warden@32473", Params: []export.Param{{"id", tr.ids[i]}, {"outcome", outcome}, {"subtype", code}}}},
					Msg:  tr.want(t, i, strip),
				}
				if !equalMessages(m, want) {
					t.Fatalf("message %d:\n%+v\nwant\n%+v", i, m, want)
				}
				frame := string(r.frames[i])
				if prefix := fmt.Sprintf("<%d>1 %s warden-test warden - %s [warden@32473 id=", 80+sev,
					rec.Time.Add(rec.Duration).UTC().Format("2006-01-02T15:04:05.999999Z"), ev["action"]); !strings.HasPrefix(frame, prefix) {
					t.Fatalf("frame %d starts %.120q, want %q", i, frame, prefix)
				}
				q := base64.StdEncoding.EncodeToString([]byte("birthdate=1970-01-01"))[:12]
				if rec.Query != nil && strings.Contains(frame, q) == strip {
					t.Fatalf("frame %d: query present = %v with strip = %v", i, !strip, strip)
				}
			}
			if got := tr.cursor(t, opts.To); got != uint64(len(tr.ids)) {
				t.Fatalf("cursor %d, want %d", got, len(tr.ids))
			}
			// A second run sends nothing: the cursor is persisted.
			if err := export.Export(context.Background(), opts); err != nil {
				t.Fatal(err)
			}
			if n := len(r.messages()); n != len(tr.ids) {
				t.Fatalf("second run sent %d more", n-len(tr.ids))
			}
		})
	}
}

func equalMessages(a, b export.Message) bool {
	if a.Facility != b.Facility || a.Severity != b.Severity || !a.Timestamp.Equal(b.Timestamp) || a.Hostname != b.Hostname ||
		a.AppName != b.AppName || a.ProcID != b.ProcID || a.MsgID != b.MsgID || !bytes.Equal(a.Msg, b.Msg) || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Data {
		if a.Data[i].ID != b.Data[i].ID || !slices.Equal(a.Data[i].Params, b.Data[i].Params) {
			return false
		}
	}
	return true
}

// TestSyslogReceiverRestart: the receiver crashes mid-stream (RST, no
// close_notify) and comes back; every event arrives, in order from the
// last acknowledged session on.
func TestSyslogReceiverRestart(t *testing.T) {
	p := newPKI(t)
	tr := newTrail(t)
	tr.add(t, 60)
	r := startReceiver(t, p.serverConfig())
	r.crashAfter = 25
	go func() {
		<-r.crashed
		time.Sleep(300 * time.Millisecond)
		r.restart()
	}()
	opts := tr.syslogOptions(r, p.ca.file)
	opts.SessionEvents = 10
	if err := export.Export(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var order []int
	index := map[string]int{}
	for i, id := range tr.ids {
		index[id] = i
	}
	for _, m := range r.messages() {
		id := m.Data[0].Params[0].Value
		seen[id]++
		order = append(order, index[id])
	}
	for i, id := range tr.ids {
		if seen[id] == 0 {
			t.Fatalf("event %d lost", i)
		}
	}
	// Sessions of 10: the crash in the third loses at most its frames,
	// which are sent again from the cursor (20).
	if dup := len(order) - len(tr.ids); dup < 1 || dup > 10 {
		t.Fatalf("%d duplicates, want 1 to 10 (order %v)", dup, order)
	}
	for k := 1; k < len(order); k++ {
		if order[k] != order[k-1]+1 && order[k] != 20 {
			t.Fatalf("resumed at %d after %d, want at the cursor 20", order[k], order[k-1])
		}
	}
	if got := tr.cursor(t, opts.To); got != uint64(len(tr.ids)) {
		t.Fatalf("cursor %d, want %d", got, len(tr.ids))
	}
}

// TestSyslogFollow: a following export sends events journaled while it
// runs, and persists its cursor as sessions are acknowledged.
func TestSyslogFollow(t *testing.T) {
	p := newPKI(t)
	tr := newTrail(t)
	tr.add(t, 3)
	r := startReceiver(t, p.serverConfig())
	opts := tr.syslogOptions(r, p.ca.file)
	opts.Follow, opts.Poll, opts.SessionAge = true, 10*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- export.Export(ctx, opts) }()
	for range 4 {
		tr.add(t, 5)
		time.Sleep(30 * time.Millisecond)
	}
	waitFor(t, func() bool { return tr.cursor(t, opts.To) == uint64(len(tr.ids)) })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Export = %v", err)
	}
	msgs := r.messages()
	if len(msgs) != len(tr.ids) {
		t.Fatalf("%d messages, want %d", len(msgs), len(tr.ids))
	}
	for i, m := range msgs {
		if m.Data[0].Params[0].Value != tr.ids[i] {
			t.Fatalf("message %d is not event %d", i, i)
		}
	}
}

// TestSyslogRefused: the ways a receiver (or an attacker in its place)
// must not get events, then the success case with a client certificate.
func TestSyslogRefused(t *testing.T) {
	p := newPKI(t)
	other := newCA(t, "other-ca")
	now := time.Now()
	client := p.ca.issue(t, x509.ExtKeyUsageClientAuth, now.Add(-time.Hour), now.Add(time.Hour), "warden-exporter")
	certFile, keyFile := files(t, client)
	requireClient := func() *tls.Config {
		c := p.serverConfig()
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = x509.NewCertPool()
		c.ClientCAs.AddCert(p.ca.cert)
		return c
	}
	cases := []struct {
		name     string
		server   *tls.Config // nil: plain TCP
		client   bool        // present the client certificate
		deadline bool        // expect the export to retry until the deadline
		want     error
	}{
		{"certificate of another CA", &tls.Config{Certificates: []tls.Certificate{other.issue(t, x509.ExtKeyUsageServerAuth, now.Add(-time.Hour), now.Add(time.Hour), "127.0.0.1")}}, false, false, export.ErrUntrustedReceiver},
		{"certificate for another name", &tls.Config{Certificates: []tls.Certificate{p.ca.issue(t, x509.ExtKeyUsageServerAuth, now.Add(-time.Hour), now.Add(time.Hour), "syslog.example")}}, false, false, export.ErrUntrustedReceiver},
		{"expired certificate", &tls.Config{Certificates: []tls.Certificate{p.ca.issue(t, x509.ExtKeyUsageServerAuth, now.Add(-2*time.Hour), now.Add(-time.Hour), "127.0.0.1")}}, false, false, export.ErrUntrustedReceiver},
		{"client certificate only (wrong usage)", &tls.Config{Certificates: []tls.Certificate{p.ca.issue(t, x509.ExtKeyUsageClientAuth, now.Add(-time.Hour), now.Add(time.Hour), "127.0.0.1")}}, false, false, export.ErrUntrustedReceiver},
		{"receiver limited to TLS 1.1", &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MaxVersion: tls.VersionTLS11}, false, false, export.ErrRefused},
		{"receiver requires a client certificate", requireClient(), false, false, export.ErrRefused},
		{"plain TCP receiver", nil, false, true, context.DeadlineExceeded},
		{"success with a client certificate", requireClient(), true, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTrail(t)
			tr.add(t, 4)
			r := startReceiver(t, c.server)
			opts := tr.syslogOptions(r, p.ca.file)
			if c.client {
				opts.CertFile, opts.KeyFile = certFile, keyFile
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if c.deadline {
				ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
			}
			defer cancel()
			err := export.Export(ctx, opts)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if n := len(r.messages()); n != 4 {
					t.Fatalf("%d messages, want 4", n)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Export = %v, want %v", err, c.want)
			}
			if n := len(r.messages()); n != 0 {
				t.Fatalf("the receiver got %d messages", n)
			}
			r.mu.Lock()
			clear := bytes.Contains(r.raw, []byte(tr.ids[0]))
			r.mu.Unlock()
			if clear {
				t.Fatal("an event went out in clear")
			}
			if got := tr.cursor(t, opts.To); got != 0 {
				t.Fatalf("cursor moved to %d", got)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	tr := newTrail(t)
	p := newPKI(t)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := export.Options{Journal: tr.j, Format: export.FormatSyslog, To: "tls://127.0.0.1:6514", CAFile: p.ca.file, Cursors: tr.db}
	cases := []struct {
		name   string
		change func(*export.Options)
	}{
		{"no journal", func(o *export.Options) { o.Journal = nil }},
		{"unknown format", func(o *export.Options) { o.Format = "cef" }},
		{"jsonl without output", func(o *export.Options) { o.Format = export.FormatJSONL }},
		{"plain tcp", func(o *export.Options) { o.To = "tcp://127.0.0.1:514" }},
		{"udp", func(o *export.Options) { o.To = "udp://127.0.0.1:514" }},
		{"no host", func(o *export.Options) { o.To = "tls://:6514" }},
		{"no CA", func(o *export.Options) { o.CAFile = "" }},
		{"CA file without certificates", func(o *export.Options) { o.CAFile = notPEM }},
		{"certificate without key", func(o *export.Options) { o.CertFile = p.ca.file }},
		{"no cursor store", func(o *export.Options) { o.Cursors = nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := good
			c.change(&o)
			if err := export.Export(context.Background(), o); !errors.Is(err, export.ErrOptions) {
				t.Fatalf("Export = %v, want ErrOptions", err)
			}
		})
	}
}

// BenchmarkSyslog measures events sent per second over TLS to a loopback
// receiver that parses every frame (sessions of 2000 events).
func BenchmarkSyslog(b *testing.B) {
	p := newPKI(b)
	for range b.N {
		b.StopTimer()
		tr := newTrail(b)
		tr.add(b, 2000)
		r := startReceiver(b, p.serverConfig())
		opts := tr.syslogOptions(r, p.ca.file)
		b.StartTimer()
		if err := export.Export(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := len(r.messages()); n != 2000 {
			b.Fatalf("%d messages", n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "events/s")
}
