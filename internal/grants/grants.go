// Package grants is the ledger of what patients approved for apps: each
// approval on the SMART approval page is kept as a FHIR Consent (scope
// patient-privacy) in the FHIR store, so that it is enforced, listed,
// narrowed and revoked like any other consent (issue 6: app grants are
// consents). It implements authserver.Grants over the FHIR API's trusted
// access.
//
// A grant's Consent has the grant id as its id, the Warden category
// code smart-app-grant, one root provision permitting the app (actor: the
// OAuth client, by identifier) to access the resource types its scopes
// name, and one nested deny provision per sensitivity label the patient
// withholds from the app. The scopes themselves are kept in an extension.
//
// It never decides access (package consent and the FHIR API's guard do)
// and never revokes tokens (the authorization server does, then calls
// Deactivate).
package grants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/smart"
	"github.com/wardenfhir/warden/internal/store"
)

// Code systems and URLs of a grant's Consent.
const (
	SystemCategory  = "https://github.com/wardenfhir/warden/fhir/CodeSystem/consent-category"
	CodeGrant       = "smart-app-grant"
	ExtensionScopes = "https://github.com/wardenfhir/warden/fhir/StructureDefinition/smart-scopes"
	// SystemClientID identifies an OAuth client as a Consent actor
	// (Reference.identifier).
	SystemClientID = "urn:ietf:params:oauth:client-id"

	systemScope       = "http://terminology.hl7.org/CodeSystem/consentscope"
	systemLOINC       = "http://loinc.org"
	systemAction      = "http://terminology.hl7.org/CodeSystem/consentaction"
	systemParticipate = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	systemResource    = "http://hl7.org/fhir/resource-types"
	systemActCode     = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
)

// ErrNotGrant: the Consent is not a grant's.
var ErrNotGrant = errors.New("grants: not an app grant")

// FHIR is the FHIR API's trusted access (*fhirapi.API).
type FHIR interface {
	ReadTrusted(ctx context.Context, typ, id string) (*store.Resource, error)
	SearchTrusted(ctx context.Context, typ string, q url.Values) ([]store.Resource, error)
	PutTrusted(ctx context.Context, typ, id string, body []byte, ifVersion int64) (*store.Resource, error)
}

// Ledger keeps grants as Consents. It is safe for concurrent use.
type Ledger struct {
	fhir FHIR
}

var _ authserver.Grants = (*Ledger)(nil)

// New returns a ledger over the FHIR API.
func New(f FHIR) *Ledger { return &Ledger{fhir: f} }

// Record stores an approval as the Consent of its grant.
func (l *Ledger) Record(ctx context.Context, g authserver.Grant) error {
	if g.ID == "" || g.Patient == "" || g.ClientID == "" {
		return errors.New("grants: a grant needs an id, a patient and a client")
	}
	body, err := json.Marshal(ConsentOf(g))
	if err != nil {
		return err
	}
	if _, err := l.fhir.PutTrusted(ctx, "Consent", g.ID, body, 0); err != nil {
		return fmt.Errorf("grants: recording grant: %w", err)
	}
	return nil
}

// ForPatient lists the patient's grants, newest first, with when each app
// last read the record (from the audit trail).
func (l *Ledger) ForPatient(ctx context.Context, patient string) ([]authserver.Grant, error) {
	found, err := l.fhir.SearchTrusted(ctx, "Consent", url.Values{
		"patient": {"Patient/" + patient}, "category": {SystemCategory + "|" + CodeGrant}})
	if err != nil {
		return nil, fmt.Errorf("grants: listing: %w", err)
	}
	out := make([]authserver.Grant, 0, len(found))
	for _, r := range found {
		g, err := GrantOf(r.JSON)
		if err != nil || g.Patient != patient {
			continue
		}
		if g.LastAccess, err = l.lastAccess(ctx, patient, g.ClientID); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b authserver.Grant) int { return b.Granted.Compare(a.Granted) })
	return out, nil
}

