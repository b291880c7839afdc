package fhirapi

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// factsTTL is how long a gathered site-policy fact is reused: a new care
// relationship shows within this time, a removed one stops within it.
const factsTTL = 30 * time.Second

// siteFacts gathers and caches, per user and patient, what the site
// policy decides from (policy.SiteFacts).
type siteFacts struct {
	mu sync.Mutex
	m  map[[2]string]cachedFacts
}

type cachedFacts struct {
	f   policy.SiteFacts
	exp time.Time
}

func (c *siteFacts) get(a *API, user, patient string, now time.Time) policy.SiteFacts {
	key := [2]string{user, patient}
	c.mu.Lock()
	if e, ok := c.m[key]; ok && now.Before(e.exp) {
		c.mu.Unlock()
		return e.f
	}
	c.mu.Unlock()
	f := a.gatherFacts(context.Background(), user, patient)
	c.mu.Lock()
	if c.m == nil || len(c.m) > 100000 {
		c.m = map[[2]string]cachedFacts{}
	}
	c.m[key] = cachedFacts{f: f, exp: now.Add(factsTTL)}
	c.mu.Unlock()
	return f
}

// gatherFacts reads the store (as Warden itself, not as the caller):
//   - careRelationship: an Encounter of the patient with the practitioner
//     as participant, or a CareTeam for the patient with them as member;
//   - relatedPerson: the user is a RelatedPerson whose patient is the
//     patient.
//
// A fact that cannot be read is false: facts only ever allow.
func (a *API) gatherFacts(ctx context.Context, user, patient string) policy.SiteFacts {
	var f policy.SiteFacts
	kind, id, _ := strings.Cut(user, "/")
	switch kind {
	case "Practitioner":
		for _, typ := range []string{"Encounter", "CareTeam"} {
			vals := url.Values{"participant": {user}, "patient": {"Patient/" + patient}}
			q, err := a.parseQuery(typ, vals, search.Options{DefaultCount: 1, MaxCount: 1})
			if err != nil {
				continue
			}
			res, err := a.store.Search(ctx, q, store.PageRequest{})
			if err == nil && len(res.Matches) > 0 {
				f.CareRelationship = true
				break
			}
		}
	case "RelatedPerson":
		if res, err := a.store.Read(ctx, "RelatedPerson", id); err == nil {
			for _, p := range res.Patients {
				f.RelatedPerson = f.RelatedPerson || p == patient
			}
		}
	}
	return f
}
