package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/smart"
	"github.com/wardenfhir/warden/internal/tokens"
)

// handleToken is the token endpoint (RFC 6749 §3.2): authorization_code
// (§4.1.3, with PKCE RFC 7636 §4.6), refresh_token (§6, rotated on every
// use), client_credentials (§4.4, SMART Backend Services). fosite runs the
// grant; around it Warden narrows scopes to the client's ceiling, sets
// lifetimes, and adds SMART's launch context and the id_token to the
// response (SMART 2.2 "Response" of the access-token request).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		s.tokenPreflight(w, r)
		return
	}
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("The token endpoint accepts POST only."))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.provider.WriteAccessError(ctx, w, nil, fosite.ErrInvalidRequest.WithHint("Malformed form body."))
		return
	}
	s.allowTokenCORS(ctx, w, r)
	s.fillPublicRefreshClient(ctx, r)

	// The DPoP proof is checked before the grant is looked at, so that a
	// bad proof does not use up an authorization code.
	proof, err := s.dpopProof(r)
	if errors.Is(err, errUseDPoPNonce) {
		w.Header().Set("DPoP-Nonce", s.o.DPoP.Nonce(s.o.Now()))
		s.provider.WriteAccessError(ctx, w, nil, useDPoPNonce)
		return
	}
	if err != nil {
		s.provider.WriteAccessError(ctx, w, nil, err)
		return
	}
	sess := &Session{}
	ar, err := s.provider.NewAccessRequest(ctx, r, sess)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if err := s.shapeAccessRequest(ctx, ar); err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if err := s.bindToCertificate(r, ar); err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if err := bindToDPoPKey(ar, proof); err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if err := s.addSMARTResponse(ctx, ar, resp); err != nil {
		s.provider.WriteAccessError(ctx, w, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// fillPublicRefreshClient supports apps (fhirclient) that refresh a public
// client's token without client_id: when a refresh_token request carries no
// client credentials at all and the refresh token belongs to a public
// client, that client is the requester. Confidential and backend clients
// must still authenticate (RFC 6749 §6).
func (s *Server) fillPublicRefreshClient(ctx context.Context, r *http.Request) {
	if r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("client_id") != "" ||
		r.PostForm.Get("client_assertion") != "" || r.Header.Get("Authorization") != "" {
		return
	}
	sig := s.refreshSignature(ctx, r.PostForm.Get("refresh_token"))
	if sig == "" {
		return
	}
	rec, err := s.o.Records.GetRecord(ctx, recordKindRefresh, sig)
	if err != nil {
		return
	}
	var sr storedRequest
	if json.Unmarshal(rec.Value, &sr) != nil {
		return
	}
	c, err := s.registry.Get(ctx, sr.ClientID)
	if err != nil || c.Type != ClientPublic {
		return
	}
	r.PostForm.Set("client_id", c.ID)
	r.Form.Set("client_id", c.ID)
}

func (s *Server) refreshSignature(ctx context.Context, token string) string {
	if token == "" {
		return ""
	}
	return s.coreStrategy().RefreshTokenSignature(ctx, token)
}

// shapeAccessRequest applies Warden's rules between fosite's validation of
// the grant and the minting of tokens.
func (s *Server) shapeAccessRequest(ctx context.Context, ar fosite.AccessRequester) error {
	req, ok := ar.(*fosite.AccessRequest)
	if !ok {
		return fosite.ErrServerError.WithHint("unexpected request type")
	}
	fc, ok := req.GetClient().(*fositeClient)
	if !ok {
		return fosite.ErrServerError.WithHint("unexpected client type")
	}
	c := fc.Client
	sess := req.GetSession().(*Session)
	now := s.o.Now()
	switch {
	case req.GetGrantTypes().ExactOne(GrantClientCredentials):
		// SMART Backend Services "Evaluate requested access": within the
		// registered ceiling, or nothing.
		requested, _ := smart.ParseScopes(strings.Join(req.GetRequestedScopes(), " "))
		ceiling, _ := smart.ParseScopes(c.Scopes)
		granted := smart.Grant(requested, ceiling)
		if len(granted.Resources) == 0 && len(granted.Other) == 0 {
			return fosite.ErrInvalidScope.WithHint("None of the requested scopes is allowed for this client.")
		}
		req.GrantedScope = fosite.Arguments(strings.Fields(granted.String()))
		sess.Subject = c.ID
	case req.GetGrantTypes().ExactOne(GrantRefreshToken):
		if sess.BreakGlassReason != "" {
			// A break-the-glass grant is never given a refresh token
			// (offeredScopes); should one exist, it does not work.
			return fosite.ErrInvalidGrant.WithHint("An emergency access cannot be refreshed; sign in again.")
		}
		if !sess.OnlineUntil.IsZero() && !now.Before(sess.OnlineUntil) {
			return fosite.ErrInvalidGrant.WithHint("The online access of this grant has ended; sign in again.")
		}
		if sess.Username != "" {
			// A disabled account's grants end with it.
			u, err := s.o.Users.Get(ctx, sess.Subject)
			if err != nil || u.Disabled {
				return fosite.ErrInvalidGrant.WithHint("The user of this grant can no longer sign in.")
			}
		}
		if scope := req.GetRequestForm().Get("scope"); scope != "" {
			// SMART 2.2 / RFC 6749 §6: a refresh may only narrow.
			narrowed := strings.Fields(scope)
			for _, sc := range narrowed {
				if !slices.Contains(req.GrantedScope, sc) {
					return fosite.ErrInvalidScope.WithHint("A refresh can only ask for scopes already granted.")
				}
			}
			slices.Sort(narrowed)
			req.GrantedScope = fosite.Arguments(slices.Compact(narrowed))
		}
	}
	lifetime := s.accessLifetime(c, req.GetGrantedScopes(), req.GetGrantTypes().ExactOne(GrantClientCredentials))
	if sess.BreakGlassReason != "" && lifetime > s.o.SensitiveLifetime {
		// An emergency access is as short-lived as sensitive data.
		lifetime = s.o.SensitiveLifetime
	}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(lifetime))
	granted := req.GetGrantedScopes()
	switch {
	case sess.BreakGlassReason != "":
		// No refresh token (see offeredScopes).
	case granted.Has("offline_access"):
		sess.SetExpiresAt(fosite.RefreshToken, now.Add(s.o.RefreshTokenLifetime))
	case granted.Has("online_access"):
		exp := now.Add(s.o.RefreshTokenLifetime)
		if !sess.OnlineUntil.IsZero() && sess.OnlineUntil.Before(exp) {
			exp = sess.OnlineUntil
		}
		sess.SetExpiresAt(fosite.RefreshToken, exp)
	}
	return nil
}

// accessLifetime is the client's lifetime (or the default), shortened for
// sensitive scopes and capped for backend services.
func (s *Server) accessLifetime(c Client, granted []string, backend bool) time.Duration {
	d := s.o.AccessTokenLifetime
	if c.TokenLifetime > 0 {
		d = c.TokenLifetime
	}
	if s.sensitive(granted) && s.o.SensitiveLifetime < d {
		d = s.o.SensitiveLifetime
	}
	if backend && d > BackendTokenLifetime {
		d = BackendTokenLifetime
	}
	return d
}

func (s *Server) sensitive(granted []string) bool {
	if len(s.o.SensitiveScopes) == 0 {
		return false
	}
	for _, g := range granted {
		if slices.Contains(s.o.SensitiveScopes, g) {
			return true
		}
	}
	sc, _ := smart.ParseScopes(strings.Join(granted, " "))
	for _, r := range sc.Resources {
		if slices.Contains(s.o.SensitiveScopes, r.Type) || (r.Type == "*" && len(s.o.SensitiveScopes) > 0) {
			return true
		}
	}
	return false
}

// addSMARTResponse adds the launch context (SMART 2.2 "Launch context
// arrives with your access_token") and, when openid with fhirUser or
// profile was granted, the id_token.
func (s *Server) addSMARTResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	sess := ar.GetSession().(*Session)
	granted := ar.GetGrantedScopes()
	notes := audit.AnnotationsFrom(ctx)
	notes.Client(ar.GetClient().GetID())
	if sess.Subject != ar.GetClient().GetID() { // a backend client's subject is itself
		notes.User(sess.Subject, sess.FHIRUser)
	}
	notes.Patient(sess.Patient)
	notes.BreakGlass(sess.BreakGlassReason)
	if sess.JKT != "" {
		resp.SetTokenType("DPoP") // RFC 9449 §5
	} else {
		resp.SetTokenType("Bearer")
	}
	resp.SetScopes(granted)
	// The token service's clock, not fosite's, set the expiry.
	resp.SetExpiresIn(sess.GetExpiresAt(fosite.AccessToken).Sub(s.o.Now()).Round(time.Second))
	if sess.Patient != "" {
		resp.SetExtra("patient", sess.Patient)
	}
	if sess.Encounter != "" {
		resp.SetExtra("encounter", sess.Encounter)
	}
	if len(sess.FHIRContext) > 0 {
		resp.SetExtra("fhirContext", sess.FHIRContext)
	}
	if sess.Patient != "" || sess.NeedPatientBanner {
		resp.SetExtra("need_patient_banner", sess.NeedPatientBanner)
	}
	if granted.Has("openid") && (granted.Has("fhirUser") || granted.Has("profile")) && sess.FHIRUser != "" {
		idc := tokens.IDClaims{
			Subject:  sess.Subject,
			ClientID: ar.GetClient().GetID(),
			Nonce:    sess.Nonce,
			ACR:      sess.ACR,
			AMR:      sess.AMR,
			AuthTime: sess.AuthTime,
		}
		if granted.Has("fhirUser") {
			idc.FHIRUser = s.o.Issuer + "/" + sess.FHIRUser
		}
		if granted.Has("profile") {
			idc.Name = sess.Name
		}
		idt, err := s.o.Tokens.MintID(ctx, idc)
		if err != nil {
			return err
		}
		resp.SetExtra("id_token", idt)
	}
	return nil
}

