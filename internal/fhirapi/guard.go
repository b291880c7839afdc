package fhirapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store"
)

// guard is the store as one caller may see it: every method asks
// policy.Decide and applies the Decision (deny, narrow to a compartment,
// check granular constraints, filter includes). Handlers reach the store
// only through db, so no path (read, search, include, history, bundle
// entry, conditional reference, $everything) can skip it.
type guard struct {
	s   store.Store
	a   *API
	p   *policy.Principal
	now time.Time
	au  *requestAudit // what the request disclosed, for its audit event; nil when not audited
}

var (
	_ store.Store = (*guard)(nil)
	_ store.Tx    = guardTx{}
)

type ctxKey int

const (
	principalKey ctxKey = iota
	trustedKey
)

// withPrincipal returns ctx carrying the verified caller.
func withPrincipal(ctx context.Context, p *policy.Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFrom returns the verified caller of a request, or nil.
func PrincipalFrom(ctx context.Context) *policy.Principal {
	p, _ := ctx.Value(principalKey).(*policy.Principal)
	return p
}

// Trusted marks ctx as a call from inside Warden (the import command),
// which acts with the whole store and no principal. Nothing reachable
// over HTTP sets it.
func Trusted(ctx context.Context) context.Context {
	return context.WithValue(sealing.WithClearance(ctx, sealing.All()), trustedKey, true)
}

// db is the store as the caller in ctx may see it. Only trusted internal
// calls and the unauthenticated test build get the store itself; a
// principal gets its guard; anything else gets a store that refuses
// everything.
func (a *API) db(ctx context.Context) store.Store {
	// Trusted first: Warden's own services (the consent loader, the grant
	// ledger) run inside a caller's request, whose principal must not
	// narrow what they read.
	trusted, _ := ctx.Value(trustedKey).(bool)
	if p := PrincipalFrom(ctx); p != nil && !trusted {
		return &guard{s: a.store, a: a, p: p, now: a.now(), au: auditFrom(ctx)}
	}
	if trusted || a.opts.Unauthenticated {
		if a.opts.Consents != nil {
			return trustedView{a.store, a}
		}
		return a.store
	}
	return &guard{s: a.store, a: a, now: a.now(), au: auditFrom(ctx)}
}

// decide asks the policy and turns a denial into the error to answer.
func (g *guard) decide(act policy.Action, typ string) (policy.Decision, error) {
	d := policy.Decide(g.p, policy.Request{Action: act, Type: typ}, g.a.opts.Policy, g.now)
	switch d.Effect {
	case policy.Allow:
		if d.Site {
			if err := g.site(d, act); err != nil {
				return d, err
			}
		}
		return d, nil
	case policy.DenyHidden:
		g.au.denied("hidden: " + d.Reason)
		return d, fmt.Errorf("%w: hidden by policy", store.ErrNotFound)
	case policy.DenyStepUp:
		g.au.denied("step-up: " + d.Reason)
		return d, g.a.stepUpError()
	}
	if d.Missing != "" {
		g.au.denied("scope: needs " + d.Missing)
	} else {
		g.au.denied("scope: " + d.Reason)
	}
	msg := "The access token does not allow this " + act.String()
	if typ != "" && typ != "*" {
		msg += " of " + typ
	}
	if d.Missing != "" {
		msg += "; it needs the scope " + d.Missing
	}
	if d.Reason != "" && d.Missing == "" {
		msg += " (" + d.Reason + ")"
	}
	return d, errorf(http.StatusForbidden, "forbidden", msg)
}

// narrowed reports whether d restricts what may be disclosed.
func narrowed(d policy.Decision) bool { return d.Patient != "" || d.Constraints != nil }

func hidden(typ, id string) error {
	return fmt.Errorf("%w: %s/%s", store.ErrNotFound, typ, id)
}

// Read implements store.Store.
func (g *guard) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return g.read(ctx, policy.ActRead, g.s.Read, g.s.Search, typ, id)
}

