package limits_test

import (
	"testing"

	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/limits/limitstest"
)

// BenchmarkAllow meters one request against every key class at once
// (client, user, patient context, address, certificate), plus the
// concurrency slot and a one-patient Touch: what the guard does per
// request. 1000 clients keep the maps realistic; limits are generous so
// every request is allowed.
func BenchmarkAllow(b *testing.B) {
	limitstest.BenchAllow(b, limits.NewMemoryStore())
}
