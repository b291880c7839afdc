package policy

import (
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
)

//go:embed sitepolicy/default.cedar
var defaultSitePolicy embed.FS

// Site is the site policy: Cedar policies a site edits that decide whose
// records a user may reach through user/ scopes (which the scopes alone
// cannot say). It decides from facts the caller gathers (SiteFacts); it
// does no I/O of its own.
type Site struct {
	policies *cedar.PolicySet
	files    []string
}

// SiteFacts are what a site decision may depend on besides who asks for
// what; the FHIR API gathers them from the store.
type SiteFacts struct {
	// CareRelationship: the practitioner takes part in an Encounter of
	// the patient, or is a member of a CareTeam for the patient.
	CareRelationship bool
	// RelatedPerson: the user is a RelatedPerson of the patient.
	RelatedPerson bool
}

// SiteDecision is the outcome of a site policy evaluation.
type SiteDecision struct {
	Allow bool
	// Policies are the ids (@id, or file:position) of the permits that
	// allowed, or the forbids that denied.
	Policies []string
	// Review is set when an allowing policy is annotated @review: the
	// access must be flagged in the audit trail (break-the-glass).
	Review string
}

// DefaultSite is the policy Warden ships (sitepolicy/default.cedar).
func DefaultSite() (*Site, error) {
	b, err := defaultSitePolicy.ReadFile("sitepolicy/default.cedar")
	if err != nil {
		return nil, err
	}
	return NewSite(map[string][]byte{"default.cedar": b})
}

// NewSite parses Cedar policy documents (file name → text). A document
// that does not parse is an error naming the file and position.
func NewSite(files map[string][]byte) (*Site, error) {
	if len(files) == 0 {
		return nil, errors.New("policy: no site policy files")
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	set := cedar.NewPolicySet()
	for _, name := range names {
		list, err := cedar.NewPolicyListFromBytes(name, files[name])
		if err != nil {
			return nil, fmt.Errorf("policy: site policy %s: %w", name, err)
		}
		for i, p := range list {
			id := cedar.PolicyID(fmt.Sprintf("%s:%d", name, i+1))
			if v, ok := p.Annotations()["id"]; ok && v != "" {
				id = cedar.PolicyID(v)
			}
			if !set.Add(id, p) {
				return nil, fmt.Errorf("policy: site policy %s: policy id %q used twice", name, id)
			}
		}
	}
	return &Site{policies: set, files: names}, nil
}

// Decide evaluates the site policy for the user p acting on patient's
// record (write: a create, update or delete).
func (s *Site) Decide(p *Principal, patient string, write bool, f SiteFacts) SiteDecision {
	if s == nil || p == nil || p.FHIRUser == "" || patient == "" {
		return SiteDecision{}
	}
	kind, _, _ := strings.Cut(p.FHIRUser, "/")
	action := "read"
	if write {
		action = "write"
	}
	user := cedar.NewEntityUID("User", cedar.String(p.FHIRUser))
	entities := cedar.EntityMap{
		user: cedar.Entity{UID: user, Attributes: cedar.NewRecord(cedar.RecordMap{
			"kind":     cedar.String(kind),
			"clientId": cedar.String(p.ClientID),
		})},
	}
	req := cedar.Request{
		Principal: user,
		Action:    cedar.NewEntityUID("Action", cedar.String(action)),
		Resource:  cedar.NewEntityUID("Patient", cedar.String(patient)),
		Context: cedar.NewRecord(cedar.RecordMap{
			"careRelationship": cedar.Boolean(f.CareRelationship),
			"relatedPerson":    cedar.Boolean(f.RelatedPerson),
			"breakGlass":       cedar.Boolean(p.BreakGlassReason != ""),
			"reason":           cedar.String(p.BreakGlassReason),
		}),
	}
	dec, diag := s.policies.IsAuthorized(entities, req)
	out := SiteDecision{Allow: dec == cedar.Allow}
	for _, r := range diag.Reasons {
		out.Policies = append(out.Policies, string(r.PolicyID))
		if pol := s.policies.Get(r.PolicyID); pol != nil && out.Allow {
			if v, ok := pol.Annotations()["review"]; ok && out.Review == "" {
				out.Review = string(v)
				if out.Review == "" {
					out.Review = string(r.PolicyID)
				}
			}
		}
	}
	// A policy that errs (a missing attribute, a type error) does not
	// permit: Cedar skips it, which is default deny.
	return out
}
