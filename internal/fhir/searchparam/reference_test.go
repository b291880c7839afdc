package searchparam

import "testing"

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in           string
		typ, id, url string
		comment      string
	}{
		{"Patient/123", "Patient", "123", "", "relative"},
		{"Patient/123/_history/4", "Patient", "123", "", "versions are dropped"},
		{"Patient/a-b.C", "Patient", "a-b.C", "", "id characters"},
		{"https://example.org/fhir/Patient/123", "Patient", "123", "https://example.org/fhir/Patient/123", "absolute"},
		{"https://example.org/fhir/Patient/123/_history/4", "Patient", "123", "https://example.org/fhir/Patient/123", "absolute with version"},
		{"http://example.org/Patient/1", "Patient", "1", "http://example.org/Patient/1", "absolute at the root"},
		{"http://Patient/1", "", "", "http://Patient/1", "the type would be the host"},
		{"urn:uuid:27de96c6-6910-4f0f-8f10-00ce6090f447", "", "", "urn:uuid:27de96c6-6910-4f0f-8f10-00ce6090f447", "urn:uuid"},
		{"urn:oid:1.2.3/Patient/1", "", "", "urn:oid:1.2.3/Patient/1", "a URN is never Type/id"},
		{"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999", "", "", "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999", "conditional reference, kept as written"},
		{"http://example.org/Bundle/1#Patient/2", "", "", "http://example.org/Bundle/1#Patient/2", "fragment"},
		{"#p1", "", "", "", "contained: not indexed"},
		{"#", "", "", "", "the container itself"},
		{"", "", "", "", "empty"},
		{"patient/123", "", "", "patient/123", "type names start upper-case"},
		{"Patient/", "", "", "Patient/", "no id"},
		{"Patient/12 3", "", "", "Patient/12 3", "invalid id"},
		{"Patient/" + string(make([]byte, 65)), "", "", "Patient/" + string(make([]byte, 65)), "id too long"},
		{"a/Patient/1", "", "", "a/Patient/1", "relative references have two segments"},
		{"Patient", "", "", "Patient", "one segment"},
		{"Patient/1/_history/", "", "", "Patient/1/_history/", "empty version"},
		{"Patient/1/_history/2/x", "", "", "Patient/1/_history/2/x", "trailing segment"},
	} {
		typ, id, url := parseReference(tc.in)
		if typ != tc.typ || id != tc.id || url != tc.url {
			t.Errorf("%s: parseReference(%q) = %q, %q, %q; want %q, %q, %q", tc.comment, tc.in, typ, id, url, tc.typ, tc.id, tc.url)
		}
	}
}

func TestCanonicalURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://hl7.org/fhir/ValueSet/x":       "http://hl7.org/fhir/ValueSet/x",
		"http://hl7.org/fhir/ValueSet/x|4.0.1": "http://hl7.org/fhir/ValueSet/x",
		"http://hl7.org/fhir/ValueSet/x|":      "http://hl7.org/fhir/ValueSet/x",
	} {
		if got := canonicalURL(in); got != want {
			t.Errorf("canonicalURL(%q) = %q, want %q", in, got, want)
		}
	}
}
