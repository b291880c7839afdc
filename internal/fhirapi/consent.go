package fhirapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/wardenfhir/warden/internal/consent"
	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// Consents applies the patients' privacy consents (FHIR Consent, scope
// patient-privacy) to everything the API discloses or writes for a
// caller: after the scopes and the site policy allow a request, every
// resource in a patient's compartment must also be allowed by that
// patient's consents (and the site default where they say nothing).
// Trusted internal calls are not subject to it.
type Consents interface {
	// Allows reports whether p may do act on res, which is in the Patient
	// compartment of patient. rule names the deciding consent provision
	// for the audit trail (no PHI). An error means the consents could not
	// be read: the request fails (503), nothing is disclosed.
	Allows(ctx context.Context, p *policy.Principal, act policy.Action, patient string, res *store.Resource) (ok bool, rule string, err error)
	// MayWithhold reports whether the consents could withhold anything
	// from p in patient's compartment ("" : in any compartment). When
	// they could not, search totals are exact without reading every page.
	MayWithhold(ctx context.Context, p *policy.Principal, patient string) (bool, error)
	// Validate checks a Consent about to be written (by anyone, trusted
	// or not); its error is the 400's diagnostics and must hold no PHI.
	Validate(consent []byte) error
	// Changed is called after a transaction that wrote Consents commits,
	// before the request answers; it returns once every Warden process
	// enforces the change (package coherence).
	Changed(ctx context.Context) error
}

// maxCountScan bounds how many matches a _summary=count search reads to
// count what the consents let the caller see; past it the total is not
// given.
const maxCountScan = 10_000

// consented reports whether every patient whose compartment res is in
// consents to the caller doing act on it. Resources in no patient's
// compartment (a Practitioner, a Medication) are not theirs to consent
// to. A refusal is recorded as the request's deny rule when deny is set
// (a read refused as a whole), and only logged for a search's filtered
// matches.
func (g *guard) consented(ctx context.Context, act policy.Action, res *store.Resource, deny bool) (bool, error) {
	if res != nil && len(res.Withheld) > 0 && !g.unsealedOK(act, res, deny) {
		return false, nil
	}
	c := g.a.opts.Consents
	if c == nil || g.p == nil || res == nil || res.Deleted {
		return true, nil
	}
	for _, patient := range g.a.patientsOf(res) {
		ok, rule, err := c.Allows(ctx, g.p, act, patient, res)
		if err != nil {
			g.a.log.Error("consents could not be checked; request refused", "error", err.Error())
			return false, errorf(http.StatusServiceUnavailable, "transient", "Consent cannot be checked right now; nothing was disclosed. Retry later")
		}
		if !ok {
			if deny {
				g.au.denied("consent: " + rule)
			}
			return false, nil
		}
	}
	return true, nil
}

// withhold removes from list what the consents do not let the caller
// see, and returns how many it removed.
func (g *guard) withhold(ctx context.Context, act policy.Action, list *[]store.Resource) (int, error) {
	if (g.a.opts.Consents == nil || g.p == nil) && g.a.opts.Sealing == nil {
		return 0, nil
	}
	// In place, by index: a copy of each resource for consented would
	// escape to the heap.
	all := *list
	kept := all[:0]
	for i := range all {
		ok, err := g.consented(ctx, act, &all[i], false)
		if err != nil {
			return 0, err
		}
		if ok {
			kept = append(kept, all[i])
		}
	}
	clear(all[len(kept):])
	*list = kept
	return len(all) - len(kept), nil
}

// consentedSearch narrows a page of search results to what the consents
// allow, and keeps totals honest: a total is given only when it counts
// nothing withheld — on this page or any other.
func (g *guard) consentedSearch(ctx context.Context,
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	q *search.Query, page store.PageRequest, res *store.SearchResult) error {
	c := g.a.opts.Consents
	if (c == nil || g.p == nil) && g.a.opts.Sealing == nil {
		return nil
	}
	removed, err := g.withhold(ctx, policy.ActSearch, &res.Matches)
	if err != nil {
		return err
	}
	if _, err := g.withhold(ctx, policy.ActRead, &res.Included); err != nil {
		return err
	}
	if res.Total < 0 {
		return nil
	}
	patient := ""
	if q.Compartment != nil && q.Compartment.Type == "Patient" {
		patient = q.Compartment.ID
	}
	may := g.sealedMayWithhold(ctx)
	if c != nil && g.p != nil && !may {
		var err error
		if may, err = c.MayWithhold(ctx, g.p, patient); err != nil {
			return errorf(http.StatusServiceUnavailable, "transient", "Consent cannot be checked right now; nothing was disclosed. Retry later")
		}
	}
	switch {
	case !may && removed == 0:
		return nil // exact
	case page.OnlyCount && page.Cursor == "":
		res.Total, err = g.countConsented(ctx, find, q)
		return err
	case res.Next == "" && res.Prev == "":
		res.Total = len(res.Matches) // the only page: all there is to see
	default:
		res.Total = -1
	}
	return nil
}

