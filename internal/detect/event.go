package detect

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The client classes, as internal/limits names them.
const (
	PatientApp   = "patient-app"
	ClinicianApp = "clinician-app"
	Backend      = "backend"
)

// The interactions an Event may name.
const (
	Read        = "read"
	VRead       = "vread"
	Search      = "search"
	History     = "history"
	Everything  = "everything"
	Export      = "export"
	Create      = "create"
	Update      = "update"
	Delete      = "delete"
	Batch       = "batch"
	Transaction = "transaction"
	Operation   = "operation"
	Other       = "other"
)

// Event is one finished request as the guard saw it. Every identifier in
// it is verified upstream; leave a field empty when it is unknown.
type Event struct {
	Time        time.Time
	Client      string     // OAuth client id; "" unauthenticated
	Class       string     // client class: patient-app, clinician-app, backend; "" is Policy.DefaultClass
	User        string     // fhirUser ("Practitioner/1", "Patient/p"); "" for backend services
	Token       string     // the access token's jti; "" unauthenticated
	Peer        netip.Addr // trusted client address (TCP peer, or from a trusted proxy)
	Interaction string     // one of the interaction constants
	Type, ID    string     // resource type and id asked for ("" when none)
	// Patients are the distinct patient ids whose data the response
	// disclosed. The engine keeps only keyed hashes of them.
	Patients []string
	Status   int // HTTP status sent
	Results  int // resources disclosed (search matches + includes; 1 for a read)
	Count    int // _count asked (0 none)
	Includes int // number of _include/_revinclude parameters
	// Unrelated are the patients of Patients the user has no care
	// relationship with; nil when unknown or not applicable.
	Unrelated []string
	// SpoofedForwarded: X-Forwarded-For or Forwarded came from a peer
	// that is not a trusted proxy.
	SpoofedForwarded bool
}

// Action is what the policy decides. Actions are ordered: when several
// apply, the strongest wins.
type Action uint8

const (
	ActionNone       Action = iota
	ActionAlert             // tell someone; serve the request
	ActionStepUp            // RFC 9470 §3: answer 401 insufficient_user_authentication until the user authenticates again
	ActionThrottle          // answer 429 until the throttle ends
	ActionQuarantine        // refuse until released or the quarantine ends
)

var actionNames = [...]string{"none", "alert", "step-up", "throttle", "quarantine"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// parseAction is the inverse of Action.String.
func parseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), true
		}
	}
	return ActionNone, false
}

// Scope is what a throttle or quarantine lands on.
type Scope uint8

const (
	ScopeActor  Scope = iota // the user when there is one, else the client, else the peer
	ScopeToken               // the access token (jti)
	ScopeUser                // the user, on every client and token
	ScopeClient              // the OAuth client, for all its users
	ScopePeer                // the peer address (always for a bounded time)
)

var scopeNames = [...]string{"actor", "token", "user", "client", "peer"}

func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return "scope(" + strconv.Itoa(int(s)) + ")"
}

func parseScope(s string) (Scope, bool) {
	for i, n := range scopeNames {
		if n == s {
			return Scope(i), true
		}
	}
	return ScopeActor, false
}

// Signal is one detector's contribution to a Verdict. Detail holds
// counts, thresholds and learned values, never a patient id or a query
// value.
type Signal struct {
	Name   string
	Score  float64
	Detail string
	Scope  Scope // where a throttle or quarantine this signal leads lands (never ScopeActor)
}

// Verdict is what the policy decides after one request. Scope says what
// the Action lands on when it is a throttle or quarantine: the scope of
// the strongest signal.
type Verdict struct {
	Action  Action
	Score   float64
	Scope   Scope
	Signals []Signal
}

// Alert is what Sinks receive. It holds the caller's identifiers (a
// patient user is written "Patient/*": the token id finds them in the
// audit log), the action, the score and the signals; never PHI.
type Alert struct {
	Time    time.Time
	Client  string
	User    string
	Token   string
	Peer    netip.Addr
	Action  Action
	Scope   Scope
	Until   time.Time // end of the throttle or quarantine; zero when none or until released
	Score   float64
	Signals []Signal
}

// Sink receives alerts. Send is called from Observe, inline with the
// request: it MUST NOT block (queue and return) and MUST NOT retain a
// reference to a.Signals beyond the call unless it copies it.
type Sink interface {
	Send(a Alert)
}

// alertUser is the user as an alert may name it: a patient user's id is
// a patient id, so it is masked.
func alertUser(user string) string {
	if strings.HasPrefix(user, "Patient/") {
		return "Patient/*"
	}
	return user
}
