package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/smart"
)

// claims returns the claims of a valid access token at the env's time.
func (e *env) claims() map[string]any {
	now := e.clock.Now().Unix()
	return map[string]any{
		"iss": testIssuer, "sub": "user-1", "aud": testAudience, "client_id": "app-1",
		"scope": "patient/Observation.rs", "iat": now, "exp": now + 300, "jti": rand.Text(),
	}
}

// with returns a copy of m with changes applied; a nil value deletes.
func with(m map[string]any, changes map[string]any) map[string]any {
	out := maps.Clone(m)
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// signAccess signs claims with the service's own access-token key, header
// and all: only the claims differ from a minted token.
func (e *env) signAccess(t testing.TB, s *Service, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.keys.Load().access.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// privateKey unseals the service's private key kid, as an attacker who
// stole it would hold it.
func (e *env) privateKey(t testing.TB, kid string) any {
	t.Helper()
	r, err := e.records.GetRecord(context.Background(), kindSigningKey, kid)
	if err != nil {
		t.Fatal(err)
	}
	var rec keyRecord
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		t.Fatal(err)
	}
	plain, err := e.ring.Unseal(rec.Sealed, sealAD(kid))
	if err != nil {
		t.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(plain); err != nil {
		t.Fatal(err)
	}
	return k.Key
}

// craft signs payload with any algorithm and key, with the given typ and kid.
func craft(t testing.TB, alg jose.SignatureAlgorithm, key any, typ, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// replacePart swaps one segment of a compact JWS.
func replacePart(tok string, i int, part string) string {
	parts := strings.Split(tok, ".")
	parts[i] = part
	return strings.Join(parts, ".")
}

// TestVerifyRefuses is the table of ways around the access-token check,
// before the success case.
func TestVerifyRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.svc
	ks := s.keys.Load()
	accessKID, idKID := ks.access.kid, ks.id.kid
	valid := func() string { return e.signAccess(t, s, e.claims()) }
	now := e.clock.Now().Unix()

	freshRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	freshEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(ks.access.public)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	realEC := e.privateKey(t, accessKID)

	type tc struct {
		name  string
		token func(t *testing.T) string
		want  error
	}
	cases := []tc{
		{"empty", func(*testing.T) string { return "" }, ErrMalformed},
		{"garbage", func(*testing.T) string { return "not a token" }, ErrMalformed},
		{"too long", func(*testing.T) string { return valid() + strings.Repeat("A", maxTokenLen) }, ErrMalformed},
		{"expired", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"iat": now - 400, "exp": now - 100}))
		}, ErrExpired},
		{"expired just past the 5 s leeway", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"iat": now - 300, "exp": now - 5}))
		}, ErrExpired},
		{"no exp", func(t *testing.T) string { return e.signAccess(t, s, with(e.claims(), map[string]any{"exp": nil})) }, ErrMissingClaim},
		{"not yet valid", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"nbf": now + 60}))
		}, ErrNotYetValid},
		{"iat in the future", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"iat": now + 60, "exp": now + 300}))
		}, ErrIssuedAt},
		{"no iat", func(t *testing.T) string { return e.signAccess(t, s, with(e.claims(), map[string]any{"iat": nil})) }, ErrMissingClaim},
		{"lifetime over MaxLifetime", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"exp": now + 2*3600}))
		}, ErrLifetime},
		{"wrong iss", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"iss": "https://evil.example/fhir"}))
		}, ErrIssuer},
		{"iss with trailing slash", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"iss": testIssuer + "/"}))
		}, ErrIssuer},
		{"wrong aud", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"aud": "https://other.example/fhir"}))
		}, ErrAudience},
		{"aud list without us", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"aud": []string{"a", "b"}}))
		}, ErrAudience},
		{"no aud", func(t *testing.T) string { return e.signAccess(t, s, with(e.claims(), map[string]any{"aud": nil})) }, ErrAudience},
		{"alg none", func(t *testing.T) string {
			return b64(map[string]string{"alg": "none", "typ": "at+jwt", "kid": accessKID}) + "." + b64(e.claims()) + "."
		}, ErrAlgorithm},
		{"alg None", func(t *testing.T) string {
			return b64(map[string]string{"alg": "None", "typ": "at+jwt", "kid": accessKID}) + "." + b64(e.claims()) + "."
		}, ErrAlgorithm},
		{"HS256 keyed with the public JWK", func(t *testing.T) string {
			return craft(t, jose.HS256, ks.access.jwk, "at+jwt", accessKID, e.claims())
		}, ErrAlgorithm},
		{"HS256 keyed with the public key DER", func(t *testing.T) string {
			return craft(t, jose.HS256, der, "at+jwt", accessKID, e.claims())
		}, ErrAlgorithm},
		{"HS256 keyed with the public key PEM", func(t *testing.T) string {
			return craft(t, jose.HS256, pemKey, "at+jwt", accessKID, e.claims())
		}, ErrAlgorithm},
		{"RS256 signed with a fresh key, naming our RS256 kid", func(t *testing.T) string {
			return craft(t, jose.RS256, freshRSA, "at+jwt", idKID, e.claims())
		}, ErrAlgorithm},
		{"ES384 with our kid", func(t *testing.T) string {
			k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			return craft(t, jose.ES384, k384, "at+jwt", accessKID, e.claims())
		}, ErrAlgorithm},
		{"ES256 with an unknown key", func(t *testing.T) string {
			return craft(t, jose.ES256, freshEC, "at+jwt", "attacker-key", e.claims())
		}, ErrUnknownKey},
		{"ES256 with no kid", func(t *testing.T) string {
			return craft(t, jose.ES256, realEC, "at+jwt", "", e.claims())
		}, ErrUnknownKey},
		{"ES256 with a fresh key, naming our kid", func(t *testing.T) string {
			return craft(t, jose.ES256, freshEC, "at+jwt", accessKID, e.claims())
		}, ErrSignature},
		{"ES256 signed by our key, naming our RS256 kid", func(t *testing.T) string {
			return craft(t, jose.ES256, realEC, "at+jwt", idKID, e.claims())
		}, ErrAlgorithm},
		{"tampered payload", func(t *testing.T) string {
			return replacePart(valid(), 1, b64(with(e.claims(), map[string]any{"sub": "admin"})))
		}, ErrSignature},
		{"tampered payload, scope widened", func(t *testing.T) string {
			c := e.claims()
			tok := e.signAccess(t, s, c)
			return replacePart(tok, 1, b64(with(c, map[string]any{"scope": "patient/*.cruds"})))
		}, ErrSignature},
		{"tampered header", func(t *testing.T) string {
			return replacePart(valid(), 0, b64(map[string]string{"alg": "ES256", "typ": "at+jwt", "kid": accessKID, "x": "y"}))
		}, ErrSignature},
		{"signature truncated", func(t *testing.T) string {
			tok := valid()
			sig, _ := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
			return replacePart(tok, 2, base64.RawURLEncoding.EncodeToString(sig[:len(sig)-1]))
		}, ErrSignature},
		{"signature removed", func(t *testing.T) string { return replacePart(valid(), 2, "") }, ErrSignature},
		{"non-canonical base64 in the signature", func(t *testing.T) string {
			// 64 signature bytes end in a character with 4 unused bits;
			// setting one decodes to the same bytes in lax decoders.
			tok := valid()
			last := strings.IndexByte(base64URL, tok[len(tok)-1])
			return tok[:len(tok)-1] + string(base64URL[last|1])
		}, ErrMalformed},
		{"whitespace inside", func(t *testing.T) string {
			tok := valid()
			return tok[:10] + "\n" + tok[10:]
		}, ErrMalformed},
		{"padding", func(t *testing.T) string { return valid() + "==" }, ErrMalformed},
		{"JWE", func(t *testing.T) string {
			enc, err := jose.NewEncrypter(jose.A128GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: make([]byte, 16)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := enc.Encrypt([]byte(valid()))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := obj.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, ErrMalformed},
		{"JSON serialization of a valid token", func(t *testing.T) string {
			jws, err := jose.ParseSignedCompact(valid(), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			return jws.FullSerialize()
		}, ErrMalformed},
		{"four segments", func(t *testing.T) string { return valid() + ".AAAA" }, ErrMalformed},
		{"header not JSON", func(t *testing.T) string {
			return replacePart(valid(), 0, base64.RawURLEncoding.EncodeToString([]byte("ES256")))
		}, ErrMalformed},
		{"payload not JSON", func(t *testing.T) string {
			payload := []byte("not json")
			sig, err := s.keys.Load().access.signer.Sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := sig.CompactSerialize()
			return tok
		}, ErrMalformed},
		{"id_token presented as access token", func(t *testing.T) string {
			tok, err := s.MintID(ctx, IDClaims{Subject: "user-1", ClientID: "app-1"})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, ErrAlgorithm},
		{"ES256 with typ JWT (an id_token shape)", func(t *testing.T) string {
			return craft(t, jose.ES256, realEC, "JWT", accessKID, e.claims())
		}, ErrType},
		{"ES256 without typ", func(t *testing.T) string {
			payload, _ := json.Marshal(e.claims())
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: realEC, KeyID: accessKID}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			jws, _ := signer.Sign(payload)
			tok, _ := jws.CompactSerialize()
			return tok
		}, ErrType},
		{"missing jti", func(t *testing.T) string { return e.signAccess(t, s, with(e.claims(), map[string]any{"jti": nil})) }, ErrMissingClaim},
		{"missing sub", func(t *testing.T) string { return e.signAccess(t, s, with(e.claims(), map[string]any{"sub": nil})) }, ErrMissingClaim},
		{"missing client_id", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"client_id": nil}))
		}, ErrMissingClaim},
		{"revoked jti", func(t *testing.T) string {
			tok, jti := e.mint(t, s, AccessClaims{})
			if err := s.RevokeToken(ctx, jti, e.clock.Now().Add(DefaultLifetime)); err != nil {
				t.Fatal(err)
			}
			return tok
		}, ErrRevoked},
		{"revoked grant", func(t *testing.T) string {
			tok, _ := e.mint(t, s, AccessClaims{GrantID: "grant-revoked"})
			if err := s.RevokeGrant(ctx, "grant-revoked"); err != nil {
				t.Fatal(err)
			}
			return tok
		}, ErrGrantRevoked},
		{"disabled client", func(t *testing.T) string {
			tok, _ := e.mint(t, s, AccessClaims{ClientID: "app-disabled"})
			if err := s.DisableClient(ctx, "app-disabled"); err != nil {
				t.Fatal(err)
			}
			return tok
		}, ErrClientDisabled},
		// Order: an earlier check decides.
		{"alg none and expired", func(t *testing.T) string {
			return b64(map[string]string{"alg": "none", "typ": "at+jwt", "kid": accessKID}) + "." +
				b64(with(e.claims(), map[string]any{"exp": now - 100})) + "."
		}, ErrAlgorithm},
		{"wrong aud and expired", func(t *testing.T) string {
			return e.signAccess(t, s, with(e.claims(), map[string]any{"aud": "x", "exp": now - 100, "iat": now - 400}))
		}, ErrAudience},
		{"expired and revoked", func(t *testing.T) string {
			c := with(e.claims(), map[string]any{"exp": now - 100, "iat": now - 400})
			if err := s.RevokeToken(ctx, c["jti"].(string), e.clock.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			return e.signAccess(t, s, c)
		}, ErrExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := c.token(t)
			// Twice: the second presentation must not be let in by a cache.
			for range 2 {
				p, err := s.Verify(ctx, tok)
				if p != nil || !errors.Is(err, ErrInvalidToken) || !errors.Is(err, c.want) {
					t.Fatalf("Verify = %v, %v; want ErrInvalidToken and %v", p, err, c.want)
				}
			}
		})
	}

	t.Run("token signed by a key that was dropped", func(t *testing.T) {
		e := newEnv(t)
		old, _ := e.mint(t, e.svc, AccessClaims{Lifetime: time.Hour})
		if err := e.svc.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Verify(ctx, old); err != nil {
			t.Fatalf("token of a retired key refused before it was dropped: %v", err)
		}
		e.clock.Advance(DefaultMaxLifetime + clockSkew)
		if _, err := e.svc.Verify(ctx, old); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Verify = %v, want ErrUnknownKey", err)
		}
	})

	// The success case, last: exactly what was minted comes back.
	t.Run("valid", func(t *testing.T) {
		auth := e.clock.Now().Add(-time.Minute).Truncate(time.Second)
		tok, jti, exp, err := s.MintAccess(ctx, AccessClaims{
			Subject: "u1", ClientID: "app", Scope: "launch/patient patient/Observation.rs?category=laboratory openid",
			Patient: "p1", Encounter: "e1", FHIRUser: "Practitioner/9", GrantID: "g1", ACR: "urn:warden:acr:mfa",
			AuthTime: auth, CertThumbprint: "x5t", JKT: "jkt",
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Service{s, e.replica(t)} {
			for range 2 { // cold, then cached
				p, err := s.Verify(ctx, tok)
				if err != nil {
					t.Fatal(err)
				}
				if p.TokenID != jti || p.GrantID != "g1" || p.ClientID != "app" || p.Subject != "u1" ||
					p.FHIRUser != "Practitioner/9" || p.Patient != "p1" || p.Encounter != "e1" ||
					p.ACR != "urn:warden:acr:mfa" || !p.AuthTime.Equal(auth) || !p.Expires.Equal(exp) ||
					!p.IssuedAt.Equal(e.clock.Now()) || p.CertThumbprint != "x5t" || p.JKT != "jkt" ||
					p.Scope != "launch/patient patient/Observation.rs?category=laboratory openid" {
					t.Errorf("Principal = %+v", p)
				}
				if len(p.Scopes.Resources) != 1 || p.Scopes.Resources[0].Context != smart.ContextPatient ||
					p.Scopes.Resources[0].Query.Get("category") != "laboratory" ||
					!slices.Equal(p.Scopes.Other, []string{"launch/patient", "openid"}) {
					t.Errorf("Scopes = %+v", p.Scopes)
				}
			}
		}
	})
	t.Run("valid within the leeway", func(t *testing.T) {
		tok := e.signAccess(t, s, with(e.claims(), map[string]any{"iat": now - 300, "exp": now - 4, "nbf": now + 4}))
		if _, err := s.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("valid with aud list and typ application/at+jwt", func(t *testing.T) {
		tok := craft(t, jose.ES256, realEC, "application/at+jwt", accessKID,
			with(e.claims(), map[string]any{"aud": []string{"other", testAudience}}))
		if _, err := s.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
}

const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestVerifyCachedStillChecks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.svc
	verify := func(tok string) error {
		_, err := s.Verify(ctx, tok)
		return err
	}
	tok, jti := e.mint(t, s, AccessClaims{GrantID: "g1", ClientID: "app"})
	if err := verify(tok); err != nil {
		t.Fatal(err)
	}
	if n := s.cache.len(); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}

	if err := s.DisableClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := verify(tok); !errors.Is(err, ErrClientDisabled) {
		t.Errorf("cached token of a disabled client: %v", err)
	}
	if err := s.EnableClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := verify(tok); err != nil {
		t.Errorf("re-enabled client: %v", err)
	}

	tok2, _ := e.mint(t, s, AccessClaims{GrantID: "g2", ClientID: "app"})
	if err := verify(tok2); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeGrant(ctx, "g2"); err != nil {
		t.Fatal(err)
	}
	if err := verify(tok2); !errors.Is(err, ErrGrantRevoked) {
		t.Errorf("cached token of a revoked grant: %v", err)
	}

	if err := s.RevokeToken(ctx, jti, e.clock.Now().Add(DefaultLifetime)); err != nil {
		t.Fatal(err)
	}
	if err := verify(tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("cached revoked token: %v", err)
	}

	tok3, _ := e.mint(t, s, AccessClaims{})
	if err := verify(tok3); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(DefaultLifetime + clockSkew)
	n := s.cache.len()
	if err := verify(tok3); !errors.Is(err, ErrExpired) {
		t.Errorf("cached expired token: %v", err)
	}
	if s.cache.len() != n-1 {
		t.Error("an expired token stayed in the cache")
	}

	// The Principal handed out is a copy: changing it changes no cache entry.
	tok4, _ := e.mint(t, s, AccessClaims{Patient: "p1"})
	p, err := s.Verify(ctx, tok4)
	if err != nil {
		t.Fatal(err)
	}
	p.Patient = "p2"
	if p, _ := s.Verify(ctx, tok4); p.Patient != "p1" {
		t.Errorf("cached Principal was changed through a returned copy")
	}
}

func TestCacheBounded(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.CacheEntries = 32 })
	for range 200 {
		tok, _ := e.mint(t, e.svc, AccessClaims{})
		if _, err := e.svc.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.svc.cache.len(); n > 32 {
		t.Errorf("cache holds %d entries, bound 32", n)
	}
}

func TestUnknownKidReloadIsRateLimited(t *testing.T) {
	e := newEnv(t)
	counting := &countingRecords{Records: e.records}
	e.records = counting
	s := e.replica(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	before := counting.lists.Load()
	for i := range 20 {
		tok := craft(t, jose.ES256, other, "at+jwt", "kid-"+string(rune('a'+i)), e.claims())
		if _, err := s.Verify(context.Background(), tok); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Verify = %v", err)
		}
	}
	// One Reload lists the signing keys and the three revocation kinds.
	if got := counting.lists.Load() - before; got != 4 {
		t.Errorf("20 unknown kids within a second caused %d ListRecords calls, want 4 (one Reload)", got)
	}
	e.clock.Advance(keyReloadEvery)
	tok := craft(t, jose.ES256, other, "at+jwt", "kid-later", e.claims())
	if _, err := s.Verify(context.Background(), tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Verify = %v", err)
	}
	if got := counting.lists.Load() - before; got != 8 {
		t.Errorf("after a second: %d ListRecords calls, want 8", got)
	}
}
