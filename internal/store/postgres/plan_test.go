package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

// TestLargePatientPageReadsAPage checks that the first page of one
// Patient's Observations with a code reads about a page of index
// entries, not every match of that Patient nor every Observation's
// patient reference: the driver's two ranges of idx_token_patient are
// merged in pk order and the patient clause is tested on each row as it
// comes (sqlstore's patientDriver, Dialect.SortedArm and Probe).
// PostgreSQL's own counters of index entries read tell; they reach
// pg_stat_user_indexes when a connection ends, so the store is closed
// before each reading.
func TestLargePatientPageReadsAPage(t *testing.T) {
	schema, dsn := newSchema(t)
	t.Cleanup(func() {
		if err := dropSchema(testDSN(t), schema); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	open := func() store.Store {
		s, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Another Patient's Observations first, so that a scan of the
	// patient references in pk order would read them all before the
	// first of bigp's.
	const n = 6000 // each; 3,000 of bigp's have the code
	s := open()
	storetest.LoadLargePatient(t, s, "other", n)
	storetest.LoadLargePatient(t, s, "bigp", n)
	s.Close()

	admin, err := pgx.Connect(ctx, testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// The tables as autovacuum leaves them after an import: with their
	// statistics PostgreSQL costs a merge join over all patient
	// references in pk order as cheap for a page; with their visibility
	// maps set, reading idx_token_patient in order costs no heap fetches.
	// (Before that, it may sort the Patient's matches of the code first:
	// all of them read, though still none of the other rows.)
	for _, table := range []string{"resources", "idx_token", "idx_reference", "compartment"} {
		if _, err := admin.Exec(ctx, "VACUUM ANALYZE "+pgx.Identifier{schema, table}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	// read returns the index entries read so far in the schema, all
	// indexes together and the named index's.
	read := func(index string) (all, one int64) {
		err := admin.QueryRow(ctx, `SELECT COALESCE(SUM(idx_tup_read), 0)::bigint,
			COALESCE(SUM(idx_tup_read) FILTER (WHERE indexrelname = $2), 0)::bigint
			FROM pg_stat_user_indexes WHERE schemaname = $1`, schema, index).Scan(&all, &one)
		if err != nil {
			t.Fatal(err)
		}
		return all, one
	}
	// settle waits until the counters stop moving: the connections just
	// closed have reported.
	settle := func(index string) (all, one int64) {
		all, one = read(index)
		for range 50 {
			time.Sleep(100 * time.Millisecond)
			a, o := read(index)
			if a == all && o == one {
				return a, o
			}
			all, one = a, o
		}
		t.Fatal("the index counters did not settle in 5 s")
		return 0, 0
	}
	// perSearch runs q ten times, checking each result with ok, and
	// returns the index entries read per search, all together and from
	// index.
	perSearch := func(q *search.Query, index string, ok func(*store.SearchResult) bool) (all, one int64) {
		all0, one0 := settle(index)
		const searches = 10
		s := open()
		for range searches {
			res, err := s.Search(ctx, q, store.PageRequest{})
			if err != nil || !ok(res) {
				t.Fatalf("Search: %d matches, next %q, %v", len(res.Matches), res.Next, err)
			}
		}
		s.Close()
		var all1, one1 int64
		for range 50 {
			if all1, one1 = settle(index); one1 > one0 {
				break
			}
		}
		if one1 == one0 {
			t.Fatalf("%s was not read: the search no longer drives from it", index)
		}
		return (all1 - all0) / searches, (one1 - one0) / searches
	}

	// A page: 51 pks from idx_token_patient, and for each its patient
	// reference, its row and its compartment, with a little to spare.
	q := storetest.LargePatientSearch(t, "bigp")
	all, patient := perSearch(q, "idx_token_patient", func(p *store.SearchResult) bool { return len(p.Matches) == 50 && p.Next != "" })
	t.Logf("index entries read per page: %d, of them idx_token_patient %d", all, patient)
	if patient > 100 || all > 400 {
		t.Errorf("a page of 50 read %d index entries per search, %d of them from idx_token_patient; want at most 400 and 100 (%d matches, %d Observations)",
			all, patient, n/2, 2*n)
	}

	// The newest match (_sort=-date&_count=1): the Patient's candidates
	// counted up to 500 (sqlstore's walkGate), then its dates walked
	// newest first (dateWalk), not every match's date read.
	q = storetest.LargePatientNewest(t, "bigp", 1)
	all, dates := perSearch(q, "idx_date_patient_hi", func(p *store.SearchResult) bool { return len(p.Matches) == 1 })
	t.Logf("index entries read for the newest: %d, of them idx_date_patient_hi %d", all, dates)
	if dates > 20 || all > 800 {
		t.Errorf("the newest match read %d index entries per search, %d of them from idx_date_patient_hi; want at most 800 and 20 (%d matches)",
			all, dates, n/2)
	}
}
