package audit

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
)

// AppendCanonical appends to dst the canonical JSON of the event Build
// makes of r, with id as its id: byte for byte Canonical of Build's map
// with "id" set, without building the map. It is what the request path
// uses (a map per event and its sorting cost more than the rest of the
// audit path); Build stays the readable definition, and a fuzz test holds
// the two to the same bytes.
//
// Every object below writes its members in RFC 8785 order by hand: all
// keys are ASCII, so that order is byte order.
func AppendCanonical(dst []byte, r Record, base, id string) ([]byte, error) {
	if err := checkRecord(r); err != nil {
		return dst, err
	}
	patients, err := patientIDs(r.Patients)
	if err != nil {
		return dst, err
	}
	return appendEvent(dst, r, base, id, patients)
}

// appendEvent is AppendCanonical for a record checkRecord accepted, whose
// patients patientIDs normalised.
func appendEvent(dst []byte, r Record, base, id string, patients []string) ([]byte, error) {
	outcome := r.Outcome
	if outcome == "" {
		outcome = outcomeOf(r.Status)
	}
	e := &eventWriter{w: canonicalWriter{buf: dst}}
	e.raw(`{"action":`)
	var profile string
	switch r.Surface {
	case SurfaceFHIR:
		a := fhirActions[r.Action]
		e.str(a.action)
		if a.profile != "" {
			profile = "IHE.BasicAudit." + a.profile
			if len(patients) > 0 {
				profile = "IHE.BasicAudit.Patient" + a.profile
			}
		}
	case SurfaceAuth:
		e.str("E")
		if r.Action == "token" {
			profile = "IHE.IUA.71"
		}
	case SurfaceAdmin:
		e.str(adminAction(r.Action))
	}
	e.raw(`,"agent":`)
	e.agents(r, base)
	e.raw(`,"entity":`)
	e.entities(r, patients)
	if r.BreakGlassReason != "" || r.Review != "" {
		e.raw(`,"extension":[`)
		sep := ""
		if r.BreakGlassReason != "" {
			e.raw(`{"url":`)
			e.str(ExtensionBreakGlass)
			e.raw(`,"valueString":`)
			e.str(r.BreakGlassReason)
			e.raw(`}`)
			sep = ","
		}
		if r.Review != "" {
			e.raw(sep + `{"url":`)
			e.str(ExtensionReview)
			e.raw(`,"valueString":`)
			e.str(r.Review)
			e.raw(`}`)
		}
		e.raw(`]`)
	}
	e.raw(`,"id":`)
	e.str(id)
	if profile != "" {
		e.raw(`,"meta":{"profile":[`)
		e.str(profileBALP + profile)
		e.raw(`]}`)
	}
	e.raw(`,"outcome":`)
	e.str(outcome)
	if r.DenyRule != "" {
		e.raw(`,"outcomeDesc":`)
		e.str("denied by " + r.DenyRule)
	}
	recorded := instant(r.Time.Add(r.Duration).UTC())
	e.raw(`,"period":{"end":`)
	e.str(recorded)
	e.raw(`,"start":`)
	e.str(instant(r.Time))
	e.raw(`}`)
	if hasPurposes(r) {
		e.raw(`,"purposeOfEvent":`)
		e.purposes(r)
	}
	e.raw(`,"recorded":`)
	e.str(recorded)
	e.raw(`,"resourceType":"AuditEvent","source":{"observer":`)
	e.observer(base)
	if validString(base) {
		e.raw(`,"site":`)
		e.str(base)
	}
	e.raw(`,"type":[`)
	e.coding(systemSourceType, "4", "Application Server")
	e.raw(`]},"subtype":[`)
	switch r.Surface {
	case SurfaceFHIR:
		e.coding(systemInteraction, r.Action, "")
		e.raw(`],"type":`)
		e.coding(systemEventType, "rest", "RESTful Operation")
	case SurfaceAuth:
		if std := authActions[r.Action]; std.code != "" {
			e.coding(std.system, std.code, std.display)
			e.raw(`,`)
		}
		e.coding(SystemWardenAction, r.Action, "")
		e.raw(`],"type":`)
		e.coding(systemDCM, "110114", "User Authentication")
	case SurfaceAdmin:
		e.coding(SystemWardenAction, r.Action, "")
		e.raw(`],"type":`)
		e.coding(systemDCM, "110113", "Security Alert")
	}
	e.raw(`}`)
	return e.w.buf, e.err
}

