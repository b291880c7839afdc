package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// testPatients checks Resource.Patients: the compartment membership that
// authorization relies on, reported for current versions by Read, by
// Search matches and by includes, and never for older versions.
func testPatients(t *testing.T, s store.Store) {
	ctx := context.Background()
	pSubject := param("Observation", "subject", "reference")
	put(t, s,
		write("Patient", "p1", 1, epoch, nil),
		write("Observation", "o1", 1, epoch, []searchparam.Entry{refE("subject", "Patient", "p1"), tokE("code", "http://loinc.org", "1")}, "p1"),
		write("Observation", "o2", 1, epoch, []searchparam.Entry{refE("subject", "Patient", "p2"), tokE("code", "http://loinc.org", "1")}, "p2", "p1"),
		write("Observation", "o3", 1, epoch, []searchparam.Entry{tokE("code", "http://loinc.org", "1")}),
	)
	want := map[string][]string{"Observation/o1": {"p1"}, "Observation/o2": {"p1", "p2"}, "Observation/o3": nil, "Patient/p1": nil}
	check := func(what string, r store.Resource) {
		t.Helper()
		if w := want[r.Type+"/"+r.ID]; !slices.Equal(r.Patients, w) {
			t.Errorf("%s %s/%s: Patients = %v, want %v", what, r.Type, r.ID, r.Patients, w)
		}
	}
	for _, id := range []string{"o1", "o2", "o3"} {
		r, err := s.Read(ctx, "Observation", id)
		if err != nil {
			t.Fatal(err)
		}
		check("Read", *r)
	}
	q := query("Observation", cl(pCode, vCode("1")))
	q.Includes = []search.Include{{SourceType: "Observation", Param: pSubject}}
	res, err := s.Search(ctx, q, store.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matches) != 3 {
		t.Fatalf("%d matches, want 3", len(res.Matches))
	}
	for _, r := range res.Matches {
		check("Search", r)
	}
	// Sorted searches read their rows another way: same membership.
	sorted := query("Observation", cl(pCode, vCode("1")))
	sorted.Sort = []search.Sort{{Param: pCode}}
	sres, err := s.Search(ctx, sorted, store.PageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sres.Matches) != 3 {
		t.Fatalf("sorted: %d matches, want 3", len(sres.Matches))
	}
	for _, r := range sres.Matches {
		check("sorted Search", r)
	}
	if len(res.Included) != 1 {
		t.Fatalf("included %v, want Patient/p1", ids(res.Included))
	}
	check("Included", res.Included[0])

	// A new version moves o2 out of p1's compartment; the old version
	// reports no membership (not known), the current one the new one.
	put(t, s, write("Observation", "o2", 2, epoch.Add(time.Minute), []searchparam.Entry{refE("subject", "Patient", "p2")}, "p2"))
	cur, err := s.Read(ctx, "Observation", "o2")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cur.Patients, []string{"p2"}) {
		t.Errorf("after update: Patients = %v, want [p2]", cur.Patients)
	}
	old, err := s.VRead(ctx, "Observation", "o2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if old.Patients != nil {
		t.Errorf("old version: Patients = %v, want nil", old.Patients)
	}
}
