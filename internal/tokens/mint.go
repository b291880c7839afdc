package tokens

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// accessTokenType is the JOSE typ of access tokens (RFC 9068 §2.1).
const accessTokenType = jose.ContentType("at+jwt")

// AccessClaims is what an access token says.
type AccessClaims struct {
	Subject   string // sub: the user, or the client id for backend services
	ClientID  string
	Scope     string // the granted scopes, space-separated
	Patient   string // launch context
	Encounter string // launch context
	FHIRUser  string // "Practitioner/123"
	GrantID   string // the authorization behind the token; RevokeGrant kills its tokens
	ACR       string
	AuthTime  time.Time     // when the user authenticated; zero for none
	Lifetime  time.Duration // 0 means DefaultLifetime; at most MaxLifetime
	// CertThumbprint (RFC 8705 x5t#S256) and JKT (RFC 9449) bind the
	// token to a client certificate or a DPoP key.
	CertThumbprint string
	JKT            string
	// FHIRContext is SMART's fhirContext launch context.
	FHIRContext []map[string]any
	// BreakGlassReason is the reason a user stated when invoking
	// break-the-glass ("" when they did not); the site policy reads it.
	BreakGlassReason string
}

// accessClaims is the JSON payload of an access token.
type accessClaims struct {
	jwt.Claims
	ClientID    string           `json:"client_id"`
	Scope       string           `json:"scope"`
	AuthTime    *jwt.NumericDate `json:"auth_time,omitempty"`
	ACR         string           `json:"acr,omitempty"`
	Patient     string           `json:"patient,omitempty"`
	Encounter   string           `json:"encounter,omitempty"`
	FHIRUser    string           `json:"fhirUser,omitempty"`
	GrantID     string           `json:"wgid,omitempty"`
	Cnf         *confirmation    `json:"cnf,omitempty"`
	FHIRContext []map[string]any `json:"fhirContext,omitempty"`
	BreakGlass  string           `json:"break_glass,omitempty"`
}

// confirmation is the cnf claim (RFC 7800 §3.1).
type confirmation struct {
	X5tS256 string `json:"x5t#S256,omitempty"` // RFC 8705 §3.1
	JKT     string `json:"jkt,omitempty"`      // RFC 9449 §6.1
}

// MintAccess signs an access token (RFC 9068 §2): header typ "at+jwt",
// alg ES256 and the kid of the active key; claims iss, sub, aud (the FHIR
// base URL), exp, iat, jti, client_id, scope, and when set auth_time, acr,
// SMART's patient, encounter, fhirUser and fhirContext, Warden's grant id
// ("wgid"), and cnf (x5t#S256 and/or jkt). It returns the token, its jti
// and when it expires.
func (s *Service) MintAccess(ctx context.Context, c AccessClaims) (token, jti string, exp time.Time, err error) {
	if c.Subject == "" || c.ClientID == "" {
		return "", "", time.Time{}, errors.New("tokens: an access token needs a subject and a client id")
	}
	lifetime, err := s.lifetime(c.Lifetime)
	if err != nil {
		return "", "", time.Time{}, err
	}
	k, err := s.signingKey(ctx, func(ks *keySet) *signingKey { return ks.access })
	if err != nil {
		return "", "", time.Time{}, err
	}
	now := s.o.Now()
	jti = rand.Text()
	claims := accessClaims{
		Claims: jwt.Claims{
			Issuer:   s.o.Issuer,
			Subject:  c.Subject,
			Audience: jwt.Audience{s.o.Audience},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(lifetime)),
			ID:       jti,
		},
		ClientID:    c.ClientID,
		Scope:       c.Scope,
		AuthTime:    jwt.NewNumericDate(c.AuthTime),
		ACR:         c.ACR,
		Patient:     c.Patient,
		Encounter:   c.Encounter,
		FHIRUser:    c.FHIRUser,
		GrantID:     c.GrantID,
		FHIRContext: c.FHIRContext,
		BreakGlass:  c.BreakGlassReason,
	}
	if c.CertThumbprint != "" || c.JKT != "" {
		claims.Cnf = &confirmation{X5tS256: c.CertThumbprint, JKT: c.JKT}
	}
	token, err = sign(k, claims)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if len(token) > maxTokenLen {
		return "", "", time.Time{}, fmt.Errorf("tokens: access token of %d bytes, over the %d Verify accepts", len(token), maxTokenLen)
	}
	return token, jti, claims.Expiry.Time(), nil
}

// IDClaims is what an id_token says.
type IDClaims struct {
	Subject  string
	ClientID string // the aud
	Nonce    string // from the authorization request; "" when none was sent
	FHIRUser string
	Name     string
	ACR      string
	AMR      []string
	AuthTime time.Time
	Lifetime time.Duration // 0 means DefaultLifetime; at most MaxLifetime
}

// idClaims is the JSON payload of an id_token.
type idClaims struct {
	jwt.Claims
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
	Nonce    string           `json:"nonce,omitempty"`
	ACR      string           `json:"acr,omitempty"`
	AMR      []string         `json:"amr,omitempty"`
	FHIRUser string           `json:"fhirUser,omitempty"`
	Name     string           `json:"name,omitempty"`
}

// MintID signs an id_token (OpenID Connect Core 1.0 §2) with the active
// RS256 key: iss, sub, aud (the client id), exp, iat, and when set
// auth_time, nonce, acr, amr, and SMART's fhirUser and name.
func (s *Service) MintID(ctx context.Context, c IDClaims) (string, error) {
	if c.Subject == "" || c.ClientID == "" {
		return "", errors.New("tokens: an id_token needs a subject and a client id")
	}
	lifetime, err := s.lifetime(c.Lifetime)
	if err != nil {
		return "", err
	}
	k, err := s.signingKey(ctx, func(ks *keySet) *signingKey { return ks.id })
	if err != nil {
		return "", err
	}
	now := s.o.Now()
	return sign(k, idClaims{
		Claims: jwt.Claims{
			Issuer:   s.o.Issuer,
			Subject:  c.Subject,
			Audience: jwt.Audience{c.ClientID},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(lifetime)),
		},
		AuthTime: jwt.NewNumericDate(c.AuthTime),
		Nonce:    c.Nonce,
		ACR:      c.ACR,
		AMR:      c.AMR,
		FHIRUser: c.FHIRUser,
		Name:     c.Name,
	})
}

func (s *Service) lifetime(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return min(DefaultLifetime, s.o.MaxLifetime), nil
	case d < time.Second:
		return 0, fmt.Errorf("tokens: token lifetime %v too short", d)
	case d > s.o.MaxLifetime:
		return 0, fmt.Errorf("tokens: token lifetime %v over MaxLifetime %v", d, s.o.MaxLifetime)
	}
	return d, nil
}

// signingKey returns the active key pick chooses, rotating first when it
// has grown older than RotateEvery.
func (s *Service) signingKey(ctx context.Context, pick func(*keySet) *signingKey) (*signingKey, error) {
	k := pick(s.keys.Load())
	if k == nil {
		return nil, errNoKey
	}
	if s.o.Now().Sub(k.created) >= s.o.RotateEvery {
		if err := s.ensureKeys(ctx, false); err != nil {
			return nil, err
		}
		if k = pick(s.keys.Load()); k == nil {
			return nil, errNoKey
		}
	}
	return k, nil
}

func sign(k *signingKey, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("tokens: encode claims: %w", err)
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("tokens: sign: %w", err)
	}
	return jws.CompactSerialize()
}
