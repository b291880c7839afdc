package eventdb

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// A crash between Put's commits leaves an event in the ids and events
// stores but not in the index, whose cursor still points before it: the
// indexer puts it again, and it must then be indexed, not taken for one
// already held.
func TestPutAfterCrashBetweenCommits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	w := func(id string) store.Write {
		return store.Write{
			Resource: store.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: at, JSON: []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`)},
			Entries:  []searchparam.Entry{{Param: "outcome", Type: searchparam.Token, Code: "0"}},
			Patients: []string{"p1"},
		}
	}
	if err := d.Put(ctx, []store.Write{w("a")}, 1); err != nil {
		t.Fatal(err)
	}
	// What the crash left of the next batch: "b" at ordinal 1, in the
	// ids and events stores only.
	p := makePos(at.UnixMicro(), 1)
	if err := d.ids.Set([]byte("b"), p[:], pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := d.bodies.Set(p[:8], encodeEvent("b", []string{"p1"}, []byte(`{"partial":true}`)), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if c, _ := d.Cursor(ctx); c != 1 {
		t.Fatalf("cursor %d, want 1", c)
	}
	// The indexer reads from the cursor again: "a" is held, "b" is not.
	if err := d.Put(ctx, []store.Write{w("b")}, 2); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, []store.Write{w("a")}, 2); err != nil {
		t.Fatal(err)
	}
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	outcome := reg.Param("AuditEvent", "outcome")
	for _, q := range []*searchQuery{
		{name: "outcome=0", clause: outcome},
		{name: "Patient/p1/AuditEvent", compartment: "p1"},
	} {
		res, err := d.Search(ctx, q.build(), store.PageRequest{WantTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range res.Matches {
			ids = append(ids, m.ID)
		}
		if len(ids) != 2 || ids[0] != "a" || ids[1] != "b" || res.Total != 2 {
			t.Errorf("%s: %v (total %d), want [a b] once each", q.name, ids, res.Total)
		}
	}
	r, err := d.Read(ctx, "AuditEvent", "b")
	want, _ := index.Searchable([]byte(`{"resourceType":"AuditEvent","id":"b"}`), r.LastUpdated)
	if err != nil || string(r.JSON) != string(want) {
		t.Errorf("read b: %s, %v; want the event put again", r.JSON, err)
	}
}

// searchQuery builds a one-clause query without going through the parser.
type searchQuery struct {
	name        string
	clause      *searchparam.Param
	compartment string
}

func (q *searchQuery) build() *search.Query {
	sq := &search.Query{Type: "AuditEvent", Count: 10}
	if q.clause != nil {
		sq.Clauses = []search.Clause{{Param: q.clause, Values: []search.Value{{Code: "0", AnySystem: true}}}}
	}
	if q.compartment != "" {
		sq.Compartment = &search.Compartment{Type: "Patient", ID: q.compartment}
	}
	return sq
}
