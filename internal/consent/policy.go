package consent

import (
	"slices"
	"time"

	"github.com/wardenfhir/warden/internal/labels"
)

// Default is the site's rule where a patient's consents say nothing.
type Default uint8

const (
	// OptIn: nothing flows without a permit (the v3 OPTIN policy).
	OptIn Default = iota
	// OptOut: everything flows unless a consent denies it (OPTOUT).
	OptOut
)

// Verdict is a Policy's answer for one Access.
type Verdict struct {
	Permit    bool
	ConsentID string // the deciding Consent's id; "" when the default decided
	// Rule locates the deciding provision ("Consent.provision.provision[1]")
	// or names the default ("default opt-in"); it holds no PHI and goes to
	// the audit trail.
	Rule string
}

// Policy is one patient's active privacy consents, compiled for Decide.
// It is immutable and safe for concurrent use.
type Policy struct {
	patient  string
	def      Default
	consents []compiled
	// Each consent is indexed under the first of these its root
	// provision allows: the client ids or references of its actors, the
	// resource types of its classes, else general (always evaluated).
	byClient map[string][]int
	byRef    map[string][]int
	byClass  map[string][]int
	general  []int
	needs    Needs // the facts any provision reads
}

type compiled struct {
	id   string
	root *node
	deny bool // some provision of the tree denies
}

// node is a Provision prepared for matching.
type node struct {
	loc        string
	typ        Type
	period     Period
	actors     []Ref
	actions    []Coding
	labels     []Coding // sensitivity and other non-confidentiality labels
	conf       int      // highest confidentiality rank named (0: none)
	hasLabels  bool
	purposes   []Coding
	classes    []Coding
	codes      []Coding
	dataPeriod Period
	data       []DataRule
	children   []*node
}

// Compile prepares patientID's consents for Decide. It keeps only the
// consents that are for Patient/{patientID} (any other is dropped: one
// patient's consent never speaks for another) and whose status is active
// (R4 consent-state-codes: draft, proposed, rejected, inactive and
// entered-in-error are not to be enforced). Their provision periods are
// checked at each Decide, against Access.Time.
func Compile(patientID string, cs []*Consent, def Default) *Policy {
	p := &Policy{
		patient:  patientID,
		def:      def,
		byClient: map[string][]int{},
		byRef:    map[string][]int{},
		byClass:  map[string][]int{},
	}
	for _, c := range cs {
		if c == nil || c.Patient != patientID || c.Status != "active" || c.Provision == nil {
			continue
		}
		root := compileNode(c.Provision)
		p.needs |= needsOf(root)
		i := len(p.consents)
		p.consents = append(p.consents, compiled{id: c.ID, root: root, deny: hasDeny(root)})
		switch {
		case len(root.actors) > 0:
			for _, a := range root.actors {
				if a.System == SystemClient {
					p.byClient[a.Value] = appendOnce(p.byClient[a.Value], i)
				} else if a.Reference != "" {
					p.byRef[a.Reference] = appendOnce(p.byRef[a.Reference], i)
				}
				// an actor by another identifier system matches no Access
			}
		case len(root.classes) > 0 && allResourceTypes(root.classes):
			for _, cl := range root.classes {
				p.byClass[cl.Code] = appendOnce(p.byClass[cl.Code], i)
			}
		default:
			p.general = append(p.general, i)
		}
	}
	return p
}

func appendOnce(s []int, i int) []int {
	if len(s) > 0 && s[len(s)-1] == i {
		return s
	}
	return append(s, i)
}

func allResourceTypes(cs []Coding) bool {
	for _, c := range cs {
		if c.System != SystemResourceTypes {
			return false
		}
	}
	return true
}

// Needs says which facts of a resource Decide may read, so that callers
// read only those (FactsFor).
type Needs uint8

const (
	NeedSecurity Needs = 1 << iota // meta.security
	NeedProfiles                   // meta.profile
	NeedCodes
	NeedDate
	NeedReferences
	NeedAuthors
)

// Needs returns the facts the policy's provisions read; 0 when Decide
// needs nothing beyond the resource's type and id.
func (p *Policy) Needs() Needs {
	if p == nil {
		return 0
	}
	return p.needs
}

func needsOf(n *node) Needs {
	var need Needs
	if n.hasLabels {
		need |= NeedSecurity
	}
	for _, c := range n.classes {
		if c.System != SystemResourceTypes {
			need |= NeedProfiles
		}
	}
	if len(n.codes) > 0 {
		need |= NeedCodes
	}
	if !n.dataPeriod.IsZero() {
		need |= NeedDate
	}
	for _, d := range n.data {
		switch d.Meaning {
		case "dependents":
			need |= NeedReferences
		case "authoredby":
			need |= NeedAuthors
		}
	}
	for _, c := range n.children {
		need |= needsOf(c)
	}
	return need
}

