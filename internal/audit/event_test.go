package audit

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/validate"
)

const testBase = "https://warden.example/fhir"

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)

// records are the requests the tests describe, by name.
func records() map[string]Record {
	many := make([]string, 250)
	res := make([]string, 250)
	for i := range many {
		many[i] = fmt.Sprintf("pat-%d", i)
		res[i] = fmt.Sprintf("Observation/obs-%d/_history/%d", i, i%3+1)
	}
	return map[string]Record{
		"read": {
			RequestID: "0a1b2c3d4e5f60718293a4b5", Time: t0, Duration: 3 * time.Millisecond,
			Surface: SurfaceFHIR, Action: "read", Method: "GET", Path: "/fhir/Patient/p1",
			Status: 200, ClientID: "growth-chart", Subject: "alice", FHIRUser: "Practitioner/prac-1",
			TokenID: "tok-123", PeerAddr: netip.MustParseAddr("192.0.2.7"),
			PurposeOfUse: []string{"TREAT"},
			Patients:     []string{"p1"}, Resources: []string{"Patient/p1/_history/4"},
		},
		"vread absolute fhirUser": {
			RequestID: "r2", Time: t0, Surface: SurfaceFHIR, Action: "vread", Method: "GET",
			Path: "/fhir/Observation/o1/_history/2", Status: 200, ClientID: "app",
			Subject: "bob", FHIRUser: "https://warden.example/fhir/Practitioner/prac-2",
			PeerAddr: netip.MustParseAddr("::ffff:198.51.100.9"),
			Patients: []string{"Patient/p1"}, Resources: []string{"Observation/o1/_history/2"},
		},
		"search many patients": {
			RequestID: "r3", Time: t0, Duration: 40 * time.Millisecond, Surface: SurfaceFHIR,
			Action: "search-type", Method: "GET", Path: "/fhir/Observation",
			Query:  url.Values{"code": {"http://loinc.org|8867-4"}, "subject:Patient.name": {"Smith"}, "_count": {"50"}},
			Status: 200, ClientID: "population-app", Subject: "carol", FHIRUser: "Person/x",
			PeerAddr: netip.MustParseAddr("2001:db8::1"),
			Patients: many, Resources: res,
		},
		"denied by rule": {
			RequestID: "r4", Time: t0, Surface: SurfaceFHIR, Action: "read", Method: "GET",
			Path: "/fhir/Patient/p9", Status: 403, DenyRule: "consent-deny-all",
			ClientID: "app", Subject: "mallory", FHIRUser: "Patient/p8",
			PeerAddr: netip.MustParseAddr("203.0.113.5"), Patients: []string{"p9"},
		},
		"backend client without user": {
			RequestID: "r5", Time: t0, Surface: SurfaceFHIR, Action: "create", Method: "POST",
			Path: "/fhir/Observation", Status: 201, ClientID: "lab-feed", TokenID: "jti/with space",
			CertThumbprint: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2",
			PurposeOfUse:   []string{"http://terminology.hl7.org/CodeSystem/v3-ActReason|HOPERAT"},
			PeerAddr:       netip.MustParseAddr("10.0.0.3"),
			Patients:       []string{"p2"}, Resources: []string{"Observation/new-1/_history/1"},
		},
		"break the glass": {
			RequestID: "r6", Time: t0, Surface: SurfaceFHIR, Action: "search-type", Method: "GET",
			Path: "/fhir/Condition", Query: url.Values{"patient": {"p3"}}, Status: 200,
			ClientID: "ehr", Subject: "dr-who", FHIRUser: "Practitioner/dw",
			OnBehalfOf: "RelatedPerson/rp1", PurposeOfUse: []string{"ETREAT"},
			BreakGlassReason: "unconscious patient in ED", Review: "break-glass-review",
			Patients: []string{"p3"}, Resources: []string{"Condition/c1/_history/1"},
		},
		"server error": {
			RequestID: "r7", Time: t0, Surface: SurfaceFHIR, Action: "transaction", Method: "POST",
			Path: "/fhir", Status: 503, ClientID: "app", Subject: "s",
		},
		"token": {
			RequestID: "r8", Time: t0, Surface: SurfaceAuth, Action: "token", Method: "POST",
			Path: "/auth/token", Status: 200, ClientID: "app", Subject: "alice", TokenID: "new-jti",
			PeerAddr: netip.MustParseAddr("192.0.2.7"),
		},
		"authorize with secrets in query": {
			RequestID: "r9", Time: t0, Surface: SurfaceAuth, Action: "authorize", Method: "GET",
			Path: "/auth/authorize", Status: 302, ClientID: "app",
			Query: url.Values{"client_id": {"app"}, "code": {"SECRET-CODE"}, "password": {"hunter2"}, "state": {"xyz"}},
		},
		"login failed": {
			RequestID: "r10", Time: t0, Surface: SurfaceAuth, Action: "login", Method: "POST",
			Path: "/auth/login", Status: 401, PeerAddr: netip.MustParseAddr("192.0.2.99"),
		},
		"admin client-add": {
			RequestID: "r11", Time: t0, Surface: SurfaceAdmin, Action: "client-add", Method: "POST",
			Path: "/admin/clients", Status: 201, Subject: "admin", Outcome: OutcomeSuccess,
		},
		"everything operation": {
			RequestID: "r12", Time: t0, Surface: SurfaceFHIR, Action: "operation", Method: "GET",
			Path: "/fhir/Patient/p1/$everything", Status: 200, ClientID: "app", Subject: "p1",
			FHIRUser: "Patient/p1", Patients: []string{"p1", "p1", "Patient/p1"},
		},
	}
}

