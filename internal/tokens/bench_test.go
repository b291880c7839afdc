package tokens

import (
	"context"
	"testing"
)

// BenchmarkVerifyCold measures a full check of an access token: parse,
// ES256 signature, claims, revocation (the cache disabled).
func BenchmarkVerifyCold(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.CacheEntries = -1 })
	benchmarkVerify(b, e)
}

// BenchmarkVerifyCached measures a token presented again: hash, cache
// lookup, exp, key and revocation checks.
func BenchmarkVerifyCached(b *testing.B) {
	e := newEnv(b)
	benchmarkVerify(b, e)
}

func benchmarkVerify(b *testing.B, e *env) {
	ctx := context.Background()
	tok, _ := e.mint(b, e.svc, AccessClaims{
		GrantID: "g1", Patient: "p1", FHIRUser: "Patient/p1", ACR: "urn:warden:acr:mfa",
		Scope: "launch/patient openid fhirUser offline_access patient/Observation.rs patient/Patient.r patient/Condition.rs",
	})
	if _, err := e.svc.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel is the cached path from every core at once.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	tok, _ := e.mint(b, e.svc, AccessClaims{GrantID: "g1"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.svc.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
