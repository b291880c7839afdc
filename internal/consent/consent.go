// Package consent owns the evaluation of FHIR R4 Consent resources of scope
// patient-privacy (https://hl7.org/fhir/R4/consent.html): validating a
// Consent for enforcement (Parse), compiling one patient's consents into a
// Policy that answers, for each resource about to be disclosed or changed,
// whether the patient's consents permit it (Policy.Decide, with the facts
// of a resource read by FactsOf), and writing a SMART app grant as a
// Consent (GrantConsent, Narrow).
//
// It is applied after the scope decision of package policy and can only
// narrow it. It is pure: it never imports net/http, never does I/O, never
// reads a clock (the caller passes the time) and never fetches the
// resources a Consent references; callers supply the facts of each access.
// Its errors never contain resource content (PHI): only locations such as
// "Consent.provision.provision[1].period" and fixed messages.
package consent

import (
	"errors"
	"fmt"
)

// Code systems and URIs used by this package.
const (
	// SystemConsentScope is the R4 Consent.scope code system
	// (consent.html, terminology.hl7.org/CodeSystem/consentscope).
	SystemConsentScope = "http://terminology.hl7.org/CodeSystem/consentscope"
	// SystemConsentAction is the R4 Consent.provision.action code system
	// (terminology.hl7.org/CodeSystem/consentaction).
	SystemConsentAction = "http://terminology.hl7.org/CodeSystem/consentaction"
	// SystemActReason holds the v3 PurposeOfUse codes (TREAT, ETREAT, ...).
	SystemActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	// SystemActCode holds the v3 sensitivity codes (PSY, ETH, HIV, ...)
	// and the policy codes OPTIN and OPTOUT.
	SystemActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	// SystemConfidentiality holds the v3 confidentiality codes U < L < M <
	// N < R < V.
	SystemConfidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	// SystemResourceTypes is the code system of Consent.provision.class
	// codes that name a FHIR resource type (ValueSet consent-content-class).
	SystemResourceTypes = "http://hl7.org/fhir/resource-types"
	// SystemClient is the identifier system Warden uses for a SMART/OAuth
	// client in a Reference: an app is not a FHIR resource, so a provision
	// names it as {"identifier": {"system": SystemClient, "value": clientID}}
	// (R4 Reference.identifier, references.html#logical).
	SystemClient = "urn:warden:oauth-client"
	// ExtensionGrantedScopes is the extension on a Consent written by
	// GrantConsent holding the granted SMART scopes (valueString,
	// space-separated, as granted), so that grants can be listed.
	ExtensionGrantedScopes = "urn:warden:consent:granted-scopes"
)

// Bounds on what Parse accepts: a Consent beyond them is refused.
const (
	MaxBytes      = 256 << 10 // raw JSON size
	MaxDepth      = 8         // provision nesting: the root is depth 1
	MaxProvisions = 512       // provisions in the whole tree
	MaxListLength = 256       // entries of any one list (actor, class, code, ...)
)

// ErrNotPrivacy is returned by Parse for a well-formed Consent whose scope is not patient-privacy
// (research, treatment, adr): it may be stored but is not enforced.
var ErrNotPrivacy = errors.New("consent: scope is not patient-privacy; stored but not enforced")

// ErrInvalid is matched by every *ValidationError (errors.Is).
var ErrInvalid = errors.New("consent: invalid")

// ValidationError says where a Consent is not enforceable and why. Its
// text holds a FHIRPath-like location and a fixed message, never a value
// from the resource, so it can go into an OperationOutcome as is.
type ValidationError struct {
	Location string // e.g. "Consent.provision.provision[1].period"
	Message  string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("consent: %s: %s", e.Location, e.Message)
}

// Is makes errors.Is(err, ErrInvalid) true for every ValidationError.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(loc, msg string) error { return &ValidationError{Location: loc, Message: msg} }

// Coding is a FHIR Coding reduced to what matching uses: two Codings are
// the same when both system and code are equal.
type Coding struct {
	System string `json:"system,omitempty"`
	Code   string `json:"code,omitempty"`
}

// Type is a provision's type (R4 Consent.provision.type, ValueSet
// consent-provision-type).
type Type uint8

const (
	Deny   Type = iota + 1 // "deny"
	Permit                 // "permit"
)

func (t Type) String() string {
	switch t {
	case Deny:
		return "deny"
	case Permit:
		return "permit"
	}
	return "unknown"
}

// Consent is a parsed, validated Consent of scope patient-privacy.
type Consent struct {
	ID      string // Consent.id ("" when the resource has none yet)
	Status  string // R4 consent-state-codes
	Patient string // the id of Consent.patient (Patient/{id})
	// Provision is the root rule; Parse always sets it (a Consent without
	// provision gets an unconstrained root whose type its policyRule
	// OPTIN/OPTOUT gives).
	Provision *Provision
	// GrantedScopes are the SMART scopes of an app grant
	// (ExtensionGrantedScopes); nil for other consents.
	GrantedScopes []string
}

// Provision is one rule of the tree (R4 Consent.provision). It applies to
// an access when every element it constrains matches; its nested
// Provisions are exceptions to it.
type Provision struct {
	Location       string // "Consent.provision.provision[0]"
	Type           Type
	Period         Period // when the rule holds; zero: always
	Actors         []ActorRule
	Actions        [][]Coding // CodeableConcepts: one matches when any of its codings does
	SecurityLabels []Coding
	Purposes       []Coding
	Classes        []Coding
	Codes          [][]Coding // CodeableConcepts
	DataPeriod     Period
	Data           []DataRule
	Provisions     []*Provision
}

// ActorRule is one Consent.provision.actor: who the rule controls. Only
// the reference takes part in matching; the role is kept for display.
type ActorRule struct {
	Role      []Coding
	Reference Ref
}

// Ref is a FHIR Reference reduced to what identifies its target: either a
// relative literal reference "Type/id", or a logical reference by
// identifier (system and value).
type Ref struct {
	Reference string // "Organization/o1"; "" for a reference by identifier
	System    string // identifier system, e.g. SystemClient
	Value     string // identifier value
}

// DataRule is one Consent.provision.data (R4 consent-data-meaning).
type DataRule struct {
	Meaning   string // instance | related | dependents | authoredby
	Reference string // "Type/id"
}
