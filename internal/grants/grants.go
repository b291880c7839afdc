// Package grants is the ledger of what patients approved for apps: each
// approval on the SMART approval page is kept as a FHIR Consent (scope
// patient-privacy) in the FHIR store, so that it is enforced, listed,
// narrowed and revoked like any other consent (issue 6: app grants are
// consents). It implements authserver.Grants over the FHIR API's trusted
// access.
//
// A grant's Consent is consent.GrantConsent's: the grant id as its id, a
// root provision denying the app (actor: the OAuth client, by identifier)
// everything of the patient's but what nested permits give, as its
// scopes name, the scopes kept in an extension; consent.Narrow adds a
// nested deny per sensitivity label the patient withholds from the app.
// The newest grant of an app for a patient is its only active one: an
// older grant's Consent is made inactive when a new one is recorded (its
// tokens live on, under the newer consent).
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
	"github.com/wardenfhir/warden/internal/consent"
	"github.com/wardenfhir/warden/internal/store"
)

// systemActCode holds the v3 sensitivity codes a patient can withhold.
const systemActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

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

// Record stores an approval as the Consent of its grant, and makes the
// app's older grants for the patient inactive.
func (l *Ledger) Record(ctx context.Context, g authserver.Grant) error {
	if g.ID == "" || g.Patient == "" || g.ClientID == "" {
		return errors.New("grants: a grant needs an id, a patient and a client")
	}
	body, err := ConsentOf(g)
	if err != nil {
		return err
	}
	if _, err := l.fhir.PutTrusted(ctx, "Consent", g.ID, body, 0); err != nil {
		return fmt.Errorf("grants: recording grant: %w", err)
	}
	older, err := l.list(ctx, url.Values{"patient": {"Patient/" + g.Patient}})
	if err != nil {
		return err
	}
	for _, o := range older {
		if o.ID != g.ID && o.ClientID == g.ClientID && o.Active {
			if err := l.Deactivate(ctx, o.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// list reads the grants among the Consents a search finds.
func (l *Ledger) list(ctx context.Context, q url.Values) ([]authserver.Grant, error) {
	found, err := l.fhir.SearchTrusted(ctx, "Consent", q)
	if err != nil {
		return nil, fmt.Errorf("grants: listing: %w", err)
	}
	var out []authserver.Grant
	for _, r := range found {
		if g, err := GrantOf(r.JSON); err == nil {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b authserver.Grant) int { return b.Granted.Compare(a.Granted) })
	return out, nil
}

// ForPatient lists the patient's grants, newest first, with when each app
// last read the record (from the audit trail).
func (l *Ledger) ForPatient(ctx context.Context, patient string) ([]authserver.Grant, error) {
	all, err := l.list(ctx, url.Values{"patient": {"Patient/" + patient}})
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, g := range all {
		if g.Patient != patient {
			continue
		}
		if g.LastAccess, err = l.lastAccess(ctx, patient, g.ClientID); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// ForClient lists every grant of a client (the admin view), newest first.
func (l *Ledger) ForClient(ctx context.Context, clientID string) ([]authserver.Grant, error) {
	all, err := l.list(ctx, url.Values{"actor:identifier": {consent.SystemClient + "|" + clientID}})
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, g := range all {
		if g.ClientID == clientID {
			out = append(out, g)
		}
	}
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
	return l.change(ctx, id, func(raw []byte, g authserver.Grant) ([]byte, error) {
		if !g.Active {
			return nil, nil
		}
		var c map[string]any
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		c["status"] = "inactive"
		return json.Marshal(c)
	})
}

// Block withholds data labelled label (a v3 ActCode sensitivity code)
// from the grant's app, in the patient's own grant only.
func (l *Ledger) Block(ctx context.Context, patient, id, label string) error {
	if label == "" {
		return errors.New("grants: no label")
	}
	owned := false
	err := l.change(ctx, id, func(raw []byte, g authserver.Grant) ([]byte, error) {
		if g.Patient != patient {
			return nil, nil
		}
		owned = true
		if slices.Contains(g.Blocked, label) {
			return nil, nil
		}
		return consent.Narrow(raw, consent.Coding{System: systemActCode, Code: label})
	})
	if err == nil && !owned {
		return ErrNotGrant
	}
	return err
}

// change rewrites grant id's Consent with edit (nil: no change), under
// optimistic locking (retried when the Consent changed meanwhile).
func (l *Ledger) change(ctx context.Context, id string, edit func(raw []byte, g authserver.Grant) ([]byte, error)) error {
	for range 5 {
		r, err := l.fhir.ReadTrusted(ctx, "Consent", id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("grants: %w", err)
		}
		g, err := GrantOf(r.JSON)
		if err != nil {
			return nil // not a grant: nothing to do
		}
		body, err := edit(withoutMeta(r.JSON), g)
		if err != nil {
			return fmt.Errorf("grants: %w", err)
		}
		if body == nil {
			return nil
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

// withoutMeta is a stored resource without its meta (the store sets it).
func withoutMeta(raw []byte) []byte {
	var c map[string]json.RawMessage
	if json.Unmarshal(raw, &c) != nil {
		return raw
	}
	delete(c, "meta")
	out, err := json.Marshal(c)
	if err != nil {
		return raw
	}
	return out
}

func isConflict(err error) bool {
	return errors.Is(err, store.ErrConflict) || strings.Contains(err.Error(), "If-Match")
}

// ConsentOf is the Consent of a grant (consent.GrantConsent, narrowed by
// its blocked labels, inactive when the grant is).
func ConsentOf(g authserver.Grant) ([]byte, error) {
	raw := consent.GrantConsent(g.Patient, g.ClientID, g.Scopes, g.Granted, g.ID)
	if len(g.Blocked) > 0 {
		labels := make([]consent.Coding, len(g.Blocked))
		for i, b := range g.Blocked {
			labels[i] = consent.Coding{System: systemActCode, Code: b}
		}
		var err error
		if raw, err = consent.Narrow(raw, labels...); err != nil {
			return nil, err
		}
	}
	if !g.Active {
		var c map[string]any
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		c["status"] = "inactive"
		return json.Marshal(c)
	}
	return raw, nil
}

// GrantOf reads a grant back from its Consent: a Consent that carries
// granted scopes and names its app as the root provision's actor.
func GrantOf(body []byte) (authserver.Grant, error) {
	c, err := consent.Parse(body)
	if err != nil || c.GrantedScopes == nil || c.Provision == nil || c.ID == "" || c.Patient == "" {
		return authserver.Grant{}, ErrNotGrant
	}
	g := authserver.Grant{ID: c.ID, Patient: c.Patient, Scopes: c.GrantedScopes, Active: c.Status == "active"}
	for _, a := range c.Provision.Actors {
		if a.Reference.System == consent.SystemClient {
			g.ClientID = a.Reference.Value
		}
	}
	if g.ClientID == "" {
		return authserver.Grant{}, ErrNotGrant
	}
	g.Granted = c.Provision.Period.Start
	var walk func(p *consent.Provision)
	walk = func(p *consent.Provision) {
		for _, n := range p.Provisions {
			if n.Type == consent.Deny {
				for _, l := range n.SecurityLabels {
					if l.System == systemActCode && !slices.Contains(g.Blocked, l.Code) {
						g.Blocked = append(g.Blocked, l.Code)
					}
				}
			}
			walk(n)
		}
	}
	walk(c.Provision)
	return g, nil
}
