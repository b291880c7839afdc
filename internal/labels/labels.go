// Package labels owns Warden's security-labelling service: it classifies a
// FHIR R4 resource against value sets of clinical codes (kept as data files
// in valuesets/) and produces HL7 v3 security labels for meta.security — a
// sensitivity code per category (HIV, PSY, ETH, SEX, SDV, GDIS and
// site-defined ones) and one confidentiality code (N, R or V) — together
// with the reasons for each label, so that `warden labels explain` can
// show them.
//
// It also merges computed labels with those a client sent (never lowering
// them) and propagates sensitivity labels along references chosen by site
// policy. The package is pure: it never imports net/http, never reads
// files other than its embedded value sets, and never fetches referenced
// resources itself (callers supply a lookup). It decides labels; it never
// enforces them — that is the policy and store layers' job.
package labels

import (
	"errors"
)

// Code systems of the labels this package writes (FHIR R4 §6.1.0.7
// Security Labels; HL7 v3 ActCode and Confidentiality code systems).
const (
	// SensitivitySystem is the code system of sensitivity labels
	// (HIV, PSY, ETH, SEX, SDV, GDIS, ...).
	SensitivitySystem = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	// ConfidentialitySystem is the code system of confidentiality labels
	// (U < L < M < N < R < V).
	ConfidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
)

// Errors returned by this package; test them with errors.Is.
var (
	// ErrMalformedValueSet reports a value-set file that does not follow
	// the format described in valuesets/SOURCES.md.
	ErrMalformedValueSet = errors.New("labels: malformed value set")
	// ErrDuplicateCategory reports two value sets for the same category.
	ErrDuplicateCategory = errors.New("labels: duplicate value-set category")
	// ErrMalformedResource reports a resource that is not a JSON object
	// with a resourceType, or whose coded or meta.security elements have
	// the wrong JSON shape.
	ErrMalformedResource = errors.New("labels: malformed resource")
	// ErrBadPolicy reports an invalid labelling policy (for example a
	// propagation path that is not Type.element[.element...]).
	ErrBadPolicy = errors.New("labels: invalid policy")
)

// Coding is a FHIR Coding as used in meta.security.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// ConfidentialityRank orders the v3 Confidentiality codes
// (U < L < M < N < R < V); 0 means "not a ranked confidentiality code".
func ConfidentialityRank(code string) int {
	switch code {
	case "U":
		return 1
	case "L":
		return 2
	case "M":
		return 3
	case "N":
		return 4
	case "R":
		return 5
	case "V":
		return 6
	}
	return 0
}

var confidentialityDisplay = map[string]string{
	"U": "unrestricted", "L": "low", "M": "moderate",
	"N": "normal", "R": "restricted", "V": "very restricted",
}

// Confidentiality returns the v3 Confidentiality coding for code
// (one of U, L, M, N, R, V).
func Confidentiality(code string) Coding {
	return Coding{System: ConfidentialitySystem, Code: code, Display: confidentialityDisplay[code]}
}

// isConfidentiality reports whether c is a ranked v3 Confidentiality code.
func isConfidentiality(c Coding) bool {
	return c.System == ConfidentialitySystem && ConfidentialityRank(c.Code) > 0
}
