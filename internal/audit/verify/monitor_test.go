package verify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/audit/verify"
	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
)

// servedLog serves dir in the tlog-tiles layout, as {server}/audit/log/.
func servedLog(t *testing.T, dir *string) verify.LogReader {
	t.Helper()
	srv := httptest.NewServer(http.StripPrefix("/audit/log", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.FileServer(http.Dir(*dir)).ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)
	lr, err := verify.HTTPLog(srv.URL+"/audit/log", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return lr
}

// TestMonitor: the monitor accepts a growing log over HTTP and raises an
// alarm — persisted across restarts, since its state is on disk — for a
// rewound checkpoint, a fork under the same key, a checkpoint signed by
// another key and one its witness quorum did not cosign.
func TestMonitor(t *testing.T) {
	ctx := context.Background()
	tr := cleanTrail(t)
	logDir := tr.LogDir()
	lr := servedLog(t, &logDir)
	state := t.TempDir()
	var alarms []verify.Finding
	newMonitor := func() *verify.Monitor {
		return &verify.Monitor{Log: lr, VKey: tr.VKey, StateDir: state, Alarm: func(f verify.Finding) { alarms = append(alarms, f) }}
	}
	check := func(t *testing.T, m *verify.Monitor, want verify.Kind) {
		t.Helper()
		f, err := m.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case want == 0 && f != nil:
			t.Fatalf("alarm on a good log: %v", f)
		case want != 0 && (f == nil || f.Kind != want):
			t.Fatalf("finding %v, want %v", f, want)
		}
	}
	old, err := os.ReadFile(filepath.Join(logDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	m := newMonitor()
	check(t, m, 0)
	check(t, m, 0) // the same checkpoint again
	tr.Append(t, 25)
	check(t, newMonitor(), 0) // a restarted monitor: consistency from its stored state

	t.Run("rewind", func(t *testing.T) {
		grown, _ := os.ReadFile(filepath.Join(logDir, "checkpoint"))
		os.WriteFile(filepath.Join(logDir, "checkpoint"), old, 0o644)
		defer os.WriteFile(filepath.Join(logDir, "checkpoint"), grown, 0o644)
		check(t, newMonitor(), verify.KindRewind)
	})
	t.Run("fork", func(t *testing.T) {
		fork := forkLog(t, tr, 3) // size 40 with leaf 3 changed, so size 40 < 65 accepted
		saved := logDir
		logDir = fork
		defer func() { logDir = saved }()
		check(t, newMonitor(), verify.KindRewind)
		// Against a fresh state that accepted the original at size 40,
		// the fork of the same size is a fork.
		forkState := t.TempDir()
		logDir = saved
		mm := &verify.Monitor{Log: lr, VKey: tr.VKey, StateDir: forkState}
		grown, _ := os.ReadFile(filepath.Join(saved, "checkpoint"))
		os.WriteFile(filepath.Join(saved, "checkpoint"), old, 0o644)
		check(t, mm, 0)
		os.WriteFile(filepath.Join(saved, "checkpoint"), grown, 0o644)
		logDir = fork
		check(t, mm, verify.KindFork)
	})
	t.Run("other key", func(t *testing.T) {
		_, other, _ := tlog.NewKey(verifytest.Origin)
		m := newMonitor()
		m.VKey, m.StateDir = other, t.TempDir()
		check(t, m, verify.KindSignature)
		// A state written under the log key does not verify under another.
		m.StateDir = state
		if _, err := m.Check(ctx); !errors.Is(err, verify.ErrState) {
			t.Fatalf("state under another key: %v, want ErrState", err)
		}
	})
	t.Run("witness quorum", func(t *testing.T) {
		wskey, wvkey, err := tlog.NewKey("witness.test")
		if err != nil {
			t.Fatal(err)
		}
		cosigVKey, err := fnote.VKeyToCosignatureV1(wvkey)
		if err != nil {
			t.Fatal(err)
		}
		m := newMonitor()
		m.Policy = fmt.Appendf(nil, "witness w1 %s https://witness.test/\nquorum w1\n", cosigVKey)
		check(t, m, verify.KindWitness)
		// Cosign the current checkpoint: now the quorum is met.
		cpPath := filepath.Join(logDir, "checkpoint")
		raw, _ := os.ReadFile(cpPath)
		v, _ := note.NewVerifier(tr.VKey)
		n, err := note.Open(raw, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		cosigner, err := fnote.NewSignerForCosignatureV1(wskey)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := note.Sign(n, cosigner)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(cpPath, signed, 0o644)
		defer os.WriteFile(cpPath, raw, 0o644)
		check(t, m, 0)
		vt := trailOf(tr, "")
		vt.Policy = m.Policy
		if rep := mustVerify(t, vt); !rep.OK() {
			t.Fatalf("Verify with a met quorum: %v", rep.Findings)
		}
		os.WriteFile(cpPath, raw, 0o644)
		checkFindings(t, tr, mustVerify(t, vt), want{verify.KindWitness, -1, -1, -1})
	})
	if len(alarms) == 0 {
		t.Fatal("the Alarm callback was never called")
	}

	// Run stops with ErrAlarm on the first alarm.
	os.WriteFile(filepath.Join(logDir, "checkpoint"), old, 0o644)
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := newMonitor().Run(ctx2, 10*time.Millisecond, nil); !errors.Is(err, verify.ErrAlarm) {
		t.Fatalf("Run on a rewound log: %v, want ErrAlarm", err)
	}
	if _, err := (&verify.Monitor{Log: lr, VKey: tr.VKey}).Check(ctx); !errors.Is(err, verify.ErrState) {
		t.Fatalf("a monitor without state: %v, want ErrState", err)
	}
}
