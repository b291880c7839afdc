// Package privacy enforces patients' privacy consents for the FHIR API: it
// loads each patient's Consents (scope patient-privacy) from the store,
// compiles them with package consent, keeps the compiled policy in a
// bounded cache that is emptied whenever any process changes a Consent
// (package coherence), and answers the API's guard (fhirapi.Consents) for
// every resource it is about to disclose or write.
//
// It reads the facts a consent can name (consent.FactsOf: security
// labels, codes, the clinical date, references, authors) from a resource
// only when that patient's consents could withhold something from the
// caller; a patient with no such consent costs one cache lookup.
//
// It never writes a Consent and never answers from a cache the coherence
// epoch has moved past: the FHIR API's token check confirms the epoch
// before every request, and a moved epoch empties the cache first.
package privacy

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/consent"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// DefaultEntries bounds the compiled policies kept (patients).
const DefaultEntries = 10_000

// Loader returns the Consents of a patient (any status; Compile keeps the
// active ones): the FHIR store searched as Warden itself.
type Loader func(ctx context.Context, patient string) ([][]byte, error)

// SearchFunc searches the FHIR store as Warden itself
// (fhirapi.API.SearchTrusted).
type SearchFunc func(ctx context.Context, typ string, q url.Values) ([]store.Resource, error)

// LoadFrom is the Loader that finds a patient's Consents with search.
func LoadFrom(search SearchFunc) Loader {
	return func(ctx context.Context, patient string) ([][]byte, error) {
		found, err := search(ctx, "Consent", url.Values{"patient": {"Patient/" + patient}})
		if err != nil {
			return nil, err
		}
		out := make([][]byte, len(found))
		for i, r := range found {
			out[i] = r.JSON
		}
		return out, nil
	}
}

// Options configure an Enforcer.
type Options struct {
	Load Loader
	// Default is the site rule where a patient's consents say nothing:
	// consent.OptOut (HIPAA's baseline: treatment, payment and operations
	// need no consent) unless the site requires opt-in.
	Default consent.Default
	// Publish tells every other process that Consents changed and returns
	// once they enforce it (coherence.Member.Publish); nil in a single
	// process without coherence.
	Publish func(ctx context.Context) error
	// Entries bounds the cache (DefaultEntries when 0).
	Entries int
	Now     func() time.Time
}

// Enforcer implements fhirapi.Consents. It is safe for concurrent use.
type Enforcer struct {
	o Options

	mu    sync.Mutex
	gen   uint64 // bumped by every Reload; a load started before one is not cached
	cache map[string]*list.Element
	lru   *list.List // of *entry, most recently used first
}

// entry is one patient's compiled policy and what it may withhold from
// each actor (computed on first use).
type entry struct {
	patient string
	policy  *consent.Policy
	empty   bool // no enforceable consent: the default alone decides
	mu      sync.Mutex
	may     map[string]mayAt // by actor
}

