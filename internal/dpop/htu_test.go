package dpop

import "testing"

// TestSameURI: the ways an htu can name another resource come first, then
// the forms RFC 3986 §6.2.2–6.2.3 says are the same URI.
func TestSameURI(t *testing.T) {
	const req = "https://fhir.example.org/fhir/Patient/p1"
	for _, c := range []struct {
		htu, uri string
		same     bool
	}{
		{"https://evil.example.org/fhir/Patient/p1", req, false},
		{"https://fhir.example.org.evil.example/fhir/Patient/p1", req, false},
		{"https://fhir.example.org/fhir/Patient/p2", req, false},
		{"https://fhir.example.org/fhir/Patient/p1/", req, false},
		{"https://fhir.example.org/fhir/Patient", req, false},
		{"http://fhir.example.org/fhir/Patient/p1", req, false},
		{"https://fhir.example.org:8443/fhir/Patient/p1", req, false},
		{"https://fhir.example.org:80/fhir/Patient/p1", req, false},
		{"https://fhir.example.org/fhir/Patient/p1?_format=json", req, false},
		{"https://fhir.example.org/fhir/Patient/p1#x", req, false},
		{"https://user@fhir.example.org/fhir/Patient/p1", req, false},
		{"//fhir.example.org/fhir/Patient/p1", req, false},
		{"/fhir/Patient/p1", req, false},
		{"ftp://fhir.example.org/fhir/Patient/p1", "ftp://fhir.example.org/fhir/Patient/p1", false},
		{"https://fhir.example.org/fhir/Patient%2Fp1", req, false},
		{"https://fhir.example.org/fhir/x/../Patient/p1", req, false},
		{"https://fhir.example.org/fhir/Patient/p1%", req + "%", false},
		{"https://fhir.example.org/fhir/Patient/p1%zz", req + "%zz", false},
		{"https:fhir.example.org/fhir/Patient/p1", req, false},
		{"", req, false},
		{req, "", false},

		{req, req, true},
		{req, req + "?_format=json&_elements=id", true},
		{req, req + "#frag", true},
		{"HTTPS://FHIR.EXAMPLE.ORG/fhir/Patient/p1", req, true},
		{"https://fhir.example.org:443/fhir/Patient/p1", req, true},
		{"https://fhir.example.org:/fhir/Patient/p1", req, true},
		{"http://fhir.example.org:80/fhir", "http://fhir.example.org/fhir", true},
		{"https://fhir.example.org/fhir/%50atient/p%31", req, true},
		{"https://fhir.example.org/a%2fb", "https://fhir.example.org/a%2Fb", true},
		{"https://fhir.example.org", "https://fhir.example.org/", true},
		{"https://[::1]:443/fhir", "https://[::1]/fhir", true},
		{"https://[::1]:8443/fhir", "https://[::1]/fhir", false},
	} {
		if got := sameURI(c.htu, c.uri); got != c.same {
			t.Errorf("sameURI(%q, %q) = %v, want %v", c.htu, c.uri, got, c.same)
		}
	}
}
