package promsink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/detect/promsink"
)

func TestCountsAlertsBySignalAndAction(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, err := promsink.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := series(t, reg, "warden_detect_alerts_total"); got != 16 {
		t.Fatalf("alerts_total has %d series before any alert, want 16 (every action × scope from zero)", got)
	}
	s.Send(detect.Alert{Time: time.Now(), Client: "client-a", User: "Practitioner/9", Action: detect.ActionQuarantine, Scope: detect.ScopeUser,
		Signals: []detect.Signal{{Name: detect.SigVelocity, Score: 3}, {Name: detect.SigUnrelated, Score: 2}}})
	s.Send(detect.Alert{Action: detect.ActionAlert, Scope: detect.ScopeToken, Signals: []detect.Signal{{Name: detect.SigNetworks}}})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warden_detect_alerts_total", map[string]string{"action": "quarantine", "scope": "user"}, 1},
		{"warden_detect_alerts_total", map[string]string{"action": "alert", "scope": "token"}, 1},
		{"warden_detect_alerts_total", map[string]string{"action": "throttle", "scope": "client"}, 0},
		{"warden_detect_signals_total", map[string]string{"signal": "velocity", "action": "quarantine"}, 1},
		{"warden_detect_signals_total", map[string]string{"signal": "unrelated", "action": "quarantine"}, 1},
		{"warden_detect_signals_total", map[string]string{"signal": "networks", "action": "alert"}, 1},
		{"warden_detect_signals_total", map[string]string{"signal": "probing", "action": "alert"}, 0},
	} {
		if got := value(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// No label holds an identifier.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "client-a") || strings.Contains(v, "/") {
					t.Errorf("label %s=%q holds an identifier", l.GetName(), v)
				}
			}
		}
	}
	// A second Sink on the same registry fails loudly instead of splitting counts.
	if _, err := promsink.New(reg); err == nil {
		t.Error("a second Sink on the same registry was accepted")
	}
}

func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("%s%v not found", name, labels)
	return 0
}
