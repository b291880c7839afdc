package audit

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Code systems and profile URLs used in the events.
const (
	systemEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	systemInteraction = "http://hl7.org/fhir/restful-interaction"
	systemDCM         = "http://dicom.nema.org/resources/ontology/DCM"
	systemEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	systemObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	systemSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	systemActReason   = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	systemParticipate = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	systemIHEEvent    = "urn:ihe:event-type-code"
	systemBALPEntity  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	systemBALPUser    = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
	extBALPOtherID    = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/ihe-otherId"
	profileBALP       = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"

	// SystemWardenAction names Warden's own auth and admin actions
	// (AuditEvent.subtype) that have no standard code.
	SystemWardenAction = "https://github.com/wardenfhir/warden/fhir/CodeSystem/audit-action"
	// ExtensionReview is the AuditEvent extension (valueString) carrying
	// the review annotation of the policy that allowed the request.
	ExtensionReview = "https://github.com/wardenfhir/warden/fhir/StructureDefinition/audit-review"
	// ExtensionBreakGlass is the AuditEvent extension (valueString)
	// carrying the reason a user gave for breaking the glass; the event's
	// purposeOfEvent also carries v3-ActReason BTG.
	ExtensionBreakGlass = "https://github.com/wardenfhir/warden/fhir/StructureDefinition/audit-break-glass"
)

// fhirActions maps each FHIR interaction to its AuditEvent.action (C R U
// D E) and the BALP profile the event follows. BALP: reads are
// IHE.BasicAudit.Read (R), searches IHE.BasicAudit.Query (E), writes
// IHE.BasicAudit.Create/Update/Delete; a patient-specific access uses the
// Patient* variant (IHE.BasicAudit.PatientRead, ...).
var fhirActions = map[string]struct{ action, profile string }{
	"read":             {"R", "Read"},
	"vread":            {"R", "Read"},
	"history-instance": {"R", "Read"},
	"history-type":     {"E", "Query"},
	"history-system":   {"E", "Query"},
	"search-type":      {"E", "Query"},
	"search-system":    {"E", "Query"},
	"capabilities":     {"R", "Read"},
	"create":           {"C", "Create"},
	"update":           {"U", "Update"},
	"patch":            {"U", "Update"},
	"delete":           {"D", "Delete"},
	"operation":        {"E", ""},
	"batch":            {"E", ""},
	"transaction":      {"E", ""},
}

// authActions maps the authorization server's actions to a standard
// subtype where one exists (DICOM 110122 Login; IHE ITI-71 Get Access
// Token, the event of BALP's IHE.IUA.71 profile).
var authActions = map[string]struct{ system, code, display string }{
	"authorize":  {},
	"token":      {systemIHEEvent, "ITI-71", "Get Access Token"},
	"introspect": {},
	"revoke":     {},
	"login":      {systemDCM, "110122", "Login"},
	"logout":     {systemDCM, "110123", "Logout"},
	"discovery":  {}, // metadata, keys and page assets
}

// secretParams are query parameters whose values are credentials; the
// event records that they were present, not their value. "code" is an
// authorization code only outside the FHIR API (there it is a search
// parameter).
var secretParams = map[string]bool{
	"client_secret": true, "client_assertion": true, "password": true,
	"access_token": true, "refresh_token": true, "token": true, "id_token_hint": true,
	"code_verifier": true, "subject_token": true, "actor_token": true, "assertion": true,
	"otp": true, "csrf_token": true,
}

// whoTypes are the targets R4 allows for AuditEvent.agent.who.
var whoTypes = []string{"PractitionerRole", "Practitioner", "Organization", "Device", "Patient", "RelatedPerson"}

