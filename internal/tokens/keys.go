package tokens

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/store"
)

// kindSigningKey is the Records kind of signing keys. The Key is the key
// id; the Value is a keyRecord whose private JWK is sealed with associated
// data kindSigningKey + "\x00" + key id, so a sealed key cannot be moved
// to another record.
const kindSigningKey = "signing-key"

// rsaBits is the size of the RS256 (id_token) keys.
const rsaBits = 2048

// keyRecord is the stored form of a signing key.
type keyRecord struct {
	Alg     string    `json:"alg"`
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"` // zero while active
	Sealed  []byte    `json:"sealed"`           // the private JWK (RFC 7517), sealed
}

// signingKey is a loaded signing key.
type signingKey struct {
	kid     string
	alg     jose.SignatureAlgorithm
	created time.Time
	retired time.Time
	public  crypto.PublicKey
	jwk     []byte      // the public JWK as published
	signer  jose.Signer // typ at+jwt for ES256, JWT for RS256
	value   []byte      // the record value it was loaded from
}

// keySet is an immutable snapshot of the loaded keys.
type keySet struct {
	byKID  map[string]*signingKey
	all    []*signingKey // newest first
	access *signingKey   // the newest active ES256 key: signs access tokens
	id     *signingKey   // the newest active RS256 key: signs id_tokens
}

func sealAD(kid string) []byte { return []byte(kindSigningKey + "\x00" + kid) }

// dropAt is when a retired key leaves the JWK Set and stops verifying:
// by then every token it signed has expired.
func (s *Service) dropAt(retired time.Time) time.Time {
	return retired.Add(s.o.MaxLifetime + clockSkew)
}

// usable reports whether k may still verify tokens at now.
func (s *Service) usable(k *signingKey, now time.Time) bool {
	return k.retired.IsZero() || now.Before(s.dropAt(k.retired))
}

// ensureKeys loads the keys and replaces the active key of each algorithm
// when there is none, when it is older than RotateEvery, or when force is
// set; the old active keys are retired, not deleted.
func (s *Service) ensureKeys(ctx context.Context, force bool) error {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	set, err := s.loadKeys(ctx)
	if err != nil {
		return err
	}
	now := s.o.Now()
	changed := false
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256} {
		cur := set.newestActive(alg)
		if cur != nil && !force && now.Sub(cur.created) < s.o.RotateEvery {
			continue
		}
		if err := s.createKey(ctx, alg, now); err != nil {
			return err
		}
		for _, k := range set.all {
			if k.alg == alg && k.retired.IsZero() {
				if err := s.retireKey(ctx, k, now); err != nil {
					return err
				}
			}
		}
		changed = true
	}
	if changed {
		if set, err = s.loadKeys(ctx); err != nil {
			return err
		}
	}
	if set.access == nil || set.id == nil {
		return fmt.Errorf("tokens: signing keys missing after creation")
	}
	s.keys.Store(set)
	return nil
}

// loadKeys reads every usable signing key from Records. Keys whose record
// is unchanged since the last load are reused, not unsealed again.
func (s *Service) loadKeys(ctx context.Context) (*keySet, error) {
	recs, err := s.o.Records.ListRecords(ctx, kindSigningKey)
	if err != nil {
		return nil, fmt.Errorf("tokens: load signing keys: %w", err)
	}
	old := s.keys.Load()
	now := s.o.Now()
	set := &keySet{byKID: make(map[string]*signingKey, len(recs))}
	for _, r := range recs {
		var k *signingKey
		if old != nil {
			if o := old.byKID[r.Key]; o != nil && bytes.Equal(o.value, r.Value) {
				k = o
			}
		}
		if k == nil {
			if k, err = s.openKey(r); err != nil {
				return nil, err
			}
		}
		if !s.usable(k, now) {
			continue
		}
		set.byKID[k.kid] = k
		set.all = append(set.all, k)
	}
	slices.SortFunc(set.all, func(a, b *signingKey) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return cmp.Compare(b.kid, a.kid)
	})
	set.access = set.newestActive(jose.ES256)
	set.id = set.newestActive(jose.RS256)
	return set, nil
}

// newestActive returns the newest unretired key of alg, or nil. When two
// replicas rotated at once there are two; all replicas pick the same one.
func (ks *keySet) newestActive(alg jose.SignatureAlgorithm) *signingKey {
	for _, k := range ks.all {
		if k.alg == alg && k.retired.IsZero() {
			return k
		}
	}
	return nil
}

