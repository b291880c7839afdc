package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Shared fixtures of the tests: one request, one access token, one clock.
const (
	testMethod = "GET"
	testURI    = "https://fhir.example.org/fhir/Observation?patient=p1"
	testHTU    = "https://fhir.example.org/fhir/Observation"
	testToken  = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2ln"
)

var testNow = time.Unix(1_800_000_000, 0)

// athOf is the ath of an access token (RFC 9449 §4.2).
func athOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func newEC(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEd(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRSA(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// spec describes a proof for sign to make. The zero values of typ and
// claims mean a valid proof for the shared request.
type spec struct {
	alg    jose.SignatureAlgorithm
	key    any            // signs the proof
	jwk    any            // the jwk header; nil: key's public half; noJWK: none
	typ    string         // "" means dpop+jwt; "-" means no typ
	claims map[string]any // merged over validClaims; a nil value deletes
}

// noJWK asks sign for a proof without a jwk header.
type noJWKType struct{}

var noJWK = noJWKType{}

// validClaims are the claims of a valid proof for the shared request
// with the shared access token.
func validClaims(jti string) map[string]any {
	return map[string]any{
		"jti": jti,
		"htm": testMethod,
		"htu": testHTU,
		"iat": testNow.Unix(),
		"ath": athOf(testToken),
	}
}

// sign makes the proof s describes, with go-jose.
func sign(t testing.TB, s spec) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	switch s.typ {
	case "":
		opts.WithType(typ)
	case "-":
	default:
		opts.WithType(jose.ContentType(s.typ))
	}
	switch j := s.jwk.(type) {
	case nil:
		pub := publicOf(t, s.key)
		opts.WithHeader("jwk", &jose.JSONWebKey{Key: pub})
	case noJWKType:
	default:
		opts.WithHeader("jwk", j)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := validClaims("jti-" + rand.Text())
	for k, v := range s.claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func publicOf(t testing.TB, key any) crypto.PublicKey {
	t.Helper()
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	case ed25519.PrivateKey:
		return k.Public()
	case *rsa.PrivateKey:
		return &k.PublicKey
	}
	t.Fatalf("no public key for %T", key)
	return nil
}

// thumbprint is the RFC 7638 thumbprint of key's public half.
func thumbprint(t testing.TB, key any) string {
	t.Helper()
	jwk := jose.JSONWebKey{Key: publicOf(t, key)}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// b64json is base64url(JSON(v)), to build tokens by hand.
func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func newVerifier(t testing.TB, o Options) *Verifier {
	t.Helper()
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