// eventWriter writes canonical JSON; the first error sticks.
type eventWriter struct {
	w   canonicalWriter
	err error
}

func (e *eventWriter) raw(s string) { e.w.buf = append(e.w.buf, s...) }

func (e *eventWriter) str(s string) {
	if err := writeString(&e.w, s); err != nil && e.err == nil {
		e.err = err
	}
}

func (e *eventWriter) coding(system, code, display string) {
	e.raw(`{"code":`)
	e.str(code)
	if display != "" {
		e.raw(`,"display":`)
		e.str(display)
	}
	e.raw(`,"system":`)
	e.str(system)
	e.raw(`}`)
}

// observer writes observer(base).
func (e *eventWriter) observer(base string) {
	e.raw(`{"display":"Warden"`)
	if validString(base) && !strings.ContainsAny(base, " \t\r\n") {
		e.raw(`,"identifier":{"system":"urn:ietf:rfc:3986","value":`)
		e.str(base)
		e.raw(`}`)
	}
	e.raw(`}`)
}

func hasPurposes(r Record) bool { return len(r.PurposeOfUse) > 0 || r.BreakGlassReason != "" }

// purposes writes purposeOfUse(r.PurposeOfUse, breaking the glass).
func (e *eventWriter) purposes(r Record) {
	e.raw(`[`)
	for i, c := range purposeCodings(r.PurposeOfUse, r.BreakGlassReason != "") {
		if i > 0 {
			e.raw(`,`)
		}
		e.raw(`{"coding":[`)
		e.coding(c.system, c.code, c.display)
		e.raw(`]}`)
	}
	e.raw(`]`)
}

// whoIsReference reports whether ref is a literal reference to a type
// agent.who allows (else the event names it by identifier).
func whoIsReference(ref string) bool {
	rel := ref
	if strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://") {
		_, rest, _ := strings.Cut(ref, "://")
		if strings.ContainsAny(rest, " \t\r\n\f?#") {
			return false
		}
		parts := strings.Split(rest, "/")
		if len(parts) >= 3 && parts[0] != "" {
			rel = parts[len(parts)-2] + "/" + parts[len(parts)-1]
		}
	}
	typ, id, ok := strings.Cut(rel, "/")
	if !ok || !isID(id) {
		return false
	}
	for _, t := range whoTypes {
		if t == typ {
			return true
		}
	}
	return false
}

// who writes who(ref), with subject as the identifier of a reference.
func (e *eventWriter) who(ref string) {
	if whoIsReference(ref) {
		e.raw(`{"reference":`)
		e.str(ref)
		e.raw(`}`)
		return
	}
	e.raw(`{"identifier":{"value":`)
	e.str(ref)
	e.raw(`}}`)
}

