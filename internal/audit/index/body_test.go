package index

import (
	"bytes"
	"fmt"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
)

const testLastUpdated = "2026-11-29T05:10:00.123Z"

// slowBody is what Indexer.write stores when storedBody declines: the
// decoded event edited and encoded again.
func slowBody(ev []byte, lastUpdated string) ([]byte, error) {
	m, err := slowDecode(ev)
	if err != nil {
		return nil, err
	}
	meta, _ := m["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"], meta["lastUpdated"] = "1", lastUpdated
	m["meta"] = meta
	StripQueries(m)
	return audit.Canonical(m)
}

// bodyRecord is a record of every surface and shape, by the fuzzer's
// choices.
func bodyRecord(kind uint8, query string, patients, resources uint8, user bool, status int) audit.Record {
	surfaces := []string{audit.SurfaceFHIR, audit.SurfaceAuth, audit.SurfaceAdmin}
	actions := map[string][]string{
		audit.SurfaceFHIR:  {"read", "search-type", "create", "update", "delete", "transaction", "history-type"},
		audit.SurfaceAuth:  {"token", "authorize", "introspect", "revoke"},
		audit.SurfaceAdmin: {"client-add", "client-disable"},
	}
	surface := surfaces[int(kind)%len(surfaces)]
	as := actions[surface]
	r := audit.Record{
		RequestID: fmt.Sprintf("req-%d", kind), Time: time.Date(2026, 11, 29, 5, 10, 0, int(kind)*1000, time.UTC),
		Duration: time.Duration(kind) * time.Microsecond, Surface: surface, Action: as[int(kind/3)%len(as)],
		Method: "GET", Path: "/fhir/Observation", Status: 200 + status%400, ClientID: "app",
		TokenID: "jti-1", PeerAddr: netip.MustParseAddr("192.0.2.7"),
	}
	if query != "" {
		r.Query = url.Values{"code": {query}, "patient": {"p1"}}
	}
	for i := range int(patients % 4) {
		r.Patients = append(r.Patients, fmt.Sprintf("p%d", i))
	}
	for i := range int(resources % 4) {
		r.Resources = append(r.Resources, fmt.Sprintf("Observation/o%d", i))
	}
	if user {
		r.Subject, r.FHIRUser, r.PurposeOfUse = "alice", "https://warden.test/fhir/Practitioner/1", []string{"TREAT"}
	}
	if kind%5 == 0 {
		r.BreakGlassReason, r.DenyRule = "emergency", "consent"
	}
	return r
}

// checkBody holds storedBody to slowBody on the canonical event of r: it
// must take the event and give the same bytes.
func checkBody(t *testing.T, r audit.Record) {
	t.Helper()
	ev, err := audit.AppendCanonical(nil, r, "https://warden.test/fhir", "0123456789abcdef0123456789abcdef")
	if err != nil {
		return // a record the pipeline refuses never reaches the journal
	}
	got, ok := storedBody(ev, testLastUpdated)
	if !ok {
		t.Fatalf("storedBody declined an event of the pipeline: %s", ev)
	}
	want, err := slowBody(ev, testLastUpdated)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("storedBody\n got %s\nwant %s", got, want)
	}
}

func TestStoredBody(t *testing.T) {
	queries := 0
	for kind := range uint8(30) {
		for _, q := range []string{"", "8867-4", "Zoë \"quoted\"\n"} {
			r := bodyRecord(kind, q, kind, kind/2, kind%2 == 0, int(kind)*37)
			if q != "" {
				queries++
			}
			checkBody(t, r)
		}
	}
	if queries == 0 {
		t.Fatal("no event with a query: the edit that removes them is untested")
	}
	for _, b := range decodeSeeds(t)[:3] {
		got, ok := storedBody(b, testLastUpdated)
		want, err := slowBody(b, testLastUpdated)
		if !ok || err != nil || !bytes.Equal(got, want) {
			t.Fatalf("seed %.60s…: storedBody %v %s, slowBody %v %s", b, ok, got, err, want)
		}
	}
}