// tokenPreflight answers a CORS preflight for the token endpoint: only
// origins some client registered are allowed.
func (s *Server) tokenPreflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !s.originRegistered(r.Context(), origin, "") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
}

// allowTokenCORS lets a browser app read the token response only from the
// origins its client registered (SMART 2.2 CORS requirements).
func (s *Server) allowTokenCORS(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" {
		return
	}
	id := r.PostForm.Get("client_id")
	if id == "" {
		if u, _, ok := r.BasicAuth(); ok {
			id = u
		}
	}
	if id == "" && r.PostForm.Get("grant_type") == "refresh_token" {
		if rec, err := s.o.Records.GetRecord(ctx, recordKindRefresh, s.refreshSignature(ctx, r.PostForm.Get("refresh_token"))); err == nil {
			var sr storedRequest
			if json.Unmarshal(rec.Value, &sr) == nil {
				id = sr.ClientID
			}
		}
	}
	if id != "" && s.originRegistered(ctx, origin, id) {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Expose-Headers", "DPoP-Nonce")
	}
}

// originRegistered reports whether origin is registered for the client id,
// or for any enabled client when id is "".
func (s *Server) originRegistered(ctx context.Context, origin, id string) bool {
	if id != "" {
		c, err := s.registry.Get(ctx, id)
		return err == nil && !c.Disabled && slices.Contains(c.Origins, origin)
	}
	cs, err := s.registry.List(ctx)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(cs, func(c Client) bool { return !c.Disabled && slices.Contains(c.Origins, origin) })
}

