package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/dpop"
)

// A public app gets a DPoP-bound token at the token endpoint (after one
// round trip for a server nonce), then uses it at the FHIR API with a
// proof per request; the same token presented as a Bearer token is
// refused.
func Example() {
	const origin = "https://fhir.example.org"
	now := time.Unix(1_800_000_000, 0)
	nonces, err := dpop.NewNonces(make([]byte, 32) /* from the keyring in real use */, 0)
	if err != nil {
		log.Fatal(err)
	}
	atToken, err := dpop.New(dpop.Options{Nonces: nonces}) // the token endpoint demands nonces
	if err != nil {
		log.Fatal(err)
	}
	atAPI, err := dpop.New(dpop.Options{})
	if err != nil {
		log.Fatal(err)
	}
	appKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}

	// Token endpoint: the first proof has no nonce.
	r := httptest.NewRequest("POST", origin+"/auth/token", nil)
	r.Header.Set("DPoP", proof(appKey, "1", "POST", origin+"/auth/token", "", "", now))
	_, err = atToken.VerifyRequest(r, origin, "", now)
	fmt.Println(dpop.OAuthError(err)) // answer with DPoP-Nonce: nonces.Issue(now)

	r.Header.Set("DPoP", proof(appKey, "2", "POST", origin+"/auth/token", "", nonces.Issue(now), now))
	p, err := atToken.VerifyRequest(r, origin, "", now)
	if err != nil {
		log.Fatal(err)
	}
	cnf := dpop.Confirmation{JKT: p.JKT} // minted into the token's cnf
	const token = "the.access.token"

	// FHIR API: Authorization: DPoP <token>, with a proof carrying ath.
	r = httptest.NewRequest("GET", origin+"/fhir/Observation?patient=p1", nil)
	r.Header.Set("DPoP", proof(appKey, "3", "GET", origin+"/fhir/Observation", token, "", now))
	p, err = atAPI.VerifyRequest(r, origin, token, now)
	fmt.Println(err, dpop.CheckBinding(cnf, &p, ""))

	// The same token as Authorization: Bearer <token>: no proof.
	err = dpop.CheckBinding(cnf, nil, "")
	fmt.Println(dpop.OAuthError(err), errors.Is(err, dpop.ErrProofRequired))
	// Output:
	// use_dpop_nonce
	// <nil> <nil>
	// invalid_token true
}

// proof is what a client library makes (RFC 9449 §4.2).
func proof(key *ecdsa.PrivateKey, jti, htm, htu, token, nonce string, now time.Time) string {
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", &jose.JSONWebKey{Key: &key.PublicKey})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		log.Fatal(err)
	}
	claims := map[string]any{"jti": jti, "htm": htm, "htu": htu, "iat": now.Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		log.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		log.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		log.Fatal(err)
	}
	return s
}
