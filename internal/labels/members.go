package labels

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// maxMembers bounds the members of one JSON object; no FHIR element has
// nearly as many, and the bound keeps the duplicate check linear enough.
const maxMembers = 1024

// checkMembers rejects JSON in which an object has two members whose
// names are equal or differ only in case (Unicode simple folding, with
// escapes decoded). encoding/json matches member names case-insensitively
// and keeps the last duplicate, while FHIR JSON is case-sensitive: without
// this check a resource carrying {"code": <sensitive>, "Code": <benign>}
// would be classified by the benign code and stored with the sensitive
// one. Syntax errors are left to the decoder that runs next.
func checkMembers(data []byte) error {
	type frame struct {
		object bool
		first  int // index into keys of this object's first member
	}
	var stack []frame
	var keys [][]byte
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			stack = append(stack, frame{object: true, first: len(keys)})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if len(stack) == 0 {
				return nil // malformed: the decoder reports it
			}
			top := stack[len(stack)-1]
			if top.object {
				keys = keys[:top.first]
			}
			stack = stack[:len(stack)-1]
		case '"':
			j, escaped := i+1, false
			for j < len(data) && data[j] != '"' {
				if data[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if j >= len(data) {
				return nil // unterminated string: the decoder reports it
			}
			str := data[i : j+1]
			i = j
			if len(stack) == 0 || !stack[len(stack)-1].object {
				continue
			}
			k := j + 1
			for k < len(data) && (data[k] == ' ' || data[k] == '\t' || data[k] == '\n' || data[k] == '\r') {
				k++
			}
			if k >= len(data) || data[k] != ':' {
				continue // a value, not a member name
			}
			name := str[1 : len(str)-1]
			if escaped {
				var s string
				if err := json.Unmarshal(str, &s); err != nil {
					return fmt.Errorf("%w: bad member name", ErrMalformedResource)
				}
				name = []byte(s)
			}
			first := stack[len(stack)-1].first
			if len(keys)-first >= maxMembers {
				return fmt.Errorf("%w: object with more than %d members", ErrMalformedResource, maxMembers)
			}
			for _, prev := range keys[first:] {
				if bytes.EqualFold(prev, name) {
					return fmt.Errorf("%w: duplicate member %q", ErrMalformedResource, name)
				}
			}
			keys = append(keys, name)
		}
	}
	return nil
}
