package index

import (
	"slices"
	"unicode/utf8"

	"github.com/wardenfhir/warden/internal/fhir/rawjson"
)

// storedBody returns the AuditEvent the searchable copy stores for the
// journaled event ev, edited as bytes instead of decoded and encoded
// again: meta gains versionId "1" and lastUpdated, and every entity loses
// its query (see Indexer.write). Re-encoding was a tenth of the indexer's
// CPU.
//
// The journal holds events in canonical JSON (audit.AppendCanonical), of
// which audit.Canonical is a fixed point; storedBody gives the bytes
// audit.Canonical gives for the edited event (a test holds it to that
// over every kind of event the pipeline writes). It follows only the
// levels it edits, and there insists on the canonical layout: no white
// space, member names in order without escapes or non-ASCII characters
// (byte order is then RFC 8785's order), one top-level meta object
// (or none) without versionId or lastUpdated. For anything else ok is
// false and the caller encodes the event itself.
func storedBody(ev []byte, lastUpdated string) (out []byte, ok bool) {
	top, ok := members(ev, 0)
	if !ok || !plainString(lastUpdated) {
		return nil, false
	}
	type edit struct {
		from, to int // ev[from:to] is replaced
		with     []byte
	}
	var edits []edit
	var meta *member
	for i := range top {
		switch m := &top[i]; string(ev[m.key:m.keyEnd]) {
		case "meta":
			if meta != nil || ev[m.value] != '{' {
				return nil, false
			}
			meta = m
		case "entity":
			if ev[m.value] != '[' {
				continue
			}
			elems, ok := elements(ev, m.value)
			if !ok {
				return nil, false
			}
			for _, start := range elems {
				if ev[start] != '{' {
					continue
				}
				ms, ok := members(ev, start)
				if !ok {
					return nil, false
				}
				for j, q := range ms {
					if string(ev[q.key:q.keyEnd]) != "query" {
						continue
					}
					// The member and the comma that joins it to the others.
					switch {
					case j > 0:
						edits = append(edits, edit{from: q.start - 1, to: q.end})
					case len(ms) > 1:
						edits = append(edits, edit{from: q.start, to: q.end + 1})
					default:
						edits = append(edits, edit{from: q.start, to: q.end})
					}
				}
			}
		}
	}
	var inMeta []member
	if meta != nil {
		if inMeta, ok = members(ev, meta.value); !ok {
			return nil, false
		}
	}
	added := []struct{ key, member string }{
		{"lastUpdated", `"lastUpdated":"` + lastUpdated + `"`},
		{"versionId", `"versionId":"1"`},
	}
	newMeta := make([]byte, 0, 64+len(lastUpdated)+len(inMeta)*64)
	newMeta = append(newMeta, '{')
	k := 0
	for _, m := range inMeta {
		key := string(ev[m.key:m.keyEnd])
		if key == "lastUpdated" || key == "versionId" {
			return nil, false
		}
		for ; k < len(added) && added[k].key < key; k++ {
			newMeta = appendMember(newMeta, added[k].member)
		}
		newMeta = appendMember(newMeta, string(ev[m.start:m.end]))
	}
	for ; k < len(added); k++ {
		newMeta = appendMember(newMeta, added[k].member)
	}
	newMeta = append(newMeta, '}')
	switch {
	case meta != nil:
		edits = append(edits, edit{from: meta.value, to: meta.end, with: newMeta})
	case len(top) == 0:
		edits = append(edits, edit{from: 1, to: 1, with: append([]byte(`"meta":`), newMeta...)})
	default:
		// A new member where the order puts it: before the first name
		// after "meta", or last.
		at := slices.IndexFunc(top, func(m member) bool { return string(ev[m.key:m.keyEnd]) > "meta" })
		if at < 0 {
			end := top[len(top)-1].end
			edits = append(edits, edit{from: end, to: end, with: append([]byte(`,"meta":`), newMeta...)})
		} else {
			with := append(append([]byte(`"meta":`), newMeta...), ',')
			edits = append(edits, edit{from: top[at].start, to: top[at].start, with: with})
		}
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.from - b.from })

	out = make([]byte, 0, len(ev)+len(newMeta))
	at := 0
	for _, e := range edits {
		if e.from < at {
			return nil, false
		}
		out = append(out, ev[at:e.from]...)
		out = append(out, e.with...)
		at = e.to
	}
	return append(out, ev[at:]...), true
}

// plainString reports whether s is printable ASCII without '"' or '\\':
// a JSON string of it needs no escapes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func appendMember(b []byte, m string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return append(b, m...)
}

// member is one "key":value of an object in canonical layout: ev[start:end]
// is the whole member, ev[key:keyEnd] the name without quotes, ev[value:end]
// the value.
type member struct {
	start, key, keyEnd, value, end int
}

// members lists the members of the object opening at ev[open], in the
// canonical layout storedBody accepts; ok is false for anything else.
func members(ev []byte, open int) (ms []member, ok bool) {
	if open >= len(ev) || ev[open] != '{' {
		return nil, false
	}
	i := open + 1
	if i < len(ev) && ev[i] == '}' {
		return nil, true
	}
	for i < len(ev) && ev[i] == '"' {
		end := rawjson.StringEnd(ev, i)
		if end < 0 || end+1 >= len(ev) || ev[end+1] != ':' {
			return nil, false
		}
		for _, c := range ev[i+1 : end] {
			if c == '\\' || c >= utf8.RuneSelf {
				return nil, false
			}
		}
		if len(ms) > 0 && string(ev[ms[len(ms)-1].key:ms[len(ms)-1].keyEnd]) >= string(ev[i+1:end]) {
			return nil, false // not in canonical order
		}
		v := end + 2
		stop := rawjson.ValueEnd(ev, v)
		if stop < 0 || stop >= len(ev) {
			return nil, false
		}
		ms = append(ms, member{start: i, key: i + 1, keyEnd: end, value: v, end: stop})
		switch ev[stop] {
		case ',':
			i = stop + 1
		case '}':
			return ms, true
		default:
			return nil, false
		}
	}
	return nil, false
}

// elements lists where the elements of the array opening at ev[open]
// start, in canonical layout.
func elements(ev []byte, open int) (starts []int, ok bool) {
	i := open + 1
	if i < len(ev) && ev[i] == ']' {
		return nil, true
	}
	for i < len(ev) {
		stop := rawjson.ValueEnd(ev, i)
		if stop < 0 || stop >= len(ev) {
			return nil, false
		}
		starts = append(starts, i)
		switch ev[stop] {
		case ',':
			i = stop + 1
		case ']':
			return starts, true
		default:
			return nil, false
		}
	}
	return nil, false
}
