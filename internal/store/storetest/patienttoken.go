package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// ptObs is one Observation of the patient-token fixture as the test
// itself understands it, to compute what searches must find.
type ptObs struct {
	id       string
	entries  []searchparam.Entry
	patients []string
	deleted  bool
	// seq is the order of the resources' creation, which the stores'
	// pks keep through updates (sorted searches break ties by pk).
	seq int
}

// patientTokenFixture writes Observations of a few Patients with codes
// from a small set, some in two Patients' compartments (subject and
// performer), some with the subject as an absolute URL, an untyped
// reference or a Group of a Patient's id, some in a compartment without a
// reference to its Patient, some with one code twice; then
// moves some to another Patient and deletes others. It returns the final
// state.
func patientTokenFixture(t *testing.T, s store.Store, rng *rand.Rand) []*ptObs {
	const n = 150
	var all []*ptObs
	build := func(o *ptObs) {
		a := fmt.Sprintf("pt%d", rng.IntN(5))
		o.entries, o.patients = nil, nil
		switch k := rng.IntN(10); {
		case k == 0: // a Group with a Patient's id: not that Patient's
			o.entries = append(o.entries, refE("subject", "Group", a))
		case k == 1: // on another server: not this one's Patient
			o.entries = append(o.entries, refAbsE("subject", "https://other.example/fhir/Patient/"+a, "Patient", a), refAbsE("patient", "https://other.example/fhir/Patient/"+a, "Patient", a))
		case k == 2: // untyped
			o.entries = append(o.entries, refE("patient", "", a))
		case k == 3: // in a compartment through no reference the test indexes
			o.entries = append(o.entries, refE("subject", "Device", "dev1"))
			o.patients = append(o.patients, a)
		default:
			o.entries = append(o.entries, refE("subject", "Patient", a), refE("patient", "Patient", a))
			o.patients = append(o.patients, a)
		}
		if rng.IntN(5) == 0 { // a second Patient, as performer
			b := fmt.Sprintf("pt%d", rng.IntN(5))
			o.entries = append(o.entries, refE("performer", "Patient", b))
			if !slices.Contains(o.patients, b) {
				o.patients = append(o.patients, b)
			}
		}
		for range 1 + rng.IntN(2) {
			sys := []string{"http://loinc.org", "http://snomed.info/sct"}[rng.IntN(2)]
			code := fmt.Sprintf("c%d", rng.IntN(5))
			o.entries = append(o.entries, tokE("code", sys, code))
			if rng.IntN(8) == 0 {
				o.entries = append(o.entries, tokE("code", sys, code))
			}
		}
		// None, one or two dates, from a few days so that sort keys tie;
		// some periods, whose start and end sort differently.
		for range rng.IntN(3) {
			day := func() string { return fmt.Sprintf("2024-01-%02d", 1+rng.IntN(6)) }
			if rng.IntN(3) == 0 {
				// Up to three weeks long: its end can sort it after a
				// later start.
				start := 1 + rng.IntN(6)
				o.entries = append(o.entries, periodE("date", fmt.Sprintf("2024-01-%02d", start), fmt.Sprintf("2024-01-%02d", start+rng.IntN(21))))
			} else {
				o.entries = append(o.entries, dateE("date", day()))
			}
		}
		o.entries = append(o.entries, tokE("status", "", "final"))
		// Parameters whose rows idx_token_patient leaves out.
		if rng.IntN(2) == 0 {
			o.entries = append(o.entries, tokE("_tag", "http://tags", fmt.Sprintf("c%d", rng.IntN(5))))
		}
		o.entries = append(o.entries, tokE("identifier", "http://ids", fmt.Sprintf("c%d", rng.IntN(5))))
		slices.Sort(o.patients)
	}
	var ws []store.Write
	for i := range n {
		o := &ptObs{id: fmt.Sprintf("ob%03d", i), seq: i}
		build(o)
		all = append(all, o)
		ws = append(ws, write("Observation", o.id, 1, epoch, o.entries, o.patients...))
	}
	put(t, s, ws...)
	ws = nil
	for _, o := range all {
		switch rng.IntN(6) {
		case 0:
			build(o)
			ws = append(ws, write("Observation", o.id, 2, epoch, o.entries, o.patients...))
		case 1:
			o.deleted = true
			ws = append(ws, deletion("Observation", o.id, 2, epoch))
		}
	}
	put(t, s, ws...)
	return all
}