// read reads the current version of typ/id for act: ActRead to disclose
// it, or the write (update, delete) about to replace it.
func (g *guard) read(ctx context.Context, act policy.Action,
	read func(context.Context, string, string) (*store.Resource, error),
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	typ, id string) (*store.Resource, error) {
	res, err := g.readChecked(ctx, act, read, find, typ, id)
	if err == nil && res != nil {
		ok, cerr := g.consented(ctx, act, res, true)
		if cerr != nil {
			return nil, cerr
		}
		if !ok {
			return nil, hidden(typ, id)
		}
		g.au.disclosed(g.a, *res)
	}
	return res, err
}

func (g *guard) readChecked(ctx context.Context, act policy.Action,
	read func(context.Context, string, string) (*store.Resource, error),
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	typ, id string) (*store.Resource, error) {
	d, err := g.decide(act, typ)
	if err != nil {
		return nil, err
	}
	res, err := read(ctx, typ, id)
	if !narrowed(d) {
		return res, err
	}
	if err != nil {
		if errors.Is(err, store.ErrDeleted) {
			// A deletion marker belongs to no compartment: whose it was
			// is not known here, so it is hidden like a missing resource.
			return nil, hidden(typ, id)
		}
		return nil, err
	}
	if !d.Discloses(typ, id, res.Patients) {
		return nil, hidden(typ, id)
	}
	if d.Constraints != nil {
		ok, err := g.matching(ctx, find, typ, []string{id}, d.Constraints)
		if err != nil {
			return nil, err
		}
		if !ok[id] {
			return nil, hidden(typ, id)
		}
	}
	return res, nil
}

// VRead implements store.Store. An older version's compartments come
// from its own content (the store records them for current versions
// only); under granular constraints, which can be tested against current
// versions only, older versions stay hidden.
func (g *guard) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	res, err := g.vread(ctx, typ, id, version)
	if err == nil && res != nil {
		ok, cerr := g.consented(ctx, policy.ActRead, res, true)
		if cerr != nil {
			return nil, cerr
		}
		if !ok {
			return nil, hidden(typ, id)
		}
		g.au.disclosed(g.a, *res)
	}
	return res, err
}

func (g *guard) vread(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	d, err := g.decide(policy.ActRead, typ)
	if err != nil {
		return nil, err
	}
	res, err := g.s.VRead(ctx, typ, id, version)
	if err != nil || !narrowed(d) {
		return res, err
	}
	if res.Deleted || !d.Discloses(typ, id, g.a.patientsOf(res)) {
		return nil, hidden(typ, id)
	}
	if d.Constraints != nil {
		cur, err := g.read(ctx, policy.ActRead, g.s.Read, g.s.Search, typ, id)
		if err != nil || cur.Version != version {
			return nil, hidden(typ, id)
		}
	}
	return res, nil
}

// History implements store.Store. Narrowed callers see the versions of
// one resource that are in their compartment; history across resources
// would need a compartment-aware history query and is refused to them.
func (g *guard) History(ctx context.Context, hq store.HistoryQuery) (*store.HistoryPage, error) {
	page, err := g.history(ctx, hq)
	if err == nil && page != nil {
		removed, err := g.withhold(ctx, policy.ActRead, &page.Versions)
		if err != nil {
			return nil, err
		}
		if removed > 0 {
			page.Total = -1
			if len(page.Versions) == 0 && hq.ID != "" && hq.After == "" {
				return nil, hidden(hq.Type, hq.ID)
			}
		}
		g.au.disclosed(g.a, page.Versions...)
	}
	return page, err
}

