package fhirapi_test

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
)

func TestSearch(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.create(patient("Álvarez", "Alice", "female", "1980-05-01"))
	bob := ts.create(patient("Brown", "Bob", "male", "1990-01-15"))
	var aliceObs, bobObs []string
	for i, d := range []string{"2020-01-01", "2020-06-01", "2021-01-01"} {
		aliceObs = append(aliceObs, "Observation/"+ts.create(observation(alice, "http://loinc.org", "8480-6", d, float64(120+i*10))))
	}
	bobObs = append(bobObs, "Observation/"+ts.create(observation(bob, "http://loinc.org", "8480-6", "2020-03-01", 150)))
	other := "Observation/" + ts.create(observation(alice, "http://loinc.org", "8462-4", "2020-03-01", 80))

	cases := []struct {
		query string
		want  []string
	}{
		{"Patient?name=alvarez", []string{"Patient/" + alice}},
		{"Patient?family:exact=Álvarez", []string{"Patient/" + alice}},
		{"Patient?family:exact=alvarez", nil},
		{"Patient?name:contains=row", []string{"Patient/" + bob}},
		{"Patient?gender=male", []string{"Patient/" + bob}},
		{"Patient?gender:not=male", []string{"Patient/" + alice}},
		{"Patient?birthdate=1980", []string{"Patient/" + alice}},
		{"Patient?birthdate=lt1985-01-01", []string{"Patient/" + alice}},
		{"Patient?birthdate=ge1985&birthdate=le1995", []string{"Patient/" + bob}},
		{"Patient?_id=" + alice + "," + bob, []string{"Patient/" + alice, "Patient/" + bob}},
		{"Observation?patient=" + alice + "&code=http://loinc.org|8480-6", aliceObs},
		{"Observation?subject=Patient/" + alice + "&code=8480-6", aliceObs},
		{"Observation?subject=" + url.QueryEscape(ts.url+"/Patient/"+alice) + "&code=8480-6", aliceObs},
		{"Observation?code=http://loinc.org|8480-6&date=2020", append(aliceObs[:2:2], bobObs...)},
		{"Observation?value-quantity=gt135", append(aliceObs[2:3:3], bobObs...)},
		{"Observation?subject:Patient.name=brown", bobObs},
		{"Patient?_has:Observation:patient:code=8462-4", []string{"Patient/" + alice}},
		{"Observation?code:missing=false&patient=" + bob, bobObs},
		{"Patient/" + alice + "/Observation?code=8462-4", []string{other}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			r := ts.do("GET", "/"+c.query, nil)
			ts.mustStatus(r, http.StatusOK)
			b := r.json(t)
			if b["type"] != "searchset" {
				t.Fatalf("not a searchset: %s", r.body)
			}
			got := entryIDs(t, b, "match")
			sort.Strings(got)
			want := append([]string(nil), c.want...)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("got %v\nwant %v", got, want)
			}
			if tot, ok := b["total"].(float64); ok && int(tot) != len(want) {
				t.Errorf("total %v, want %d", tot, len(want))
			}
		})
	}

	// POST _search is the same search
	r := ts.do("POST", "/Patient/_search", "gender=male", "Content-Type", "application/x-www-form-urlencoded")
	ts.mustStatus(r, http.StatusOK)
	if got := entryIDs(t, r.json(t), "match"); len(got) != 1 || got[0] != "Patient/"+bob {
		t.Errorf("POST _search: %v", got)
	}

	// _include brings the subject along, marked as include
	r = ts.do("GET", "/Observation?code=8462-4&_include=Observation:subject", nil)
	ts.mustStatus(r, http.StatusOK)
	if inc := entryIDs(t, r.json(t), "include"); len(inc) != 1 || inc[0] != "Patient/"+alice {
		t.Errorf("_include: %v", inc)
	}
	r = ts.do("GET", "/Patient?_id="+bob+"&_revinclude=Observation:subject", nil)
	ts.mustStatus(r, http.StatusOK)
	if inc := entryIDs(t, r.json(t), "include"); len(inc) != 1 || inc[0] != bobObs[0] {
		t.Errorf("_revinclude: %v", inc)
	}

	// _summary=count: a total and no entries
	r = ts.do("GET", "/Observation?_summary=count", nil)
	ts.mustStatus(r, http.StatusOK)
	if b := r.json(t); b["total"].(float64) != 5 || b["entry"] != nil {
		t.Errorf("_summary=count: %s", r.body)
	}

	// _elements projects and marks SUBSETTED
	r = ts.do("GET", "/Patient?_id="+alice+"&_elements=gender", nil)
	ts.mustStatus(r, http.StatusOK)
	if !strings.Contains(string(r.body), "SUBSETTED") || strings.Contains(string(r.body), "birthDate") || !strings.Contains(string(r.body), `"gender"`) {
		t.Errorf("_elements: %s", r.body)
	}

	// _sort descending by date
	r = ts.do("GET", "/Observation?patient="+alice+"&code=8480-6&_sort=-date", nil)
	ts.mustStatus(r, http.StatusOK)
	got := entryIDs(t, r.json(t), "match")
	if strings.Join(got, " ") != strings.Join([]string{aliceObs[2], aliceObs[1], aliceObs[0]}, " ") {
		t.Errorf("_sort=-date: %v", got)
	}
}

func TestPaging(t *testing.T) {
	ts := newTestServer(t)
	want := map[string]bool{}
	for i := 0; i < 23; i++ {
		want["Patient/"+ts.create(patient("Pager", "P", "other", "2001"))] = true
	}
	ts.create(patient("Other", "O", "other", "2001"))
	seen := map[string]bool{}
	next := "/Patient?family=Pager&_count=5&_sort=_id"
	pages := 0
	for next != "" {
		r := ts.do("GET", next, nil)
		ts.mustStatus(r, http.StatusOK)
		b := r.json(t)
		for _, id := range entryIDs(t, b, "match") {
			if seen[id] {
				t.Fatalf("%s on two pages", id)
			}
			seen[id] = true
		}
		next = link(b, "next")
		pages++
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 5 || len(seen) != len(want) {
		t.Errorf("%d pages, %d resources; want 5 pages, %d", pages, len(seen), len(want))
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("%s never returned", id)
		}
	}

	// A cursor is bound to its query: replaying it with another search,
	// or altering it, is refused.
	r := ts.do("GET", "/Patient?family=Pager&_count=5&_sort=_id", nil)
	nextURL := link(r.json(t), "next")
	u, _ := url.Parse(nextURL)
	cur := u.Query().Get("_cursor")
	ts.mustStatus(ts.do("GET", "/Patient?family=Other&_count=5&_sort=_id&_cursor="+url.QueryEscape(cur), nil), http.StatusBadRequest)
	tampered := cur[:len(cur)-2] + "AA"
	if tampered == cur {
		tampered = cur[:len(cur)-2] + "BB"
	}
	ts.mustStatus(ts.do("GET", "/Patient?family=Pager&_count=5&_sort=_id&_cursor="+url.QueryEscape(tampered), nil), http.StatusBadRequest)
	ts.mustStatus(ts.do("GET", nextURL, nil), http.StatusOK)
}