// isID reports whether s is a FHIR id: [A-Za-z0-9\-.]{1,64}.
func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isRef reports whether s is a relative reference Type/id or
// Type/id/_history/vid, Type being [A-Z][A-Za-z]{1,63}.
func isRef(s string) bool {
	typ, rest, ok := strings.Cut(s, "/")
	if !ok || len(typ) < 2 || len(typ) > 64 || typ[0] < 'A' || typ[0] > 'Z' {
		return false
	}
	for i := 1; i < len(typ); i++ {
		if c := typ[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	id, vid, versioned := strings.Cut(rest, "/_history/")
	return isID(id) && (!versioned || isID(vid))
}

// isCode reports whether s is an R4 code: [^\s]+( [^\s]+)* (no leading,
// trailing or double whitespace, no whitespace but single spaces).
func isCode(s string) bool {
	if s == "" || !utf8Valid(s) {
		return false
	}
	prevSpace := true
	for _, r := range s {
		space := unicode.IsSpace(r)
		if space && (r != ' ' || prevSpace) {
			return false
		}
		prevSpace = space
	}
	return !prevSpace
}

// Build returns the FHIR R4 AuditEvent describing r, shaped after IHE
// BALP (https://profiles.ihe.net/ITI/BALP/): type "rest" with the
// interaction as subtype for the FHIR API (IHE.BasicAudit.Read, .Query,
// .Create, .Update, .Delete and their Patient* variants), DICOM "User
// Authentication" for the authorization server (IHE.IUA.71 for tokens),
// DICOM "Security Alert" for the admin API; agents for the client app
// (with the network address), the user (IHE.BasicAudit.OAUTHaccessTokenUse:
// jti as agent.policy) and the server; entities for each patient (role 1),
// each resource, the query (base64 in entity.query) and the request id
// (BALP "transaction" entity, X-Request-Id).
//
// base is the server's FHIR base URL; it identifies the observer
// (source.site, source.observer). Build assigns no id: the pipeline does, so
// Build is a function of its arguments alone. The result holds only
// map[string]any, []any, string and bool values.
func Build(r Record, base string) (map[string]any, error) {
	if err := checkRecord(r); err != nil {
		return nil, err
	}
	outcome := r.Outcome
	if outcome == "" {
		outcome = outcomeOf(r.Status)
	}
	patients, err := patientIDs(r.Patients)
	if err != nil {
		return nil, err
	}

	ev := make(map[string]any, 16)
	ev["resourceType"] = "AuditEvent"
	var typ map[string]any
	var subtype []any
	var action string
	switch r.Surface {
	case SurfaceFHIR:
		a := fhirActions[r.Action]
		typ = coding(systemEventType, "rest", "RESTful Operation")
		subtype = []any{coding(systemInteraction, r.Action, "")}
		action = a.action
		if a.profile != "" {
			p := a.profile
			if len(patients) > 0 {
				p = "Patient" + p
			}
			ev["meta"] = map[string]any{"profile": []any{profileBALP + "IHE.BasicAudit." + p}}
		}
	case SurfaceAuth:
		typ = coding(systemDCM, "110114", "User Authentication")
		if std := authActions[r.Action]; std.code != "" {
			subtype = append(subtype, coding(std.system, std.code, std.display))
		}
		subtype = append(subtype, coding(SystemWardenAction, r.Action, ""))
		action = "E"
		if r.Action == "token" {
			ev["meta"] = map[string]any{"profile": []any{profileBALP + "IHE.IUA.71"}}
		}
	case SurfaceAdmin:
		typ = coding(systemDCM, "110113", "Security Alert")
		subtype = []any{coding(SystemWardenAction, r.Action, "")}
		action = adminAction(r.Action)
	}
	ev["type"] = typ
	ev["subtype"] = subtype
	ev["action"] = action
	end := r.Time.Add(r.Duration).UTC()
	recorded := instant(end)
	ev["period"] = map[string]any{"start": instant(r.Time), "end": recorded}
	ev["recorded"] = recorded
	ev["outcome"] = outcome
	if r.DenyRule != "" {
		ev["outcomeDesc"] = "denied by " + r.DenyRule
	}

	purposes := purposeOfUse(r.PurposeOfUse, r.BreakGlassReason != "")
	if len(purposes) > 0 {
		ev["purposeOfEvent"] = purposes
	}
	var ext []any
	if r.BreakGlassReason != "" {
		ext = append(ext, map[string]any{"url": ExtensionBreakGlass, "valueString": r.BreakGlassReason})
	}
	if r.Review != "" {
		ext = append(ext, map[string]any{"url": ExtensionReview, "valueString": r.Review})
	}
	if ext != nil {
		ev["extension"] = ext
	}

	ev["agent"] = agents(r, base)
	source := map[string]any{
		"observer": observer(base),
		"type":     []any{coding(systemSourceType, "4", "Application Server")},
	}
	if validString(base) {
		source["site"] = base
	}
	ev["source"] = source
	ev["entity"] = entities(r, patients)
	return ev, nil
}

// checkRecord rejects what Build cannot express as a valid AuditEvent.
// Its errors name the field, never the value.
func checkRecord(r Record) error {
	bad := func(field string) error { return fmt.Errorf("%w: %s", ErrInvalidRecord, field) }
	if r.Time.IsZero() || r.Duration < 0 {
		return bad("time")
	}
	if r.Time.Year() < 1 || r.Time.Add(r.Duration).UTC().Year() > 9999 {
		return bad("time")
	}
	if !isID(r.RequestID) {
		return bad("request id")
	}
	switch r.Surface {
	case SurfaceFHIR:
		if _, ok := fhirActions[r.Action]; !ok {
			return bad("action")
		}
	case SurfaceAuth:
		if _, ok := authActions[r.Action]; !ok {
			return bad("action")
		}
	case SurfaceAdmin:
		if !isCode(r.Action) || len(r.Action) > 64 {
			return bad("action")
		}
	default:
		return bad("surface")
	}
	switch r.Outcome {
	case "", OutcomeSuccess, OutcomeMinor, OutcomeSerious, OutcomeMajor:
	default:
		return bad("outcome")
	}
	if r.Status < 0 || r.Status > 999 {
		return bad("status")
	}
	for _, ref := range r.Resources {
		if !isRef(ref) {
			return bad("resource reference")
		}
	}
	for _, p := range r.PurposeOfUse {
		_, code := splitCode(p)
		if !isCode(code) {
			return bad("purpose of use")
		}
	}
	for _, s := range []string{r.Method, r.Path, r.DenyRule, r.ClientID, r.Subject, r.FHIRUser,
		r.OnBehalfOf, r.TokenID, r.CertThumbprint, r.BreakGlassReason, r.Review} {
		if s != "" && !validString(s) {
			return bad("text field")
		}
	}
	for k, vs := range r.Query {
		if !utf8Valid(k) {
			return bad("query")
		}
		for _, v := range vs {
			if !utf8Valid(v) {
				return bad("query")
			}
		}
	}
	return nil
}

// validString reports whether s is a valid FHIR string: valid UTF-8, not
// blank, at most 1 MiB, and matching [ \r\n\t\S]+ (no form feed).
func validString(s string) bool {
	return len(s) <= 1<<20 && utf8Valid(s) && strings.TrimSpace(s) != "" && !strings.ContainsRune(s, '\f')
}

func outcomeOf(status int) string {
	switch {
	case status >= 500:
		return OutcomeSerious
	case status >= 400:
		return OutcomeMinor
	default:
		return OutcomeSuccess
	}
}

// adminAction guesses the CRUDE action of an admin command from its verb.
func adminAction(a string) string {
	verb := a[strings.LastIndexByte(a, '-')+1:]
	switch verb {
	case "add", "create", "register":
		return "C"
	case "list", "show", "get":
		return "R"
	case "update", "rotate", "set", "enable", "disable":
		return "U"
	case "remove", "delete", "revoke":
		return "D"
	}
	return "E"
}

// patientIDs normalises ids or Patient/id references to ids, in order,
// without duplicates.
func patientIDs(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	var seen map[string]bool // for many patients; a few are compared directly
	for _, p := range in {
		id := strings.TrimPrefix(p, "Patient/")
		if !isID(id) {
			return nil, fmt.Errorf("%w: patient id", ErrInvalidRecord)
		}
		if len(in) <= 8 {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
			continue
		}
		if seen == nil {
			seen = make(map[string]bool, len(in))
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

func coding(system, code, display string) map[string]any {
	c := map[string]any{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return c
}

// instant formats t as a FHIR instant, in UTC.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// splitCode splits "system|code"; a bare code is in v3-ActReason, the
// code system of the v3 PurposeOfUse value set.
func splitCode(s string) (system, code string) {
	if i := strings.LastIndexByte(s, '|'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return systemActReason, s
}

// purposeOfUse returns the purposes as CodeableConcepts; breaking the
// glass adds v3-ActReason BTG when it is not already there.
func purposeOfUse(codes []string, breakGlass bool) []any {
	var out []any
	for _, c := range purposeCodings(codes, breakGlass) {
		out = append(out, map[string]any{"coding": []any{coding(c.system, c.code, c.display)}})
	}
	return out
}

type purposeCoding struct{ system, code, display string }

// purposeCodings is the one Coding of each purpose of use: a code of a
// malformed system counts as v3-ActReason; breaking the glass adds BTG.
func purposeCodings(codes []string, breakGlass bool) []purposeCoding {
	var out []purposeCoding
	hasBTG := false
	for _, p := range codes {
		system, code := splitCode(p)
		if system == "" || !utf8Valid(system) || strings.ContainsAny(system, " \t\r\n\f") {
			system = systemActReason
		}
		hasBTG = hasBTG || (system == systemActReason && code == "BTG")
		out = append(out, purposeCoding{system, code, ""})
	}
	if breakGlass && !hasBTG {
		out = append(out, purposeCoding{systemActReason, "BTG", "break the glass"})
	}
	return out
}

// observer is the source.observer reference: Warden, identified by its
// base URL (a logical reference, so no Device resource is needed).
func observer(base string) map[string]any {
	o := map[string]any{"display": "Warden"}
	if validString(base) && !strings.ContainsAny(base, " \t\r\n") {
		o["identifier"] = map[string]any{"system": "urn:ietf:rfc:3986", "value": base}
	}
	return o
}

// who returns a Reference for a user-like reference string: a literal
// reference when it points at a type agent.who allows, otherwise a
// logical reference by URI.
func who(ref string) map[string]any {
	if whoIsReference(ref) {
		return map[string]any{"reference": ref}
	}
	return map[string]any{"identifier": map[string]any{"value": ref}}
}

// agents lists the client app, the user, the person the user acts for,
// and the server (BALP agent slices client, user, server).
func agents(r Record, base string) []any {
	var out []any
	// Its own copy: the event shares no maps between its parts.
	purposes := purposeOfUse(r.PurposeOfUse, r.BreakGlassReason != "")
	policy := []any(nil)
	if r.TokenID != "" {
		// BALP IHE.BasicAudit.OAUTHaccessTokenUse: jti in agent.policy,
		// as urn:ietf:params:oauth:jti:<jti>.
		policy = []any{"urn:ietf:params:oauth:jti:" + url.PathEscape(r.TokenID)}
	}
	user := r.Subject != "" || r.FHIRUser != ""

	client := map[string]any{
		"type":      map[string]any{"coding": []any{coding(systemDCM, "110153", "Source Role ID")}},
		"requestor": !user,
	}
	if r.ClientID != "" {
		client["who"] = map[string]any{"identifier": map[string]any{"value": r.ClientID}}
		client["name"] = r.ClientID
	}
	if r.PeerAddr.IsValid() {
		client["network"] = map[string]any{"address": r.PeerAddr.Unmap().String(), "type": "2"}
	}
	if r.CertThumbprint != "" {
		// RFC 8705 §3.1: the certificate the token is bound to (x5t#S256).
		client["extension"] = []any{map[string]any{"url": extBALPOtherID, "valueIdentifier": map[string]any{
			"type": map[string]any{"text": "x5t#S256"}, "value": r.CertThumbprint}}}
	}
	if !user {
		// A backend client acts for itself: the token and the purposes are its own.
		if policy != nil {
			client["policy"] = policy
		}
		if len(purposes) > 0 {
			client["purposeOfUse"] = purposes
		}
	}
	out = append(out, client)

	if user {
		u := map[string]any{
			"type": map[string]any{"coding": []any{
				coding(systemBALPUser, "UserOauthAgent", "User OAuth Agent participant"),
				coding(systemParticipate, "IRCP", "information recipient"),
			}},
			"requestor": true,
		}
		w := map[string]any{}
		if r.FHIRUser != "" {
			w = who(r.FHIRUser)
		}
		if r.Subject != "" {
			if _, has := w["identifier"]; has {
				u["altId"] = r.Subject
			} else {
				w["identifier"] = map[string]any{"value": r.Subject}
			}
		}
		u["who"] = w
		if policy != nil {
			u["policy"] = policy
		}
		if len(purposes) > 0 {
			u["purposeOfUse"] = purposes
		}
		out = append(out, u)
	}
	if r.OnBehalfOf != "" {
		out = append(out, map[string]any{
			"type":      map[string]any{"coding": []any{coding(systemParticipate, "RESP", "responsible party")}},
			"who":       who(r.OnBehalfOf),
			"requestor": false,
		})
	}
	out = append(out, map[string]any{
		"type":      map[string]any{"coding": []any{coding(systemDCM, "110152", "Destination Role ID")}},
		"who":       observer(base),
		"requestor": false,
	})
	return out
}

// entities lists the request (BALP "transaction" entity), the query, each
// patient (BALP "patient" slice: audit-entity-type 1, object-role 1) and
// each resource (BALP "data" slice: audit-entity-type 2, object-role 4).
func entities(r Record, patients []string) []any {
	details := []any{}
	detail := func(typ, val string) {
		details = append(details, map[string]any{"type": typ, "valueString": val})
	}
	if r.Method != "" {
		detail("method", r.Method)
	}
	if r.Path != "" {
		detail("path", r.Path)
	}
	if r.Status != 0 {
		detail("status", strconv.Itoa(r.Status))
	}
	if r.DenyRule != "" {
		detail("deny-rule", r.DenyRule)
	}
	if len(r.Resources) > MaxResources {
		detail("resources-total", strconv.Itoa(len(r.Resources)))
	}
	if !r.Effective.IsZero() {
		detail("effective", instant(r.Effective))
	}
	request := map[string]any{
		"what": map[string]any{"identifier": map[string]any{"value": r.RequestID}},
		"type": coding(systemBALPEntity, "XrequestId", "X-Request-Id"),
	}
	if len(details) > 0 {
		request["detail"] = details
	}
	out := []any{request}

	if len(r.Query) > 0 {
		out = append(out, map[string]any{
			"type":  coding(systemEntityType, "2", "System Object"),
			"role":  coding(systemObjectRole, "24", "Query"),
			"query": base64.StdEncoding.EncodeToString([]byte(encodeQuery(r.Query, r.Surface != SurfaceFHIR))),
		})
	}
	for _, id := range patients {
		out = append(out, map[string]any{
			"what": map[string]any{"reference": "Patient/" + id},
			"type": coding(systemEntityType, "1", "Person"),
			"role": coding(systemObjectRole, "1", "Patient"),
		})
	}
	for i, ref := range r.Resources {
		if i == MaxResources {
			break
		}
		out = append(out, map[string]any{
			"what": map[string]any{"reference": ref},
			"type": coding(systemEntityType, "2", "System Object"),
			"role": coding(systemObjectRole, "4", "Domain Resource"),
		})
	}
	return out
}

// encodeQuery encodes q sorted by key (url.Values.Encode), with the
// values of credential parameters replaced; oauth adds "code".
func encodeQuery(q url.Values, oauth bool) string {
	clean := make(url.Values, len(q))
	for k, vs := range q {
		if lk := strings.ToLower(k); secretParams[lk] || (oauth && lk == "code") {
			clean[k] = []string{"redacted"}
			continue
		}
		clean[k] = vs
	}
	return clean.Encode()
}
