package labels

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// The targeted decode: only the elements that carry clinical meaning are
// decoded; everything else is skipped by the JSON scanner. One struct
// covers the common resource types; which fields are read depends on the
// resource type (see codedElements).

type jsonCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type codeableConcept struct {
	Coding []jsonCoding `json:"coding"`
}

type itemElement struct {
	ProductOrService *codeableConcept `json:"productOrService"`
}

type diagnosisElement struct {
	DiagnosisCodeableConcept *codeableConcept `json:"diagnosisCodeableConcept"`
}

type procedureElement struct {
	ProcedureCodeableConcept *codeableConcept `json:"procedureCodeableConcept"`
}

type componentElement struct {
	Code                 *codeableConcept `json:"code"`
	ValueCodeableConcept *codeableConcept `json:"valueCodeableConcept"`
}

type activityElement struct {
	Detail *activityDetail `json:"detail"`
}

type activityDetail struct {
	Code       *codeableConcept  `json:"code"`
	ReasonCode []codeableConcept `json:"reasonCode"`
}

// codedResource is the targeted decode of a resource. Fields whose JSON
// shape differs between resource types (Encounter.type is an array,
// DocumentReference.type an object) are kept raw and decoded per type.
type codedResource struct {
	ResourceType              string             `json:"resourceType"`
	Code                      *codeableConcept   `json:"code"`
	ValueCodeableConcept      *codeableConcept   `json:"valueCodeableConcept"`
	Component                 []componentElement `json:"component"`
	MedicationCodeableConcept *codeableConcept   `json:"medicationCodeableConcept"`
	ReasonCode                []codeableConcept  `json:"reasonCode"`
	Type                      flexConcepts       `json:"type"`
	Category                  flexConcepts       `json:"category"`
	Activity                  []activityElement  `json:"activity"`
	Item                      []itemElement      `json:"item"`
	Diagnosis                 []diagnosisElement `json:"diagnosis"`
	Procedure                 []procedureElement `json:"procedure"`
	ConclusionCode            []codeableConcept  `json:"conclusionCode"`
	Contained                 []json.RawMessage  `json:"contained"`

	containedMaps []map[string]any // contained resources, from a decoded map (codedFromMap)
}

// flexConcepts is an element that is a CodeableConcept list in some
// resource types and one CodeableConcept in others: kept raw when decoded
// from JSON, as the decoded value when read from a map (codedFromMap),
// and read per type by addRaw.
type flexConcepts struct {
	raw json.RawMessage
	// From a map: set tells that the element is there; list or one
	// holds it, neither when it is not a concept or a list of them.
	set  bool
	list []codeableConcept
	one  *codeableConcept
}

func (f *flexConcepts) UnmarshalJSON(b []byte) error {
	f.raw = append(f.raw[:0], b...)
	return nil
}

// codedElement is one coding found at a path.
type codedElement struct {
	path   string
	coding jsonCoding
}

// scannedTypes lists, per resource type, the elements Label reads. Types
// not listed (Patient, Organization, Location, Practitioner, Immunization,
// Goal, ...) carry no sensitive codes in the common profiles and are not
// read: in particular names of organisations and locations are never
// classified.
var scannedTypes = map[string]bool{
	"Condition": true, "Observation": true, "Procedure": true,
	"DiagnosticReport": true, "ServiceRequest": true, "AllergyIntolerance": true,
	"MedicationRequest": true, "MedicationStatement": true,
	"MedicationAdministration": true, "MedicationDispense": true, "Medication": true,
	"Encounter": true, "CarePlan": true, "Claim": true, "ExplanationOfBenefit": true,
	"DocumentReference": true, "FamilyMemberHistory": true, "ClinicalImpression": true,
}

// codedElements decodes data and returns its coded clinical elements with
// their FHIRPath-like paths.
func codedElements(data []byte) (string, []codedElement, error) {
	if err := checkMembers(data); err != nil {
		return "", nil, err
	}
	var r codedResource
	if err := json.Unmarshal(data, &r); err != nil {
		// Element names mean other things in types this labeller does not
		// read (PractitionerRole.code is a list): those are not malformed.
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(data, &head) == nil && head.ResourceType != "" && !scannedTypes[head.ResourceType] {
			return head.ResourceType, nil, nil
		}
		return "", nil, fmt.Errorf("%w: %v", ErrMalformedResource, err)
	}
	if r.ResourceType == "" {
		return "", nil, fmt.Errorf("%w: no resourceType", ErrMalformedResource)
	}
	var out []codedElement
	if err := collect(&r, r.ResourceType, &out, 0); err != nil {
		return "", nil, err
	}
	return r.ResourceType, out, nil
}

