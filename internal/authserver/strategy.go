package authserver

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/wardenfhir/warden/internal/tokens"
)

// accessTokenStrategy makes fosite's access tokens RFC 9068 JWTs minted by
// the token service. The JWT's signature segment is fosite's "signature"
// (the storage key), so the stored session of a token is found from the
// token alone, and nothing secret is ever a storage key.
type accessTokenStrategy struct {
	tokens *tokens.Service
	now    func() time.Time
}

var _ oauth2.AccessTokenStrategy = (*accessTokenStrategy)(nil)

// AccessTokenSignature implements oauth2.AccessTokenStrategy: the last
// segment of the compact JWS (RFC 7515 §7.1).
func (s *accessTokenStrategy) AccessTokenSignature(_ context.Context, token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 && strings.Count(token, ".") == 2 {
		return token[i+1:]
	}
	return ""
}

// GenerateAccessToken implements oauth2.AccessTokenStrategy. The token's
// lifetime is what the session's access-token expiry says (set by the
// token endpoint from the client and the granted scopes).
func (s *accessTokenStrategy) GenerateAccessToken(ctx context.Context, req fosite.Requester) (string, string, error) {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return "", "", errors.New("authserver: unexpected session type")
	}
	lifetime := sess.GetExpiresAt(fosite.AccessToken).Sub(s.now()).Round(time.Second)
	if lifetime <= 0 {
		lifetime = time.Second
	}
	subject := sess.Subject
	if subject == "" {
		subject = req.GetClient().GetID()
	}
	token, jti, exp, err := s.tokens.MintAccess(ctx, tokens.AccessClaims{
		Subject:     subject,
		ClientID:    req.GetClient().GetID(),
		Scope:       strings.Join(req.GetGrantedScopes(), " "),
		Patient:     sess.Patient,
		Encounter:   sess.Encounter,
		FHIRUser:    sess.FHIRUser,
		GrantID:     req.GetID(),
		ACR:         sess.ACR,
		AuthTime:    sess.AuthTime,
		Lifetime:    lifetime,
		FHIRContext: sess.FHIRContext,
		// The site policy lets a break-the-glass token read, flagged.
		BreakGlassReason: sess.BreakGlassReason,
		CertThumbprint:   sess.CertThumbprint,
		JKT:              sess.JKT,
	})
	if err != nil {
		return "", "", err
	}
	sess.AccessTokenID = jti
	sess.SetExpiresAt(fosite.AccessToken, exp)
	return token, s.AccessTokenSignature(ctx, token), nil
}

// ValidateAccessToken implements oauth2.AccessTokenStrategy through the
// token service: signature, expiry, revocation and client state.
func (s *accessTokenStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	if _, err := s.tokens.Verify(ctx, token); err != nil {
		return fosite.ErrTokenExpired.WithWrap(err)
	}
	return nil
}