// agents writes agents(r, base).
func (e *eventWriter) agents(r Record, base string) {
	user := r.Subject != "" || r.FHIRUser != ""
	policy := func(sep string) {
		e.raw(sep + `"policy":[`)
		e.str("urn:ietf:params:oauth:jti:" + url.PathEscape(r.TokenID))
		e.raw(`]`)
	}
	// The client: extension, name, network, policy, purposeOfUse,
	// requestor, type, who.
	e.raw(`[{`)
	sep := ""
	if r.CertThumbprint != "" {
		e.raw(`"extension":[{"url":`)
		e.str(extBALPOtherID)
		e.raw(`,"valueIdentifier":{"type":{"text":"x5t#S256"},"value":`)
		e.str(r.CertThumbprint)
		e.raw(`}}]`)
		sep = ","
	}
	if r.ClientID != "" {
		e.raw(sep + `"name":`)
		e.str(r.ClientID)
		sep = ","
	}
	if r.PeerAddr.IsValid() {
		e.raw(sep + `"network":{"address":`)
		e.str(r.PeerAddr.Unmap().String())
		e.raw(`,"type":"2"}`)
		sep = ","
	}
	if !user && r.TokenID != "" {
		policy(sep)
		sep = ","
	}
	if !user && hasPurposes(r) {
		e.raw(sep + `"purposeOfUse":`)
		e.purposes(r)
		sep = ","
	}
	e.raw(sep + `"requestor":` + strconv.FormatBool(!user) + `,"type":{"coding":[`)
	e.coding(systemDCM, "110153", "Source Role ID")
	e.raw(`]}`)
	if r.ClientID != "" {
		e.raw(`,"who":{"identifier":{"value":`)
		e.str(r.ClientID)
		e.raw(`}}`)
	}
	e.raw(`}`)

	if user {
		// The user: altId, policy, purposeOfUse, requestor, type, who.
		ref := r.FHIRUser != "" && whoIsReference(r.FHIRUser)
		idOnly := r.FHIRUser != "" && !ref // who is {"identifier": FHIRUser}
		e.raw(`,{`)
		sep := ""
		if r.Subject != "" && idOnly {
			e.raw(`"altId":`)
			e.str(r.Subject)
			sep = ","
		}
		if r.TokenID != "" {
			policy(sep)
			sep = ","
		}
		if hasPurposes(r) {
			e.raw(sep + `"purposeOfUse":`)
			e.purposes(r)
			sep = ","
		}
		e.raw(sep + `"requestor":true,"type":{"coding":[`)
		e.coding(systemBALPUser, "UserOauthAgent", "User OAuth Agent participant")
		e.raw(`,`)
		e.coding(systemParticipate, "IRCP", "information recipient")
		e.raw(`]},"who":{`)
		switch {
		case idOnly:
			e.raw(`"identifier":{"value":`)
			e.str(r.FHIRUser)
			e.raw(`}`)
		case ref && r.Subject != "":
			e.raw(`"identifier":{"value":`)
			e.str(r.Subject)
			e.raw(`},"reference":`)
			e.str(r.FHIRUser)
		case ref:
			e.raw(`"reference":`)
			e.str(r.FHIRUser)
		default: // no fhirUser: the subject identifies the user
			e.raw(`"identifier":{"value":`)
			e.str(r.Subject)
			e.raw(`}`)
		}
		e.raw(`}}`)
	}
	if r.OnBehalfOf != "" {
		e.raw(`,{"requestor":false,"type":{"coding":[`)
		e.coding(systemParticipate, "RESP", "responsible party")
		e.raw(`]},"who":`)
		e.who(r.OnBehalfOf)
		e.raw(`}`)
	}
	e.raw(`,{"requestor":false,"type":{"coding":[`)
	e.coding(systemDCM, "110152", "Destination Role ID")
	e.raw(`]},"who":`)
	e.observer(base)
	e.raw(`}]`)
}

// entities writes entities(r, patients).
func (e *eventWriter) entities(r Record, patients []string) {
	e.raw(`[{`)
	n := 0
	detail := func(typ, val string) {
		if n == 0 {
			e.raw(`"detail":[`)
		} else {
			e.raw(`,`)
		}
		n++
		e.raw(`{"type":`)
		e.str(typ)
		e.raw(`,"valueString":`)
		e.str(val)
		e.raw(`}`)
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
	if n > 0 {
		e.raw(`],`)
	}
	e.raw(`"type":`)
	e.coding(systemBALPEntity, "XrequestId", "X-Request-Id")
	e.raw(`,"what":{"identifier":{"value":`)
	e.str(r.RequestID)
	e.raw(`}}}`)
	if len(r.Query) > 0 {
		e.raw(`,{"query":`)
		e.str(base64.StdEncoding.EncodeToString([]byte(encodeQuery(r.Query, r.Surface != SurfaceFHIR))))
		e.raw(`,"role":`)
		e.coding(systemObjectRole, "24", "Query")
		e.raw(`,"type":`)
		e.coding(systemEntityType, "2", "System Object")
		e.raw(`}`)
	}
	for _, id := range patients {
		e.raw(`,{"role":`)
		e.coding(systemObjectRole, "1", "Patient")
		e.raw(`,"type":`)
		e.coding(systemEntityType, "1", "Person")
		e.raw(`,"what":{"reference":`)
		e.str("Patient/" + id)
		e.raw(`}}`)
	}
	for i, ref := range r.Resources {
		if i == MaxResources {
			break
		}
		e.raw(`,{"role":`)
		e.coding(systemObjectRole, "4", "Domain Resource")
		e.raw(`,"type":`)
		e.coding(systemEntityType, "2", "System Object")
		e.raw(`,"what":{"reference":`)
		e.str(ref)
		e.raw(`}}`)
	}
	e.raw(`]`)
}
