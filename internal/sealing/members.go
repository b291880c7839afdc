package sealing

import (
	"bytes"
	"encoding/json"
	"errors"
)

var errMalformed = errors.New("sealing: the resource is not a JSON object")

// rawMember is one top-level member of a JSON object: its key and its
// value's bytes.
type rawMember struct {
	key string
	raw []byte
}

// members splits a JSON object into its top-level members, in order.
func members(data []byte) ([]rawMember, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errMalformed
	}
	var ms []rawMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errMalformed
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errMalformed
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errMalformed
		}
		ms = append(ms, rawMember{key: key, raw: raw})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errMalformed
	}
	if _, err := dec.Token(); err == nil {
		return nil, errMalformed
	}
	return ms, nil
}

// object joins members into a JSON object.
func object(ms []rawMember) []byte {
	n := 2
	for _, m := range ms {
		n += len(m.key) + len(m.raw) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, m := range ms {
		if i > 0 {
			out = append(out, ',')
		}
		k, _ := json.Marshal(m.key)
		out = append(append(append(out, k...), ':'), m.raw...)
	}
	return append(out, '}')
}
