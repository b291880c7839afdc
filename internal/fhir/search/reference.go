package search

import (
	"net/url"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// referenceValue parses a value of reference parameter sp (FHIR R4
// §3.1.1.4.12, §3.1.1.4.13). The forms that name one resource all
// normalise to the same RefType and RefID, so that a compartment or
// policy check on the query sees through them:
//
//	123                                   (RefType from a :[Type] modifier or the single target, else "")
//	Patient/123
//	Patient/123/_history/4                (the version is dropped)
//	https://host/fhir/Patient/123         (URL too)
//	https://host/fhir/Patient/123/_history/4
//
// Other absolute URIs (canonical URLs, urn:uuid:…) set URL only. A type
// in the value must be one sp can point to and agree with typeMod.
// Canonical versions (url|version) are refused: the index drops them, so
// they could not be honoured.
func referenceValue(sp *searchparam.Param, typeMod, alt string) (Value, string) {
	if count(alt, '|') > 0 {
		return Value{}, reasonCanonicalVersion
	}
	s := unescape(alt)
	if strings.IndexByte(s, ':') >= 0 {
		return absoluteReference(sp, typeMod, s)
	}
	typ, id, version := s, "", ""
	if i := strings.IndexByte(s, '/'); i < 0 {
		typ, id = "", s
	} else {
		typ, id = s[:i], s[i+1:]
		if j := strings.IndexByte(id, '/'); j >= 0 {
			id, version = id[:j], id[j+1:]
			h, v, ok := strings.Cut(version, "/")
			if !ok || h != "_history" || !isID(v) {
				return Value{}, reasonReference
			}
		}
		if !isTypeName(typ) {
			return Value{}, reasonReference
		}
	}
	if !isID(id) {
		return Value{}, reasonReference
	}
	switch {
	case typ == "" && typeMod != "":
		typ = typeMod
	case typ == "":
		typ = singleTarget(sp)
	case typeMod != "" && typ != typeMod:
		return Value{}, reasonRefTypeConflict
	case len(sp.Targets) > 0 && !canTarget(sp, typ):
		return Value{}, reasonRefType
	}
	return Value{RefType: typ, RefID: id}, ""
}

// absoluteReference handles a reference value with a scheme. When its path
// ends in Type/id (after dropping /_history/version) and Type is a target
// of sp, RefType and RefID are set as well as URL.
func absoluteReference(sp *searchparam.Param, typeMod, s string) (Value, string) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || !isScheme(u.Scheme) {
		return Value{}, reasonReference
	}
	v := Value{URL: s}
	if u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.Path == "" {
		if typeMod != "" {
			return Value{}, reasonRefTypeAbsolute
		}
		return v, ""
	}
	// Segments are taken from the escaped path: the value was URL-decoded
	// once already, and decoding it again would let "%2F" act as "/".
	segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if n := len(segs); n >= 4 && segs[n-2] == "_history" && isID(segs[n-1]) {
		segs = segs[:n-2]
		if i := strings.LastIndex(s, "/_history/"); i >= 0 {
			v.URL = s[:i]
		}
	}
	if n := len(segs); n >= 2 && isTypeName(segs[n-2]) && isID(segs[n-1]) && (len(sp.Targets) == 0 || canTarget(sp, segs[n-2])) {
		v.RefType, v.RefID = segs[n-2], segs[n-1]
	}
	if typeMod != "" && v.RefType != typeMod {
		return Value{}, reasonRefTypeConflict
	}
	return v, ""
}

// isScheme reports whether s is a URI scheme (RFC 3986 §3.1).
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
