package sealing

import (
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/smart"
)

// ScopePrefix starts the scopes that clear sensitive categories:
// "sensitive/HIV" clears HIV, "sensitive/*" every sealed category. They
// are granted like any other scope: asked for by the app, approved by
// the user (or registered for a backend client).
const ScopePrefix = smart.SensitivePrefix

// ClearanceFor decides which sealed categories p may open: a category is
// cleared when the token's scopes grant it (ScopePrefix), or the user
// broke the glass and the category allows that; and, for a category
// that asks for step-up, when the login behind the token passed a second
// factor within o.MaxAuthAge (or the glass was broken). Consent is not
// decided here: a patient's consent that denies a category withholds
// the labelled resources before anything is opened.
func (p Policy) ClearanceFor(pr *policy.Principal, o policy.Options, now time.Time) Clearance {
	if pr == nil {
		return Clearance{}
	}
	scoped, all := map[string]bool{}, false
	for _, s := range pr.Scopes.Other {
		cat, ok := strings.CutPrefix(s, ScopePrefix)
		switch {
		case !ok:
		case cat == "*":
			all = true
		default:
			scoped[cat] = true
		}
	}
	glass := pr.BreakGlassReason != ""
	recentMFA := pr.ACR == policy.ACRMultiFactor && !pr.AuthTime.IsZero() &&
		(o.MaxAuthAge <= 0 || now.Sub(pr.AuthTime) <= o.MaxAuthAge)
	var cats []string
	for _, cat := range p.sorted() {
		c := p.Categories[cat]
		granted := all || scoped[cat] || (glass && !c.NoBreakGlass)
		if !granted {
			continue
		}
		if c.StepUp && !pr.IsBackend() && !recentMFA && !glass {
			continue
		}
		cats = append(cats, cat)
	}
	return Clearance{cats: cats}
}