func (g *guard) history(ctx context.Context, hq store.HistoryQuery) (*store.HistoryPage, error) {
	act, typ := policy.ActHistoryInstance, hq.Type
	switch {
	case hq.Type == "":
		act, typ = policy.ActHistorySystem, "*"
	case hq.ID == "":
		act = policy.ActHistoryType
	}
	d, err := g.decide(act, typ)
	if err != nil {
		return nil, err
	}
	if !narrowed(d) {
		return g.s.History(ctx, hq)
	}
	if act != policy.ActHistoryInstance {
		return nil, errorf(http.StatusForbidden, "forbidden", "History across resources is not available with patient-level or granular access; read each resource's history instead")
	}
	if d.Constraints != nil {
		if _, err := g.read(ctx, policy.ActRead, g.s.Read, g.s.Search, hq.Type, hq.ID); err != nil {
			return nil, err
		}
	}
	page, err := g.s.History(ctx, hq)
	if err != nil {
		return nil, err
	}
	var visible []store.Resource
	for _, v := range page.Versions {
		if !v.Deleted && d.Discloses(v.Type, v.ID, g.a.patientsOf(&v)) {
			visible = append(visible, v)
		}
	}
	if len(visible) == 0 && hq.After == "" {
		return nil, hidden(hq.Type, hq.ID)
	}
	out := &store.HistoryPage{Versions: visible, Next: page.Next, Total: -1}
	if page.Next == "" && hq.After == "" {
		out.Total = len(visible)
	}
	return out, nil
}

// Search implements store.Store.
func (g *guard) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	return g.search(ctx, g.s.Search, q, page)
}

func (g *guard) search(ctx context.Context,
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	res, err := g.searchChecked(ctx, find, q, page)
	if err == nil && res != nil {
		g.au.disclosed(g.a, res.Matches...)
		g.au.disclosed(g.a, res.Included...)
	}
	return res, err
}

func (g *guard) searchChecked(ctx context.Context,
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	d, err := g.decide(policy.ActSearch, q.Type)
	if err != nil {
		return nil, err
	}
	nq := *q
	if d.Patient != "" {
		if hasChainOrHas(q.Clauses) {
			return nil, errorf(http.StatusForbidden, "forbidden", "Chained and _has search parameters are not available with patient-level access")
		}
		if q.Compartment != nil && (q.Compartment.Type != "Patient" || q.Compartment.ID != d.Patient) {
			return nil, hidden("Patient", q.Compartment.ID)
		}
		nq.Compartment = &search.Compartment{Type: "Patient", ID: d.Patient}
	}
	if d.Constraints != nil {
		extra, err := g.constraintClauses(q.Type, d.Constraints)
		if err != nil {
			return nil, err
		}
		nq.Clauses = append(slices.Clip(q.Clauses), extra...)
	}
	res, err := find(ctx, &nq, page)
	if err != nil {
		return nil, err
	}
	if d.Patient != "" {
		// The query is narrowed already; a match outside the compartment
		// would be a store bug, and is dropped rather than disclosed.
		res.Matches = slices.DeleteFunc(res.Matches, func(r store.Resource) bool {
			if d.Discloses(r.Type, r.ID, r.Patients) {
				return false
			}
			g.a.log.Error("search match outside the caller's compartment dropped", "type", r.Type)
			return true
		})
	}
	if len(res.Included) > 0 {
		if res.Included, err = g.filter(ctx, find, res.Included); err != nil {
			return nil, err
		}
	}
	if err := g.consentedSearch(ctx, find, &nq, page, res); err != nil {
		return nil, err
	}
	return res, nil
}

