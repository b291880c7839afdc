package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
)

// event is one journaled audit event as the exporter sends it.
type event struct {
	id        string
	action    string // AuditEvent.action: C, R, U, D or E
	subtype   string // the code of the last AuditEvent.subtype (the interaction or Warden action)
	outcome   string // AuditEvent.outcome
	recorded  time.Time
	canonical []byte // the event's canonical JSON (without entity.query when stripped)
}

// decodeEvent reads a journal entry (audit.JournalEntry) into the fields
// the exporter sends; strip removes every entity.query.
func decodeEvent(entry []byte, strip bool) (event, error) {
	e, err := audit.DecodeJournalEntry(entry)
	if err != nil {
		return event{}, err
	}
	var f struct {
		ID       string `json:"id"`
		Action   string `json:"action"`
		Outcome  string `json:"outcome"`
		Recorded string `json:"recorded"`
		Subtype  []struct {
			Code string `json:"code"`
		} `json:"subtype"`
	}
	if err := json.Unmarshal(e.Canonical, &f); err != nil {
		return event{}, fmt.Errorf("%w: event JSON", audit.ErrBadEntry)
	}
	if f.ID != e.ID {
		return event{}, fmt.Errorf("%w: event id", audit.ErrBadEntry)
	}
	ev := event{id: e.ID, action: f.Action, outcome: f.Outcome, canonical: e.Canonical, recorded: e.Time}
	if t, err := time.Parse(time.RFC3339Nano, f.Recorded); err == nil {
		ev.recorded = t
	}
	if n := len(f.Subtype); n > 0 {
		ev.subtype = f.Subtype[n-1].Code
	}
	if strip && bytes.Contains(e.Canonical, []byte(`"query":`)) {
		if ev.canonical, err = stripQuery(e.Canonical); err != nil {
			return event{}, err
		}
	}
	return ev, nil
}

// stripQuery returns the canonical JSON of the event without the query
// of any entity (base64 of the request's query string, whose values may
// be PHI: names, birth dates, identifiers).
func stripQuery(canonical []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(canonical))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: event JSON", audit.ErrBadEntry)
	}
	entities, _ := m["entity"].([]any)
	for _, e := range entities {
		if e, ok := e.(map[string]any); ok {
			delete(e, "query")
		}
	}
	return audit.Canonical(m)
}

// severity maps an AuditEvent outcome to a syslog severity (RFC 5424
// §6.2.1): success is informational, a refused request (minor failure,
// denials included) a warning, a server failure an error, a major
// failure critical.
func severity(outcome string) int {
	switch outcome {
	case audit.OutcomeSuccess:
		return SeverityInfo
	case audit.OutcomeMinor:
		return SeverityWarning
	case audit.OutcomeSerious:
		return SeverityError
	case audit.OutcomeMajor:
		return SeverityCritical
	}
	return SeverityNotice
}

// SDID is the SD-ID of the element that carries the event's id, outcome
// and subtype. RFC 5424 §6.3.2 requires name@<private enterprise number>
// for an unregistered id; 32473 is the number RFC 5612 reserves for
// documentation, to be replaced when Warden has its own.
const SDID = "warden@32473"

// AppName is the APP-NAME of every message.
const AppName = "warden"

// syslogMessage is the RFC 5424 message of ev: facility authpriv, the
// severity of its outcome, its recorded time, APP-NAME "warden", MSGID
// its AuditEvent.action (the BALP action code), STRUCTURED-DATA with its
// id, outcome and subtype, and MSG its JSON.
func syslogMessage(ev event, hostname string) Message {
	params := []Param{{"id", ev.id}, {"outcome", ev.outcome}}
	if ev.subtype != "" {
		params = append(params, Param{"subtype", ev.subtype})
	}
	return Message{
		Facility:  FacilityAuthpriv,
		Severity:  severity(ev.outcome),
		Timestamp: ev.recorded,
		Hostname:  hostname,
		AppName:   AppName,
		MsgID:     printable(ev.action, 32),
		Data:      []Element{{ID: SDID, Params: params}},
		Msg:       ev.canonical,
	}
}

// printable keeps the printable US-ASCII of s, at most max bytes (RFC
// 5424 header fields); "" when nothing is left (the NILVALUE).
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return -1
		}
		return r
	}, s)
	return s[:min(len(s), max)]
}

// defaultHostname is the HOSTNAME of messages (RFC 5424 §6.2.4): the
// machine's name, or the NILVALUE.
func defaultHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return printable(h, 255)
}