// openKey unseals and checks one stored key.
func (s *Service) openKey(r store.Record) (*signingKey, error) {
	var rec keyRecord
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		return nil, fmt.Errorf("tokens: signing key %s: bad record", r.Key)
	}
	plain, err := s.o.Sealer.Unseal(rec.Sealed, sealAD(r.Key))
	if err != nil {
		return nil, fmt.Errorf("tokens: signing key %s: cannot unseal: %w", r.Key, err)
	}
	var jwk jose.JSONWebKey
	err = jwk.UnmarshalJSON(plain)
	clear(plain)
	if err != nil || jwk.KeyID != r.Key || jwk.Algorithm != rec.Alg {
		return nil, fmt.Errorf("tokens: signing key %s: bad private key", r.Key)
	}
	alg := jose.SignatureAlgorithm(rec.Alg)
	var public crypto.PublicKey
	typ := jose.ContentType("JWT")
	switch alg {
	case jose.ES256:
		priv, ok := jwk.Key.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return nil, fmt.Errorf("tokens: signing key %s: not a P-256 private key", r.Key)
		}
		public = &priv.PublicKey
		typ = accessTokenType
	case jose.RS256:
		priv, ok := jwk.Key.(*rsa.PrivateKey)
		if !ok || priv.N.BitLen() < rsaBits {
			return nil, fmt.Errorf("tokens: signing key %s: not an RSA private key of %d bits or more", r.Key, rsaBits)
		}
		public = &priv.PublicKey
	default:
		return nil, fmt.Errorf("tokens: signing key %s: algorithm %q not supported", r.Key, rec.Alg)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: jwk.Key, KeyID: r.Key}},
		(&jose.SignerOptions{}).WithType(typ))
	if err != nil {
		return nil, fmt.Errorf("tokens: signing key %s: %w", r.Key, err)
	}
	pub, err := jose.JSONWebKey{Key: public, KeyID: r.Key, Algorithm: rec.Alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("tokens: signing key %s: %w", r.Key, err)
	}
	return &signingKey{kid: r.Key, alg: alg, created: rec.Created, retired: rec.Retired,
		public: public, jwk: pub, signer: signer, value: r.Value}, nil
}

// createKey generates a key of alg and stores it sealed. Its key id is the
// RFC 7638 JWK thumbprint (SHA-256) of its public key.
func (s *Service) createKey(ctx context.Context, alg jose.SignatureAlgorithm, now time.Time) error {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		err = fmt.Errorf("algorithm %q not supported", alg)
	}
	if err != nil {
		return fmt.Errorf("tokens: generate %s key: %w", alg, err)
	}
	pub := jose.JSONWebKey{Key: priv.Public()}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("tokens: key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	plain, err := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg), Use: "sig"}.MarshalJSON()
	if err != nil {
		return fmt.Errorf("tokens: encode %s key: %w", alg, err)
	}
	sealed, err := s.o.Sealer.Seal(plain, sealAD(kid))
	clear(plain)
	if err != nil {
		return fmt.Errorf("tokens: seal %s key: %w", alg, err)
	}
	value, err := json.Marshal(keyRecord{Alg: string(alg), Created: now.UTC(), Sealed: sealed})
	if err != nil {
		return fmt.Errorf("tokens: encode %s key: %w", alg, err)
	}
	if err := s.o.Records.InsertRecord(ctx, store.Record{Kind: kindSigningKey, Key: kid, Value: value}); err != nil {
		return fmt.Errorf("tokens: store %s key: %w", alg, err)
	}
	return nil
}

// retireKey marks k retired at now. The record expires when the key is
// dropped, so the store forgets it by itself. A concurrent change by
// another replica wins: the next load shows it.
func (s *Service) retireKey(ctx context.Context, k *signingKey, now time.Time) error {
	var rec keyRecord
	if err := json.Unmarshal(k.value, &rec); err != nil {
		return fmt.Errorf("tokens: signing key %s: bad record", k.kid)
	}
	rec.Retired = now.UTC()
	value, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("tokens: encode key record: %w", err)
	}
	r := store.Record{Kind: kindSigningKey, Key: k.kid, Value: value, Expires: s.dropAt(rec.Retired)}
	err = s.o.Records.SwapRecord(ctx, r, k.value)
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tokens: retire key %s: %w", k.kid, err)
	}
	return nil
}

// JWKS returns the public JWK Set (RFC 7517 §5) to publish at the
// jwks_uri: every active key and every retired key whose tokens may still
// be alive, newest first, each with "kid", "alg" and "use":"sig".
func (s *Service) JWKS() []byte {
	set := s.keys.Load()
	now := s.o.Now()
	var b bytes.Buffer
	b.WriteString(`{"keys":[`)
	first := true
	for _, k := range set.all {
		if !s.usable(k, now) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(k.jwk)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
