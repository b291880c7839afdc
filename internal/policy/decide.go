package policy

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/smart"
)

// Action is what a request does, as far as authorization cares.
type Action uint8

const (
	ActRead            Action = iota + 1 // read, vread
	ActSearch                            // type search, compartment search
	ActSearchSystem                      // search across types (GET [base]?_type=…)
	ActHistoryInstance                   // [type]/[id]/_history
	ActHistoryType                       // [type]/_history
	ActHistorySystem                     // _history
	ActCreate
	ActUpdate // update, update-as-create, conditional update
	ActDelete
	ActEverything // Patient/[id]/$everything
)

var actionNames = [...]string{
	ActRead: "read", ActSearch: "search", ActSearchSystem: "system search",
	ActHistoryInstance: "history", ActHistoryType: "type history", ActHistorySystem: "system history",
	ActCreate: "create", ActUpdate: "update", ActDelete: "delete", ActEverything: "$everything",
}

func (a Action) String() string {
	if int(a) < len(actionNames) && actionNames[a] != "" {
		return actionNames[a]
	}
	return "unknown"
}

// perm is the SMART v2 permission an action needs (scopes-and-launch-
// context.html#scopes-for-requesting-fhir-resources): read and instance
// history need r; searches and type history need s; update-as-create
// needs u (SMART allows it under the update scope).
func (a Action) perm() smart.Perm {
	switch a {
	case ActRead, ActHistoryInstance, ActEverything:
		return smart.PermRead
	case ActSearch, ActSearchSystem, ActHistoryType, ActHistorySystem:
		return smart.PermSearch
	case ActCreate:
		return smart.PermCreate
	case ActUpdate:
		return smart.PermUpdate
	case ActDelete:
		return smart.PermDelete
	}
	return 0
}

// Request is what is asked: an action on a resource type (and id).
type Request struct {
	Action Action
	Type   string // resource type; "" for system-level actions
	ID     string
}

// Effect is the outcome of a Decision.
type Effect uint8

const (
	// Deny is the zero Effect: nothing is allowed unless a rule says so.
	Deny Effect = iota
	// Allow: go ahead, applying the Decision's narrowing.
	Allow
	// DenyHidden: answer as if the resource did not exist (404), so
	// that the denial tells nothing about other patients' data.
	DenyHidden
	// DenyStepUp: the token is valid but its authentication is too old
	// or too weak for this action (RFC 9470).
	DenyStepUp
)

// Decision is the answer to one Request. The FHIR API applies it; nothing
// else decides.
type Decision struct {
	Effect Effect
	// Missing names a scope that would have allowed a denied request, for
	// the OperationOutcome ("patient/Observation.r").
	Missing string
	// Patient, when set, narrows everything disclosed to the compartment
	// of Patient/{Patient}: reads, search matches and includes, history
	// entries, $everything members. Writes must leave the resource in it.
	Patient string
	// Constraints, when set, are granular scope queries: a disclosed
	// resource must match at least one of them (OR); nil means none.
	Constraints []url.Values
	// Reason says in a few words why, for logs and audit (no PHI).
	Reason string
	// Site, when set, means the site policy must also allow the user to
	// reach Patient's record (Site.Decide): the user is not that patient
	// (a practitioner, a related person), so the scopes alone cannot say
	// whose records they may see.
	Site bool
}

// Options configure Decide.
type Options struct {
	// StepUp lists the actions that need a recent multi-factor login
	// (acr = ACRMultiFactor and auth_time within MaxAuthAge).
	StepUp []Action
	// MaxAuthAge bounds the age of the login behind a step-up action.
	MaxAuthAge time.Duration
}

// IsBackend reports whether p is a backend-services client acting for
// itself (no user behind the token).
func (p *Principal) IsBackend() bool { return p.FHIRUser == "" && p.Subject == p.ClientID }

