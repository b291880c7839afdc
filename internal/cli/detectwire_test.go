package cli

import (
	"encoding/json"
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
