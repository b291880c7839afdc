package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

// benchDir holds the benchmark databases; TestMain removes it.
var benchDir string

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		runCrashChild(path)
	}
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

var bench struct {
	once sync.Once
	s    store.Store
	err  error
}

// benchStore returns a store holding storetest.LoadBenchData, shared by
// the benchmarks (which run several times).
func benchStore(b *testing.B) store.Store {
	bench.once.Do(func() {
		var err error
		if benchDir, err = os.MkdirTemp("", "warden-sqlite-bench"); err != nil {
			bench.err = err
			return
		}
		bench.s, bench.err = sqlite.Open(context.Background(), filepath.Join(benchDir, "bench.db"), sqlite.Options{})
		if bench.err == nil {
			storetest.LoadBenchData(b, bench.s)
		}
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.s
}

func BenchmarkRead(b *testing.B) { storetest.BenchmarkRead(b, benchStore(b)) }

func BenchmarkSearchPatientCode(b *testing.B) { storetest.BenchmarkSearchPatientCode(b, benchStore(b)) }

func BenchmarkPut(b *testing.B) { storetest.BenchmarkPut(b, benchStore(b)) }

func BenchmarkImport(b *testing.B) { storetest.BenchmarkImport(b, benchStore(b)) }

// BenchmarkSearchPatientCodeCached is BenchmarkSearchPatientCode through
// a second store on the same database with the read cache on, as `warden
// serve` runs: the matches' JSON comes from the cache once it has seen
// them (compare the two in one run).
func BenchmarkSearchPatientCodeCached(b *testing.B) {
	benchStore(b)
	s, err := sqlite.Open(context.Background(), filepath.Join(benchDir, "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.CacheReads(64<<20, func([]byte) bool { return true })
	storetest.BenchmarkSearchPatientCode(b, s)
}

func BenchmarkSearchLargePatient(b *testing.B) {
	storetest.BenchmarkSearchLargePatient(b, benchStore(b))
}

func BenchmarkSearchPatientCodeSorted(b *testing.B) {
	storetest.BenchmarkSearchPatientCodeSorted(b, benchStore(b))
}
