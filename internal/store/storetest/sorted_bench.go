package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// BenchmarkSearchPatientCodeSorted measures the patient+code search sorted
// by -date (_count 50), on LoadBenchData: 5 matches, the general plan.
func BenchmarkSearchPatientCodeSorted(b *testing.B, s store.Store) {
	reg := benchRegistry(b)
	pPatient, pCode, pDate := reg.Param("Observation", "patient"), reg.Param("Observation", "code"), reg.Param("Observation", "date")
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		c := benchCodes[r.IntN(len(benchCodes))]
		q := &search.Query{Type: "Observation", Count: 50, Clauses: []search.Clause{
			{Param: pPatient, Values: []search.Value{{RefType: "Patient", RefID: fmt.Sprintf("bp%05d", r.IntN(BenchPatients))}}},
			{Param: pCode, Values: []search.Value{{System: "http://loinc.org", Code: c.code}}},
		}, Sort: []search.Sort{{Param: pDate, Desc: true}}}
		res, err := s.Search(ctx, q, store.PageRequest{})
		if err != nil || len(res.Matches) != 5 {
			b.Fatalf("Search: %d matches, %v", len(res.Matches), err)
		}
	}
}
