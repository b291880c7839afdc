package witness

import (
	"net/http"
	"testing"
)

// BenchmarkAddCheckpoint measures one accepted add-checkpoint through the
// handler: parse, signature check, consistency proof, durable swap (fsync)
// and cosignature.
func BenchmarkAddCheckpoint(b *testing.B) {
	f := newFixture(b)
	const start = 1000
	mustStatus(b, f.post(b, f.honest(b, 0, start)), http.StatusOK)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = f.honest(b, int64(start+i), int64(start+i+1))
	}
	b.ResetTimer()
	for i := range b.N {
		if rec := f.post(b, bodies[i]); rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
