package search

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escaping in search values, FHIR R4 §3.1.1.4.19: "," separates the
// alternatives of a value (OR), "$" the components of a composite value
// and "|" the parts of a token, quantity or canonical reference. A "\"
// before one of these characters, or before itself, makes it literal; any
// other "\" is illegal. This escaping applies after URL decoding.

// checkEscapes reports whether every backslash in s escapes one of
// \ , $ |. The other helpers in this file assume s passed it.
func checkEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 == len(s) {
			return false
		}
		switch s[i+1] {
		case '\\', ',', '$', '|':
			i++
		default:
			return false
		}
	}
	return true
}

// cut slices s around the first sep that is not escaped. The separators
// are ASCII, so scanning bytes never splits a UTF-8 sequence.
func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// count returns how many unescaped seps s holds.
func count(s string, sep byte) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			n++
		}
	}
	return n
}

// unescape removes the escaping backslashes from s.
func unescape(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s)-1)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '\\' {
			i++
		}
		b = append(b, s[i])
	}
	return string(b)
}

// checkValue vets one raw parameter value before any parsing: bounded
// length, valid UTF-8, no control characters, well-formed escapes. It
// returns a reason, or "" when the value is acceptable.
func checkValue(s string) string {
	if len(s) > maxValueBytes {
		return reasonValueTooLong
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return reasonControl
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return reasonNotUTF8
		}
		if unicode.IsControl(r) {
			return reasonControl
		}
		i += size
	}
	if !checkEscapes(s) {
		return reasonEscape
	}
	return ""
}