func collect(r *codedResource, base string, out *[]codedElement, depth int) error {
	rt := r.ResourceType
	if !scannedTypes[rt] {
		return nil
	}
	add := func(path string, cc *codeableConcept) {
		if cc == nil {
			return
		}
		for i, c := range cc.Coding {
			*out = append(*out, codedElement{path: path + ".coding[" + strconv.Itoa(i) + "]", coding: c})
		}
	}
	addList := func(path string, ccs []codeableConcept) {
		for i := range ccs {
			add(path+"["+strconv.Itoa(i)+"]", &ccs[i])
		}
	}
	switch rt {
	case "MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense":
		add(base+".medicationCodeableConcept", r.MedicationCodeableConcept)
		addList(base+".reasonCode", r.ReasonCode)
	default:
		add(base+".code", r.Code)
		addList(base+".reasonCode", r.ReasonCode)
	}
	switch rt {
	case "Observation":
		add(base+".valueCodeableConcept", r.ValueCodeableConcept)
		for i := range r.Component {
			p := base + ".component[" + strconv.Itoa(i) + "]"
			add(p+".code", r.Component[i].Code)
			add(p+".valueCodeableConcept", r.Component[i].ValueCodeableConcept)
		}
	case "DiagnosticReport":
		addList(base+".conclusionCode", r.ConclusionCode)
	case "Encounter":
		if err := addRaw(base+".type", r.Type, true, add, addList); err != nil {
			return err
		}
	case "DocumentReference":
		if err := addRaw(base+".type", r.Type, false, add, addList); err != nil {
			return err
		}
	case "CarePlan":
		if err := addRaw(base+".category", r.Category, true, add, addList); err != nil {
			return err
		}
		for i, a := range r.Activity {
			if a.Detail == nil {
				continue
			}
			p := base + ".activity[" + strconv.Itoa(i) + "].detail"
			add(p+".code", a.Detail.Code)
			addList(p+".reasonCode", a.Detail.ReasonCode)
		}
	case "Claim", "ExplanationOfBenefit":
		for i := range r.Item {
			add(base+".item["+strconv.Itoa(i)+"].productOrService", r.Item[i].ProductOrService)
		}
		for i := range r.Diagnosis {
			add(base+".diagnosis["+strconv.Itoa(i)+"].diagnosisCodeableConcept", r.Diagnosis[i].DiagnosisCodeableConcept)
		}
		for i := range r.Procedure {
			add(base+".procedure["+strconv.Itoa(i)+"].procedureCodeableConcept", r.Procedure[i].ProcedureCodeableConcept)
		}
	}
	// Contained resources (Claims carry #referral ServiceRequests) are
	// part of the resource: classify them too. FHIR forbids nested
	// contained resources, so one level is enough.
	if depth == 0 {
		for i, raw := range r.Contained {
			var c codedResource
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("%w: contained[%d]: %v", ErrMalformedResource, i, err)
			}
			if err := collect(&c, base+".contained["+strconv.Itoa(i)+"]", out, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// addRaw decodes an element that is a CodeableConcept list (list=true) or
// a single CodeableConcept for this resource type.
func addRaw(path string, f flexConcepts, list bool,
	add func(string, *codeableConcept), addList func(string, []codeableConcept)) error {
	if f.set {
		switch {
		case list && f.one == nil && f.list != nil:
			addList(path, f.list)
		case !list && f.one != nil:
			add(path, f.one)
		case list:
			return fmt.Errorf("%w: %s: not a list of CodeableConcepts", ErrMalformedResource, path)
		default:
			return fmt.Errorf("%w: %s: not a CodeableConcept", ErrMalformedResource, path)
		}
		return nil
	}
	raw := f.raw
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if list {
		var ccs []codeableConcept
		if err := json.Unmarshal(raw, &ccs); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMalformedResource, path, err)
		}
		addList(path, ccs)
		return nil
	}
	var cc codeableConcept
	if err := json.Unmarshal(raw, &cc); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformedResource, path, err)
	}
	add(path, &cc)
	return nil
}