// testPatientTokens checks searches that combine one Patient (a
// compartment or a reference to a Patient) with a token clause, which
// the SQL stores answer from an index of token rows by Patient, against
// what the fixture says they must find, page by page.
func testPatientTokens(t *testing.T, s store.Store) {
	all := patientTokenFixture(t, s, rand.New(rand.NewPCG(7, 11)))
	checkPatientTokens(t, s, all)
	t.Run("sorted by date", func(t *testing.T) { checkPatientDates(t, s, all, 1, 3) })
}

// A DateWalker is a store that can walk one Patient's dates in order for
// a date-sorted search (the SQL stores, sqlstore.Store.WalkDates), which
// it does by itself only for Patients with many matches.
type DateWalker interface {
	store.Store
	WalkDates(from, rows int)
}

// RunDateWalks checks the date sorts of the patient-token fixture (see
// checkPatientDates) with the walk tried on every search, from one
// candidate on, paged by 3; then with the walk cut short after three date
// rows, paged by 1, so that most pages fall back to the general plan,
// some after a walk has filled others. (The conformance suite checks the
// sorts as the store plans them.)
func RunDateWalks(t *testing.T, s DateWalker) {
	all := patientTokenFixture(t, s, rand.New(rand.NewPCG(7, 11)))
	defer s.WalkDates(0, 0)
	s.WalkDates(1, 100000)
	t.Run("walking", func(t *testing.T) { checkPatientDates(t, s, all, 3) })
	s.WalkDates(1, 3)
	t.Run("walk cut short", func(t *testing.T) { checkPatientDates(t, s, all, 1) })
}

// ptCase is a search of the patient-token fixture: a Patient anchor and
// a token clause, unsorted and unpaged, and the Observations it must
// find, in fixture order.
type ptCase struct {
	name string
	q    func() *search.Query
	want []*ptObs
}

// patientCases are the searches of checkPatientTokens and
// checkPatientDates: every anchor form, for every Patient, with every
// code set.
func patientCases(all []*ptObs) []ptCase {
	// refers reports whether o has a reference entry of param to id,
	// of type typ ("" for any type), local.
	refers := func(o *ptObs, param, typ, id string) bool {
		for _, e := range o.entries {
			if e.Type == searchparam.Reference && e.Param == param && e.URL == "" && e.RefID == id && (typ == "" || e.RefType == typ) {
				return true
			}
		}
		return false
	}
	hasCode := func(o *ptObs, param, system, code string) bool {
		for _, e := range o.entries {
			if e.Param == param && e.Code == code && (system == "" || e.System == system) {
				return true
			}
		}
		return false
	}
	type anchor struct {
		name    string
		apply   func(q *search.Query, id string)
		matches func(o *ptObs, id string) bool
	}
	anchors := []anchor{
		{"patient=id", func(q *search.Query, id string) { q.Clauses = append(q.Clauses, cl(pPatient, vRef("", id))) },
			func(o *ptObs, id string) bool { return refers(o, "patient", "", id) }},
		{"patient=Patient/id", func(q *search.Query, id string) { q.Clauses = append(q.Clauses, cl(pPatient, vRef("Patient", id))) },
			func(o *ptObs, id string) bool { return refers(o, "patient", "Patient", id) }},
		{"subject:Patient=id", func(q *search.Query, id string) {
			q.Clauses = append(q.Clauses, search.Clause{Param: pSubject, Modifier: search.ModType, TargetType: "Patient", Values: []search.Value{vRef("", id)}})
		}, func(o *ptObs, id string) bool { return refers(o, "subject", "Patient", id) }},
		{"subject=id (any type)", func(q *search.Query, id string) { q.Clauses = append(q.Clauses, cl(pSubject, vRef("", id))) },
			func(o *ptObs, id string) bool { return refers(o, "subject", "", id) }},
		{"performer=Patient/id", func(q *search.Query, id string) { q.Clauses = append(q.Clauses, cl(pPerformer, vRef("Patient", id))) },
			func(o *ptObs, id string) bool { return refers(o, "performer", "Patient", id) }},
		{"compartment", func(q *search.Query, id string) { withCompartment(q, id) },
			func(o *ptObs, id string) bool { return slices.Contains(o.patients, id) }},
		{"compartment and patient=Patient/id", func(q *search.Query, id string) {
			withCompartment(q, id)
			q.Clauses = append(q.Clauses, cl(pPatient, vRef("Patient", id)))
		}, func(o *ptObs, id string) bool {
			return slices.Contains(o.patients, id) && refers(o, "patient", "Patient", id)
		}},
		{"compartment of pt0 and patient=Patient/id", func(q *search.Query, id string) {
			withCompartment(q, "pt0")
			q.Clauses = append(q.Clauses, cl(pPatient, vRef("Patient", id)))
		}, func(o *ptObs, id string) bool {
			return slices.Contains(o.patients, "pt0") && refers(o, "patient", "Patient", id)
		}},
	}
	type codes struct {
		name   string
		param  *searchparam.Param
		values []search.Value
	}
	pObsID := param("Observation", "identifier", searchparam.Token)
	var codeSets []codes
	for i := range 5 {
		c := fmt.Sprintf("c%d", i)
		codeSets = append(codeSets, codes{c, pCode, []search.Value{vCode(c)}}, codes{"loinc|" + c, pCode, []search.Value{vSysCode("http://loinc.org", c)}})
	}
	codeSets = append(codeSets,
		codes{"c1,snomed|c3", pCode, []search.Value{vCode("c1"), vSysCode("http://snomed.info/sct", "c3")}},
		codes{"_tag c2", pTag, []search.Value{vCode("c2")}},
		codes{"identifier c4", pObsID, []search.Value{vCode("c4")}},
	)

	var out []ptCase
	for _, a := range anchors {
		for p := range 6 { // pt5 has nothing
			id := fmt.Sprintf("pt%d", p)
			for _, cs := range codeSets {
				var want []*ptObs
				for _, o := range all {
					if o.deleted || !a.matches(o, id) {
						continue
					}
					for _, v := range cs.values {
						if hasCode(o, cs.param.Code, v.System, v.Code) {
							want = append(want, o)
							break
						}
					}
				}
				out = append(out, ptCase{
					name: fmt.Sprintf("%s %s, %s", a.name, id, cs.name),
					q: func() *search.Query {
						q := query("Observation", cl(cs.param, cs.values...))
						a.apply(q, id)
						return q
					},
					want: want,
				})
			}
		}
	}
	return out
}