// ForClient lists every grant of a client (the admin view), newest first.
func (l *Ledger) ForClient(ctx context.Context, clientID string) ([]authserver.Grant, error) {
	found, err := l.fhir.SearchTrusted(ctx, "Consent", url.Values{"category": {SystemCategory + "|" + CodeGrant}, "actor:identifier": {SystemClientID + "|" + clientID}})
	if err != nil {
		// Not every store indexes actor identifiers: filter by hand.
		found, err = l.fhir.SearchTrusted(ctx, "Consent", url.Values{"category": {SystemCategory + "|" + CodeGrant}})
		if err != nil {
			return nil, fmt.Errorf("grants: listing: %w", err)
		}
	}
	var out []authserver.Grant
	for _, r := range found {
		if g, err := GrantOf(r.JSON); err == nil && g.ClientID == clientID {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b authserver.Grant) int { return b.Granted.Compare(a.Granted) })
	return out, nil
}

// lastAccess is when the client last touched the patient's record, from
// the searchable audit trail; zero when never.
func (l *Ledger) lastAccess(ctx context.Context, patient, clientID string) (time.Time, error) {
	evs, err := l.fhir.SearchTrusted(ctx, "AuditEvent", url.Values{
		"patient": {"Patient/" + patient}, "agent:identifier": {clientID}, "_sort": {"-date"}, "_count": {"1"}})
	if err != nil {
		return time.Time{}, fmt.Errorf("grants: reading the audit trail: %w", err)
	}
	for _, ev := range evs {
		var e struct {
			Recorded time.Time `json:"recorded"`
		}
		if json.Unmarshal(ev.JSON, &e) == nil && !e.Recorded.IsZero() {
			return e.Recorded, nil
		}
	}
	return time.Time{}, nil
}

// Deactivate marks grant id's Consent inactive; an id that is no grant's
// is no error (a backend client's grant, a practitioner's).
func (l *Ledger) Deactivate(ctx context.Context, id string) error {
	return l.change(ctx, id, func(c map[string]any) bool {
		if c["status"] == "inactive" {
			return false
		}
		c["status"] = "inactive"
		if p, ok := c["provision"].(map[string]any); ok {
			if per, ok := p["period"].(map[string]any); ok {
				per["end"] = time.Now().UTC().Format(time.RFC3339)
			}
		}
		return true
	})
}

// Block withholds data labelled label (a v3 ActCode sensitivity code)
// from the grant's app: a nested deny provision.
func (l *Ledger) Block(ctx context.Context, patient, id, label string) error {
	if label == "" {
		return errors.New("grants: no label")
	}
	var owner string
	err := l.change(ctx, id, func(c map[string]any) bool {
		owner = strings.TrimPrefix(refOf(c["patient"]), "Patient/")
		if owner != patient {
			return false
		}
		p, _ := c["provision"].(map[string]any)
		if p == nil {
			return false
		}
		nested, _ := p["provision"].([]any)
		for _, n := range nested {
			if slices.Contains(labelsOf(n), label) {
				return false // blocked already
			}
		}
		p["provision"] = append(nested, denyLabel(label))
		return true
	})
	if err == nil && owner != patient {
		return ErrNotGrant
	}
	return err
}

// change applies edit to grant id's Consent and stores it (optimistic
// locking: retried when the Consent changed meanwhile) when edit reports
// a change.
func (l *Ledger) change(ctx context.Context, id string, edit func(map[string]any) bool) error {
	for range 5 {
		r, err := l.fhir.ReadTrusted(ctx, "Consent", id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("grants: %w", err)
		}
		var c map[string]any
		if err := json.Unmarshal(r.JSON, &c); err != nil {
			return fmt.Errorf("grants: %w", err)
		}
		if !isGrant(c) || !edit(c) {
			return nil
		}
		delete(c, "meta")
		body, err := json.Marshal(c)
		if err != nil {
			return err
		}
		_, err = l.fhir.PutTrusted(ctx, "Consent", id, body, r.Version)
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return fmt.Errorf("grants: %w", err)
		}
	}
	return errors.New("grants: the grant keeps changing; try again")
}

func isConflict(err error) bool {
	return errors.Is(err, store.ErrConflict) || strings.Contains(err.Error(), "If-Match")
}

