package searchparam

import "strings"

// parseReference reads a literal reference, the Reference.reference
// element (FHIR R4 References, "Literal references"), into what the index
// keeps of it:
//
//   - "Patient/123" and "Patient/123/_history/4": refType "Patient",
//     refID "123" (the version is dropped: search matches any version);
//   - "https://host/fhir/Patient/123[/_history/4]": the same, and url the
//     reference without its version;
//   - "urn:uuid:…", "urn:oid:…", conditional references
//     ("Patient?identifier=x|1", which a transaction should have resolved)
//     and anything else that does not end in Type/id: url as written;
//   - "" and references to contained resources ("#p1"): nothing, since
//     a contained resource is not separately searchable.
//
// Type and id are checked against the lexical rules of resource type
// names and ids (FHIR R4 Data Types, id: [A-Za-z0-9\-\.]{1,64}).
func parseReference(s string) (refType, refID, url string) {
	switch {
	case s == "" || s[0] == '#':
		return "", "", ""
	case strings.ContainsAny(s, "?#") || strings.HasPrefix(s, "urn:"):
		return "", "", s
	}
	absolute := hasScheme(s)
	rest := s
	if i := strings.LastIndex(rest, "/_history/"); i >= 0 && isID(rest[i+len("/_history/"):]) {
		rest = rest[:i]
	}
	other := s // the url when s does not end in Type/id
	if absolute {
		url, other = rest, rest
	}
	head, id, ok := cutLast(rest, '/')
	if !ok {
		return "", "", other
	}
	typ := head
	if absolute {
		// The type is the segment before the id, and that segment must
		// follow a path: in "http://Patient/1" it is the host.
		base, t, ok := cutLast(head, '/')
		if !ok || base == "" || strings.HasSuffix(base, "/") {
			return "", "", other
		}
		typ = t
	} else if strings.Contains(head, "/") {
		return "", "", other // "a/b/c" is not a relative reference
	}
	if !isResourceTypeName(typ) || !isID(id) {
		return "", "", other
	}
	return typ, id, url
}

// cutLast splits s around the last sep.
func cutLast(s string, sep byte) (before, after string, found bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// hasScheme reports whether s starts with a URI scheme ("https:", "urn:").
func hasScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':':
			return i > 0
		default:
			return false
		}
	}
	return false
}

// isResourceTypeName reports whether s looks like a resource type name: an
// upper-case letter followed by letters and digits.
func isResourceTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// isID reports whether s is a valid resource id (FHIR R4 Data Types,
// id).
func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// canonicalURL returns a canonical reference without its version
// ("http://x/ValueSet/y|1.0" is "http://x/ValueSet/y"; FHIR R4 Data Types,
// canonical).
func canonicalURL(s string) string {
	if i := strings.IndexByte(s, '|'); i >= 0 {
		return s[:i]
	}
	return s
}