// checkValid decodes the canonical bytes of ev with the project's strict
// decoder and validates them against the R4 definitions.
func checkValid(t *testing.T, ev map[string]any) {
	t.Helper()
	canon, err := Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	res, err := validate.Decode(canon, validate.Limits{MaxBytes: int64(len(canon)) + 1})
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if issues := validate.Validate(res); len(issues) > 0 {
		t.Fatalf("invalid AuditEvent: %+v\n%s", issues, canon)
	}
}

func TestBuildValid(t *testing.T) {
	for name, r := range records() {
		t.Run(name+" without base", func(t *testing.T) {
			ev, err := Build(r, "")
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, ev)
		})
		t.Run(name, func(t *testing.T) {
			ev, err := Build(r, testBase)
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, ev)
			ev["id"] = testEventID()
			checkValid(t, ev)
		})
	}
}

// entitiesWithRole returns the entities whose role has the given code.
func entitiesWithRole(ev map[string]any, role string) []map[string]any {
	var out []map[string]any
	for _, e := range ev["entity"].([]any) {
		e := e.(map[string]any)
		if r, ok := e["role"].(map[string]any); ok && r["code"] == role {
			out = append(out, e)
		}
	}
	return out
}

func agentWithType(ev map[string]any, code string) map[string]any {
	for _, a := range ev["agent"].([]any) {
		a := a.(map[string]any)
		for _, c := range a["type"].(map[string]any)["coding"].([]any) {
			if c.(map[string]any)["code"] == code {
				return a
			}
		}
	}
	return nil
}

