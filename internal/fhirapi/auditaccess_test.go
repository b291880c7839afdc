package fhirapi_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// A patient's accounting of disclosures shows the accesses to their own
// record and nothing of another patient's, whichever store holds the
// trail: the FHIR store, or the trail's own index behind eventdb.Route.
// The answers of the two are also the same, status for status.
func TestAuditEventsOfAnotherPatientStayHidden(t *testing.T) {
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	// Reads of p1 and of p2 by a backend client.
	var ws []store.Write
	for i, p := range []string{"p1", "p2"} {
		r := audit.Record{RequestID: "req-" + p, Time: at.Add(time.Duration(i) * time.Second), Duration: time.Millisecond,
			Surface: audit.SurfaceFHIR, Action: "read", Method: "GET", Path: "/fhir/Patient/" + p, Status: 200,
			ClientID: "backend", PeerAddr: netip.MustParseAddr("192.0.2.7"), TokenID: "jti-" + p,
			Patients: []string{p}, Resources: []string{"Patient/" + p}}
		ev, err := audit.Build(r, "https://warden.example/fhir")
		if err != nil {
			t.Fatal(err)
		}
		ev["id"] = "ev-" + p
		lastUpdated := r.Time.Truncate(time.Millisecond)
		ev["meta"] = map[string]any{"versionId": "1", "lastUpdated": lastUpdated.Format("2006-01-02T15:04:05.000Z07:00")}
		index.StripQueries(ev)
		body, err := audit.Canonical(ev)
		if err != nil {
			t.Fatal(err)
		}
		var decoded map[string]any
		if err := json.Unmarshal(body, &decoded); err != nil {
			t.Fatal(err)
		}
		entries := reg.Extract("AuditEvent", decoded)
		ws = append(ws, store.Write{
			Resource: store.Resource{Type: "AuditEvent", ID: "ev-" + p, Version: 1, LastUpdated: lastUpdated, JSON: body},
			Entries:  entries, Patients: reg.PatientCompartment("AuditEvent", entries),
		})
	}

	requests := []struct{ token, path string }{
		{"p1-read", "/AuditEvent"},
		{"p1-read", "/AuditEvent?patient=p2"},
		{"p1-read", "/AuditEvent?patient=Patient/p2&_sort=-date"},
		{"p1-read", "/AuditEvent?_id=ev-p2"},
		{"p1-read", "/AuditEvent?entity=Patient/p2"},
		{"p1-read", "/AuditEvent/ev-p2"},
		{"p1-read", "/AuditEvent/ev-p2/_history/1"},
		{"p1-read", "/Patient/p2/AuditEvent"},
		{"p1-read", "/AuditEvent/ev-p1"},
		{"p1-read", "/Patient/p1/AuditEvent"},
		{"backend-obs-all", "/AuditEvent?_sort=date"},
		{"backend-obs-all", "/_history"},
		{"p1-read", "/_history"},
	}
	type answer struct {
		status int
		ids    []string
	}
	run := func(t *testing.T, trail bool) []answer {
		var d *eventdb.DB
		var wrap func(store.Store) store.Store
		if trail {
			if d, err = eventdb.Open(t.TempDir()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			wrap = func(st store.Store) store.Store { return eventdb.Route(st, d) }
		}
		f := newAuthzFixtureOn(t, wrap)
		if trail {
			if err := d.Put(context.Background(), ws, 2); err != nil {
				t.Fatal(err)
			}
		} else if err := f.st.Tx(context.Background(), func(tx store.Tx) error {
			for _, w := range ws {
				if err := tx.Put(context.Background(), w); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var out []answer
		for _, rq := range requests {
			r := f.as(rq.token, "GET", rq.path, nil)
			a := answer{status: r.status}
			for _, id := range []string{"ev-p1", "ev-p2"} {
				if strings.Contains(string(r.body), `"id":"`+id+`"`) {
					a.ids = append(a.ids, id)
				}
			}
			if rq.token == "p1-read" && slices.Contains(a.ids, "ev-p2") {
				t.Errorf("%s as p1: %d, shows p2's access history: %s", rq.path, r.status, r.body)
			}
			out = append(out, a)
		}
		// What p1 and the backend see of their own.
		for i, want := range map[int][]string{8: {"ev-p1"}, 9: {"ev-p1"}, 10: {"ev-p1", "ev-p2"}, 11: {"ev-p1", "ev-p2"}} {
			if got := out[i]; got.status != 200 || !slices.Equal(got.ids, want) {
				t.Errorf("%s as %s: %d %v, want 200 %v", requests[i].path, requests[i].token, got.status, got.ids, want)
			}
		}
		return out
	}
	var fhirStore, trail []answer
	t.Run("fhir-store", func(t *testing.T) { fhirStore = run(t, false) })
	t.Run("trail-index", func(t *testing.T) { trail = run(t, true) })
	for i := range requests {
		if i < len(fhirStore) && i < len(trail) && (fhirStore[i].status != trail[i].status || !slices.Equal(fhirStore[i].ids, trail[i].ids)) {
			t.Errorf("%s as %s: the FHIR store answers %d %v, the trail's index %d %v",
				requests[i].path, requests[i].token, fhirStore[i].status, fhirStore[i].ids, trail[i].status, trail[i].ids)
		}
	}
}
