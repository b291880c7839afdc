package consent

import (
	"bytes"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// statuses is the R4 ValueSet consent-state-codes.
var statuses = map[string]bool{
	"draft": true, "proposed": true, "active": true,
	"rejected": true, "inactive": true, "entered-in-error": true,
}

// dataMeanings is the R4 ValueSet consent-data-meaning.
var dataMeanings = map[string]bool{
	"instance": true, "related": true, "dependents": true, "authoredby": true,
}

var (
	literalRefPattern = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-\.]{1,64}$`)
	idPattern         = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)
)

type rawCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type rawConcept struct {
	Coding []rawCoding `json:"coding"`
}

type rawIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type rawReference struct {
	Reference  string         `json:"reference"`
	Identifier *rawIdentifier `json:"identifier"`
}

type rawPeriod struct {
	Start *string `json:"start"`
	End   *string `json:"end"`
}

type rawExtension struct {
	URL         string  `json:"url"`
	ValueString *string `json:"valueString"`
}

type rawConsent struct {
	ResourceType      string          `json:"resourceType"`
	ID                string          `json:"id"`
	ImplicitRules     json.RawMessage `json:"implicitRules"`
	ModifierExtension json.RawMessage `json:"modifierExtension"`
	Extension         []rawExtension  `json:"extension"`
	Status            string          `json:"status"`
	Scope             *rawConcept     `json:"scope"`
	Patient           *rawReference   `json:"patient"`
	PolicyRule        *rawConcept     `json:"policyRule"`
	Provision         json.RawMessage `json:"provision"`
}

// Parse validates raw as a FHIR R4 Consent to enforce
// (https://hl7.org/fhir/R4/consent.html) and returns it parsed.
//
// It refuses, with a *ValidationError naming the element, anything it
// could not enforce exactly: a resource that is not a Consent; a status
// outside consent-state-codes (§Consent.status); a patient that is not a
// Patient/{id} reference (invariant ppc-2); a provision (§Consent.provision)
// whose type is not permit or deny (the root may omit it when policyRule is
// v3-ActCode OPTIN (permit) or OPTOUT (deny); nested provisions must have
// one), whose period or dataPeriod is not a valid R4 dateTime range with
// start ≤ end, whose actor lacks a role or a reference (a "Type/id"
// literal or an identifier), whose purpose, securityLabel, class, action or
// code are not Codings with system and code, or whose data has a meaning
// outside consent-data-meaning or no "Type/id" reference; any
// modifierExtension or implicitRules (rules it cannot know); unknown
// provision elements; nesting deeper than MaxDepth, more than
// MaxProvisions provisions, lists longer than MaxListLength or a body over
// MaxBytes; an object with a duplicate member, or a member name Parse
// reads written in another case (see checkMembers).
//
// A valid Consent whose scope is not patient-privacy returns ErrNotPrivacy:
// the caller may store it, but it is not enforced.
func Parse(raw []byte) (*Consent, error) {
	if len(raw) > MaxBytes {
		return nil, invalid("Consent", "resource too large")
	}
	if err := checkMembers(raw); err != nil {
		return nil, err
	}
	var rc rawConsent
	if err := json.Unmarshal(raw, &rc); err != nil {
		return nil, invalid("Consent", "not a valid JSON Consent")
	}
	if rc.ResourceType != "Consent" {
		return nil, invalid("Consent.resourceType", "must be Consent")
	}
	if rc.ID != "" && !idPattern.MatchString(rc.ID) {
		return nil, invalid("Consent.id", "not a valid id")
	}
	if rc.ImplicitRules != nil {
		return nil, invalid("Consent.implicitRules", "implicit rules cannot be enforced")
	}
	if rc.ModifierExtension != nil {
		return nil, invalid("Consent.modifierExtension", "modifier extensions cannot be enforced")
	}
	if !statuses[rc.Status] {
		return nil, invalid("Consent.status", "must be one of draft, proposed, active, rejected, inactive, entered-in-error")
	}
	if rc.Scope == nil {
		return nil, invalid("Consent.scope", "required")
	}
	privacy := false
	for i, c := range rc.Scope.Coding {
		if c.System == "" || c.Code == "" {
			return nil, invalid("Consent.scope.coding["+strconv.Itoa(i)+"]", "a Coding needs system and code")
		}
		if c.System == SystemConsentScope && c.Code == "patient-privacy" {
			privacy = true
		}
	}
	if len(rc.Scope.Coding) == 0 {
		return nil, invalid("Consent.scope", "needs a coding")
	}
	if !privacy {
		return nil, ErrNotPrivacy
	}
	c := &Consent{ID: rc.ID, Status: rc.Status}
	if rc.Patient == nil || !strings.HasPrefix(rc.Patient.Reference, "Patient/") ||
		!literalRefPattern.MatchString(rc.Patient.Reference) {
		return nil, invalid("Consent.patient", "must be a Patient/{id} reference")
	}
	c.Patient = strings.TrimPrefix(rc.Patient.Reference, "Patient/")
	for i, e := range rc.Extension {
		if e.URL == ExtensionGrantedScopes {
			if e.ValueString == nil {
				return nil, invalid("Consent.extension["+strconv.Itoa(i)+"]", "granted scopes need a valueString")
			}
			c.GrantedScopes = strings.Fields(*e.ValueString)
		}
	}
	var base Type
	if rc.PolicyRule != nil {
		for _, cd := range rc.PolicyRule.Coding {
			if cd.System == SystemActCode && cd.Code == "OPTIN" {
				base = Permit
			} else if cd.System == SystemActCode && cd.Code == "OPTOUT" {
				base = Deny
			}
		}
	}
	if len(bytes.TrimSpace(rc.Provision)) == 0 || bytes.Equal(bytes.TrimSpace(rc.Provision), []byte("null")) {
		if base == 0 {
			return nil, invalid("Consent.provision", "required unless policyRule is OPTIN or OPTOUT")
		}
		c.Provision = &Provision{Location: "Consent.provision", Type: base}
		return c, nil
	}
	p := &parser{}
	root, err := p.provision(rc.Provision, "Consent.provision", 1)
	if err != nil {
		return nil, err
	}
	if root.Type == 0 {
		if base == 0 {
			return nil, invalid("Consent.provision.type", "the root provision needs a type, or policyRule OPTIN or OPTOUT")
		}
		root.Type = base
	}
	c.Provision = root
	return c, nil
}

type parser struct {
	count int
}

func (p *parser) provision(raw json.RawMessage, loc string, depth int) (*Provision, error) {
	if depth > MaxDepth {
		return nil, invalid(loc, "provisions nested too deep")
	}
	p.count++
	if p.count > MaxProvisions {
		return nil, invalid(loc, "too many provisions")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, invalid(loc, "must be an object")
	}
	pr := &Provision{Location: loc}
	for _, key := range slices.Sorted(maps.Keys(fields)) { // errors name the same element every time
		val := fields[key]
		at := loc + "." + key
		var err error
		switch key {
		case "id", "extension":
			// carry no rule
		case "modifierExtension":
			err = invalid(at, "modifier extensions cannot be enforced")
		case "type":
			var t string
			if json.Unmarshal(val, &t) != nil || (t != "permit" && t != "deny") {
				err = invalid(at, "must be permit or deny")
			} else if t == "permit" {
				pr.Type = Permit
			} else {
				pr.Type = Deny
			}
		case "period":
			pr.Period, err = period(val, at)
		case "dataPeriod":
			pr.DataPeriod, err = period(val, at)
		case "actor":
			pr.Actors, err = actors(val, at)
		case "action":
			pr.Actions, err = concepts(val, at)
		case "code":
			pr.Codes, err = concepts(val, at)
		case "securityLabel":
			pr.SecurityLabels, err = codings(val, at)
		case "purpose":
			pr.Purposes, err = codings(val, at)
		case "class":
			pr.Classes, err = codings(val, at)
		case "data":
			pr.Data, err = data(val, at)
		case "provision":
			var list []json.RawMessage
			if json.Unmarshal(val, &list) != nil || list == nil {
				err = invalid(at, "must be an array")
				break
			}
			if len(list) > MaxListLength {
				err = invalid(at, "too many entries")
				break
			}
			for i, sub := range list {
				var child *Provision
				child, err = p.provision(sub, at+"["+strconv.Itoa(i)+"]", depth+1)
				if err != nil {
					break
				}
				if child.Type == 0 {
					err = invalid(child.Location+".type", "required in a nested provision")
					break
				}
				pr.Provisions = append(pr.Provisions, child)
			}
		default:
			if !strings.HasPrefix(key, "_") { // _type: a primitive's id and extensions
				err = invalid(loc, "unknown element")
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return pr, nil
}

// list decodes a JSON array of at most MaxListLength entries.
func list[T any](raw json.RawMessage, at, what string) ([]T, error) {
	var out []T
	if json.Unmarshal(raw, &out) != nil || out == nil {
		return nil, invalid(at, "must be an array of "+what)
	}
	if len(out) > MaxListLength {
		return nil, invalid(at, "too many entries")
	}
	return out, nil
}

func index(at string, i int) string { return at + "[" + strconv.Itoa(i) + "]" }

func codings(raw json.RawMessage, at string) ([]Coding, error) {
	in, err := list[rawCoding](raw, at, "Codings")
	if err != nil {
		return nil, err
	}
	out := make([]Coding, len(in))
	for i, c := range in {
		if c.System == "" || c.Code == "" {
			return nil, invalid(index(at, i), "a Coding needs system and code")
		}
		out[i] = Coding(c)
	}
	return out, nil
}

func concept(c rawConcept, at string) ([]Coding, error) {
	if len(c.Coding) == 0 {
		return nil, invalid(at, "needs a coding")
	}
	if len(c.Coding) > MaxListLength {
		return nil, invalid(at+".coding", "too many entries")
	}
	out := make([]Coding, len(c.Coding))
	for i, cd := range c.Coding {
		if cd.System == "" || cd.Code == "" {
			return nil, invalid(index(at+".coding", i), "a Coding needs system and code")
		}
		out[i] = Coding(cd)
	}
	return out, nil
}

func concepts(raw json.RawMessage, at string) ([][]Coding, error) {
	in, err := list[rawConcept](raw, at, "CodeableConcepts")
	if err != nil {
		return nil, err
	}
	out := make([][]Coding, len(in))
	for i, c := range in {
		if out[i], err = concept(c, index(at, i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func period(raw json.RawMessage, at string) (Period, error) {
	var rp rawPeriod
	if json.Unmarshal(raw, &rp) != nil {
		return Period{}, invalid(at, "must be a Period")
	}
	var p Period
	if rp.Start != nil {
		lo, _, ok := parseDateTime(*rp.Start)
		if !ok {
			return Period{}, invalid(at+".start", "not a valid dateTime")
		}
		p.Start = lo
	}
	if rp.End != nil {
		_, hi, ok := parseDateTime(*rp.End)
		if !ok {
			return Period{}, invalid(at+".end", "not a valid dateTime")
		}
		p.End = hi
	}
	if rp.Start == nil && rp.End == nil {
		return Period{}, invalid(at, "needs start or end")
	}
	if rp.Start != nil && rp.End != nil && !p.Start.Before(p.End) {
		return Period{}, invalid(at, "start is after end")
	}
	return p, nil
}

func reference(r *rawReference, at string) (Ref, error) {
	switch {
	case r == nil:
		return Ref{}, invalid(at, "required")
	case r.Reference != "" && r.Identifier != nil:
		return Ref{}, invalid(at, "give a reference or an identifier, not both")
	case r.Reference != "":
		if !literalRefPattern.MatchString(r.Reference) {
			return Ref{}, invalid(at+".reference", "must be a relative Type/id reference")
		}
		return Ref{Reference: r.Reference}, nil
	case r.Identifier != nil && r.Identifier.System != "" && r.Identifier.Value != "":
		return Ref{System: r.Identifier.System, Value: r.Identifier.Value}, nil
	}
	return Ref{}, invalid(at, "needs a reference or an identifier with system and value")
}

func actors(raw json.RawMessage, at string) ([]ActorRule, error) {
	type rawActor struct {
		Role      *rawConcept   `json:"role"`
		Reference *rawReference `json:"reference"`
	}
	in, err := list[rawActor](raw, at, "actors")
	if err != nil {
		return nil, err
	}
	out := make([]ActorRule, len(in))
	for i, a := range in {
		loc := index(at, i)
		if a.Role == nil {
			return nil, invalid(loc+".role", "required")
		}
		if out[i].Role, err = concept(*a.Role, loc+".role"); err != nil {
			return nil, err
		}
		if out[i].Reference, err = reference(a.Reference, loc+".reference"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func data(raw json.RawMessage, at string) ([]DataRule, error) {
	type rawData struct {
		Meaning   string        `json:"meaning"`
		Reference *rawReference `json:"reference"`
	}
	in, err := list[rawData](raw, at, "data")
	if err != nil {
		return nil, err
	}
	out := make([]DataRule, len(in))
	for i, d := range in {
		loc := index(at, i)
		if !dataMeanings[d.Meaning] {
			return nil, invalid(loc+".meaning", "must be instance, related, dependents or authoredby")
		}
		if d.Reference == nil || !literalRefPattern.MatchString(d.Reference.Reference) {
			return nil, invalid(loc+".reference", "must be a relative Type/id reference")
		}
		out[i] = DataRule{Meaning: d.Meaning, Reference: d.Reference.Reference}
	}
	return out, nil
}
