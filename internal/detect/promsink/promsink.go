// Package promsink counts detection alerts as Prometheus metrics: alerts
// by action and scope, and the signals behind them by signal and action.
// It owns only those counters, registered on the Registerer it is given
// (never the global one); labels are fixed enumerations, never a client,
// user, token or patient identifier, so cardinality stays bounded and no
// PHI reaches the metrics.
package promsink

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardenfhir/warden/internal/detect"
)

// Sink is a detect.Sink that counts alerts.
type Sink struct {
	alerts  *prometheus.CounterVec
	signals *prometheus.CounterVec
}

var _ detect.Sink = (*Sink)(nil)

// New registers the counters on reg and returns the Sink. Every label
// combination starts at zero, so a rate query works before the first
// alert.
func New(reg prometheus.Registerer) (*Sink, error) {
	s := &Sink{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warden", Subsystem: "detect", Name: "alerts_total",
			Help: "Abuse-detection alerts, by the action decided and the scope it landed on.",
		}, []string{"action", "scope"}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warden", Subsystem: "detect", Name: "signals_total",
			Help: "Signals that contributed to an abuse-detection alert, by signal and action.",
		}, []string{"signal", "action"}),
	}
	for _, c := range []prometheus.Collector{s.alerts, s.signals} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	actions := []detect.Action{detect.ActionAlert, detect.ActionStepUp, detect.ActionThrottle, detect.ActionQuarantine}
	for _, a := range actions {
		for _, sc := range []detect.Scope{detect.ScopeToken, detect.ScopeUser, detect.ScopeClient, detect.ScopePeer} {
			s.alerts.WithLabelValues(a.String(), sc.String())
		}
		for _, n := range detect.SignalNames {
			s.signals.WithLabelValues(n, a.String())
		}
	}
	return s, nil
}

// Send implements detect.Sink; it never blocks.
func (s *Sink) Send(a detect.Alert) {
	act := a.Action.String()
	s.alerts.WithLabelValues(act, a.Scope.String()).Inc()
	for _, sg := range a.Signals {
		s.signals.WithLabelValues(sg.Name, act).Inc()
	}
}
