package dpop

import (
	"crypto"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds Verify arbitrary proofs, starting from valid ES256,
// EdDSA and RS256 proofs for the fuzzed request and the seeds in
// testdata/fuzz/FuzzVerify (alg none, HS256 keyed with the public key, a
// private jwk, a jwk of another key, JSON serialization, …). Properties:
// Verify never panics; it accepts a proof only if, parsed again by
// go-jose, the proof verifies under its own jwk and that jwk's thumbprint
// is the Proof's JKT; every refusal is ErrInvalidProof (or ErrReplayCheck,
// never seen with a fresh cache) and yields no Proof; and an error never
// quotes the proof.
func FuzzVerify(f *testing.F) {
	ec := newEC(f, elliptic.P256())
	f.Add(sign(f, spec{alg: jose.ES256, key: ec}))
	f.Add(sign(f, spec{alg: jose.EdDSA, key: newEd(f)}))
	f.Add(sign(f, spec{alg: jose.RS256, key: newRSA(f, 2048)}))
	f.Add(sign(f, spec{alg: jose.ES256, key: newEC(f, elliptic.P256()), jwk: &jose.JSONWebKey{Key: &ec.PublicKey}}))
	f.Fuzz(func(t *testing.T, proof string) {
		v := newVerifier(t, Options{Replays: NewMemoryReplayCache(64)})
		p, err := v.Verify(proof, testMethod, testURI, testToken, testNow)
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("refusal %v is not ErrInvalidProof", err)
			}
			if p != (Proof{}) {
				t.Fatalf("refused, yet Proof = %+v", p)
			}
			if len(proof) >= 8 && strings.Contains(err.Error(), proof) {
				t.Fatalf("error quotes the proof: %v", err)
			}
			return
		}
		jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(p.Algorithm)})
		if err != nil {
			t.Fatalf("accepted a proof go-jose cannot parse: %v", err)
		}
		jwk := jws.Signatures[0].Protected.JSONWebKey
		if jwk == nil || !jwk.IsPublic() {
			t.Fatalf("accepted a proof without a public jwk")
		}
		if _, err := jws.Verify(jwk.Key); err != nil {
			t.Fatalf("accepted a proof not signed by its jwk: %v", err)
		}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil || base64.RawURLEncoding.EncodeToString(tp) != p.JKT {
			t.Fatalf("JKT %q is not the jwk's thumbprint", p.JKT)
		}
	})
}

// FuzzSameURI: sameURI never panics, is symmetric for URIs without query
// or fragment, and a URI matches itself iff it normalises.
func FuzzSameURI(f *testing.F) {
	for _, s := range []string{testHTU, "HTTPS://a:443/%7e", "http://[::1]:80/x", "https://a/%zz", "//a/b", "https://u@a/"} {
		f.Add(s, testHTU)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab := sameURI(a, b)
		if !strings.ContainsAny(a+b, "?#") && ab != sameURI(b, a) {
			t.Fatalf("sameURI(%q, %q) = %v but not the other way", a, b, ab)
		}
		_, ok := normalURI(a)
		if !strings.ContainsAny(a, "?#") && sameURI(a, a) != ok {
			t.Fatalf("sameURI(%q, itself) = %v, normalURI ok = %v", a, !ok, ok)
		}
	})
}
