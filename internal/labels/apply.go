package labels

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Apply labels resource and returns it with meta.security replaced by
// Merge(existing meta.security, computed labels), so labels the client
// sent are kept and never lowered. Only the meta member is rewritten:
// every other byte of the resource is preserved; inside meta the members
// are re-encoded (semantically identical JSON) and existing security
// codings are kept byte-for-byte unless their confidentiality is raised.
// A resource without meta gets one after its first member.
func (l *Labeller) Apply(resource []byte) ([]byte, Result, error) {
	res, err := l.Label(resource)
	if err != nil {
		return nil, Result{}, err
	}
	out, err := applySecurity(resource, res.Security)
	if err != nil {
		return nil, Result{}, err
	}
	return out, res, nil
}

// ApplyLabels is Apply with labels the caller has already computed (for
// example Merge of Label and Propagate results).
func ApplyLabels(resource []byte, computed []Coding) ([]byte, error) {
	return applySecurity(resource, computed)
}

// member is a top-level member's value span in the resource bytes.
type member struct {
	key        string
	start, end int
}

func topLevelMembers(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedResource, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedResource)
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformedResource, err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w: object key expected", ErrMalformedResource)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformedResource, err)
		}
		end := int(dec.InputOffset())
		start := end - len(raw)
		if start < 0 || !bytes.Equal(data[start:end], raw) {
			return nil, fmt.Errorf("%w: cannot locate member %q", ErrMalformedResource, key)
		}
		for _, m := range ms {
			if m.key == key {
				return nil, fmt.Errorf("%w: duplicate member %q", ErrMalformedResource, key)
			}
		}
		ms = append(ms, member{key: key, start: start, end: end})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedResource, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the resource", ErrMalformedResource)
	}
	return ms, nil
}

func applySecurity(resource []byte, computed []Coding) ([]byte, error) {
	ms, err := topLevelMembers(resource)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: empty object", ErrMalformedResource)
	}
	var meta *member
	for i := range ms {
		if ms[i].key == "meta" {
			meta = &ms[i]
		}
	}
	metaObj := map[string]json.RawMessage{}
	var existingRaw []json.RawMessage
	if meta != nil {
		if err := json.Unmarshal(resource[meta.start:meta.end], &metaObj); err != nil || metaObj == nil {
			return nil, fmt.Errorf("%w: meta is not an object", ErrMalformedResource)
		}
		if raw, ok := metaObj["security"]; ok {
			if err := json.Unmarshal(raw, &existingRaw); err != nil {
				return nil, fmt.Errorf("%w: meta.security is not an array", ErrMalformedResource)
			}
		}
	}
	existing := make([]Coding, len(existingRaw))
	rawOf := map[Coding]json.RawMessage{}
	for i, raw := range existingRaw {
		var c Coding
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("%w: meta.security[%d]: %v", ErrMalformedResource, i, err)
		}
		existing[i] = c
		if _, dup := rawOf[c]; !dup {
			rawOf[c] = raw
		}
	}
	merged := Merge(existing, computed)
	sec := make([]json.RawMessage, len(merged))
	for i, c := range merged {
		if raw, ok := rawOf[c]; ok {
			sec[i] = raw
			continue
		}
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		sec[i] = b
	}
	secJSON, err := json.Marshal(sec)
	if err != nil {
		return nil, err
	}
	metaObj["security"] = secJSON
	metaJSON, err := json.Marshal(metaObj)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(resource) + len(metaJSON) + 16)
	if meta != nil {
		out.Write(resource[:meta.start])
		out.Write(metaJSON)
		out.Write(resource[meta.end:])
	} else {
		first := ms[0]
		out.Write(resource[:first.end])
		out.WriteString(`,"meta":`)
		out.Write(metaJSON)
		out.Write(resource[first.end:])
	}
	return out.Bytes(), nil
}