// New returns an Enforcer.
func New(o Options) (*Enforcer, error) {
	if o.Load == nil {
		return nil, errors.New("privacy: a Loader is required")
	}
	if o.Entries <= 0 {
		o.Entries = DefaultEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Enforcer{o: o, cache: map[string]*list.Element{}, lru: list.New()}, nil
}

// Reload forgets every compiled policy (coherence calls it when the epoch
// moves, before it acknowledges the move).
func (e *Enforcer) Reload(context.Context) error {
	e.mu.Lock()
	e.gen++
	clear(e.cache)
	e.lru.Init()
	e.mu.Unlock()
	return nil
}

// Changed forgets every compiled policy here and tells the other
// processes (fhirapi calls it after a Consent write commits).
func (e *Enforcer) Changed(ctx context.Context) error {
	e.Reload(ctx)
	if e.o.Publish != nil {
		return e.o.Publish(ctx)
	}
	return nil
}

// Validate refuses a Consent that cannot be enforced as written. A
// well-formed Consent of another scope (research, treatment) is accepted:
// it is stored, not enforced.
func (e *Enforcer) Validate(raw []byte) error {
	_, err := consent.Parse(raw)
	if err == nil || errors.Is(err, consent.ErrNotPrivacy) {
		return nil
	}
	var ve *consent.ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	return errors.New("not an enforceable Consent")
}

// policyOf returns patient's compiled policy, loading it when needed.
func (e *Enforcer) policyOf(ctx context.Context, patient string) (*entry, error) {
	e.mu.Lock()
	if el, ok := e.cache[patient]; ok {
		e.lru.MoveToFront(el)
		e.mu.Unlock()
		return el.Value.(*entry), nil
	}
	gen := e.gen
	e.mu.Unlock()

	raws, err := e.o.Load(ctx, patient)
	if err != nil {
		return nil, fmt.Errorf("privacy: loading consents: %w", err)
	}
	var cs []*consent.Consent
	for _, raw := range raws {
		c, err := consent.Parse(raw)
		if err != nil {
			// Stored before validation existed, or another scope: it is
			// not enforced (a stored privacy Consent always parsed on
			// write).
			continue
		}
		cs = append(cs, c)
	}
	en := &entry{patient: patient, policy: consent.Compile(patient, cs, e.o.Default), may: map[string]mayAt{}}
	en.empty = len(cs) == 0

	e.mu.Lock()
	defer e.mu.Unlock()
	if gen == e.gen { // no Reload meanwhile: the load is current
		if el, ok := e.cache[patient]; ok {
			return el.Value.(*entry), nil
		}
		e.cache[patient] = e.lru.PushFront(en)
		for e.lru.Len() > e.o.Entries {
			old := e.lru.Remove(e.lru.Back()).(*entry)
			delete(e.cache, old.patient)
		}
	}
	return en, nil
}

// mayAt is a MayWithhold answer and the second it holds for: a consent
// whose period starts later changes it, so it is kept one second at most.
type mayAt struct {
	may bool
	sec int64
}

// mayWithhold reports whether en's consents could deny actor anything.
func (en *entry) mayWithhold(actor consent.Actor, now time.Time, def consent.Default) bool {
	if en.empty {
		return def == consent.OptIn
	}
	key := actor.ClientID + "\x00" + actor.FHIRUser + "\x00" + actor.Organization
	sec := now.Unix()
	en.mu.Lock()
	defer en.mu.Unlock()
	if v, ok := en.may[key]; ok && v.sec == sec {
		return v.may
	}
	v := en.policy.MayWithhold(actor, now)
	if len(en.may) < 1024 {
		en.may[key] = mayAt{v, sec}
	}
	return v
}

// actorOf is who the data goes to, from the verified token.
func actorOf(p *policy.Principal) consent.Actor {
	a := consent.Actor{ClientID: p.ClientID}
	if p.FHIRUser != "" && !strings.Contains(p.FHIRUser, "://") {
		a.FHIRUser = p.FHIRUser
	} else if i := strings.LastIndex(p.FHIRUser, "/"); i > 0 {
		// An absolute fhirUser: keep Type/id.
		if j := strings.LastIndex(p.FHIRUser[:i], "/"); j >= 0 {
			a.FHIRUser = p.FHIRUser[j+1:]
		}
	}
	return a
}

// interactionOf is the FHIR interaction an Action discloses or writes by.
func interactionOf(a policy.Action) string {
	switch a {
	case policy.ActCreate:
		return "create"
	case policy.ActUpdate:
		return "update"
	case policy.ActDelete:
		return "delete"
	}
	return "read" // reads, searches, history, $everything: each resource disclosed
}

// Allows implements fhirapi.Consents.
func (e *Enforcer) Allows(ctx context.Context, p *policy.Principal, act policy.Action, patient string, res *store.Resource) (bool, string, error) {
	en, err := e.policyOf(ctx, patient)
	if err != nil {
		return false, "", err
	}
	now := e.o.Now()
	actor := actorOf(p)
	if !en.mayWithhold(actor, now, e.o.Default) {
		return true, "", nil
	}
	action, ok := consent.ActionFor(interactionOf(act))
	if !ok {
		return false, "unknown action", nil
	}
	facts, err := consent.FactsFor(res.Type, res.ID, res.JSON, en.policy.Needs())
	if err != nil {
		// A stored resource always reads; refuse rather than guess.
		return false, "unreadable resource", nil
	}
	a := &consent.Access{Actor: actor, Action: action, Time: now, Resource: facts}
	if p.BreakGlassReason != "" {
		a.Purpose = []consent.Coding{{System: consent.SystemActReason, Code: "ETREAT"}}
	}
	v := en.policy.Decide(a)
	rule := v.Rule
	if v.ConsentID != "" {
		rule = "Consent/" + v.ConsentID + " " + v.Rule
	}
	return v.Permit, rule, nil
}

// MayWithhold implements fhirapi.Consents: for one patient, whether their
// consents could withhold anything from the caller; for any patient
// (patient ""), true unless the site default is opt-out and ... no
// enforceable consent anywhere is known to this process, which it cannot
// tell: so true.
func (e *Enforcer) MayWithhold(ctx context.Context, p *policy.Principal, patient string) (bool, error) {
	if patient == "" {
		return true, nil
	}
	en, err := e.policyOf(ctx, patient)
	if err != nil {
		return false, err
	}
	return en.mayWithhold(actorOf(p), e.o.Now(), e.o.Default), nil
}
