package labels

import (
	"fmt"
	"sort"
	"strings"
)

// Labeller classifies resources against a fixed set of value sets. It is
// immutable after New and safe for concurrent use.
type Labeller struct {
	sets   []ValueSet            // sorted by Category
	byCode map[string][]int      // "system|code" → indexes into sets
	terms  []displayTerm         // display-text fallback terms
	conf   map[string]string     // category → R or V
	via    map[string][][]string // resource type → propagation paths (element names)
	viaRaw []string
}

type displayTerm struct {
	term string
	set  int
}

// Policy is the site's labelling policy.
type Policy struct {
	// PropagateVia lists the reference elements, as "Type.element[.element]",
	// along which a resource inherits the sensitivity labels of the
	// resources it references (for example "Encounter.reasonReference").
	// Nil means DefaultPropagateVia; an empty, non-nil slice turns
	// propagation off.
	PropagateVia []string
}

// DefaultPropagateVia returns the default propagation paths: a resource
// whose reason, diagnosis, result or addressed problem is sensitive is
// itself sensitive (an Encounter whose reason is an HIV diagnosis).
func DefaultPropagateVia() []string {
	return []string{
		"Encounter.reasonReference",
		"Encounter.diagnosis.condition",
		"Claim.diagnosis.diagnosisReference",
		"Claim.prescription",
		"ExplanationOfBenefit.diagnosis.diagnosisReference",
		"ExplanationOfBenefit.claim",
		"DiagnosticReport.result",
		"CarePlan.addresses",
		"CarePlan.activity.detail.reasonReference",
		"MedicationRequest.reasonReference",
		"MedicationStatement.reasonReference",
		"MedicationAdministration.reasonReference",
		"Procedure.reasonReference",
		"ServiceRequest.reasonReference",
		"Observation.hasMember",
		"Observation.derivedFrom",
		"DocumentReference.context.related",
	}
}

// New returns a Labeller with the built-in value sets plus extra
// site-defined ones, and the default policy. A site value set for a
// built-in category is an error (ErrDuplicateCategory): sites extend
// categories by adding codes to the data files, or define new categories.
func New(extra ...ValueSet) (*Labeller, error) {
	return NewWithPolicy(Policy{}, extra...)
}

// NewWithPolicy is New with an explicit policy.
func NewWithPolicy(p Policy, extra ...ValueSet) (*Labeller, error) {
	builtin, err := BuiltinValueSets()
	if err != nil {
		return nil, err
	}
	sets := append(builtin, extra...)
	sort.SliceStable(sets, func(i, j int) bool { return sets[i].Category < sets[j].Category })
	l := &Labeller{sets: sets, byCode: map[string][]int{}, conf: map[string]string{}}
	for i, vs := range sets {
		if vs.Category == "" || !categoryPattern.MatchString(vs.Category) {
			return nil, fmt.Errorf("%w: value set %q has no valid category", ErrMalformedValueSet, vs.Name)
		}
		if _, dup := l.conf[vs.Category]; dup {
			return nil, fmt.Errorf("%w: %s (%s)", ErrDuplicateCategory, vs.Category, vs.Name)
		}
		switch vs.Confidentiality {
		case "R", "V":
		case "":
			sets[i].Confidentiality = "R"
		default:
			return nil, fmt.Errorf("%w: %s: confidentiality %q", ErrMalformedValueSet, vs.Name, vs.Confidentiality)
		}
		if sets[i].LabelSystem == "" {
			sets[i].LabelSystem = SensitivitySystem
		}
		l.conf[vs.Category] = sets[i].Confidentiality
		for _, c := range vs.Codes {
			key := c.System + "|" + c.Code
			l.byCode[key] = append(l.byCode[key], i)
		}
		for _, t := range vs.DisplayTerms {
			l.terms = append(l.terms, displayTerm{term: strings.ToLower(t), set: i})
		}
	}
	via := p.PropagateVia
	if via == nil {
		via = DefaultPropagateVia()
	}
	l.via = map[string][][]string{}
	for _, path := range via {
		parts := strings.Split(path, ".")
		if len(parts) < 2 || !resourceTypeName(parts[0]) {
			return nil, fmt.Errorf("%w: propagation path %q is not Type.element", ErrBadPolicy, path)
		}
		for _, e := range parts[1:] {
			if !elementName(e) {
				return nil, fmt.Errorf("%w: propagation path %q: bad element %q", ErrBadPolicy, path, e)
			}
		}
		l.via[parts[0]] = append(l.via[parts[0]], parts[1:])
		l.viaRaw = append(l.viaRaw, path)
	}
	return l, nil
}

func resourceTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	return elementName(strings.ToLower(s[:1]) + s[1:])
}

func elementName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
			return false
		}
	}
	return true
}

// ValueSets returns the labeller's value sets, sorted by category.
func (l *Labeller) ValueSets() []ValueSet { return append([]ValueSet(nil), l.sets...) }

// Result is the outcome of classifying one resource.
type Result struct {
	// Security holds the computed labels: one sensitivity coding per
	// category found (sorted by code), then one confidentiality coding —
	// the highest level among the categories found, or N when none.
	Security []Coding
	// Why explains each sensitivity label.
	Why []Reason
}

// Categories returns the sensitivity codes of r, in order.
func (r Result) Categories() []string {
	var out []string
	for _, c := range r.Security {
		if c.System != ConfidentialitySystem {
			out = append(out, c.Code)
		}
	}
	return out
}