// filter keeps the resources the caller may read: each type is decided
// once, then compartments and granular constraints are checked.
func (g *guard) filter(ctx context.Context,
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	list []store.Resource) ([]store.Resource, error) {
	byType := map[string][]string{}
	decisions := map[string]policy.Decision{}
	keep := make([]bool, len(list))
	for i, r := range list {
		d, seen := decisions[r.Type]
		if !seen {
			d = policy.Decide(g.p, policy.Request{Action: policy.ActRead, Type: r.Type}, g.a.opts.Policy, g.now)
			// An include the site policy refuses is dropped, not a
			// refusal of the request; one it allows under review flags it.
			if d.Effect == policy.Allow && d.Site {
				if sd := g.siteDecision(d, policy.ActRead); !sd.Allow {
					d.Effect = policy.Deny
				} else if sd.Review != "" {
					g.au.flagged(sd.Review)
				}
			}
			decisions[r.Type] = d
		}
		if d.Effect != policy.Allow || !d.Discloses(r.Type, r.ID, r.Patients) {
			continue
		}
		keep[i] = true
		if d.Constraints != nil {
			byType[r.Type] = append(byType[r.Type], r.ID)
		}
	}
	for typ, ids := range byType {
		ok, err := g.matching(ctx, find, typ, ids, decisions[typ].Constraints)
		if err != nil {
			return nil, err
		}
		for i, r := range list {
			if r.Type == typ && !ok[r.ID] {
				keep[i] = false
			}
		}
	}
	out := list[:0]
	for i, r := range list {
		if keep[i] {
			out = append(out, r)
		}
	}
	return out, nil
}

// may reports whether the caller may act on some resources of typ
// ($everything skips the types it may not search).
func (g *guard) may(act policy.Action, typ string) bool {
	d := policy.Decide(g.p, policy.Request{Action: act, Type: typ}, g.a.opts.Policy, g.now)
	return d.Effect == policy.Allow && (!d.Site || g.siteDecision(d, act).Allow)
}

// siteDecision evaluates the site policy for d's patient, without
// recording anything.
func (g *guard) siteDecision(d policy.Decision, act policy.Action) policy.SiteDecision {
	write := act == policy.ActCreate || act == policy.ActUpdate || act == policy.ActDelete
	return g.a.opts.Site.Decide(g.p, d.Patient, write, g.a.facts.get(g.a, g.p.FHIRUser, d.Patient, g.now))
}

// site asks the site policy whether the user may reach the record of the
// patient d narrows to, with the facts about the two gathered from the
// store. No site policy configured allows nothing (default deny).
func (g *guard) site(d policy.Decision, act policy.Action) error {
	sd := g.siteDecision(d, act)
	if !sd.Allow {
		g.au.denied("site policy")
		return errorf(http.StatusForbidden, "forbidden", "The site policy does not let this user reach this patient's record")
	}
	if sd.Review != "" {
		g.au.flagged(sd.Review)
		// Flagged for review: issue 4's audit trail records it; until
		// then the operational log does (no PHI: ids only).
		g.a.log.Warn("access flagged for review", "review", sd.Review, "client_id", g.p.ClientID, "user", g.p.FHIRUser, "policies", strings.Join(sd.Policies, ","))
	}
	return nil
}

// matching reports which of ids (current resources of typ) match at
// least one of the granular constraints, by running them as a search:
// the same semantics as the search the scope names.
func (g *guard) matching(ctx context.Context,
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	typ string, ids []string, constraints []url.Values) (map[string]bool, error) {
	ok := map[string]bool{}
	for _, c := range constraints {
		vals := url.Values{}
		for k, v := range c {
			vals[k] = slices.Clone(v)
		}
		vals.Set("_id", strings.Join(ids, ","))
		vals.Set("_count", fmt.Sprint(len(ids)))
		q, err := g.a.parseQuery(typ, vals, search.Options{DefaultCount: len(ids), MaxCount: max(len(ids), 1)})
		if err != nil {
			// A granted constraint the search grammar refuses allows
			// nothing (fail closed).
			g.a.log.Warn("granular scope constraint does not parse", "type", typ)
			continue
		}
		res, err := find(ctx, q, store.PageRequest{})
		if err != nil {
			return nil, err
		}
		for _, m := range res.Matches {
			ok[m.ID] = true
		}
	}
	return ok, nil
}

