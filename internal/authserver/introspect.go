package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"
)

// inactive is the whole answer for any token that is not active
// (RFC 7662 §2.2: no other member may reveal why).
var inactive = []byte(`{"active":false}`)

// handleIntrospect is the introspection endpoint (RFC 7662 §2). Callers
// must authenticate as a confidential or backend client (§2.1: the
// endpoint MUST require some form of authorization). Access tokens are
// checked by the token service, so a revoked token, a revoked grant or a
// disabled client's token introspects inactive; refresh tokens by their
// stored state.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("POST a form with the token."))
		return
	}
	caller, err := s.auth.authenticate(ctx, r, r.PostForm)
	if err != nil || (caller.Type != ClientConfidential && caller.Type != ClientBackend) {
		w.Header().Set("WWW-Authenticate", `Basic realm="introspection"`)
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidClient.WithHint("Introspection needs an authenticated confidential or backend client."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("The token parameter is required."))
		return
	}
	answer := s.introspect(ctx, token)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if answer == nil {
		_, _ = w.Write(inactive)
		return
	}
	b, err := json.Marshal(answer)
	if err != nil {
		_, _ = w.Write(inactive)
		return
	}
	_, _ = w.Write(b)
}

// introspect returns the RFC 7662 §2.2 members of an active token, or nil.
func (s *Server) introspect(ctx context.Context, token string) map[string]any {
	if strings.Count(token, ".") == 2 {
		p, err := s.o.Tokens.Verify(ctx, token)
		if err != nil {
			return nil
		}
		m := map[string]any{
			"active":     true,
			"scope":      p.Scope,
			"client_id":  p.ClientID,
			"sub":        p.Subject,
			"exp":        p.Expires.Unix(),
			"iat":        p.IssuedAt.Unix(),
			"iss":        s.o.Issuer,
			"aud":        s.o.Issuer,
			"token_type": "Bearer",
			"jti":        p.TokenID,
		}
		// A resource server that introspects must see what the token is
		// bound to, to demand the same key (RFC 8705 §3.2, RFC 9449 §6.2).
		if p.CertThumbprint != "" || p.JKT != "" {
			cnf := map[string]any{}
			if p.CertThumbprint != "" {
				cnf["x5t#S256"] = p.CertThumbprint
			}
			if p.JKT != "" {
				cnf["jkt"] = p.JKT
				m["token_type"] = "DPoP"
			}
			m["cnf"] = cnf
		}
		addContext(m, s.o.Issuer, p.Patient, p.Encounter, p.FHIRUser, p.ACR, p.AuthTime)
		return m
	}
	req, sr, ok := s.liveRefresh(ctx, token)
	if !ok {
		return nil
	}
	sess := sr.Session
	m := map[string]any{
		"active":     true,
		"scope":      strings.Join(req.GetGrantedScopes(), " "),
		"client_id":  req.GetClient().GetID(),
		"sub":        sess.Subject,
		"exp":        sess.GetExpiresAt(fosite.RefreshToken).Unix(),
		"iat":        req.GetRequestedAt().Unix(),
		"iss":        s.o.Issuer,
		"token_type": "refresh_token",
	}
	addContext(m, s.o.Issuer, sess.Patient, sess.Encounter, sess.FHIRUser, sess.ACR, sess.AuthTime)
	return m
}

func addContext(m map[string]any, issuer, patient, encounter, fhirUser, acr string, authTime time.Time) {
	if patient != "" {
		m["patient"] = patient
	}
	if encounter != "" {
		m["encounter"] = encounter
	}
	if fhirUser != "" {
		m["fhirUser"] = issuer + "/" + fhirUser
	}
	if acr != "" {
		m["acr"] = acr
	}
	if !authTime.IsZero() {
		m["auth_time"] = authTime.Unix()
	}
}

// liveRefresh returns the stored request of an active, unexpired refresh
// token of an enabled client.
func (s *Server) liveRefresh(ctx context.Context, token string) (fosite.Requester, *storedRequest, bool) {
	sig := s.refreshSignature(ctx, token)
	if sig == "" {
		return nil, nil, false
	}
	req, sr, _, err := s.store.get(ctx, recordKindRefresh, sig, nil)
	if err != nil || sr.Inactive {
		return nil, nil, false
	}
	if err := s.strategy.ValidateRefreshToken(ctx, req, token); err != nil {
		return nil, nil, false
	}
	if !s.o.Now().Before(sr.Session.GetExpiresAt(fosite.RefreshToken)) {
		return nil, nil, false
	}
	return req, sr, true
}

// handleRevoke is the revocation endpoint (RFC 7009 §2). An access token
// is revoked alone (the token service refuses it from the next request
// on); a refresh token revokes its whole grant (§2.1: "SHOULD also
// invalidate all access tokens based on the same authorization grant").
// Any client may revoke its own tokens; a token of another client, an
// unknown or an already invalid token is answered 200 and left alone
// (§2.2).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodOptions {
		s.tokenPreflight(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("POST a form with the token."))
		return
	}
	s.allowTokenCORS(ctx, w, r)
	caller, err := s.auth.authenticate(ctx, r, r.PostForm)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidClient.WithHint("Client authentication failed."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("The token parameter is required."))
		return
	}
	if err := s.revoke(ctx, caller, token); err != nil {
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrServerError.WithWrap(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(ctx context.Context, caller Client, token string) error {
	if strings.Count(token, ".") == 2 {
		p, err := s.o.Tokens.Verify(ctx, token)
		if err != nil || p.ClientID != caller.ID {
			return nil
		}
		return s.o.Tokens.RevokeToken(ctx, p.TokenID, p.Expires)
	}
	req, _, ok := s.liveRefresh(ctx, token)
	if !ok || req.GetClient().GetID() != caller.ID {
		return nil
	}
	return s.store.revokeGrant(ctx, req.GetID())
}
