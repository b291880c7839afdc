package searchparam

// Entry is one index entry extracted from a resource for one search
// parameter. A resource yields zero or more entries per parameter (one per
// value: every coding of a CodeableConcept, every name part, …). Which
// fields are set depends on Type:
//
//   - String:    Text (NormalizeString of the value) and Exact (the value as written).
//   - Token:     System and Code (either may be empty), Text (the Coding.display or
//     CodeableConcept.text / Identifier.type.text, normalised, for :text).
//     booleans index as Code "true"/"false"; Identifier as System/Code=value.
//   - Reference: RefType and RefID for references that name a resource
//     ("Patient/123", "https://host/fhir/Patient/123", versions stripped),
//     URL for absolute, canonical or other literal references (as written,
//     without a version), System/Code for Reference.identifier (:identifier).
//   - Date:      Lo and Hi, Unix microseconds, the half-open range [Lo, Hi)
//     covered by the value at its precision (see DateRange).
//   - Number:    NumLo and NumHi, the range implied by the value's precision
//     (see NumberRange), Num the value itself.
//   - Quantity:  Num, NumLo, NumHi as for Number; System and Code (the unit
//     system and code), Text the normalised unit string.
//   - URI:       Exact (the value as written).
//   - Composite: Components, one Entry per component in definition order.
type Entry struct {
	Param string // the parameter code
	Type  Type

	Text   string
	Exact  string
	System string
	Code   string

	RefType string
	RefID   string
	URL     string

	Lo, Hi int64

	Num, NumLo, NumHi float64

	Components []Entry
}

// DateMin and DateMax bound open-ended ranges (a Period without an end).
const (
	DateMin int64 = -1 << 62
	DateMax int64 = 1 << 62
)
