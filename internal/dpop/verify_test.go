package dpop

import (
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestVerifyRefuses lists the ways around each check of RFC 9449 §4.3,
// each with the one reason it must be refused for.
func TestVerifyRefuses(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	other := newEC(t, elliptic.P256())
	p384 := newEC(t, elliptic.P384())
	ed := newEd(t)
	rsa1024 := newRSA(t, 1024)
	rsa2048 := newRSA(t, 2048)
	pubJWK := &jose.JSONWebKey{Key: &ec.PublicKey}
	pubJSON, err := json.Marshal(pubJWK)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(t, spec{alg: jose.ES256, key: ec})
	h64, rest, _ := strings.Cut(valid, ".")
	p64, sig64, _ := strings.Cut(rest, ".")

	// Tokens no library would sign.
	noneHeader := b64json(t, map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": pubJWK})
	noneProof := noneHeader + "." + b64json(t, validClaims("n1")) + "."
	// HS256 keyed with the public key's JSON: the classic confusion attack.
	hsProof := sign(t, spec{alg: jose.HS256, key: pubJSON, jwk: pubJWK})
	// The claims of a valid proof changed after signing.
	tampered := h64 + "." + b64json(t, map[string]any{
		"jti": "x", "htm": "DELETE", "htu": testHTU, "iat": testNow.Unix(), "ath": athOf(testToken),
	}) + "." + sig64

	// A proof whose signed payload is not JSON.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ec},
		(&jose.SignerOptions{}).WithType(typ).WithHeader("jwk", pubJWK))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte("not json"))
	if err != nil {
		t.Fatal(err)
	}
	notJSON, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		proof  string
		method string // "" means testMethod
		uri    string // "" means testURI
		token  string // "" means testToken; "-" means none (token endpoint)
		opts   Options
		want   error
	}{
		// Not one compact JWS.
		{name: "empty", proof: "", want: ErrMalformed},
		{name: "two parts", proof: h64 + "." + p64, want: ErrMalformed},
		{name: "JWE (five parts)", proof: valid + ".a.b", want: ErrMalformed},
		{name: "JSON serialization", proof: `{"payload":"` + p64 + `","protected":"` + h64 + `","signature":"` + sig64 + `"}`, want: ErrMalformed},
		{name: "padded base64", proof: valid + "=", want: ErrMalformed},
		{name: "non-canonical base64 (trailing bits set)", proof: h64 + "." + p64 + "." + sig64[:len(sig64)-1] + nonCanonical(sig64), want: ErrMalformed},
		{name: "whitespace", proof: " " + valid, want: ErrMalformed},
		{name: "two proofs in one header", proof: valid + "," + valid, want: ErrMalformed},
		{name: "too long", proof: h64 + "." + strings.Repeat("A", maxProofLen) + "." + sig64, want: ErrMalformed},
		{name: "header not JSON", proof: "bm90IGpzb24." + p64 + "." + sig64, want: ErrMalformed},
		{name: "payload not JSON", proof: notJSON, want: ErrMalformed},

		// typ (step 4).
		{name: "no typ", proof: sign(t, spec{alg: jose.ES256, key: ec, typ: "-"}), want: ErrType},
		{name: "typ JWT", proof: sign(t, spec{alg: jose.ES256, key: ec, typ: "JWT"}), want: ErrType},
		{name: "typ at+jwt (an access token)", proof: sign(t, spec{alg: jose.ES256, key: ec, typ: "at+jwt"}), want: ErrType},

		// alg (step 5).
		{name: "alg none", proof: noneProof, want: ErrAlgorithm},
		{name: "HS256 keyed with the public key", proof: hsProof, want: ErrAlgorithm},
		{name: "ES512 (not allowed)", proof: sign(t, spec{alg: jose.ES512, key: newEC(t, elliptic.P521())}), want: ErrAlgorithm},
		{name: "EdDSA outside the configured list", proof: sign(t, spec{alg: jose.EdDSA, key: ed}),
			opts: Options{Algorithms: []string{"ES256"}}, want: ErrAlgorithm},

		// jwk (step 7) and the key's fit to alg.
		{name: "private EC key in jwk", proof: sign(t, spec{alg: jose.ES256, key: ec, jwk: &jose.JSONWebKey{Key: ec}}), want: ErrPrivateKey},
		{name: "private Ed25519 key in jwk", proof: sign(t, spec{alg: jose.EdDSA, key: ed, jwk: &jose.JSONWebKey{Key: ed}}), want: ErrPrivateKey},
		{name: "private RSA key in jwk", proof: sign(t, spec{alg: jose.RS256, key: rsa2048, jwk: &jose.JSONWebKey{Key: rsa2048}}), want: ErrPrivateKey},
		{name: "symmetric key in jwk", proof: sign(t, spec{alg: jose.ES256, key: ec, jwk: map[string]string{"kty": "oct", "k": "c2VjcmV0"}}), want: ErrPrivateKey},
		{name: "no jwk", proof: sign(t, spec{alg: jose.ES256, key: ec, jwk: noJWK}), want: ErrKey},
		{name: "jwk not a key", proof: sign(t, spec{alg: jose.ES256, key: ec, jwk: map[string]string{"kty": "EC"}}), want: ErrKey},
		{name: "ES256 header, P-384 jwk", proof: sign(t, spec{alg: jose.ES256, key: ec, jwk: &jose.JSONWebKey{Key: &p384.PublicKey}}), want: ErrKey},
		{name: "RS256 with a 1024-bit key", proof: sign(t, spec{alg: jose.RS256, key: rsa1024}), want: ErrKey},
		{name: "EdDSA header, EC jwk", proof: sign(t, spec{alg: jose.EdDSA, key: ed, jwk: pubJWK}), want: ErrKey},

		// Signature (step 6).
		{name: "signed by another key than its jwk", proof: sign(t, spec{alg: jose.ES256, key: other, jwk: pubJWK}), want: ErrSignature},
		{name: "claims changed after signing", proof: tampered, want: ErrSignature},
		{name: "signature of another proof", proof: h64 + "." + p64 + "." + strings.Split(sign(t, spec{alg: jose.ES256, key: ec}), ".")[2], want: ErrSignature},

		// Required claims (step 3).
		{name: "no jti", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"jti": nil}}), want: ErrMissingClaim},
		{name: "empty jti", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"jti": ""}}), want: ErrMissingClaim},
		{name: "no htm", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htm": nil}}), want: ErrMissingClaim},
		{name: "no htu", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": nil}}), want: ErrMissingClaim},
		{name: "no iat", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": nil}}), want: ErrMissingClaim},
		{name: "iat a string", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": "1800000000"}}), want: ErrMalformed},
		{name: "no ath with an access token", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"ath": nil}}), want: ErrMissingClaim},

		// htm (step 8).
		{name: "wrong htm", proof: valid, method: "POST", want: ErrMethod},
		{name: "htm in lower case", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htm": "get"}}), want: ErrMethod},

		// htu (step 9).
		{name: "htu of another host", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": "https://evil.example.org/fhir/Observation"}}), want: ErrURI},
		{name: "htu of another path", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": "https://fhir.example.org/fhir/Patient"}}), want: ErrURI},
		{name: "htu with a query", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": testHTU + "?patient=p1"}}), want: ErrURI},
		{name: "htu with a fragment", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": testHTU + "#x"}}), want: ErrURI},
		{name: "htu http, request https", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": "http://fhir.example.org/fhir/Observation"}}), want: ErrURI},
		{name: "htu of another port", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": "https://fhir.example.org:8443/fhir/Observation"}}), want: ErrURI},
		{name: "htu relative", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"htu": "/fhir/Observation"}}), want: ErrURI},

		// iat (step 11).
		{name: "iat too old", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": testNow.Add(-61 * time.Second).Unix()}}), want: ErrIssuedAt},
		{name: "iat in the future", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": testNow.Add(61 * time.Second).Unix()}}), want: ErrIssuedAt},
		{name: "iat far in the past", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": 0}}), want: ErrIssuedAt},
		{name: "iat near the numeric limit", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": 9.2e18}}), want: ErrMalformed},
		{name: "iat older than a shorter window", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": testNow.Add(-11 * time.Second).Unix()}}),
			opts: Options{Window: 10 * time.Second}, want: ErrIssuedAt},

		// ath (step 12).
		{name: "ath of another token", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"ath": athOf(testToken + "x")}}), want: ErrTokenHash},
		{name: "ath of the token, padded", proof: sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"ath": athOf(testToken) + "="}}), want: ErrTokenHash},
		{name: "valid proof, another token", proof: valid, token: "another.access.token", want: ErrTokenHash},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(t, c.opts)
			method, uri, token := c.method, c.uri, c.token
			if method == "" {
				method = testMethod
			}
			if uri == "" {
				uri = testURI
			}
			switch token {
			case "":
				token = testToken
			case "-":
				token = ""
			}
			p, err := v.Verify(c.proof, method, uri, token, testNow)
			if !errors.Is(err, ErrInvalidProof) || !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want ErrInvalidProof and %v", err, c.want)
			}
			if p != (Proof{}) {
				t.Errorf("refused, yet Proof = %+v", p)
			}
			if len(c.proof) > 16 && strings.Contains(err.Error(), c.proof[:16]) {
				t.Errorf("error quotes the proof: %v", err)
			}
		})
	}
}

