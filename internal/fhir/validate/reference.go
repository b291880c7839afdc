package validate

import (
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/model"
)

// reference checks a Reference.reference at the current path: its form
// (R4 §2.3.0.1 "Literal references") and, when the target's type can be
// told, that the element's targetProfile allows it.
//
// Accepted forms:
//
//	Patient/123                   relative: a known resource type and a valid id
//	Patient/123/_history/2        relative, version-specific
//	https://example.org/fhir/…    absolute URL
//	#p1, #                        a contained resource; # is the container
//	urn:uuid:…, urn:oid:…         in Bundles, an entry's fullUrl
//	Patient?identifier=…          conditional, only in a transaction (R4 §3.1.0.11.2)
func (v *validator) reference(el *model.Element, ref string) {
	typ, msg := v.referenceTarget(ref)
	if msg != "" {
		v.addHere("invalid", msg)
		return
	}
	if typ != "" && !el.AllowsTarget(typ) {
		v.addHere("invalid", "A reference to a "+typ+" is not allowed here (allowed: "+strings.Join(el.Targets, ", ")+")")
	}
}

// referenceTarget returns the resource type ref points to ("" when it
// cannot be told) or, for a malformed reference, a message.
func (v *validator) referenceTarget(ref string) (typ, msg string) {
	const malformed = "Malformed reference: expected Type/id, an absolute URL, #id, urn:uuid: or urn:oid:"
	switch {
	case strings.HasPrefix(ref, "#"):
		id := ref[1:]
		if id == "" {
			return v.scope.typ, ""
		}
		if !v.id.MatchString(id) {
			return "", malformed
		}
		typ, ok := v.scope.contained[id]
		if !ok {
			return "", "Local reference does not match a contained resource (ref-1)"
		}
		return typ, ""
	case strings.HasPrefix(ref, "urn:uuid:"):
		if !v.uuid.MatchString(ref) {
			return "", "Malformed urn:uuid: reference"
		}
		return v.fullURLType(ref), ""
	case strings.HasPrefix(ref, "urn:oid:"):
		if !v.oid.MatchString(ref) {
			return "", "Malformed urn:oid: reference"
		}
		return v.fullURLType(ref), ""
	}
	if t, query, ok := strings.Cut(ref, "?"); ok && !strings.ContainsAny(t, ":/") {
		if !v.m.IsResourceType(t) || query == "" {
			return "", malformed
		}
		if v.bundle == nil || !v.bundle.transaction {
			return "", "Conditional references are allowed only in transaction Bundles"
		}
		return t, ""
	}
	if scheme, rest, ok := strings.Cut(ref, "://"); ok {
		if !validScheme(scheme) || rest == "" || !v.uri.MatchString(ref) {
			return "", malformed
		}
		if typ := v.fullURLType(ref); typ != "" {
			return typ, ""
		}
		return v.restTarget(ref), ""
	}
	t, id, ok := strings.Cut(ref, "/")
	if !ok || !v.m.IsResourceType(t) {
		return "", malformed
	}
	id, hist, versioned := strings.Cut(id, "/_history/")
	if !v.id.MatchString(id) || versioned && !v.id.MatchString(hist) {
		return "", malformed
	}
	return t, ""
}

func (v *validator) fullURLType(url string) string {
	if v.bundle == nil {
		return ""
	}
	return v.bundle.fullURLs[url]
}

// restTarget returns the resource type of an absolute URL that ends like a
// FHIR RESTful one ([base]/Type/id or [base]/Type/id/_history/vid), or "".
func (v *validator) restTarget(url string) string {
	url, _, _ = strings.Cut(url, "?")
	url, _, _ = strings.Cut(url, "#")
	parts := strings.Split(url, "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	n := len(parts)
	if n < 2 || !v.m.IsResourceType(parts[n-2]) || !v.id.MatchString(parts[n-1]) {
		return ""
	}
	return parts[n-2]
}

// validScheme reports an RFC 3986 §3.1 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !alpha && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}
