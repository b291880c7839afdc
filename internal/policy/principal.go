// Package policy decides what a caller may do. Decide turns a Principal
// (who is asking, with which token) and a Request (what they ask) into a
// Decision (allow or deny, the narrowing to apply, the reason); the FHIR API
// applies it and nothing else decides. It is pure: no I/O, no net/http.
package policy

import (
	"time"

	"github.com/wardenfhir/warden/internal/smart"
)

// Principal is the verified identity behind one request: what a valid,
// unexpired, unrevoked access token says, and nothing more.
type Principal struct {
	TokenID   string // jti
	GrantID   string // the authorization the token came from; revoking it kills every token of the grant
	ClientID  string
	Subject   string // sub: the user's id, or the client id for backend services
	FHIRUser  string // "Practitioner/123", "Patient/p1", "RelatedPerson/r2"; "" for backend services
	Patient   string // launch context patient id ("" when none)
	Encounter string // launch context encounter id ("" when none)
	Scope     string // the granted scope string, exactly as in the token
	Scopes    smart.Scopes
	AuthTime  time.Time // when the user last authenticated (zero for backend services)
	ACR       string    // authentication context class; see ACRMultiFactor
	IssuedAt  time.Time
	Expires   time.Time
	// BreakGlassReason is the reason the user stated when invoking
	// break-the-glass at login ("" when they did not).
	BreakGlassReason string
	// Confirmation binds the token to a key (RFC 8705 x5t#S256, RFC 9449
	// jkt); empty for bearer tokens.
	CertThumbprint string
	JKT            string
}

// ACRMultiFactor is the acr value of a login that passed a second factor.
const ACRMultiFactor = "urn:warden:acr:mfa"

// ACRPassword is the acr value of a password-only login.
const ACRPassword = "urn:warden:acr:pwd"
