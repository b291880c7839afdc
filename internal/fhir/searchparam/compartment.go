package searchparam

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/wardenfhir/warden/internal/fhir/spec"
)

// loadPatientCompartment reads the Patient CompartmentDefinition (FHIR R4
// "Compartments", CompartmentDefinition/patient): for each resource
// type, the search parameters whose references to a Patient put a
// resource in that Patient's compartment.
func loadPatientCompartment() (map[string][]string, error) {
	raw, err := spec.R4(spec.CompartmentPatient)
	if err != nil {
		return nil, err
	}
	var def struct {
		Code     string `json:"code"`
		Resource []struct {
			Code  string   `json:"code"`
			Param []string `json:"param"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(raw, &def); err != nil {
		return nil, fmt.Errorf("searchparam: decoding the Patient compartment: %w", err)
	}
	if def.Code != "Patient" {
		return nil, fmt.Errorf("searchparam: compartment definition is for %q, not Patient", def.Code)
	}
	out := map[string][]string{}
	for _, r := range def.Resource {
		if len(r.Param) > 0 {
			out[r.Code] = r.Param
		}
	}
	return out, nil
}

// PatientCompartmentParams returns the codes of the search parameters
// that link a resource of type resourceType to the Patient compartment
// ("subject" and "performer" for Observation), or nil when resources of
// that type are never in a Patient's compartment. The caller owns the
// returned slice.
func (r *Registry) PatientCompartmentParams(resourceType string) []string {
	return slices.Clone(r.patientParams[resourceType])
}

// PatientCompartment returns the ids of the Patients whose compartment a
// resource of type resourceType is in, given the resource's index entries
// (from Extract): the distinct RefIDs of its Reference entries to
// "Patient" for the parameters of PatientCompartmentParams, sorted.
//
// Only relative references ("Patient/123") count. An absolute URL names a
// Patient on some server, and this package cannot tell whether that server
// is this one: counting "https://elsewhere/fhir/Patient/123" as local
// Patient 123 would let that Patient see the resource. Callers that accept
// absolute references to their own base should make them relative before
// extraction.
//
// A Patient is in its own compartment; that is the caller's to add, as
// only the caller knows the id being written.
func (r *Registry) PatientCompartment(resourceType string, entries []Entry) []string {
	params := r.patientParams[resourceType]
	if len(params) == 0 {
		return nil
	}
	var ids []string
	for i := range entries {
		e := &entries[i]
		if e.Type != Reference || e.RefType != "Patient" || e.RefID == "" || e.URL != "" || !slices.Contains(params, e.Param) {
			continue
		}
		if !slices.Contains(ids, e.RefID) {
			ids = append(ids, e.RefID)
		}
	}
	slices.Sort(ids)
	return ids
}