func (s *Server) coreStrategy() *coreStrategy { return s.strategy }

// bindToCertificate binds the tokens of a client registered for
// certificate-bound tokens to the certificate of this connection (RFC
// 8705 §3): cnf x5t#S256 in the access token, so that the FHIR API takes
// it only over a connection with that certificate. A refresh rebinds to
// the certificate presented then (a client may renew its certificate).
//
// Options.MTLSScopes makes binding mandatory by scope family: a token
// request granting such a scope (system/… for instance) needs a client
// certificate whatever the client's registration says.
func (s *Server) bindToCertificate(r *http.Request, ar fosite.AccessRequester) error {
	fc, ok := ar.GetClient().(*fositeClient)
	sess, ok2 := ar.GetSession().(*Session)
	if !ok || !ok2 {
		return nil
	}
	required := false
	for _, scope := range ar.GetGrantedScopes() {
		for _, prefix := range s.o.MTLSScopes {
			required = required || strings.HasPrefix(scope, prefix)
		}
	}
	if !fc.TLS.BoundTokens && !required {
		return nil
	}
	tp := mtls.PeerThumbprint(r.TLS)
	if tp == "" {
		if !fc.TLS.BoundTokens {
			return fosite.ErrInvalidRequest.WithHint("Tokens for these scopes are issued only over mutual TLS: connect with the client's certificate (RFC 8705).")
		}
		return fosite.ErrInvalidRequest.WithHint("This client's access tokens are bound to its TLS client certificate: connect with it (RFC 8705).")
	}
	sess.CertThumbprint = tp
	return nil
}

