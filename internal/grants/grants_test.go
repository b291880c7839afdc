package grants_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/consent"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/grants"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

func newLedger(t *testing.T) (*grants.Ledger, *fhirapi.API) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api, err := fhirapi.New(st, fhirapi.Options{BaseURL: "https://warden.test/fhir", CursorKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p1", "p2"} {
		if _, err := api.PutTrusted(ctx, "Patient", p, []byte(`{"resourceType":"Patient","id":"`+p+`"}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	return grants.New(api), api
}

func TestLedger(t *testing.T) {
	ctx := context.Background()
	l, api := newLedger(t)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	g1 := authserver.Grant{ID: "grant-1", Patient: "p1", UserID: "u1", ClientID: "growth-chart", Active: true, Granted: t0,
		Scopes: []string{"launch/patient", "patient/Observation.rs", "patient/Patient.r"}}
	g2 := authserver.Grant{ID: "grant-2", Patient: "p1", UserID: "u1", ClientID: "scheduler", Active: true, Granted: t0.Add(time.Hour),
		Scopes: []string{"patient/*.rs"}}
	g3 := authserver.Grant{ID: "grant-3", Patient: "p2", UserID: "u2", ClientID: "growth-chart", Active: true, Granted: t0, Scopes: []string{"patient/Observation.rs"}}
	for _, g := range []authserver.Grant{g1, g2, g3} {
		if err := l.Record(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.ForPatient(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "grant-2" || got[1].ID != "grant-1" {
		t.Fatalf("p1's grants, newest first: %+v", got)
	}
	if g := got[1]; g.ClientID != "growth-chart" || !g.Active || !g.Granted.Equal(t0) || !slices.Equal(g.Scopes, g1.Scopes) || !g.LastAccess.IsZero() {
		t.Fatalf("grant read back: %+v", g)
	}
	// The stored Consent is enforceable and says what the scopes open.
	r, err := api.ReadTrusted(ctx, "Consent", "grant-1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := consent.Parse(r.JSON)
	if err != nil {
		t.Fatalf("the stored grant does not parse: %v", err)
	}
	pol := consent.Compile("p1", []*consent.Consent{c}, consent.OptOut)
	read, _ := consent.ActionFor("read")
	for _, x := range []struct {
		client, typ string
		permit      bool
	}{{"growth-chart", "Observation", true}, {"growth-chart", "Condition", false}, {"other", "Condition", true}} {
		v := pol.Decide(&consent.Access{Actor: consent.Actor{ClientID: x.client}, Action: read, Time: t0.Add(time.Hour),
			Resource: consent.Resource{Type: x.typ, ID: "x", Ref: x.typ + "/x"}})
		if v.Permit != x.permit {
			t.Errorf("%s reading a %s under the grant: %+v", x.client, x.typ, v)
		}
	}

	// A new grant of the same app to the same patient supersedes the old.
	g1b := g1
	g1b.ID, g1b.Granted, g1b.Scopes = "grant-1b", t0.Add(2*time.Hour), []string{"patient/Observation.rs"}
	if err := l.Record(ctx, g1b); err != nil {
		t.Fatal(err)
	}
	got, _ = l.ForPatient(ctx, "p1")
	if len(got) != 3 || got[0].ID != "grant-1b" || !got[0].Active || got[2].ID != "grant-1" || got[2].Active || !got[1].Active {
		t.Fatalf("after a new grant of the same app: %+v", got)
	}
	if err := l.Deactivate(ctx, "grant-1b"); err != nil {
		t.Fatal(err)
	}

	// Blocking a category: once, and only by the grant's patient.
	if err := l.Block(ctx, "p2", "grant-1", "PSY"); err == nil {
		t.Fatal("p2 blocked on p1's grant")
	}
	for range 2 {
		if err := l.Block(ctx, "p1", "grant-1", "PSY"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Block(ctx, "p1", "grant-1", "ETH"); err != nil {
		t.Fatal(err)
	}
	got, _ = l.ForPatient(ctx, "p1")
	if g := find(got, "grant-1"); !slices.Equal(g.Blocked, []string{"PSY", "ETH"}) {
		t.Fatalf("blocked: %v", g.Blocked)
	}

	// Deactivation; an unknown id is no error.
	if err := l.Deactivate(ctx, "grant-1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Deactivate(ctx, "no-such-grant"); err != nil {
		t.Fatal(err)
	}
	got, _ = l.ForPatient(ctx, "p1")
	if find(got, "grant-1").Active || !find(got, "grant-2").Active {
		t.Fatalf("after deactivation: %+v", got)
	}

	// The admin view: every grant of a client, across patients.
	byClient, err := l.ForClient(ctx, "growth-chart")
	if err != nil {
		t.Fatal(err)
	}
	if len(byClient) != 3 {
		t.Fatalf("growth-chart's grants: %+v", byClient)
	}

	// Last access comes from the audit trail.
	ev := `{"resourceType":"AuditEvent","id":"ev1","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},
		"recorded":"2026-03-02T10:00:00Z","agent":[{"who":{"identifier":{"value":"scheduler"}},"requestor":true}],
		"source":{"observer":{"display":"Warden"}},"entity":[{"what":{"reference":"Patient/p1"}}]}`
	if _, err := api.PutTrusted(ctx, "AuditEvent", "ev1", []byte(ev), 0); err != nil {
		t.Fatal(err)
	}
	got, _ = l.ForPatient(ctx, "p1")
	if want := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC); !find(got, "grant-2").LastAccess.Equal(want) || !find(got, "grant-1").LastAccess.IsZero() {
		t.Fatalf("last access: %+v", got)
	}
}

func find(gs []authserver.Grant, id string) authserver.Grant {
	for _, g := range gs {
		if g.ID == id {
			return g
		}
	}
	return authserver.Grant{}
}

func TestGrantOfRefuses(t *testing.T) {
	for _, body := range []string{
		`{}`, `not json`,
		// A patient's own privacy consent is not an app grant.
		`{"resourceType":"Consent","id":"c","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/p1"},"provision":{"type":"deny"}}`,
		`{"resourceType":"Observation","id":"c"}`,
	} {
		if _, err := grants.GrantOf([]byte(body)); err == nil {
			t.Errorf("GrantOf accepted %s", body)
		}
	}
	g := authserver.Grant{ID: "g", Patient: "p", ClientID: "c", Active: true, Granted: time.Unix(0, 0).UTC(), Scopes: []string{"patient/*.rs"}, Blocked: []string{"HIV"}}
	body, err := grants.ConsentOf(g)
	if err != nil {
		t.Fatal(err)
	}
	back, err := grants.GrantOf(body)
	if err != nil || back.ID != g.ID || back.ClientID != g.ClientID || !slices.Equal(back.Blocked, g.Blocked) || !slices.Equal(back.Scopes, g.Scopes) || !back.Granted.Equal(g.Granted) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}