// countConsented counts the matches of q the consents let the caller see,
// reading at most maxCountScan of them (-1 past that: unknown).
func (g *guard) countConsented(ctx context.Context,
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	q *search.Query) (int, error) {
	cq := *q
	cq.Count = max(q.Count, 500)
	cq.Includes, cq.RevIncludes = nil, nil
	total, read, cursor := 0, 0, ""
	for {
		res, err := find(ctx, &cq, store.PageRequest{Cursor: cursor})
		if err != nil {
			return 0, err
		}
		read += len(res.Matches)
		if _, err := g.withhold(ctx, policy.ActSearch, &res.Matches); err != nil {
			return 0, err
		}
		total += len(res.Matches)
		if res.Next == "" {
			return total, nil
		}
		if read >= maxCountScan {
			return -1, nil
		}
		cursor = res.Next
	}
}

// consentsChanged tells every process that Consents changed (after the
// writing transaction committed); a failure is a 503: the change is
// stored but not known to be enforced everywhere yet.
func (a *API) consentsChanged(ctx context.Context) error {
	if a.opts.Consents == nil {
		return nil
	}
	if err := a.opts.Consents.Changed(ctx); err != nil {
		a.log.Error("a consent change could not be confirmed in every process", "error", err.Error())
		return errorf(http.StatusServiceUnavailable, "transient", "The consent change is stored but not yet enforced everywhere; retry to confirm it")
	}
	return nil
}

// trustedView is the whole store for trusted calls (import, the grant
// ledger), which still announce the Consents they write.
type trustedView struct {
	store.Store
	a *API
}

func (v trustedView) Tx(ctx context.Context, fn func(store.Tx) error) error {
	var changes consentChanges
	err := v.Store.Tx(ctx, func(tx store.Tx) error {
		changes = consentChanges{} // a rolled-back attempt changed nothing
		return fn(consentWatch{tx, &changes})
	})
	if err == nil {
		err = v.a.consentsCommitted(ctx, &changes)
	}
	return err
}

// consentWatch notes the Consents a transaction writes.
type consentWatch struct {
	store.Tx
	changes *consentChanges
}

func (t consentWatch) Put(ctx context.Context, w store.Write) error {
	t.changes.note(w)
	return t.Tx.Put(ctx, w)
}

// consentChanges are the Consents one transaction wrote.
type consentChanges struct {
	any bool
	// endedGrants are app grants whose Consent the transaction deleted or
	// made other than active: deactivating the consent revokes the grant.
	endedGrants []string
}

func (c *consentChanges) note(w store.Write) {
	if w.Resource.Type != "Consent" {
		return
	}
	c.any = true
	if w.Resource.Deleted {
		c.endedGrants = append(c.endedGrants, w.Resource.ID)
		return
	}
	var doc struct {
		Status    string `json:"status"`
		Extension []struct {
			URL string `json:"url"`
		} `json:"extension"`
	}
	if json.Unmarshal(w.Resource.JSON, &doc) != nil || doc.Status == "active" {
		return
	}
	for _, e := range doc.Extension {
		if e.URL == consent.ExtensionGrantedScopes {
			c.endedGrants = append(c.endedGrants, w.Resource.ID)
			return
		}
	}
}

// consentsCommitted runs after a transaction that wrote Consents
// committed, before the request answers: the grants it ended are revoked
// (their tokens die everywhere) and every process enforces the change.
func (a *API) consentsCommitted(ctx context.Context, c *consentChanges) error {
	if !c.any {
		return nil
	}
	if a.opts.RevokeGrant != nil {
		for _, id := range c.endedGrants {
			if err := a.opts.RevokeGrant(ctx, id); err != nil {
				a.log.Error("revoking the grant of a deactivated consent failed", "error", err.Error())
				return errorf(http.StatusServiceUnavailable, "transient", "The consent change is stored but the app's access is not yet revoked; retry to confirm it")
			}
		}
	}
	return a.consentsChanged(ctx)
}