// checkPatientTokens runs the searches of testPatientTokens on the
// fixture's final state all.
func checkPatientTokens(t *testing.T, s store.Store, all []*ptObs) {
	t.Helper()
	found := 0
	for _, c := range patientCases(all) {
		var want []string
		for _, o := range c.want {
			want = append(want, "Observation/"+o.id)
		}
		found += len(want)
		q := c.q()
		q.Count = 4
		pages, _ := walk(t, s, q)
		var got []string
		for _, pg := range pages {
			got = append(got, pg...)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", c.name, got, want)
		}
		q.Count = 100
		res, err := s.Search(context.Background(), q, store.PageRequest{WantTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != len(want) {
			t.Errorf("%s: total %d, want %d", c.name, res.Total, len(want))
		}
		// Sorted, the driver is a condition on every row.
		q = withSort(q, desc(pID))
		q.Count = 3
		pages, _ = walk(t, s, q)
		got = got[:0]
		for _, pg := range pages {
			got = append(got, pg...)
		}
		wantDesc := slices.Clone(want)
		slices.Reverse(wantDesc)
		if !slices.Equal(got, wantDesc) {
			t.Errorf("%s, sorted by -_id: got %v, want %v", c.name, got, wantDesc)
		}
	}
	if found < 200 {
		t.Fatalf("the fixture gave only %d matches in all: too few to test anything", found)
	}
}

// checkPatientDates runs the searches of checkPatientTokens sorted by
// date, both ways, page by page: descending by each match's latest date,
// ascending by its earliest, matches without a date last, ties in the
// order of their writes, in pages of each of counts.
func checkPatientDates(t *testing.T, s store.Store, all []*ptObs, counts ...int) {
	t.Helper()
	// key is o's sort key (ok false for none): its highest date's end,
	// or lowest date's start.
	key := func(o *ptObs, descending bool) (k int64, ok bool) {
		for _, e := range o.entries {
			if e.Type != searchparam.Date || e.Param != "date" {
				continue
			}
			v := e.Lo
			if descending {
				v = e.Hi
			}
			if !ok || (descending && v > k) || (!descending && v < k) {
				k, ok = v, true
			}
		}
		return k, ok
	}
	dated, undated := 0, 0
	for _, c := range patientCases(all) {
		for _, descending := range []bool{true, false} {
			want := slices.Clone(c.want)
			slices.SortStableFunc(want, func(a, b *ptObs) int {
				ka, oka := key(a, descending)
				kb, okb := key(b, descending)
				switch {
				case oka != okb: // no date last
					if oka {
						return -1
					}
					return 1
				case oka && ka != kb:
					if descending {
						return cmp.Compare(kb, ka)
					}
					return cmp.Compare(ka, kb)
				}
				return cmp.Compare(a.seq, b.seq)
			})
			var wantIDs []string
			for _, o := range want {
				wantIDs = append(wantIDs, "Observation/"+o.id)
				if _, ok := key(o, descending); ok {
					dated++
				} else {
					undated++
				}
			}
			srt := asc(pDate)
			if descending {
				srt = desc(pDate)
			}
			for _, count := range counts {
				q := withSort(c.q(), srt)
				q.Count = count
				pages, _ := walk(t, s, q)
				var got []string
				for _, pg := range pages {
					got = append(got, pg...)
				}
				if !slices.Equal(got, wantIDs) {
					t.Errorf("%s, sorted by %v date, %d a page: got %v, want %v", c.name, map[bool]string{true: "-", false: "+"}[descending], count, got, wantIDs)
				}
			}
		}
	}
	if dated < 200 || undated < 50 {
		t.Fatalf("the fixture gave %d matches with a date and %d without: too few to test anything", dated, undated)
	}
}

// RawSQL runs one statement directly on the database of a store (closed
// meanwhile) and returns its rows, each value as text.
type RawSQL func(t *testing.T, stmt string) [][]string

// RunPatientMigrations checks that schema migrations 3 and 4 fill the
// patient column of idx_token and idx_date for the rows written before
// them as the store writes it (tokenPatient), and that the searches that
// read them then find what they must. open MUST open the same database
// each time; raw reaches it.
func RunPatientMigrations(t *testing.T, open func(t *testing.T) store.Store, raw RawSQL) {
	tables := []string{"idx_token", "idx_date"}
	rows := func(table string) string {
		return `SELECT pk, param, seq, COALESCE(patient, '(null)') FROM ` + table + ` ORDER BY pk, param, seq`
	}
	s := open(t)
	all := patientTokenFixture(t, s, rand.New(rand.NewPCG(3, 5)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	written := map[string][][]string{}
	for _, table := range tables {
		written[table] = raw(t, rows(table))
		kinds := map[string]int{}
		for _, r := range written[table] {
			switch r[3] {
			case "(null)", "*":
				kinds[r[3]]++
			default:
				kinds["one"]++
			}
		}
		if kinds["(null)"] == 0 || kinds["*"] == 0 || kinds["one"] == 0 {
			t.Fatalf("the fixture's %s rows have patient columns %v: want some of each kind", table, kinds)
		}
	}

	// The database as version 2 left it.
	raw(t, `DROP INDEX idx_token_patient`)
	raw(t, `ALTER TABLE idx_token DROP COLUMN patient`)
	raw(t, `DROP INDEX idx_date_patient_hi`)
	raw(t, `DROP INDEX idx_date_patient_lo`)
	raw(t, `ALTER TABLE idx_date DROP COLUMN patient`)
	raw(t, `UPDATE schema_version SET version = 2`)

	s = open(t)
	t.Run("search", func(t *testing.T) { checkPatientTokens(t, s, all) })
	t.Run("sorted by date", func(t *testing.T) { checkPatientDates(t, s, all, 1, 3) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := raw(t, `SELECT version FROM schema_version`); len(got) != 1 || got[0][0] != "4" {
		t.Errorf("schema version after migrating: %v, want 4", got)
	}
	for _, table := range tables {
		migrated := raw(t, rows(table))
		if len(migrated) != len(written[table]) {
			t.Fatalf("%d %s rows after migrating, %d before", len(migrated), table, len(written[table]))
		}
		for i := range migrated {
			if !slices.Equal(migrated[i], written[table][i]) {
				t.Errorf("%s row %v migrated as %v", table, written[table][i], migrated[i])
			}
		}
	}
}
