// Package rawjson finds members in JSON text without decoding it: one
// scan that tells strings from structure, for the hot paths that need one
// member of a stored resource (its meta) and not the rest. Every function
// gives up (ok false, or -1) on text it cannot follow with certainty, so
// that the caller falls back to encoding/json and decides the same way
// that would.
package rawjson

import "strings"

// TopMember returns the value of the top-level member name of the JSON
// object raw (nil when absent), matched case-insensitively as
// encoding/json matches struct fields. ok is false when raw is not an
// object the scan can follow, when a member name holds an escape (whose
// decoded form the scan does not compare) or when the member is
// repeated: the caller's full decoder decides those. It does not
// validate the values it skips.
func TopMember(raw []byte, name string) (value []byte, ok bool) {
	i := SkipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	i++
	var found []byte
	seen := false
	for {
		i = SkipSpace(raw, i)
		if i < len(raw) && raw[i] == '}' {
			return found, true
		}
		if i >= len(raw) || raw[i] != '"' {
			return nil, false
		}
		end := StringEnd(raw, i)
		if end < 0 {
			return nil, false
		}
		key := raw[i+1 : end]
		for _, c := range key {
			if c == '\\' {
				return nil, false
			}
		}
		i = SkipSpace(raw, end+1)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		start := SkipSpace(raw, i+1)
		stop := ValueEnd(raw, start)
		if stop < 0 {
			return nil, false
		}
		if strings.EqualFold(string(key), name) {
			if seen {
				return nil, false
			}
			seen, found = true, raw[start:stop]
		}
		i = SkipSpace(raw, stop)
		if i < len(raw) && raw[i] == ',' {
			i++
			continue
		}
		if i < len(raw) && raw[i] == '}' {
			return found, true
		}
		return nil, false
	}
}

// ValueEnd is the index just past the JSON value starting at raw[start],
// or -1.
func ValueEnd(raw []byte, start int) int {
	if start >= len(raw) {
		return -1
	}
	switch raw[start] {
	case '"':
		if e := StringEnd(raw, start); e >= 0 {
			return e + 1
		}
		return -1
	case '{', '[':
		depth := 0
		for k := start; k < len(raw); k++ {
			switch raw[k] {
			case '"':
				e := StringEnd(raw, k)
				if e < 0 {
					return -1
				}
				k = e
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return k + 1
				}
			}
		}
		return -1
	}
	k := start
	for k < len(raw) && raw[k] != ',' && raw[k] != '}' && raw[k] != ']' && raw[k] != ' ' && raw[k] != '\n' && raw[k] != '\t' && raw[k] != '\r' {
		k++
	}
	if k == start {
		return -1
	}
	return k
}

// StringEnd is the index of the quote closing the JSON string that opens
// at raw[start], or -1.
func StringEnd(raw []byte, start int) int {
	for k := start + 1; k < len(raw); k++ {
		switch raw[k] {
		case '\\':
			k++
		case '"':
			return k
		}
	}
	return -1
}

// SkipSpace is the index of the first byte at or after i that is not JSON
// white space.
func SkipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}