// constraintClauses turns the granular constraints of a search into
// clauses ANDed to it. Several constraints are alternatives (OR); they
// combine only when each is one parameter, the same one, whose values
// can be ORed in one clause.
func (g *guard) constraintClauses(typ string, constraints []url.Values) ([]search.Clause, error) {
	merged := url.Values{}
	if len(constraints) == 1 {
		merged = constraints[0]
	} else {
		var key string
		var values []string
		for _, c := range constraints {
			if len(c) != 1 {
				return nil, errorf(http.StatusForbidden, "forbidden", "The granted granular scopes cannot be combined in one search; search with one of them")
			}
			for k, v := range c {
				if key != "" && k != key || len(v) != 1 {
					return nil, errorf(http.StatusForbidden, "forbidden", "The granted granular scopes cannot be combined in one search; search with one of them")
				}
				key = k
				values = append(values, v[0])
			}
		}
		merged.Set(key, strings.Join(values, ","))
	}
	q, err := g.a.parseQuery(typ, merged, search.Options{DefaultCount: 1, MaxCount: 1})
	if err != nil {
		return nil, errorf(http.StatusForbidden, "forbidden", "A granted granular scope cannot be applied to this search")
	}
	return q.Clauses, nil
}

func hasChainOrHas(cs []search.Clause) bool {
	for _, c := range cs {
		if c.Chain != nil || c.Has != nil {
			return true
		}
	}
	return false
}

// Tx implements store.Store: the transaction's reads, searches and
// writes are guarded too.
func (g *guard) Tx(ctx context.Context, fn func(store.Tx) error) error {
	var changes consentChanges
	var last *requestAudit
	err := g.s.Tx(ctx, func(tx store.Tx) error {
		// A store may run this more than once (sealing.Store.Tx): an
		// attempt rolled back disclosed and changed nothing, so each
		// records apart and the last one counts.
		at := *g
		at.au = g.au.attempt()
		last = at.au
		changes = consentChanges{}
		return fn(guardTx{tx: tx, g: &at, changes: &changes})
	})
	g.au.merge(last)
	if err == nil {
		err = g.a.consentsCommitted(ctx, &changes)
	}
	return err
}

// Ping implements store.Store.
func (g *guard) Ping(ctx context.Context) error { return g.s.Ping(ctx) }

// Close is refused: a guard is a view of the API's store for one request.
func (g *guard) Close() error {
	return errors.New("fhirapi: a request's view of the store cannot close it")
}

// guardTx is a store.Tx seen through a guard.
type guardTx struct {
	tx      store.Tx
	g       *guard
	changes *consentChanges // the Consents the transaction writes
}

func (t guardTx) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return t.g.read(ctx, policy.ActRead, t.tx.Read, t.tx.Search, typ, id)
}

// writable refuses writes to the audit trail: it is written by Warden
// alone; no token, however broad, creates, changes or deletes an
// AuditEvent (not even a no-op update).
func (g *guard) writable(typ string) error {
	if typ != "AuditEvent" {
		return nil
	}
	g.au.denied("read-only: AuditEvent")
	return errorf(http.StatusMethodNotAllowed, "forbidden", "The audit trail is read-only: AuditEvents are recorded by the server and cannot be created, changed or deleted")
}

type upsertKey struct{}

// asUpsert marks ctx as an update, which SMART lets create a missing
// resource under the update scope (update-as-create).
func asUpsert(ctx context.Context) context.Context { return context.WithValue(ctx, upsertKey{}, true) }

func isUpsert(ctx context.Context) bool { v, _ := ctx.Value(upsertKey{}).(bool); return v }

// readForWrite reads the version a write (act: update or delete) will
// replace. Through a guard it is decided as that write, not as a read, so
// a token with .u or .d but no .r may still change what it may reach; the
// compartment and constraint checks are the same.
func readForWrite(ctx context.Context, tx store.Tx, act policy.Action, typ, id string) (*store.Resource, error) {
	if t, ok := tx.(guardTx); ok {
		if err := t.g.writable(typ); err != nil {
			return nil, err
		}
		return t.g.read(ctx, act, t.tx.Read, t.tx.Search, typ, id)
	}
	return tx.Read(ctx, typ, id)
}

func (t guardTx) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	return t.g.search(ctx, t.tx.Search, q, page)
}

func (t guardTx) Lock(ctx context.Context, key string) error { return t.tx.Lock(ctx, key) }

