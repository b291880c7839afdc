package consent

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/smart"
)

// SystemParticipationType holds the v3 ParticipationType codes; a grant's
// actor has role IRCP (information recipient).
const SystemParticipationType = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

type jCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type jConcept struct {
	Coding []jCoding `json:"coding"`
}

type jIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type jReference struct {
	Reference  string       `json:"reference,omitempty"`
	Identifier *jIdentifier `json:"identifier,omitempty"`
}

type jActor struct {
	Role      jConcept   `json:"role"`
	Reference jReference `json:"reference"`
}

type jPeriod struct {
	Start string `json:"start,omitempty"`
}

type jProvision struct {
	Type      string        `json:"type"`
	Period    *jPeriod      `json:"period,omitempty"`
	Actor     []jActor      `json:"actor,omitempty"`
	Action    []jConcept    `json:"action,omitempty"`
	Class     []jCoding     `json:"class,omitempty"`
	Provision []*jProvision `json:"provision,omitempty"`
}

type jExtension struct {
	URL         string `json:"url"`
	ValueString string `json:"valueString"`
}

type jConsent struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id,omitempty"`
	Extension    []jExtension `json:"extension"`
	Status       string       `json:"status"`
	Scope        jConcept     `json:"scope"`
	Category     []jConcept   `json:"category"`
	Patient      jReference   `json:"patient"`
	DateTime     string       `json:"dateTime"`
	Performer    []jReference `json:"performer"`
	PolicyRule   jConcept     `json:"policyRule"`
	Provision    jProvision   `json:"provision"`
}

// GrantConsent writes the patient's approval of an app (a SMART grant of
// scopes to clientID at granted) as an R4 Consent (consent.html):
//
//   - status active, scope patient-privacy, category LOINC 59284-0
//     "Patient Consent" (ValueSet consent-category, as in the R4
//     examples), policyRule v3-ActCode OPTIN, performer and patient the
//     patient, dateTime the grant time;
//   - the scopes as granted, in the extension ExtensionGrantedScopes;
//   - a root provision of type deny for the actor {identifier SystemClient
//     | clientID} (role IRCP) from granted on, with one nested permit per
//     set of actions the scopes give: patient/, user/ or system/
//     Observation.rs → class Observation, action access; c → collect; u
//     and d → correct (see ActionFor); type "*" → no class constraint.
//
// So the client may do exactly what the scopes name and nothing else of
// this patient's, whatever the site default; other clients are not
// concerned. Granular scope queries (?category=...) cannot be expressed
// as provisions: the grant permits the whole class and the scope decision
// narrows. Non-resource scopes (openid, launch, ...) grant no data. A
// later grant to the same client should replace (inactivate) this one:
// its deny root would otherwise deny what the new scopes add.
// patientID, clientID and id must be valid FHIR ids (id may be "").
func GrantConsent(patientID, clientID string, scopes []string, granted time.Time, id string) []byte {
	sc, _ := smart.ParseScopes(strings.Join(scopes, " "))
	type group struct {
		actions []string
		classes []string
		all     bool
	}
	groups := map[string]*group{}
	for _, r := range sc.Resources {
		acts := actionsOf(r.Perms)
		key := strings.Join(acts, " ")
		g := groups[key]
		if g == nil {
			g = &group{actions: acts}
			groups[key] = g
		}
		if r.Type == "*" {
			g.all = true
		} else if !slices.Contains(g.classes, r.Type) {
			g.classes = append(g.classes, r.Type)
		}
	}
	patient := jReference{Reference: "Patient/" + patientID}
	c := jConsent{
		ResourceType: "Consent",
		ID:           id,
		Extension:    []jExtension{{URL: ExtensionGrantedScopes, ValueString: strings.Join(scopes, " ")}},
		Status:       "active",
		Scope:        jConcept{[]jCoding{{System: SystemConsentScope, Code: "patient-privacy"}}},
		Category:     []jConcept{{[]jCoding{{System: "http://loinc.org", Code: "59284-0", Display: "Patient Consent"}}}},
		Patient:      patient,
		DateTime:     granted.UTC().Format(time.RFC3339),
		Performer:    []jReference{patient},
		PolicyRule:   jConcept{[]jCoding{{System: SystemActCode, Code: "OPTIN"}}},
		Provision: jProvision{
			Type:   "deny",
			Period: &jPeriod{Start: granted.UTC().Format(time.RFC3339)},
			Actor: []jActor{{
				Role:      jConcept{[]jCoding{{System: SystemParticipationType, Code: "IRCP"}}},
				Reference: jReference{Identifier: &jIdentifier{System: SystemClient, Value: clientID}},
			}},
		},
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		p := &jProvision{Type: "permit"}
		for _, a := range g.actions {
			p.Action = append(p.Action, jConcept{[]jCoding{{System: SystemConsentAction, Code: a}}})
		}
		if !g.all {
			slices.Sort(g.classes)
			for _, t := range g.classes {
				p.Class = append(p.Class, jCoding{System: SystemResourceTypes, Code: t})
			}
		}
		c.Provision.Provision = append(c.Provision.Provision, p)
	}
	out, err := json.Marshal(c)
	if err != nil { // only strings and slices of them: cannot happen
		panic("consent: encoding a grant: " + err.Error())
	}
	return out
}

