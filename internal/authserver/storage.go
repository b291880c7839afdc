package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/wardenfhir/warden/internal/store"
)

// Record kinds of the fosite storage adapter. Token records are keyed by
// the token's signature (never the token itself) and grouped by the grant
// id, which is fosite's request id: every code, access and refresh token of
// one authorization shares it. Access tokens are not stored (see
// CreateAccessTokenSession).
const (
	recordKindCode    = "authcode"
	recordKindPKCE    = "pkce"
	recordKindRefresh = "refresh"
	recordKindJTI     = "assertion-jti"
	recordKindLaunch  = "launch"
	recordKindDone    = "interaction-done" // approvals already answered: one code per interaction
	// recordKindUpstream remembers the upstream sign-ins already answered
	// (keyed by the SHA-256 of their state): one callback per sign-in.
	recordKindUpstream = "upstream-done"
)

// usedCodeRetention is how long a redeemed or expired authorization code is
// remembered so that a second use can be detected and its tokens revoked
// (RFC 6749 §4.1.2).
const usedCodeRetention = 10 * time.Minute

// storedRequest is the JSON form of a fosite request.
type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScope    []string   `json:"requested_scope,omitempty"`
	GrantedScope      []string   `json:"granted_scope,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           *Session   `json:"session"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Inactive          bool       `json:"inactive,omitempty"`
}

// fositeStorage implements the fosite storage interfaces the composed
// handlers need over store.Records.
type fositeStorage struct {
	records  store.Records
	registry *Registry
	revoker  grantRevoker
	grants   Grants // nil: no ledger
}

// grantRevoker kills every token of a grant; *tokens.Service implements it.
type grantRevoker interface {
	RevokeGrant(ctx context.Context, grantID string) error
}

var (
	_ fosite.Storage = (*fositeStorage)(nil)
)

