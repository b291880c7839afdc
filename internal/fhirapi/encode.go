package fhirapi

import (
	"bytes"
	"encoding/json"
	"sort"
)

// marshalResource encodes a resource (or any JSON value) compactly, with
// "resourceType", "id" and "meta" first when v is an object, the other
// members in sorted order, and without HTML escaping.
func marshalResource(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeValue(&buf, v, true); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var leading = []string{"resourceType", "id", "meta"}

func encodeValue(buf *bytes.Buffer, v any, top bool) error {
	m, ok := v.(map[string]any)
	if !ok {
		return encodeOther(buf, v)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if top && (k == "resourceType" || k == "id" || k == "meta") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if top {
		var lead []string
		for _, k := range leading {
			if _, ok := m[k]; ok {
				lead = append(lead, k)
			}
		}
		keys = append(lead, keys...)
	}
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encodeOther(buf, k); err != nil {
			return err
		}
		buf.WriteByte(':')
		// contained resources keep the resource member order too
		sub := m[k]
		if k == "contained" || k == "resource" {
			if arr, ok := sub.([]any); ok {
				buf.WriteByte('[')
				for j, e := range arr {
					if j > 0 {
						buf.WriteByte(',')
					}
					if err := encodeValue(buf, e, true); err != nil {
						return err
					}
				}
				buf.WriteByte(']')
				continue
			}
			if err := encodeValue(buf, sub, true); err != nil {
				return err
			}
			continue
		}
		if err := encodeValue(buf, sub, false); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}

func encodeOther(buf *bytes.Buffer, v any) error {
	if arr, ok := v.([]any); ok {
		buf.WriteByte('[')
		for i, e := range arr {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeValue(buf, e, false); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
	return nil
}