func hasDeny(n *node) bool {
	if n.typ == Deny {
		return true
	}
	return slices.ContainsFunc(n.children, hasDeny)
}

func compileNode(pr *Provision) *node {
	n := &node{
		loc:        pr.Location,
		typ:        pr.Type,
		period:     pr.Period,
		purposes:   slices.Clone(pr.Purposes), // a Policy shares nothing with the Consents it came from
		classes:    slices.Clone(pr.Classes),
		dataPeriod: pr.DataPeriod,
		data:       slices.Clone(pr.Data),
		hasLabels:  len(pr.SecurityLabels) > 0,
	}
	for _, a := range pr.Actors {
		n.actors = append(n.actors, a.Reference)
	}
	for _, cc := range pr.Actions {
		n.actions = append(n.actions, cc...)
	}
	for _, cc := range pr.Codes {
		n.codes = append(n.codes, cc...)
	}
	for _, l := range pr.SecurityLabels {
		if r := confidentialityRank(l); r > 0 {
			n.conf = max(n.conf, r)
		} else {
			n.labels = append(n.labels, l)
		}
	}
	for _, c := range pr.Provisions {
		n.children = append(n.children, compileNode(c))
	}
	return n
}

// confidentialityRank orders the v3 Confidentiality codes U < L < M < N <
// R < V (1..6); 0 for any other coding.
func confidentialityRank(c Coding) int {
	if c.System != SystemConfidentiality {
		return 0
	}
	return labels.ConfidentialityRank(c.Code)
}

// Decide answers whether a may happen under the patient's consents
// (R4 consent.html, "Consent Rules"):
//
//   - A provision applies when every element it constrains matches (an
//     element it leaves out matches anything): period contains a.Time;
//     one of its actors is the access's client (identifier SystemClient),
//     organisation or user (by reference only); one of its actions is
//     a.Action (an access also matches disclose); one of its purposes is
//     one of a.Purpose (TREAT when none); one of its securityLabels is on
//     the resource — a confidentiality label is a high-water mark, covering
//     that level and lower (an unlabelled resource counts as N); one of its
//     classes is the resource type (system SystemResourceTypes) or one of
//     its profiles; one of its codes is one of the resource's codes;
//     dataPeriod contains the resource's date; one of its data references
//     covers the resource by its meaning.
//   - Within a Consent, if the root applies, the innermost applying
//     provisions decide by their type; where sibling exceptions both
//     apply, deny wins. A Consent whose root does not apply says nothing.
//   - Across Consents deny wins over permit; where none says anything the
//     Default decides.
//
// A nil Policy or Access, or an Access without Time, is denied.
func (p *Policy) Decide(a *Access) Verdict {
	if p == nil || a == nil || a.Time.IsZero() {
		return Verdict{Rule: "no policy, access or time"}
	}
	m := matcher{a: a, conf: resourceConfidentiality(a.Resource.Security)}
	denyAt, permitAt := -1, -1
	var denyNode, permitNode *node
	try := func(list []int) {
		for _, i := range list {
			canDeny := p.consents[i].deny
			if (denyAt >= 0 && (!canDeny || i >= denyAt)) || (!canDeny && permitAt >= 0 && i >= permitAt) {
				continue // cannot change the verdict (the lowest index decides among equals)
			}
			root := p.consents[i].root
			if !m.matches(root) {
				continue
			}
			t, at := m.decide(root)
			if t == Deny {
				denyAt, denyNode = i, at
			} else if permitAt < 0 || i < permitAt {
				permitAt, permitNode = i, at
			}
		}
	}
	try(p.general)
	try(p.byClass[a.Resource.Type])
	if a.Actor.ClientID != "" {
		try(p.byClient[a.Actor.ClientID])
	}
	if a.Actor.Organization != "" {
		try(p.byRef[a.Actor.Organization])
	}
	if a.Actor.FHIRUser != "" {
		try(p.byRef[a.Actor.FHIRUser])
	}
	switch {
	case denyAt >= 0:
		return Verdict{ConsentID: p.consents[denyAt].id, Rule: denyNode.loc}
	case permitAt >= 0:
		return Verdict{Permit: true, ConsentID: p.consents[permitAt].id, Rule: permitNode.loc}
	case p.def == OptOut:
		return Verdict{Permit: true, Rule: "default opt-out"}
	}
	return Verdict{Rule: "default opt-in"}
}