// Put checks a write: the action (create, update or delete) must be
// granted; a narrowed caller may only touch a resource whose current
// version it may see, and may only write content that stays where it may
// see it (no creating an Observation in another patient's compartment).
func (t guardTx) Put(ctx context.Context, w store.Write) error {
	r := &w.Resource
	if err := t.g.writable(r.Type); err != nil {
		return err
	}
	act := policy.ActUpdate
	switch {
	case r.Deleted:
		act = policy.ActDelete
	case r.Version == 1 && !isUpsert(ctx):
		act = policy.ActCreate
	}
	d, err := t.g.decide(act, r.Type)
	if err != nil {
		return err
	}
	if t.changes != nil {
		t.changes.note(w)
	}
	if err := t.consentedPrev(ctx, act, r.Type, r.ID); err != nil {
		return err
	}
	if !r.Deleted {
		nw := written(w)
		ok, err := t.g.consented(ctx, act, &nw, true)
		if err != nil {
			return err
		}
		if !ok {
			return errorf(http.StatusForbidden, "forbidden", "A patient's consent does not allow this change")
		}
	}
	if !narrowed(d) {
		if err := t.tx.Put(ctx, w); err != nil {
			return err
		}
		t.g.au.disclosed(t.g.a, written(w))
		return nil
	}
	prev, err := t.tx.Read(ctx, r.Type, r.ID)
	switch {
	case err == nil:
		if !d.Discloses(r.Type, r.ID, prev.Patients) {
			return hidden(r.Type, r.ID)
		}
		if d.Constraints != nil {
			ok, err := t.g.matching(ctx, t.tx.Search, r.Type, []string{r.ID}, d.Constraints)
			if err != nil {
				return err
			}
			if !ok[r.ID] {
				return hidden(r.Type, r.ID)
			}
		}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted):
	default:
		return err
	}
	if !r.Deleted && !d.Discloses(r.Type, r.ID, w.Patients) {
		return errorf(http.StatusForbidden, "forbidden", "The resource would be outside the compartment of the patient the access token is for")
	}
	if err := t.tx.Put(ctx, w); err != nil {
		return err
	}
	if !r.Deleted && d.Constraints != nil {
		ok, err := t.g.matching(ctx, t.tx.Search, r.Type, []string{r.ID}, d.Constraints)
		if err != nil {
			return err
		}
		if !ok[r.ID] {
			return errorf(http.StatusForbidden, "forbidden", "The resource would be outside what the granted granular scopes allow")
		}
	}
	t.g.au.disclosed(t.g.a, written(w))
	return nil
}

// consentedPrev hides the current version of typ/id from a write when
// the consents withhold it from the caller (an update-as-create must not
// tell it exists by colliding with it).
func (t guardTx) consentedPrev(ctx context.Context, act policy.Action, typ, id string) error {
	if (t.g.a.opts.Consents == nil || t.g.p == nil) && t.g.a.opts.Sealing == nil {
		return nil
	}
	prev, err := t.tx.Read(ctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted):
		return nil
	case err != nil:
		return err
	}
	ok, err := t.g.consented(ctx, act, prev, true)
	if err != nil {
		return err
	}
	if !ok {
		return hidden(typ, id)
	}
	return nil
}

// written is the version a Write records, with the compartments it was
// written to (a deletion: none known, so only the reference is kept).
func written(w store.Write) store.Resource {
	r := w.Resource
	r.Patients = w.Patients
	return r
}

// patientsOf returns the Patient compartments of a resource version from
// its content: what prepare records for current versions.
func (a *API) patientsOf(r *store.Resource) []string {
	if r.Patients != nil {
		return r.Patients
	}
	if r.JSON == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(r.JSON, &m); err != nil {
		return nil
	}
	patients := a.reg.PatientCompartment(r.Type, a.reg.Extract(r.Type, m))
	if r.Type == "Patient" {
		patients = append(patients, r.ID)
	}
	return patients
}
