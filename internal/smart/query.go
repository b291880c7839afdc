package smart

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// parseQuery parses a granular scope's query (SMART 2.2 "Finer-grained
// resource constraints using search parameters"). Values of each key are
// sorted and deduplicated: repeated search parameters all apply (FHIR R4
// §3.1.1.5.2), so their order carries no meaning.
func parseQuery(s string) (url.Values, bool) {
	if strings.Contains("&"+s+"&", "&&") {
		return nil, false // an empty pair: url.ParseQuery would skip it
	}
	q, err := url.ParseQuery(s)
	if err != nil || len(q) == 0 {
		return nil, false
	}
	for k, vs := range q {
		if !isParamName(k) {
			return nil, false
		}
		for _, v := range vs {
			if v == "" {
				return nil, false
			}
		}
		slices.Sort(vs)
		q[k] = slices.Compact(vs)
	}
	return q, true
}

// isParamName reports whether s looks like a FHIR search parameter name,
// possibly with a modifier or chain: letters, digits and "-_.:".
func isParamName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// writeQuery writes q with keys sorted and each key's values sorted,
// percent-encoding only the bytes a scope-token may not hold (RFC 6749
// §3.3) and those that would change how the query splits or decodes:
// '%', '&', '+', ';', '=' and '#'. Everything else, such as the ':' '/' and
// '|' of a token search value, is written as is, so the result reads like
// the examples in SMART 2.2.
func writeQuery(b *strings.Builder, q url.Values) {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	first := true
	for _, k := range keys {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			if !first {
				b.WriteByte('&')
			}
			first = false
			writeEscaped(b, k)
			b.WriteByte('=')
			writeEscaped(b, v)
		}
	}
}

// writeEscaped writes s, percent-encoding the bytes writeQuery names.
func writeEscaped(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case !isScopeByte(c), c == '%', c == '&', c == '+', c == ';', c == '=', c == '#':
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
}

// cloneQuery returns a deep copy of q with each key's values sorted; nil
// for an empty q.
func cloneQuery(q url.Values) url.Values {
	if len(q) == 0 {
		return nil
	}
	out := make(url.Values, len(q))
	for k, vs := range q {
		out[k] = sortedValues(vs)
	}
	return out
}

// sortedValues returns a sorted copy of vs without duplicates.
func sortedValues(vs []string) []string {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	return slices.Compact(vs)
}

// sameValues reports whether a and b hold the same set of values.
func sameValues(a, b []string) bool {
	if slices.Equal(a, b) {
		return true // parsed values are sorted already
	}
	return slices.Equal(sortedValues(a), sortedValues(b))
}

// queryEqual reports whether a and b constrain the same keys to the same
// sets of values.
func queryEqual(a, b url.Values) bool {
	return len(a) == len(b) && maps.EqualFunc(a, b, sameValues)
}