// MayWithhold reports whether the consents could deny anything to actor
// at time now. It errs towards true: false means no consent of the patient
// can deny actor anything (so, for example, search totals are exact).
func (p *Policy) MayWithhold(actor Actor, now time.Time) bool {
	if p == nil || now.IsZero() {
		return true
	}
	m := matcher{a: &Access{Actor: actor, Time: now}}
	fullPermit := false
	for _, c := range p.consents {
		root := c.root
		if !root.period.Contains(now) || (len(root.actors) > 0 && !m.actorMatches(root)) {
			continue // cannot apply to actor now
		}
		if c.deny {
			return true
		}
		if root.typ == Permit && !root.hasLabels && len(root.actions)+len(root.purposes)+len(root.classes)+
			len(root.codes)+len(root.data) == 0 && root.dataPeriod.IsZero() {
			fullPermit = true
		}
	}
	return p.def == OptIn && !fullPermit
}

func resourceConfidentiality(sec []Coding) int {
	r := 0
	for _, c := range sec {
		r = max(r, confidentialityRank(c))
	}
	if r == 0 {
		return 4 // N, the v3 default for unlabelled data
	}
	return r
}

type matcher struct {
	a    *Access
	conf int
}

// decide returns the type of the innermost applying provisions under n
// (which applies), and where it was decided.
func (m *matcher) decide(n *node) (Type, *node) {
	var permit *node
	for _, c := range n.children {
		if !m.matches(c) {
			continue
		}
		t, at := m.decide(c)
		if t == Deny {
			return Deny, at
		}
		if permit == nil {
			permit = at
		}
	}
	if permit != nil {
		return Permit, permit
	}
	return n.typ, n
}

func (m *matcher) matches(n *node) bool {
	a := m.a
	if !n.period.IsZero() && !n.period.Contains(a.Time) {
		return false
	}
	if len(n.actors) > 0 && !m.actorMatches(n) {
		return false
	}
	if len(n.actions) > 0 && !actionMatches(n.actions, a.Action) {
		return false
	}
	if n.hasLabels && !m.labelMatches(n) {
		return false
	}
	if len(n.purposes) > 0 && !purposeMatches(n.purposes, a.Purpose) {
		return false
	}
	if len(n.classes) > 0 && !classMatches(n.classes, &a.Resource) {
		return false
	}
	if len(n.codes) > 0 && !anyShared(n.codes, a.Resource.Codes) {
		return false
	}
	if !n.dataPeriod.IsZero() {
		if a.Resource.Date.IsZero() {
			if n.typ != Deny {
				return false // an unknown date is never inside a permit's dataPeriod
			}
		} else if !n.dataPeriod.Contains(a.Resource.Date) {
			return false
		}
	}
	if len(n.data) > 0 && !dataMatches(n.data, &a.Resource) {
		return false
	}
	return true
}

func (m *matcher) actorMatches(n *node) bool {
	act := &m.a.Actor
	for _, r := range n.actors {
		switch {
		case r.System == SystemClient:
			if act.ClientID != "" && r.Value == act.ClientID {
				return true
			}
		case r.Reference != "":
			if r.Reference == act.Organization || r.Reference == act.FHIRUser {
				return true
			}
		}
	}
	return false
}

func actionMatches(rule []Coding, act Coding) bool {
	for _, c := range rule {
		if c == act || (c == ActionDisclose && act == ActionAccess) {
			return true
		}
	}
	return false
}

func (m *matcher) labelMatches(n *node) bool {
	if n.conf > 0 && m.conf <= n.conf {
		return true
	}
	return anyShared(n.labels, m.a.Resource.Security)
}

func purposeMatches(rule, purposes []Coding) bool {
	if len(purposes) == 0 {
		return slices.Contains(rule, PurposeTreatment)
	}
	return anyShared(rule, purposes)
}

func classMatches(rule []Coding, r *Resource) bool {
	for _, c := range rule {
		if c.System == SystemResourceTypes {
			if c.Code == r.Type {
				return true
			}
		} else if slices.Contains(r.Profiles, c.Code) {
			return true
		}
	}
	return false
}

func anyShared(a, b []Coding) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// dataMatches applies R4 consent-data-meaning: instance covers the
// referenced resource; related, it and the resources it refers to;
// dependents, it and the resources that refer to it; authoredby, the
// resources it authored.
func dataMatches(rules []DataRule, r *Resource) bool {
	for _, d := range rules {
		switch d.Meaning {
		case "instance":
			if r.Ref == d.Reference {
				return true
			}
		case "related":
			if r.Ref == d.Reference || slices.Contains(r.ReferencedBy, d.Reference) {
				return true
			}
		case "dependents":
			if r.Ref == d.Reference || slices.Contains(r.References, d.Reference) {
				return true
			}
		case "authoredby":
			if slices.Contains(r.Authors, d.Reference) {
				return true
			}
		}
	}
	return false
}
