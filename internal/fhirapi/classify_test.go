package fhirapi_test

import (
	"net/http/httptest"
	"testing"
)

// TestClassify names requests for the API inventory, and gives the
// tricks that could make one route look like another nothing to match.
func TestClassify(t *testing.T) {
	ts := newTestServer(t)
	for _, c := range []struct {
		method, path     string
		ok               bool
		interaction, typ string
		op               string
	}{
		{"GET", "/fhir/Patient/1", true, "read", "Patient", ""},
		{"HEAD", "/fhir/Patient/1", true, "read", "Patient", ""},
		{"GET", "/fhir/Patient", true, "search-type", "Patient", ""},
		{"POST", "/fhir/Patient/_search", true, "search-type", "Patient", ""},
		{"POST", "/fhir/Patient", true, "create", "Patient", ""},
		{"DELETE", "/fhir/Patient/1", true, "delete", "Patient", ""},
		{"GET", "/fhir/Patient/1/_history/2", true, "vread", "Patient", ""},
		{"GET", "/fhir/Patient/1/$everything", true, "operation", "Patient", "$everything"},
		{"GET", "/fhir/metadata", true, "capabilities", "", ""},
		{"POST", "/fhir", true, "batch", "", ""},
		{"GET", "/fhir/_history", true, "history-system", "", ""},
		// Nothing to match: traversal, encoded slashes, empty segments.
		{"GET", "/fhir/Patient/../Observation", true, "", "", ""},
		{"GET", "/fhir/Patient%2F1", true, "", "", ""},
		{"GET", "/fhir/Patient//1", true, "", "", ""},
		{"GET", "/fhir/Patient/", true, "", "", ""},
		// Not under the base: the inventory's path routes decide.
		{"GET", "/FHIR/Patient/1", false, "", "", ""},
		{"GET", "/fhirx/Patient/1", false, "", "", ""},
		{"GET", "/fhir/.well-known/smart-configuration", false, "", "", ""},
	} {
		r := httptest.NewRequest(c.method, "http://w.example"+c.path, nil)
		it, typ, op, ok := ts.api.Classify(r)
		if ok != c.ok || it != c.interaction || typ != c.typ || op != c.op {
			t.Errorf("%s %s: %q %q %q %v, want %q %q %q %v", c.method, c.path, it, typ, op, ok, c.interaction, c.typ, c.op, c.ok)
		}
	}
}
