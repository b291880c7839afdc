package authserver

import (
	"maps"
	"slices"
	"time"

	"github.com/ory/fosite"
)

// Session is what one authorization carries from the login to every token
// minted for it: who signed in and how, and the SMART launch context. It
// implements fosite.Session and is stored as JSON.
type Session struct {
	Subject           string                         `json:"sub,omitempty"`      // the user's id, or the client id for backend services
	Name              string                         `json:"name,omitempty"`     // display name, for the profile claim
	Username          string                         `json:"username,omitempty"` // never put in tokens
	FHIRUser          string                         `json:"fhir_user,omitempty"`
	Patient           string                         `json:"patient,omitempty"`
	Encounter         string                         `json:"encounter,omitempty"`
	FHIRContext       []map[string]any               `json:"fhir_context,omitempty"`
	NeedPatientBanner bool                           `json:"need_patient_banner,omitempty"`
	AuthTime          time.Time                      `json:"auth_time,omitzero"`
	ACR               string                         `json:"acr,omitempty"`
	AMR               []string                       `json:"amr,omitempty"`
	Nonce             string                         `json:"nonce,omitempty"`
	OnlineUntil       time.Time                      `json:"online_until,omitzero"` // online_access: no refresh after this
	ExpiresAt         map[fosite.TokenType]time.Time `json:"expires_at,omitempty"`
	// AccessTokenID is the jti of the last access token minted, set by
	// the access-token strategy.
	AccessTokenID string `json:"access_jti,omitempty"`
	// BreakGlassReason is the reason a practitioner stated for an
	// emergency (break-the-glass) access: every access token of the grant
	// carries it, and the grant gets no refresh token.
	BreakGlassReason string `json:"break_glass,omitempty"`
	// CertThumbprint binds the access tokens to the client certificate
	// presented at the token endpoint (RFC 8705 §3), set anew on every
	// token request of a client registered for bound tokens.
	CertThumbprint string `json:"x5t_s256,omitempty"`
	// JKT binds the grant to a DPoP key (RFC 9449 §5, §6): its access
	// tokens carry cnf jkt, and its refresh tokens work only with a proof
	// by the same key (the grant is bound at its first token request).
	JKT string `json:"jkt,omitempty"`
}

var _ fosite.Session = (*Session)(nil)

// SetExpiresAt implements fosite.Session.
func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

// GetExpiresAt implements fosite.Session.
func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time {
	return s.ExpiresAt[key]
}

// GetUsername implements fosite.Session.
func (s *Session) GetUsername() string { return s.Username }

// GetSubject implements fosite.Session.
func (s *Session) GetSubject() string { return s.Subject }

// Clone implements fosite.Session.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.FHIRContext = slices.Clone(s.FHIRContext)
	c.AMR = slices.Clone(s.AMR)
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	return &c
}
