package consent

import "time"

// Access is what is about to be disclosed or changed, and to whom: the
// facts a Policy decides on. The caller fills it from the verified token
// and the resource; nothing in it is taken from the request body.
type Access struct {
	Actor    Actor
	Purpose  []Coding // PurposeOfUse of the request; none means TREAT (PurposeTreatment)
	Action   Coding   // see ActionFor
	Resource Resource
	Time     time.Time // now; Consent.provision.period is checked against it (zero denies)
}

// Actor is who the data goes to. It matches a provision's actor only by
// reference (never by display text or role): the client as the identifier
// SystemClient|ClientID, and the organisation and user as "Type/id".
type Actor struct {
	ClientID     string   // the SMART/OAuth client
	Organization string   // "Organization/o1", "" when unknown
	FHIRUser     string   // "Practitioner/123", "RelatedPerson/r1", "" for backend services
	Roles        []Coding // for the record; provisions' actor roles describe, they do not select
}

// Resource holds the facts of the resource the access touches.
type Resource struct {
	Type     string   // "Observation"
	ID       string   // "o1"
	Ref      string   // "Observation/o1"
	Profiles []string // meta.profile canonicals, matched by provision class codes outside SystemResourceTypes
	Security []Coding // meta.security
	Codes    []Coding // the main codes (Observation.code, Condition.code, ...)
	// Date is the clinically relevant date (effective, onset, authored...)
	// tested against provision.dataPeriod; zero when unknown: an unknown
	// date counts as inside a deny's dataPeriod and outside a permit's.
	Date time.Time
	// References are what the resource refers to ("Patient/p1",
	// "Encounter/e1"): a provision data of meaning "dependents" on X
	// covers a resource that refers to X.
	References []string
	// ReferencedBy are resources known to refer to this one: a provision
	// data of meaning "related" on X covers the resources X refers to.
	ReferencedBy []string
	// Authors are who authored it (Practitioner/..., Organization/...),
	// for data of meaning "authoredby".
	Authors []string
}

// PurposeTreatment is the purpose assumed when a request states none
// (v3-ActReason TREAT).
var PurposeTreatment = Coding{System: SystemActReason, Code: "TREAT"}

// Actions of the R4 consentaction code system
// (terminology.hl7.org/CodeSystem/consentaction).
var (
	ActionCollect  = Coding{System: SystemConsentAction, Code: "collect"}
	ActionAccess   = Coding{System: SystemConsentAction, Code: "access"}
	ActionUse      = Coding{System: SystemConsentAction, Code: "use"}
	ActionDisclose = Coding{System: SystemConsentAction, Code: "disclose"}
	ActionCorrect  = Coding{System: SystemConsentAction, Code: "correct"}
)

// ActionFor maps a FHIR RESTful interaction (R4 restful-interaction codes,
// http.html) to the consentaction code a provision's action is matched
// against:
//
//	read, vread, search, search-type, search-system, history,
//	history-instance, history-type, history-system  → access
//	create                                           → collect
//	update, patch, delete                            → correct
//
// An operation such as $everything is mapped by what it does: the caller
// passes "read" for each resource it discloses. Reading is also a
// disclosure by this server to the actor, so a provision whose action is
// disclose matches an access too (see Policy.Decide). ok is false for any
// other interaction; the caller must then deny.
func ActionFor(interaction string) (c Coding, ok bool) {
	switch interaction {
	case "read", "vread", "search", "search-type", "search-system",
		"history", "history-instance", "history-type", "history-system":
		return ActionAccess, true
	case "create":
		return ActionCollect, true
	case "update", "patch", "delete":
		return ActionCorrect, true
	}
	return Coding{}, false
}
