// Package audit owns Warden's audit trail model: the Record the request
// path fills for every request (allowed or denied), the FHIR R4
// AuditEvent built from it after IHE Basic Audit Log Patterns (BALP), its
// canonical JSON form, the hiding commitment that is the only thing a
// transparency log ever receives, and the Sink contract with its
// implementation JournaledPipeline (the event durable in a local journal
// before the response, its commitment sequenced into the log behind it).
//
// It never imports net/http (the HTTP layer fills a Record), never writes
// a patient id, query or any other input string into a log leaf (a leaf is
// SHA-256 over a domain tag, a fresh random nonce and the canonical event),
// and never puts PHI or secrets in its error texts. The log itself lives in
// the subpackage tlog, the journal in the subpackage journal.
package audit

import (
	"errors"
	"net/netip"
	"net/url"
	"time"
)

// Errors returned by this package; test with errors.Is. Their texts name
// the failing field or stage, never a value.
var (
	// ErrInvalidRecord: Build was given a Record it cannot describe
	// (unknown surface or action, missing time, malformed reference, ...).
	ErrInvalidRecord = errors.New("audit: invalid record")
	// ErrNotCanonical: Canonical met a value it cannot encode
	// deterministically (NaN, an unsupported Go type, invalid UTF-8).
	ErrNotCanonical = errors.New("audit: value has no canonical JSON form")
	// ErrLog: the transparency log did not accept leaves the sequencer
	// gave it; they stay in the journal and are sequenced on the next try.
	ErrLog = errors.New("audit: log append failed")
	// ErrStore: the journal could not make the event durable; the caller
	// answers 503 and nothing is disclosed.
	ErrStore = errors.New("audit: event store failed")
)

// Surfaces of Warden that produce audit records.
const (
	SurfaceFHIR  = "fhir"
	SurfaceAuth  = "auth"
	SurfaceAdmin = "admin"
)

// Outcome codes of AuditEvent.outcome (FHIR R4 value set
// http://hl7.org/fhir/ValueSet/audit-event-outcome, used by BALP).
const (
	OutcomeSuccess = "0"
	OutcomeMinor   = "4"  // minor failure: the request was refused (4xx), including denials
	OutcomeSerious = "8"  // serious failure: the server failed (5xx)
	OutcomeMajor   = "12" // major failure
)

// Record is what the request path knows about one request, after it was
// decided. The HTTP layer fills it; Build turns it into an AuditEvent.
type Record struct {
	RequestID string        // the server-assigned request id (package reqid)
	Time      time.Time     // when the request arrived
	Duration  time.Duration // how long it took until the decision / response

	Surface string // SurfaceFHIR, SurfaceAuth or SurfaceAdmin
	// Action is, for SurfaceFHIR, the FHIR interaction (read, vread,
	// update, patch, delete, create, search-type, search-system,
	// history-instance, history-type, history-system, capabilities,
	// operation, batch, transaction); for SurfaceAuth one of authorize,
	// token, introspect, revoke, login, logout, discovery; for SurfaceAdmin the admin
	// command (client-add, ...).
	Action string
	Method string // HTTP method
	Path   string // request path, without the query
	// Query is kept only in the local event (its values may be PHI), as
	// base64 in entity.query; values of credential parameters (code,
	// client_secret, password, tokens, ...) are replaced by "redacted".
	Query url.Values

	Status   int    // HTTP status answered
	Outcome  string // Outcome* code; "" derives it from Status
	DenyRule string // which rule denied (policy Reason), "" when allowed

	ClientID   string // OAuth client_id of the app
	Subject    string // the user's sub, "" for a backend client
	FHIRUser   string // the user's fhirUser (Practitioner/1, or an absolute URL)
	OnBehalfOf string // the person the user acts for (a reference), if any

	TokenID        string     // the access token's jti
	CertThumbprint string     // client certificate SHA-256 thumbprint (RFC 8705 x5t#S256)
	PeerAddr       netip.Addr // the real client address (trusted proxies already resolved)

	PurposeOfUse     []string // v3 PurposeOfUse codes ("TREAT") or "system|code"
	BreakGlassReason string   // the reason stated when breaking the glass, "" otherwise
	Review           string   // set when an allowing policy asks for later review (policy Decision.Review)

	// Effective is when a change the request made to authorization
	// state (a revocation, a disabled client, a consent) took effect in
	// every Warden process (package coherence); zero otherwise.
	Effective time.Time

	Patients  []string // every patient whose data was returned or touched: ids or Patient/id
	Resources []string // Type/id or Type/id/_history/v of what was read or written; the event keeps the first MaxResources
}

// MaxResources is the number of resource references an AuditEvent lists;
// past it, the event records only the total count.
const MaxResources = 100
