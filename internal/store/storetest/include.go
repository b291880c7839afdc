package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// testIncludes checks _include and _revinclude (FHIR R4 §3.1.1.5.4) on the
// fixture.
func testIncludes(t *testing.T, s store.Store) {
	ctx := context.Background()
	inc := func(src string, p string, target string, iterate bool) search.Include {
		i := search.Include{SourceType: src, TargetType: target, Iterate: iterate}
		if p != "" {
			i.Param = param(src, p, "reference")
		}
		return i
	}
	obsByCode := func(code string) *search.Query { return query("Observation", cl(pCode, vCode(code))) }
	byID := func(typ string, list ...string) *search.Query {
		var vs []search.Value
		for _, id := range list {
			vs = append(vs, vCode(id))
		}
		return query(typ, cl(pID, vs...))
	}
	for _, c := range []struct {
		name     string
		q        *search.Query
		includes []search.Include
		revs     []search.Include
		matches  []string
		included []string
	}{
		{
			name:     "include",
			q:        obsByCode("1234-5"),
			includes: []search.Include{inc("Observation", "subject", "", false)},
			matches:  names("Observation", "o1", "o2", "o4", "o5", "o6"),
			// o6's subject, Patient/p5, is deleted.
			included: []string{"Group/g1", "Patient/p1", "Patient/p3"},
		},
		{
			name:     "include target type",
			q:        obsByCode("1234-5"),
			includes: []search.Include{inc("Observation", "subject", "Group", false)},
			matches:  names("Observation", "o1", "o2", "o4", "o5", "o6"),
			included: []string{"Group/g1"},
		},
		{
			name:     "include every reference",
			q:        obsByCode("1234-5"),
			includes: []search.Include{inc("Observation", "", "", false)},
			matches:  names("Observation", "o1", "o2", "o4", "o5", "o6"),
			included: []string{"Group/g1", "Patient/p1", "Patient/p3", "Practitioner/dr1"},
		},
		{
			name:     "include of another source type",
			q:        obsByCode("1234-5"),
			includes: []search.Include{inc("Patient", "general-practitioner", "", false)},
			matches:  names("Observation", "o1", "o2", "o4", "o5", "o6"),
		},
		{
			name:     "include two parameters, once each",
			q:        byID("Observation", "o1", "o2"),
			includes: []search.Include{inc("Observation", "subject", "", false), inc("Observation", "patient", "", false), inc("Observation", "performer", "", false)},
			matches:  names("Observation", "o1", "o2"),
			included: []string{"Patient/p1", "Practitioner/dr1"},
		},
		{
			name:     "include a match",
			q:        byID("Patient", "p1", "p2"),
			includes: []search.Include{inc("Patient", "link", "", false)},
			matches:  names("Patient", "p1", "p2"),
		},
		{
			name:    "revinclude",
			q:       byID("Patient", "p1"),
			revs:    []search.Include{inc("Observation", "subject", "", false)},
			matches: names("Patient", "p1"),
			// o7 refers to p1 by an absolute URL, which may be another
			// server's.
			included: names("Observation", "o1", "o2"),
		},
		{
			name:     "revinclude every reference",
			q:        byID("Patient", "p1", "p2"),
			revs:     []search.Include{inc("Observation", "", "", false), inc("RiskAssessment", "subject", "", false)},
			matches:  names("Patient", "p1", "p2"),
			included: []string{"Observation/o1", "Observation/o2", "Observation/o3", "RiskAssessment/ra1", "RiskAssessment/ra2"},
		},
		{
			name:     "revinclude target type",
			q:        byID("Patient", "p1"),
			revs:     []search.Include{inc("Observation", "subject", "Group", false)},
			matches:  names("Patient", "p1"),
			included: nil,
		},
		{
			name:     "include iterate",
			q:        byID("Observation", "o1"),
			includes: []search.Include{inc("Observation", "subject", "", false), inc("Patient", "general-practitioner", "", true)},
			matches:  names("Observation", "o1"),
			included: []string{"Patient/p1", "Practitioner/dr1"},
		},
		{
			name:     "include iterate stops after one level",
			q:        byID("Observation", "o1"),
			includes: []search.Include{inc("Observation", "subject", "", false), inc("Patient", "link", "", true), inc("Patient", "general-practitioner", "", true)},
			matches:  names("Observation", "o1"),
			// p1 links p2, whose general practitioner org1 is two
			// levels away from p1.
			included: []string{"Patient/p1", "Patient/p2", "Practitioner/dr1"},
		},
		{
			name:     "revinclude iterate",
			q:        byID("Practitioner", "dr1"),
			revs:     []search.Include{inc("Patient", "general-practitioner", "", false), inc("Observation", "subject", "", true)},
			matches:  names("Practitioner", "dr1"),
			included: []string{"Observation/o1", "Observation/o2", "Patient/p1"},
		},
		{
			name:     "include and revinclude",
			q:        byID("Observation", "o3"),
			includes: []search.Include{inc("Observation", "subject", "", false)},
			revs:     []search.Include{inc("RiskAssessment", "subject", "", true)},
			matches:  names("Observation", "o3"),
			included: []string{"Patient/p2", "RiskAssessment/ra2"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			q.Includes, q.RevIncludes = c.includes, c.revs
			res, err := s.Search(ctx, q, store.PageRequest{WantTotal: true})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			got, inc := ids(res.Matches), ids(res.Included)
			slices.Sort(got)
			slices.Sort(inc)
			want, wantInc := slices.Sorted(slices.Values(c.matches)), slices.Sorted(slices.Values(c.included))
			if !slices.Equal(got, want) {
				t.Errorf("matches %v, want %v", got, want)
			}
			if !slices.Equal(inc, wantInc) {
				t.Errorf("included %v, want %v", inc, wantInc)
			}
			if res.Total != len(c.matches) {
				t.Errorf("Total %d, want %d (included resources do not count)", res.Total, len(c.matches))
			}
			for _, r := range res.Included {
				if r.Deleted || len(r.JSON) == 0 {
					t.Errorf("included %s/%s is deleted or empty", r.Type, r.ID)
				}
			}
		})
	}

	t.Run("per page", func(t *testing.T) {
		q := withSort(query("Observation", cl(pSubject, vRef("Patient", "p1"))), asc(pID))
		q.Count = 1
		q.Includes = []search.Include{inc("Observation", "performer", "", false)}
		var pages [][]string
		cursor := ""
		for {
			res, err := s.Search(ctx, q, store.PageRequest{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, append(ids(res.Matches), ids(res.Included)...))
			if res.Next == "" {
				break
			}
			cursor = res.Next
		}
		want := [][]string{{"Observation/o1", "Practitioner/dr1"}, {"Observation/o2"}}
		if !slices.EqualFunc(pages, want, slices.Equal) {
			t.Errorf("pages %v, want %v", pages, want)
		}
	})
}
