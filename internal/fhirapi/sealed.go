package fhirapi

import (
	"context"
	"strings"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store"
)

// withClearance returns ctx carrying the sealed categories p may open
// (sealing.Policy.ClearanceFor); without sealing, none is needed.
func (a *API) withClearance(ctx context.Context, p *policy.Principal) context.Context {
	if a.opts.Sealing == nil {
		return ctx
	}
	return sealing.WithClearance(ctx, a.opts.Sealing.ClearanceFor(p, a.opts.Policy, a.now()))
}

// unsealedOK decides a resource whose sealed content the caller is not
// cleared for (store.Resource.Withheld): a write never goes ahead (an
// uncleared caller may not replace or delete what it cannot read);
// a read is refused under sealing.Omit, and served redacted under
// sealing.Redact. Either way the attempt is in the request's audit
// event: the deny rule of a refused read, a review flag otherwise.
func (g *guard) unsealedOK(act policy.Action, res *store.Resource, deny bool) bool {
	why := "sealed: no clearance for " + strings.Join(res.Withheld, ",")
	if isWrite(act) || g.a.opts.Sealing == nil || g.a.opts.Sealing.Without == sealing.Omit {
		if deny {
			g.au.denied(why)
		} else {
			g.au.flagged(why + " (withheld)")
		}
		return false
	}
	g.au.flagged(why + " (redacted)")
	return true
}

// sealedMayWithhold reports whether sealing could withhold search
// matches from the caller in ctx: under sealing.Omit, when some sealed
// category is not in its clearance.
func (g *guard) sealedMayWithhold(ctx context.Context) bool {
	sp := g.a.opts.Sealing
	if sp == nil || sp.Without != sealing.Omit {
		return false
	}
	cl := sealing.ClearanceFrom(ctx)
	for c := range sp.Categories {
		if !cl.Covers(c) {
			return true
		}
	}
	return false
}

func isWrite(act policy.Action) bool {
	return act == policy.ActCreate || act == policy.ActUpdate || act == policy.ActDelete
}