// Reason says why a resource got a sensitivity label.
type Reason struct {
	Category string // the sensitivity code
	Path     string // the element, e.g. "Condition.code.coding[0]"
	System   string // the matched coding's system
	Code     string // the matched coding's code
	Display  string // the matched coding's display
	ValueSet string // the value-set file that matched
	// Match is "code" (the coding is in the value set), "display-text"
	// (the code is not valid in its system and its display contains
	// Term) or "propagated" (Ref points at a resource with the label).
	Match string
	Term  string
	Ref   string
}

// Label classifies resource (FHIR R4 JSON) by the codes in the elements
// that carry clinical meaning for its type (Condition.code,
// Observation.code/valueCodeableConcept/component, Medication*.medication-
// CodeableConcept, Procedure.code/reasonCode, Encounter.type/reasonCode,
// DiagnosticReport.code/conclusionCode, CarePlan.category/activity.detail,
// Claim/ExplanationOfBenefit item.productOrService, diagnosis and
// procedure, DocumentReference.type, ServiceRequest.code, and the same in
// contained resources). Names, addresses, narrative and attachments are
// never read.
//
// A coding matches a category when its system|code is in the category's
// value set. A coding whose system is a standard one (LOINC, SNOMED CT,
// RxNorm, ICD-10-CM, ICD-9-CM, CVX) but whose code is not a syntactically
// valid code of that system — a local id filed under a standard system —
// or that has no system, is matched on its display text instead
// (whole-word match of the value set's display terms).
// Valid codes are never matched on text, so a correct code's display
// cannot add or remove labels.
func (l *Labeller) Label(resource []byte) (Result, error) {
	_, elems, err := codedElements(resource)
	if err != nil {
		return Result{}, err
	}
	return l.classify(elems), nil
}

// classify labels the coded elements of a resource.
func (l *Labeller) classify(elems []codedElement) Result {
	var why []Reason
	for _, e := range elems {
		c := e.coding
		if c.Code == "" && c.Display == "" {
			continue
		}
		if sets, ok := l.byCode[c.System+"|"+c.Code]; ok {
			for _, i := range sets {
				why = append(why, Reason{Category: l.sets[i].Category, Path: e.path, System: c.System,
					Code: c.Code, Display: c.Display, ValueSet: l.sets[i].Name, Match: "code"})
			}
			continue
		}
		if !l.textMatchable(c) || c.Display == "" {
			continue
		}
		disp := strings.ToLower(c.Display)
		for _, t := range l.terms {
			if containsWord(disp, t.term) {
				why = append(why, Reason{Category: l.sets[t.set].Category, Path: e.path, System: c.System,
					Code: c.Code, Display: c.Display, ValueSet: l.sets[t.set].Name, Match: "display-text", Term: t.term})
			}
		}
	}
	return l.result(why)
}

// textMatchable reports whether c may be classified by its display text.
func (l *Labeller) textMatchable(c jsonCoding) bool {
	if c.System == "" {
		return true
	}
	cs, ok := standardSystems[c.System]
	return ok && !cs.valid(c.Code)
}

// containsWord reports whether term occurs in s as whole words ("hiv"
// matches "hiv viral load" but not "archive"; "rape" does not match
// "rapeseed"), so value sets spell out plurals and variants.
func containsWord(s, term string) bool {
	for off := 0; ; {
		i := strings.Index(s[off:], term)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(term)
		if (i == 0 || !isWordByte(s[i-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		off = i + 1
	}
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b >= 'A' && b <= 'Z'
}

// result turns reasons into labels: one sensitivity coding per category
// and the highest confidentiality.
func (l *Labeller) result(why []Reason) Result {
	seen := map[string]bool{}
	var sec []Coding
	level := "N"
	for _, r := range why {
		if seen[r.Category] {
			continue
		}
		seen[r.Category] = true
		sec = append(sec, l.sensitivity(r.Category))
		if c := l.conf[r.Category]; c == "" {
			if ConfidentialityRank("R") > ConfidentialityRank(level) {
				level = "R"
			}
		} else if ConfidentialityRank(c) > ConfidentialityRank(level) {
			level = c
		}
	}
	sort.Slice(sec, func(i, j int) bool { return sec[i].Code < sec[j].Code })
	sec = append(sec, Confidentiality(level))
	return Result{Security: sec, Why: why}
}

func (l *Labeller) sensitivity(category string) Coding {
	i := sort.Search(len(l.sets), func(i int) bool { return l.sets[i].Category >= category })
	if i < len(l.sets) && l.sets[i].Category == category {
		return Coding{System: l.sets[i].LabelSystem, Code: category, Display: l.sets[i].Title}
	}
	return Coding{System: SensitivitySystem, Code: category}
}

// String formats the reason on one line for `warden labels explain`. It
// contains the matched code and display (clinical content): show it to
// the operator who asked, never write it to operational logs.
func (r Reason) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s|%s", r.Category, r.Path, r.System, r.Code)
	if r.Display != "" {
		fmt.Fprintf(&b, " %q", r.Display)
	}
	switch r.Match {
	case "display-text":
		fmt.Fprintf(&b, " — code not valid in its system; display contains %q (%s)", r.Term, r.ValueSet)
	case "propagated":
		fmt.Fprintf(&b, " — inherited from %s", r.Ref)
	default:
		fmt.Fprintf(&b, " — in %s", r.ValueSet)
	}
	return b.String()
}