// GetClient implements fosite.ClientManager. Disabled clients do not exist.
func (s *fositeStorage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.registry.Get(ctx, id)
	if errors.Is(err, ErrUnknownClient) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if c.Disabled {
		return nil, fosite.ErrNotFound
	}
	return &fositeClient{Client: c}, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager; assertion jti
// replay is checked atomically by claimAssertionJTI instead.
func (s *fositeStorage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	_, err := s.records.GetRecord(ctx, recordKindJTI, jti)
	if err == nil {
		return fosite.ErrJTIKnown
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// SetClientAssertionJWT implements fosite.ClientManager.
func (s *fositeStorage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	err := s.records.InsertRecord(ctx, store.Record{Kind: recordKindJTI, Key: jti, Value: []byte("1"), Expires: exp})
	if errors.Is(err, store.ErrConflict) {
		return fosite.ErrJTIKnown
	}
	return err
}

func (s *fositeStorage) put(ctx context.Context, kind, signature string, req fosite.Requester, expires time.Time) error {
	sr, err := toStored(req)
	if err != nil {
		return err
	}
	b, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	return s.records.PutRecord(ctx, store.Record{Kind: kind, Key: signature, Group: req.GetID(), Value: b, Expires: expires})
}

// get loads a stored request; the returned record value allows a
// compare-and-swap.
func (s *fositeStorage) get(ctx context.Context, kind, signature string, session fosite.Session) (*fosite.Request, *storedRequest, []byte, error) {
	rec, err := s.records.GetRecord(ctx, kind, signature)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, nil, nil, err
	}
	var sr storedRequest
	if sess, ok := session.(*Session); ok && sess != nil {
		sr.Session = sess
	}
	if err := json.Unmarshal(rec.Value, &sr); err != nil {
		return nil, nil, nil, fmt.Errorf("authserver: %s record: %w", kind, err)
	}
	if sr.Session == nil {
		sr.Session = &Session{}
	}
	c, err := s.registry.Get(ctx, sr.ClientID)
	if err != nil {
		return nil, nil, nil, fosite.ErrNotFound
	}
	req := &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            &fositeClient{Client: c},
		RequestedScope:    sr.RequestedScope,
		GrantedScope:      sr.GrantedScope,
		Form:              sr.Form,
		Session:           sr.Session,
		RequestedAudience: sr.RequestedAudience,
		GrantedAudience:   sr.GrantedAudience,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	if c.Disabled {
		return req, &sr, rec.Value, fosite.ErrNotFound
	}
	return req, &sr, rec.Value, nil
}

func toStored(req fosite.Requester) (*storedRequest, error) {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return nil, fmt.Errorf("authserver: unexpected session type %T", req.GetSession())
	}
	return &storedRequest{
		ID:                req.GetID(),
		RequestedAt:       req.GetRequestedAt(),
		ClientID:          req.GetClient().GetID(),
		RequestedScope:    req.GetRequestedScopes(),
		GrantedScope:      req.GetGrantedScopes(),
		Form:              req.GetRequestForm(),
		Session:           sess,
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
	}, nil
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *fositeStorage) CreateAuthorizeCodeSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.put(ctx, recordKindCode, signature, req, req.GetSession().GetExpiresAt(fosite.AuthorizeCode).Add(usedCodeRetention))
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage: a code
// already redeemed returns fosite.ErrInvalidatedAuthorizeCode together with
// its request, so that fosite revokes what the first use issued.
func (s *fositeStorage) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, sr, _, err := s.get(ctx, recordKindCode, signature, session)
	if err != nil {
		return nil, err
	}
	if sr.Inactive {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage
// atomically: of two concurrent redemptions only one succeeds.
func (s *fositeStorage) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	return s.deactivate(ctx, recordKindCode, signature, fosite.ErrInvalidatedAuthorizeCode)
}

func (s *fositeStorage) deactivate(ctx context.Context, kind, signature string, already error) error {
	rec, err := s.records.GetRecord(ctx, kind, signature)
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	if err != nil {
		return err
	}
	var sr storedRequest
	if err := json.Unmarshal(rec.Value, &sr); err != nil {
		return err
	}
	if sr.Inactive {
		return already
	}
	sr.Inactive = true
	b, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	next := *rec
	next.Value = b
	err = s.records.SwapRecord(ctx, next, rec.Value)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return fosite.ErrSerializationFailure
	}
	return err
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *fositeStorage) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.put(ctx, recordKindPKCE, signature, req, req.GetSession().GetExpiresAt(fosite.AuthorizeCode).Add(usedCodeRetention))
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *fositeStorage) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, _, err := s.get(ctx, recordKindPKCE, signature, session)
	return req, err
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *fositeStorage) DeletePKCERequestSession(ctx context.Context, signature string) error {
	_, err := s.records.DeleteRecord(ctx, recordKindPKCE, signature)
	return err
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage. Access
// tokens are self-contained RFC 9068 JWTs; their revocation state (by jti,
// by grant, by client) lives in the token service, which every check
// consults. Nothing reads a stored copy, so none is written: the database
// holds no per-token launch context it would have to protect.
func (s *fositeStorage) CreateAccessTokenSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage; see
// CreateAccessTokenSession. Tokens are checked with tokens.Service.Verify.
func (s *fositeStorage) GetAccessTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage; see
// CreateAccessTokenSession. Revocation goes through tokens.RevokeToken.
func (s *fositeStorage) DeleteAccessTokenSession(context.Context, string) error {
	return nil
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *fositeStorage) CreateRefreshTokenSession(ctx context.Context, signature, _ string, req fosite.Requester) error {
	return s.put(ctx, recordKindRefresh, signature, req, req.GetSession().GetExpiresAt(fosite.RefreshToken))
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage: a rotated
// refresh token returns fosite.ErrInactiveToken with its request, which
// fosite treats as reuse and answers by revoking the grant.
func (s *fositeStorage) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, sr, _, err := s.get(ctx, recordKindRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	if sr.Inactive {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *fositeStorage) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	_, err := s.records.DeleteRecord(ctx, recordKindRefresh, signature)
	return err
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: the used
// refresh token becomes inactive (kept, so that its reuse is detected);
// a concurrent second use loses the compare-and-swap.
func (s *fositeStorage) RotateRefreshToken(ctx context.Context, _ string, signature string) error {
	return s.deactivate(ctx, recordKindRefresh, signature, fosite.ErrInactiveToken)
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage. It revokes
// the whole grant: every refresh token, and through the token service every
// access token, of requestID (refresh-token reuse, code reuse, RFC 7009).
func (s *fositeStorage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.revokeGrant(ctx, requestID)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage; fosite calls
// it only on reuse of a code or refresh token, which revokes the grant.
func (s *fositeStorage) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.revokeGrant(ctx, requestID)
}

// RevokeRefreshTokenMaybeGracePeriod implements
// oauth2.TokenRevocationStorage; there is no grace period.
func (s *fositeStorage) RevokeRefreshTokenMaybeGracePeriod(ctx context.Context, requestID, _ string) error {
	return s.revokeGrant(ctx, requestID)
}

func (s *fositeStorage) revokeGrant(ctx context.Context, grantID string) error {
	if grantID == "" {
		return nil
	}
	if s.revoker != nil {
		if err := s.revoker.RevokeGrant(ctx, grantID); err != nil {
			return err
		}
	}
	if _, err := s.records.DeleteGroup(ctx, recordKindRefresh, grantID); err != nil {
		return err
	}
	if s.grants != nil {
		// The patient's record of it says so too (a no-op for grants
		// that are not a patient's).
		return s.grants.Deactivate(ctx, grantID)
	}
	return nil
}

// fositeClient adapts a Client to fosite.Client.
type fositeClient struct{ Client }

func (c *fositeClient) GetID() string                   { return c.ID }
func (c *fositeClient) GetHashedSecret() []byte         { return c.SecretHash }
func (c *fositeClient) GetRedirectURIs() []string       { return c.RedirectURIs }
func (c *fositeClient) GetGrantTypes() fosite.Arguments { return c.GrantTypes }
func (c *fositeClient) GetResponseTypes() fosite.Arguments {
	if c.Type == ClientBackend {
		return nil
	}
	return fosite.Arguments{"code"}
}
func (c *fositeClient) GetScopes() fosite.Arguments   { return strings.Fields(c.Scopes) }
func (c *fositeClient) IsPublic() bool                { return c.Type == ClientPublic }
func (c *fositeClient) GetAudience() fosite.Arguments { return nil }