// nonCanonical returns a last character for s that decodes to the same
// bytes with unused bits set (s is 2 mod 4 long: 4 unused bits).
func nonCanonical(s string) string {
	if len(s)%4 != 2 {
		panic("nonCanonical: length not 2 mod 4")
	}
	return string(base64URLAlphabet[b64value(s[len(s)-1])|1])
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestIsStrictBase64 compares the no-decode check with the strict decoder
// on every string of up to 3 characters of a sample alphabet, and on
// longer random ones.
func TestIsStrictBase64(t *testing.T) {
	const sample = "AQgw_-9z"
	var all []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		all = append(all, prefix)
		if n == 0 {
			return
		}
		for i := range len(sample) {
			gen(prefix+sample[i:i+1], n-1)
		}
	}
	gen("", 3)
	for i := range 2000 {
		b := make([]byte, 4+i%9)
		for j := range b {
			b[j] = base64URLAlphabet[(i*31+j*17)%64]
		}
		all = append(all, string(b))
	}
	for _, s := range all {
		_, err := strictBase64.DecodeString(s)
		if got := isStrictBase64(s); got != (err == nil) {
			t.Fatalf("isStrictBase64(%q) = %v, strict decoder err = %v", s, got, err)
		}
	}
}

// TestVerifyAccepts checks valid proofs of each allowed algorithm, with
// and without an access token, and URIs that differ only in form.
func TestVerifyAccepts(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	ed := newEd(t)
	cases := []struct {
		name  string
		alg   jose.SignatureAlgorithm
		key   any
		htu   string
		uri   string
		token string // "" means testToken; "-" means none
	}{
		{name: "ES256", alg: jose.ES256, key: ec},
		{name: "EdDSA", alg: jose.EdDSA, key: ed},
		{name: "ES384", alg: jose.ES384, key: newEC(t, elliptic.P384())},
		{name: "PS256", alg: jose.PS256, key: newRSA(t, 2048)},
		{name: "RS256", alg: jose.RS256, key: newRSA(t, 2048)},
		{name: "token endpoint (no access token)", alg: jose.ES256, key: ec, token: "-",
			htu: "https://fhir.example.org/auth/token", uri: "https://fhir.example.org/auth/token"},
		{name: "htu in another case, with the default port", alg: jose.EdDSA, key: ed,
			htu: "HTTPS://FHIR.Example.ORG:443/fhir/Observation"},
		{name: "htu with escaped unreserved characters", alg: jose.EdDSA, key: ed,
			htu: "https://fhir.example.org/fhir/%4Fbservation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(t, Options{})
			claims := map[string]any{"jti": "jti-" + c.name}
			if c.htu != "" {
				claims["htu"] = c.htu
			}
			uri, token := testURI, testToken
			if c.uri != "" {
				uri = c.uri
			}
			if c.token == "-" {
				token = ""
				claims["ath"] = nil
			}
			proof := sign(t, spec{alg: c.alg, key: c.key, claims: claims})
			p, err := v.Verify(proof, testMethod, uri, token, testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Proof{JKT: thumbprint(t, c.key), JTI: "jti-" + c.name, IssuedAt: testNow, Algorithm: string(c.alg)}
			if p != want {
				t.Errorf("Proof = %+v, want %+v", p, want)
			}
		})
	}
}

// TestVerifyWindowEdges: iat exactly Window away either way is accepted.
func TestVerifyWindowEdges(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	v := newVerifier(t, Options{})
	for _, d := range []time.Duration{-DefaultWindow, DefaultWindow} {
		proof := sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"iat": testNow.Add(d).Unix()}})
		if _, err := v.Verify(proof, testMethod, testURI, testToken, testNow); err != nil {
			t.Errorf("iat now%+v: %v", d, err)
		}
	}
}

// TestNewRefusesOptions: the allow-list cannot be widened.
func TestNewRefusesOptions(t *testing.T) {
	for _, o := range []Options{
		{Algorithms: []string{"none"}},
		{Algorithms: []string{"HS256"}},
		{Algorithms: []string{"ES256", "ES512"}},
		{Window: -time.Second},
	} {
		if _, err := New(o); !errors.Is(err, errInvalidOption) {
			t.Errorf("New(%+v) = %v, want an invalid option", o, err)
		}
	}
}
