package fhirapi

import (
	"net/http"
)

// capabilities implements GET [base]/metadata: a CapabilityStatement
// generated from what this server really implements — the resource types
// of the model, the interactions routed in router.go, and the search
// parameters the index can evaluate (FHIR R4 §3.1.0.10).
func (a *API) capabilities(w http.ResponseWriter, r *http.Request, _ []string) error {
	a.capOnce.Do(func() { a.capBody, a.capErr = marshalResource(a.capabilityStatement()) })
	if a.capErr != nil {
		return a.capErr
	}
	writeRaw(w, http.StatusOK, a.capBody)
	return nil
}

func (a *API) capabilityStatement() map[string]any {
	var resources []any
	for _, typ := range a.model.ResourceTypes() {
		var params []any
		for _, p := range a.reg.Params(typ) {
			params = append(params, map[string]any{"name": p.Code, "definition": p.URL, "type": string(p.Type)})
		}
		var interactions []any
		for _, code := range []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"} {
			interactions = append(interactions, map[string]any{"code": code})
		}
		res := map[string]any{
			"type":              typ,
			"interaction":       interactions,
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalUpdate": true,
			"conditionalDelete": "single",
			"conditionalRead":   "not-supported",
			"referencePolicy":   []any{"literal", "logical"},
			"searchInclude":     []any{"*"},
			"searchRevInclude":  []any{"*"},
		}
		if params != nil {
			res["searchParam"] = params
		}
		if typ == "Patient" {
			res["operation"] = []any{map[string]any{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}
		}
		if typ == "Consent" && a.opts.RevokeGrant != nil {
			res["operation"] = []any{map[string]any{"name": "revoke", "definition": "https://github.com/wardenfhir/warden/fhir/OperationDefinition/Consent-revoke",
				"documentation": "POST Consent/[id]/$revoke: withdraw the consent at once; an app grant's tokens stop working in every process before the answer"}}
		}
		resources = append(resources, res)
	}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         a.now().UTC().Format("2006-01-02"),
		"publisher":    "Warden",
		"kind":         "instance",
		"software":     map[string]any{"name": "Warden", "version": a.opts.Version},
		"implementation": map[string]any{
			"description": "Warden FHIR R4 server",
			"url":         a.base,
		},
		"fhirVersion": "4.0.1",
		"format":      []any{"application/fhir+json", "json"},
		"rest": []any{map[string]any{
			"mode":     "server",
			"security": a.security(),
			"resource": resources,
			"interaction": []any{
				map[string]any{"code": "transaction"},
				map[string]any{"code": "batch"},
				map[string]any{"code": "history-system"},
			},
		}},
	}
}

// security is rest.security: SMART on FHIR (SMART App Launch 2.2
// conformance: the restful-security-service code and the oauth-uris
// extension, for clients that discover through the CapabilityStatement).
func (a *API) security() map[string]any {
	sec := map[string]any{
		"cors": a.opts.Origins != nil,
		"service": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
		}}}},
		"description": "Every request but this statement needs a SMART on FHIR access token (Bearer); discovery at .well-known/smart-configuration",
	}
	var uris []any
	for _, u := range []struct{ name, url string }{
		{"authorize", a.opts.OAuth.Authorize}, {"token", a.opts.OAuth.Token},
		{"introspect", a.opts.OAuth.Introspect}, {"revoke", a.opts.OAuth.Revoke},
	} {
		if u.url != "" {
			uris = append(uris, map[string]any{"url": u.name, "valueUri": u.url})
		}
	}
	if uris != nil {
		sec["extension"] = []any{map[string]any{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": uris}}
	}
	return sec
}