func build(t *testing.T, name string) map[string]any {
	t.Helper()
	ev, err := Build(records()[name], testBase)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestBuildRead(t *testing.T) {
	ev := build(t, "read")
	if ev["type"].(map[string]any)["code"] != "rest" || ev["action"] != "R" || ev["outcome"] != "0" {
		t.Errorf("type/action/outcome = %v %v %v", ev["type"], ev["action"], ev["outcome"])
	}
	if sub := ev["subtype"].([]any)[0].(map[string]any); sub["system"] != systemInteraction || sub["code"] != "read" {
		t.Errorf("subtype = %v", sub)
	}
	if p := ev["meta"].(map[string]any)["profile"].([]any)[0]; p != profileBALP+"IHE.BasicAudit.PatientRead" {
		t.Errorf("profile = %v", p)
	}
	if ev["recorded"] != "2026-11-28T12:00:00.126456789Z" {
		t.Errorf("recorded = %v", ev["recorded"])
	}
	pats := entitiesWithRole(ev, "1")
	if len(pats) != 1 || pats[0]["what"].(map[string]any)["reference"] != "Patient/p1" {
		t.Errorf("patient entities = %v", pats)
	}
	user := agentWithType(ev, "UserOauthAgent")
	if user == nil || user["requestor"] != true ||
		user["who"].(map[string]any)["reference"] != "Practitioner/prac-1" ||
		user["policy"].([]any)[0] != "urn:ietf:params:oauth:jti:tok-123" {
		t.Errorf("user agent = %v", user)
	}
	client := agentWithType(ev, "110153")
	if client == nil || client["network"].(map[string]any)["address"] != "192.0.2.7" || client["requestor"] != false {
		t.Errorf("client agent = %v", client)
	}
	if agentWithType(ev, "110152") == nil {
		t.Error("no server agent")
	}
}

func TestBuildSearchManyPatients(t *testing.T) {
	ev := build(t, "search many patients")
	if ev["action"] != "E" {
		t.Errorf("action = %v", ev["action"])
	}
	if n := len(entitiesWithRole(ev, "1")); n != 250 {
		t.Errorf("%d patient entities, want every one of 250", n)
	}
	if n := len(entitiesWithRole(ev, "4")); n != MaxResources {
		t.Errorf("%d resource entities, want %d", n, MaxResources)
	}
	req := ev["entity"].([]any)[0].(map[string]any)
	found := false
	for _, d := range req["detail"].([]any) {
		d := d.(map[string]any)
		found = found || (d["type"] == "resources-total" && d["valueString"] == "250")
	}
	if !found {
		t.Errorf("request entity lacks resources-total: %v", req)
	}
	q := entitiesWithRole(ev, "24")
	if len(q) != 1 {
		t.Fatalf("query entities = %v", q)
	}
	raw, err := base64.StdEncoding.DecodeString(q[0]["query"].(string))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := url.ParseQuery(string(raw))
	if got.Get("subject:Patient.name") != "Smith" || got.Get("code") != "http://loinc.org|8867-4" {
		t.Errorf("query = %q", raw)
	}
	// Person is not an allowed agent.who target: a logical reference instead.
	user := agentWithType(ev, "UserOauthAgent")
	if w := user["who"].(map[string]any); w["reference"] != nil || w["identifier"].(map[string]any)["value"] != "Person/x" {
		t.Errorf("who = %v", w)
	}
}

func TestBuildDenied(t *testing.T) {
	ev := build(t, "denied by rule")
	if ev["outcome"] != OutcomeMinor || !strings.Contains(ev["outcomeDesc"].(string), "consent-deny-all") {
		t.Errorf("outcome = %v %v", ev["outcome"], ev["outcomeDesc"])
	}
	if ev := build(t, "server error"); ev["outcome"] != OutcomeSerious {
		t.Errorf("5xx outcome = %v", ev["outcome"])
	}
}

func TestBuildBackendClient(t *testing.T) {
	ev := build(t, "backend client without user")
	if agentWithType(ev, "UserOauthAgent") != nil {
		t.Error("user agent for a backend client")
	}
	client := agentWithType(ev, "110153")
	if client["requestor"] != true || client["policy"].([]any)[0] != "urn:ietf:params:oauth:jti:jti%2Fwith%20space" {
		t.Errorf("client agent = %v", client)
	}
	if ev["action"] != "C" {
		t.Errorf("action = %v", ev["action"])
	}
	ext := client["extension"].([]any)[0].(map[string]any)
	if ext["valueIdentifier"].(map[string]any)["value"] != records()["backend client without user"].CertThumbprint {
		t.Errorf("thumbprint extension = %v", ext)
	}
}

func TestBuildBreakGlass(t *testing.T) {
	ev := build(t, "break the glass")
	var codes []string
	for _, p := range ev["purposeOfEvent"].([]any) {
		codes = append(codes, p.(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string))
	}
	if strings.Join(codes, ",") != "ETREAT,BTG" {
		t.Errorf("purposeOfEvent codes = %v", codes)
	}
	exts := map[string]any{}
	for _, e := range ev["extension"].([]any) {
		exts[e.(map[string]any)["url"].(string)] = e.(map[string]any)["valueString"]
	}
	if exts[ExtensionBreakGlass] != "unconscious patient in ED" || exts[ExtensionReview] != "break-glass-review" {
		t.Errorf("extensions = %v", exts)
	}
	if agentWithType(ev, "RESP") == nil {
		t.Error("no on-behalf-of agent")
	}
}

func TestBuildRedactsCredentials(t *testing.T) {
	ev := build(t, "authorize with secrets in query")
	canon, err := Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	q := entitiesWithRole(ev, "24")[0]["query"].(string)
	raw, _ := base64.StdEncoding.DecodeString(q)
	for _, secret := range []string{"SECRET-CODE", "hunter2"} {
		if strings.Contains(string(raw), secret) || strings.Contains(string(canon), secret) {
			t.Errorf("credential %q in the event", secret)
		}
	}
	if !strings.Contains(string(raw), "state=xyz") {
		t.Errorf("query lost its ordinary parameters: %q", raw)
	}
}

// TestBuildFresh: events share no maps or slices, with each other or
// with package state, so a caller may change one freely.
func TestBuildFresh(t *testing.T) {
	r := records()["token"]
	a := build(t, "token")
	a["subtype"].([]any)[0].(map[string]any)["code"] = "changed"
	a["type"].(map[string]any)["code"] = "changed"
	b, err := Build(r, testBase)
	if err != nil {
		t.Fatal(err)
	}
	if b["subtype"].([]any)[0].(map[string]any)["code"] != "ITI-71" || b["type"].(map[string]any)["code"] != "110114" {
		t.Errorf("changing one event changed the next: %v %v", b["type"], b["subtype"])
	}
}

func TestBuildPatientsDeduplicated(t *testing.T) {
	if n := len(entitiesWithRole(build(t, "everything operation"), "1")); n != 1 {
		t.Errorf("%d patient entities for one patient", n)
	}
}

// TestBuildRefuses lists the Records Build must not turn into an event.
func TestBuildRefuses(t *testing.T) {
	good := records()["read"]
	cases := map[string]func(*Record){
		"zero time":             func(r *Record) { r.Time = time.Time{} },
		"negative duration":     func(r *Record) { r.Duration = -time.Second },
		"year past 9999":        func(r *Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"no request id":         func(r *Record) { r.RequestID = "" },
		"request id with space": func(r *Record) { r.RequestID = "a b" },
		"unknown surface":       func(r *Record) { r.Surface = "ftp" },
		"unknown fhir action":   func(r *Record) { r.Action = "steal" },
		"unknown auth action":   func(r *Record) { r.Surface, r.Action = SurfaceAuth, "read" },
		"admin action spaces":   func(r *Record) { r.Surface, r.Action = SurfaceAdmin, " x" },
		"bad outcome":           func(r *Record) { r.Outcome = "1" },
		"bad status":            func(r *Record) { r.Status = 1000 },
		"bad patient id":        func(r *Record) { r.Patients = []string{"p/1"} },
		"empty patient id":      func(r *Record) { r.Patients = []string{""} },
		"bad resource ref":      func(r *Record) { r.Resources = []string{"patient/1"} },
		"resource ref query":    func(r *Record) { r.Resources = []string{"Patient?name=x"} },
		"blank purpose":         func(r *Record) { r.PurposeOfUse = []string{" "} },
		"invalid UTF-8 subject": func(r *Record) { r.Subject = "\xff" },
		"blank deny rule":       func(r *Record) { r.DenyRule = "  " },
		"form feed in reason":   func(r *Record) { r.BreakGlassReason = "x\fy" },
		"path over 1 MiB":       func(r *Record) { r.Path = strings.Repeat("a", 1<<20+1) },
		"invalid UTF-8 query":   func(r *Record) { r.Query = url.Values{"name": {"\xfe"}} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			r := good
			mutate(&r)
			ev, err := Build(r, testBase)
			if !errors.Is(err, ErrInvalidRecord) || ev != nil {
				t.Fatalf("Build = %v, %v; want ErrInvalidRecord", ev != nil, err)
			}
			if strings.Contains(err.Error(), "\xff") || strings.Contains(err.Error(), "p/1") {
				t.Errorf("error quotes the value: %v", err)
			}
		})
	}
	if _, err := Build(good, testBase); err != nil {
		t.Fatalf("the unmodified record: %v", err)
	}
}

// testEventID is a fresh random event id, as Append makes them.
func testEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// patientIDs keeps first occurrences in order, with or without the
// Patient/ prefix, below and above the size where it switches from
// comparing to a set.
func TestPatientIDs(t *testing.T) {
	for _, n := range []int{1, 3, 8, 9, 40} {
		var in, want []string
		for i := range n {
			id := fmt.Sprintf("p%d", i)
			want = append(want, id)
			in = append(in, id, "Patient/"+id) // each twice, once as a reference
		}
		in = in[:n] // the first n of them: every id up to n/2, twice
		got, err := patientIDs(in)
		if err != nil {
			t.Fatal(err)
		}
		if w := want[:(n+1)/2]; !slices.Equal(got, w) {
			t.Errorf("%d patients: got %v, want %v", n, got, w)
		}
	}
	if _, err := patientIDs([]string{"p1", "Patient/p 2"}); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("bad id: err = %v", err)
	}
}
