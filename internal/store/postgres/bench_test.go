package postgres_test

import (
	"sync"
	"testing"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

var bench struct {
	once sync.Once
	s    store.Store
	err  error
}

// benchStore returns a store holding storetest.LoadBenchData in a schema
// of its own, shared by the benchmarks (which run several times) and
// dropped at the end.
func benchStore(b *testing.B) store.Store {
	testDSN(b)
	bench.once.Do(func() {
		bench.s = openShared(b, postgres.Options{})
		storetest.LoadBenchData(b, bench.s)
	})
	if bench.s == nil {
		b.Fatal("the benchmark store failed to load")
	}
	return bench.s
}

func BenchmarkRead(b *testing.B) { storetest.BenchmarkRead(b, benchStore(b)) }

func BenchmarkSearchPatientCode(b *testing.B) { storetest.BenchmarkSearchPatientCode(b, benchStore(b)) }

func BenchmarkPut(b *testing.B) { storetest.BenchmarkPut(b, benchStore(b)) }

func BenchmarkImport(b *testing.B) { storetest.BenchmarkImport(b, benchStore(b)) }

func BenchmarkSearchLargePatient(b *testing.B) {
	storetest.BenchmarkSearchLargePatient(b, benchStore(b))
}

func BenchmarkSearchPatientCodeSorted(b *testing.B) {
	storetest.BenchmarkSearchPatientCodeSorted(b, benchStore(b))
}