// Decide decides r for p. It never errs on the side of allowing: an
// action no granted scope covers is denied, a patient-level scope without
// a patient context allows nothing, and whenever the user is not the
// patient whose record is reached the Decision asks for the site policy
// too (Decision.Site).
func Decide(p *Principal, r Request, o Options, now time.Time) Decision {
	if p == nil {
		return Decision{Reason: "no principal"}
	}
	perm := r.Action.perm()
	if perm == 0 || r.Type == "" {
		return Decision{Reason: "action not covered by any scope", Missing: missing(p, r)}
	}
	var (
		unrestricted bool         // some scope allows without narrowing
		compartment  string       // the compartment some scope allows
		constraints  []url.Values // queries of the compartment scopes
		anyOpen      bool         // some compartment scope has no query
		openAll      bool         // some unrestricted scope has no query
		openCons     []url.Values // queries of the unrestricted scopes
		reason       string
	)
	for _, s := range p.Scopes.Matching(perm, r.Type) {
		var patient string
		switch s.Context {
		case smart.ContextSystem:
			if !p.IsBackend() {
				continue // system scopes belong to backend clients only
			}
			unrestricted = true
			if s.Query == nil {
				openAll = true
			} else {
				openCons = append(openCons, s.Query)
			}
			reason = "system scope"
			continue
		case smart.ContextPatient:
			patient = p.Patient
		case smart.ContextUser:
			// A Patient user's own record; anyone else's user/ scopes
			// reach the patient in context, if the site policy agrees.
			patient = userPatient(p)
			if patient == "" {
				patient = p.Patient
			}
		}
		if patient == "" || (compartment != "" && compartment != patient) {
			continue
		}
		compartment = patient
		if s.Query == nil {
			anyOpen = true
		} else {
			constraints = append(constraints, s.Query)
		}
		if reason == "" {
			reason = s.Context.String() + " scope"
		}
	}
	var d Decision
	switch {
	case unrestricted && openAll:
		d = Decision{Effect: Allow, Reason: reason}
	case unrestricted && compartment == "":
		d = Decision{Effect: Allow, Constraints: openCons, Reason: reason}
	case compartment != "":
		d = Decision{Effect: Allow, Patient: compartment, Reason: reason, Site: p.FHIRUser != "Patient/"+compartment}
		if !anyOpen {
			d.Constraints = constraints
		}
	default:
		return Decision{Reason: "no granted scope covers the request", Missing: missing(p, r)}
	}
	if needsStepUp(p, r.Action, o, now) {
		return Decision{Effect: DenyStepUp, Reason: "step-up authentication required"}
	}
	return d
}

// Discloses reports whether d lets a resource of the compartments
// patients (store.Resource.Patients of its current version) be disclosed;
// a Patient is in its own compartment. Constraints are not checked here:
// they need a search (see Decision.Constraints).
func (d Decision) Discloses(typ, id string, patients []string) bool {
	if d.Effect != Allow {
		return false
	}
	if d.Patient == "" {
		return true
	}
	if typ == "Patient" && id == d.Patient {
		return true
	}
	return slices.Contains(patients, d.Patient)
}

// userPatient is the compartment a user/ scope reaches by itself: a
// Patient user's own.
func userPatient(p *Principal) string {
	if id, ok := strings.CutPrefix(p.FHIRUser, "Patient/"); ok && id != "" {
		return id
	}
	return ""
}

func needsStepUp(p *Principal, a Action, o Options, now time.Time) bool {
	if p.IsBackend() {
		return false // no user to step up
	}
	for _, s := range o.StepUp {
		if s == a {
			return p.ACR != ACRMultiFactor || p.AuthTime.IsZero() || (o.MaxAuthAge > 0 && now.Sub(p.AuthTime) > o.MaxAuthAge)
		}
	}
	return false
}

// missing names the narrowest scope that would have allowed r.
func missing(p *Principal, r Request) string {
	ctx := "user"
	switch {
	case p.IsBackend():
		ctx = "system"
	case p.Patient != "":
		ctx = "patient"
	}
	typ := r.Type
	if typ == "" {
		typ = "*"
	}
	perm := r.Action.perm()
	if perm == 0 {
		return ""
	}
	return ctx + "/" + typ + "." + perm.String()
}