// ConsentOf is the Consent resource of a grant (as JSON-ready maps).
func ConsentOf(g authserver.Grant) map[string]any {
	status := "active"
	if !g.Active {
		status = "inactive"
	}
	granted := g.Granted.UTC().Format(time.RFC3339)
	provision := map[string]any{
		"type":   "permit",
		"period": map[string]any{"start": granted},
		"actor": []any{map[string]any{
			"role":      codeable(systemParticipate, "IRCP", "information recipient"),
			"reference": map[string]any{"identifier": map[string]any{"system": SystemClientID, "value": g.ClientID}},
		}},
		"action": []any{codeable(systemAction, "access", "Access")},
	}
	if classes := classesOf(g.Scopes); len(classes) > 0 {
		provision["class"] = classes
	}
	if len(g.Blocked) > 0 {
		var nested []any
		for _, b := range g.Blocked {
			nested = append(nested, denyLabel(b))
		}
		provision["provision"] = nested
	}
	return map[string]any{
		"resourceType": "Consent",
		"id":           g.ID,
		"status":       status,
		"scope":        codeable(systemScope, "patient-privacy", "Privacy Consent"),
		"category": []any{
			codeable(systemLOINC, "59284-0", "Patient Consent"),
			codeable(SystemCategory, CodeGrant, "SMART app grant"),
		},
		"patient":   map[string]any{"reference": "Patient/" + g.Patient},
		"dateTime":  granted,
		"extension": []any{map[string]any{"url": ExtensionScopes, "valueString": strings.Join(g.Scopes, " ")}},
		"provision": provision,
	}
}

// GrantOf reads a grant back from its Consent.
func GrantOf(body []byte) (authserver.Grant, error) {
	var c map[string]any
	if err := json.Unmarshal(body, &c); err != nil {
		return authserver.Grant{}, err
	}
	if !isGrant(c) {
		return authserver.Grant{}, ErrNotGrant
	}
	g := authserver.Grant{Patient: strings.TrimPrefix(refOf(c["patient"]), "Patient/")}
	g.ID, _ = c["id"].(string)
	g.Active = c["status"] == "active"
	if s, _ := c["dateTime"].(string); s != "" {
		g.Granted, _ = time.Parse(time.RFC3339, s)
	}
	exts, _ := c["extension"].([]any)
	for _, e := range exts {
		if m, _ := e.(map[string]any); m["url"] == ExtensionScopes {
			s, _ := m["valueString"].(string)
			g.Scopes = strings.Fields(s)
		}
	}
	p, _ := c["provision"].(map[string]any)
	actors, _ := p["actor"].([]any)
	for _, a := range actors {
		am, _ := a.(map[string]any)
		ref, _ := am["reference"].(map[string]any)
		id, _ := ref["identifier"].(map[string]any)
		if id["system"] == SystemClientID {
			g.ClientID, _ = id["value"].(string)
		}
	}
	nested, _ := p["provision"].([]any)
	for _, n := range nested {
		g.Blocked = append(g.Blocked, labelsOf(n)...)
	}
	if g.ID == "" || g.Patient == "" || g.ClientID == "" {
		return authserver.Grant{}, ErrNotGrant
	}
	return g, nil
}

func isGrant(c map[string]any) bool {
	if c["resourceType"] != "Consent" {
		return false
	}
	cats, _ := c["category"].([]any)
	for _, cat := range cats {
		cm, _ := cat.(map[string]any)
		codings, _ := cm["coding"].([]any)
		for _, cd := range codings {
			m, _ := cd.(map[string]any)
			if m["system"] == SystemCategory && m["code"] == CodeGrant {
				return true
			}
		}
	}
	return false
}

// classesOf are the resource types the scopes open (none when one is
// "*": the grant then covers every type its scopes allow).
func classesOf(scopes []string) []any {
	sc, _ := smart.ParseScopes(strings.Join(scopes, " "))
	var types []string
	for _, r := range sc.Resources {
		if r.Type == "*" {
			return nil
		}
		if !slices.Contains(types, r.Type) {
			types = append(types, r.Type)
		}
	}
	slices.Sort(types)
	out := make([]any, 0, len(types))
	for _, t := range types {
		out = append(out, map[string]any{"system": systemResource, "code": t})
	}
	return out
}

func denyLabel(label string) map[string]any {
	return map[string]any{"type": "deny", "securityLabel": []any{map[string]any{"system": systemActCode, "code": label}}}
}

func labelsOf(provision any) []string {
	m, _ := provision.(map[string]any)
	if m["type"] != "deny" {
		return nil
	}
	var out []string
	labels, _ := m["securityLabel"].([]any)
	for _, l := range labels {
		lm, _ := l.(map[string]any)
		if code, _ := lm["code"].(string); code != "" && lm["system"] == systemActCode {
			out = append(out, code)
		}
	}
	return out
}

func refOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

func codeable(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": system, "code": code, "display": display}}}
}
