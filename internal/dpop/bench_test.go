package dpop

import (
	"crypto/elliptic"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// BenchmarkVerify measures a full check of an ES256 proof with ath, as at
// the FHIR API: parse, signature, claims, htu, thumbprint, replay cache.
// Each proof is new (a replay would be refused), from a pool signed
// beforehand; the replay cache is replaced, off the clock, when the pool
// wraps. It reports the median of the timed iterations as p50-ns.
func BenchmarkVerify(b *testing.B) {
	ec := newEC(b, elliptic.P256())
	pool := make([]string, 1000)
	for i := range pool {
		pool[i] = sign(b, spec{alg: jose.ES256, key: ec, claims: map[string]any{"jti": fmt.Sprint("b", i)}})
	}
	v := newVerifier(b, Options{})
	took := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(pool) == 0 && i > 0 {
			b.StopTimer()
			v = newVerifier(b, Options{})
			b.StartTimer()
		}
		start := time.Now()
		if _, err := v.Verify(pool[i%len(pool)], testMethod, testURI, testToken, testNow); err != nil {
			b.Fatal(err)
		}
		if len(took) < cap(took) {
			took = append(took, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkSignatureOnly is the floor under BenchmarkVerify: go-jose
// parsing the same kind of proof and checking its ES256 signature under
// its jwk, nothing else. Compare the two within one run.
func BenchmarkSignatureOnly(b *testing.B) {
	ec := newEC(b, elliptic.P256())
	proof := sign(b, spec{alg: jose.ES256, key: ec})
	b.ReportAllocs()
	for b.Loop() {
		jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.Verify(jws.Signatures[0].Protected.JSONWebKey.Key); err != nil {
			b.Fatal(err)
		}
	}
}