// dpopProof verifies the request's DPoP proof (RFC 9449 §4.3) for the
// token endpoint; nil without one.
func (s *Server) dpopProof(r *http.Request) (*dpop.Proof, error) {
	raw := r.Header.Values("DPoP")
	if len(raw) == 0 {
		return nil, nil
	}
	if len(raw) > 1 || s.o.DPoP == nil {
		return nil, invalidDPoPProof
	}
	proof, err := s.o.DPoP.VerifyContext(r.Context(), raw[0], r.Method, s.urls.token, "", s.o.Now())
	if err != nil {
		if errors.Is(err, dpop.ErrReplayCheck) {
			return nil, fosite.ErrTemporarilyUnavailable.WithHint("DPoP proofs cannot be checked right now.")
		}
		if errors.Is(err, dpop.ErrUseNonce) {
			return nil, errUseDPoPNonce
		}
		return nil, invalidDPoPProof
	}
	return &proof, nil
}

// bindToDPoPKey binds the grant to the key of the request's DPoP proof
// (RFC 9449 §5): the access token carries cnf jkt, and a grant bound
// once (its refresh tokens) takes only proofs by that key afterwards. A
// client registered with dpop_bound_access_tokens must send a proof.
func bindToDPoPKey(ar fosite.AccessRequester, proof *dpop.Proof) error {
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		return fosite.ErrServerError
	}
	if proof == nil {
		if fc, _ := ar.GetClient().(*fositeClient); sess.JKT != "" || (fc != nil && fc.DPoPBound) {
			return fosite.ErrInvalidRequest.WithHint("This grant is bound to a DPoP key: send a DPoP proof (RFC 9449).")
		}
		return nil
	}
	if sess.JKT != "" && sess.JKT != proof.JKT {
		return fosite.ErrInvalidGrant.WithHint("This grant is bound to another DPoP key.")
	}
	sess.JKT = proof.JKT
	return nil
}

// errUseDPoPNonce: the proof lacks the server's current nonce.
var errUseDPoPNonce = errors.New("authserver: DPoP proof without the server nonce")

// useDPoPNonce is RFC 9449 §8's answer: retry with the DPoP-Nonce sent.
var useDPoPNonce = &fosite.RFC6749Error{ErrorField: "use_dpop_nonce", DescriptionField: "Resend the request with a DPoP proof carrying the DPoP-Nonce.", CodeField: http.StatusBadRequest}

// invalidDPoPProof is RFC 9449 §5's error for a proof the token endpoint
// refuses.
var invalidDPoPProof = &fosite.RFC6749Error{ErrorField: "invalid_dpop_proof", DescriptionField: "The DPoP proof is invalid.", CodeField: http.StatusBadRequest}