// Outside the canonical layout storedBody declines, and the indexer
// encodes the event itself.
func TestStoredBodyDeclines(t *testing.T) {
	for name, in := range map[string]string{
		"meta not an object":  `{"id":"e1","meta":[],"resourceType":"AuditEvent"}`,
		"versionId already":   `{"id":"e1","meta":{"versionId":"2"},"resourceType":"AuditEvent"}`,
		"lastUpdated already": `{"id":"e1","meta":{"lastUpdated":"2020-01-01T00:00:00Z"},"resourceType":"AuditEvent"}`,
		"white space":         `{"id":"e1", "meta":{},"resourceType":"AuditEvent"}`,
		"keys out of order":   `{"meta":{},"id":"e1","resourceType":"AuditEvent"}`,
		"escaped key":         `{"id":"e1","m\u0065ta":{},"resourceType":"AuditEvent"}`,
		"non-ASCII key":       `{"id":"e1","meta":{},"résumé":1}`,
		"two metas":           `{"meta":{},"meta":{}}`,
		"entity element torn": `{"entity":[{"query":"x"`,
		// An entity the byte-level edit skips must not hide a query.
		"query name spaced":  `{"entity":[{"a":1},{"query" :"eA=="}],"id":"e1"}`,
		"query name escaped": `{"entity":[{"a":1},{"q\u0075ery":"eA=="}],"id":"e1"}`,
		"not an object":      `["meta"]`,
		"empty":              ``,
	} {
		if out, ok := storedBody([]byte(in), testLastUpdated); ok {
			t.Errorf("%s: storedBody took %s as %s", name, in, out)
		}
	}
	if _, ok := storedBody([]byte(`{"meta":{}}`), `2026"`); ok {
		t.Error("storedBody took a lastUpdated that needs escaping")
	}
	// The smallest accepted input, and a query that is an entity's only
	// member.
	m := `"meta":{"lastUpdated":"` + testLastUpdated + `","versionId":"1"}`
	for in, want := range map[string]string{
		`{"meta":{}}`: `{` + m + `}`,
		`{}`:          `{` + m + `}`,
		`{"id":"e1","resourceType":"AuditEvent"}`: `{"id":"e1",` + m + `,"resourceType":"AuditEvent"}`,
		`{"a":1}`:  `{"a":1,` + m + `}`,
		`{"z":[]}`: `{` + m + `,"z":[]}`,
		`{"entity":[{"query":"eA=="},{"a":1,"query":"eA==","z":2}],"meta":{"profile":["p"],"tag":[]}}`: `{"entity":[{},{"a":1,"z":2}],"meta":{"lastUpdated":"` + testLastUpdated + `","profile":["p"],"tag":[],"versionId":"1"}}`,
	} {
		got, ok := storedBody([]byte(in), testLastUpdated)
		if !ok || string(got) != want {
			t.Errorf("storedBody(%s) = %s, %v; want %s", in, got, ok, want)
		}
		if slow, err := slowBody([]byte(in), testLastUpdated); err != nil || string(slow) != want {
			t.Errorf("slowBody(%s) = %s, %v; want %s", in, slow, err, want)
		}
	}
}

// FuzzStoredBody: on events the pipeline writes, storedBody gives what
// encoding again gives; on any input it never panics, and on any input
// already canonical that it takes, it gives what encoding again gives.
func FuzzStoredBody(f *testing.F) {
	f.Add(uint8(0), "", uint8(1), uint8(1), false, 0, []byte(`{"meta":{}}`))
	f.Add(uint8(4), "8867-4", uint8(2), uint8(3), true, 203, []byte(`{"entity":[{"query":"eA=="}],"meta":{"profile":["p"]}}`))
	f.Add(uint8(17), "Zoë", uint8(3), uint8(0), true, 3, []byte(`{"id":"e1", "meta":{}}`))
	f.Fuzz(func(t *testing.T, kind uint8, query string, patients, resources uint8, user bool, status int, raw []byte) {
		checkBody(t, bodyRecord(kind, query, patients, resources, user, status))
		got, ok := storedBody(raw, testLastUpdated)
		if !ok {
			return
		}
		m, err := slowDecode(raw)
		if err != nil {
			return // not JSON: the indexer refused it before storedBody
		}
		if canon, err := audit.Canonical(m); err != nil || !bytes.Equal(canon, raw) {
			return // not canonical: outside the journal's invariant
		}
		want, err := slowBody(raw, testLastUpdated)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("storedBody(%s)\n got %s\nwant %s, %v", raw, got, want, err)
		}
	})
}

// Searchable serves what encoding the edited event again gives, for the
// journal's events and for anything else that is an object (the edit as
// bytes declines, and it decodes); applied to what it served, it serves
// the same bytes (an index written before the edit moved to reading
// holds edited events).
func TestSearchable(t *testing.T) {
	at := time.Date(2026, 11, 29, 5, 10, 0, 123456789, time.UTC)
	const lastUpdated = "2026-11-29T05:10:00.123Z"
	var inputs [][]byte
	for kind := range uint8(12) {
		r := bodyRecord(kind, "8867-4", kind, kind+1, kind%2 == 0, int(kind))
		ev, err := audit.AppendCanonical(nil, r, "https://warden.test/fhir", "0123456789abcdef0123456789abcdef")
		if err == nil {
			inputs = append(inputs, ev)
		}
	}
	for _, s := range []string{
		`{"id":"e1", "meta":{},"resourceType":"AuditEvent"}`,
		`{"meta":{},"id":"e1","resourceType":"AuditEvent"}`,
		`{"id":"e1","m\u0065ta":{"tag":[]},"resourceType":"AuditEvent"}`,
		`{"entity":[{"a":1},{"query" :"eA=="}],"id":"e1"}`,
		`{"entity":[{"a":1},{"q\u0075ery":"eA=="}],"id":"e1"}`,
		`{"id":"e1","meta":{"versionId":"1","lastUpdated":"` + lastUpdated + `"}}`,
	} {
		inputs = append(inputs, []byte(s))
	}
	for _, in := range inputs {
		got, err := Searchable(in, at)
		if err != nil {
			t.Fatalf("Searchable(%.80s…): %v", in, err)
		}
		want, err := slowBody(in, lastUpdated)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Searchable(%s)\n got %s\nwant %s, %v", in, got, want, err)
		}
		if bytes.Contains(got, []byte(`"query"`)) {
			t.Fatalf("Searchable(%s) kept a query: %s", in, got)
		}
		again, err := Searchable(got, at)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("Searchable of its own %s: %s, %v", got, again, err)
		}
	}
	for _, bad := range []string{``, `[1]`, `{"a":`} {
		if out, err := Searchable([]byte(bad), at); err == nil {
			t.Errorf("Searchable(%q) = %s, want an error", bad, out)
		}
	}
}