// actionsOf maps SMART permissions to consentaction codes, sorted: r and s
// → access, c → collect, u and d → correct.
func actionsOf(p smart.Perm) []string {
	var out []string
	if p&(smart.PermRead|smart.PermSearch) != 0 {
		out = append(out, "access")
	}
	if p&smart.PermCreate != 0 {
		out = append(out, "collect")
	}
	if p&(smart.PermUpdate|smart.PermDelete) != 0 {
		out = append(out, "correct")
	}
	slices.Sort(out)
	return out
}

// Narrow returns the Consent raw with a deny exception for the security
// labels deny (for example v3-ActCode PSY: "block psychiatry from this
// app"): under a permit root, a nested deny; under a deny root (a grant),
// a nested deny in each permit exception. An existing deny exception that
// constrains nothing but securityLabel gets the missing labels instead of
// a new sibling. Every other element of raw is kept (members are
// re-encoded, in sorted order). The result is checked with Parse; raw must
// parse too.
func Narrow(raw []byte, deny ...Coding) ([]byte, error) {
	if len(deny) == 0 {
		return nil, invalid("Consent.provision.securityLabel", "no label to deny")
	}
	for _, d := range deny {
		if d.System == "" || d.Code == "" {
			return nil, invalid("Consent.provision.securityLabel", "a Coding needs system and code")
		}
	}
	parsed, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, invalid("Consent", "not a valid JSON Consent")
	}
	root, _ := doc["provision"].(map[string]any)
	if root == nil {
		return nil, invalid("Consent.provision", "nothing to narrow: the consent has no provision")
	}
	if parsed.Provision.Type == Permit {
		addDeny(root, deny)
	} else {
		subs, _ := root["provision"].([]any)
		n := 0
		for _, s := range subs {
			if sp, _ := s.(map[string]any); sp != nil && sp["type"] == "permit" {
				addDeny(sp, deny)
				n++
			}
		}
		if n == 0 {
			return nil, invalid("Consent.provision", "nothing to narrow: the consent permits nothing")
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, invalid("Consent", "cannot be encoded")
	}
	if _, err := Parse(out); err != nil {
		return nil, err
	}
	return out, nil
}

// addDeny adds labels to p's label-only deny exception, or a new one.
func addDeny(p map[string]any, labels []Coding) {
	subs, _ := p["provision"].([]any)
	for _, s := range subs {
		sp, _ := s.(map[string]any)
		if sp == nil || sp["type"] != "deny" || !labelOnly(sp) {
			continue
		}
		have, _ := sp["securityLabel"].([]any)
		for _, l := range labels {
			if !slices.ContainsFunc(have, func(h any) bool {
				hm, _ := h.(map[string]any)
				return hm != nil && hm["system"] == l.System && hm["code"] == l.Code
			}) {
				have = append(have, map[string]any{"system": l.System, "code": l.Code})
			}
		}
		sp["securityLabel"] = have
		return
	}
	list := make([]any, len(labels))
	for i, l := range labels {
		list[i] = map[string]any{"system": l.System, "code": l.Code}
	}
	p["provision"] = append(subs, map[string]any{"type": "deny", "securityLabel": list})
}

func labelOnly(p map[string]any) bool {
	for k := range p {
		if k != "type" && k != "securityLabel" {
			return false
		}
	}
	return true
}
