package index

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// decodeEvent parses a journaled event into the generic form the search
// index extracts from: what encoding/json's Decoder with UseNumber gives
// for a JSON object (map[string]any, []any, string, json.Number, bool,
// nil). The journal holds canonical JSON (RFC 8785 as package audit
// writes it), and decoding it dominated the indexer's cost, so the
// common shape has a direct parser: strings without escapes, numbers,
// literals, objects and arrays. Anything else — an escape, invalid
// UTF-8, a syntax error, deep nesting, a value that is not an object —
// goes to encoding/json, whose answer (value or error) is the
// indexer's; the fast parser never answers differently from it, which a
// fuzz test holds.
func decodeEvent(b []byte) (map[string]any, error) {
	var d eventDecoder
	return d.decode(b)
}

// An eventDecoder is decodeEvent reusing the maps and slices of the
// events it decoded before: the indexer decodes every event into a tree
// of some fifty small maps that are garbage once its store write is
// built, and allocating them anew was most of the indexer's allocation.
// Call release once nothing of the decoded events is used any more.
type eventDecoder struct {
	p eventParser
}

// maxFree bounds the maps and slices an eventDecoder keeps for reuse.
const maxFree = 4096

func (d *eventDecoder) decode(b []byte) (map[string]any, error) {
	return d.decodeShape(b, nil)
}

// decodeShape is decode building only what shape s holds (nil: all of
// it): the other members are read past, checked as decode checks them,
// so that it takes the fast path exactly when decode does; encoding/json,
// when it decides, gives the whole event.
func (d *eventDecoder) decodeShape(b []byte, s *searchparam.Shape) (map[string]any, error) {
	return d.decodeRelative(b, s, "")
}

// decodeRelative is decodeShape with every reference to base made
// relative, as relativize makes them: the fast parser does it as it
// reads each "reference" member, saving a walk over the decoded event
// (3 of the indexer's ~34 µs per event, docs/PERFORMANCE.md, session 19).
func (d *eventDecoder) decodeRelative(b []byte, s *searchparam.Shape, base string) (map[string]any, error) {
	d.p.b, d.p.i, d.p.slow, d.p.base = b, 0, false, base
	if ev, ok := d.p.event(s); ok {
		return ev, nil
	}
	jd := json.NewDecoder(bytes.NewReader(b))
	jd.UseNumber()
	var ev map[string]any
	if err := jd.Decode(&ev); err != nil {
		return nil, err
	}
	if base != "" {
		relativize(ev, base, 0)
	}
	return ev, nil
}

// release makes the maps and slices of every event decoded since the
// last release reusable: those events MUST NOT be used afterwards.
func (d *eventDecoder) release() {
	p := &d.p
	for _, m := range p.used {
		if len(p.freeMaps) < maxFree {
			clear(m)
			p.freeMaps = append(p.freeMaps, m)
		}
	}
	for _, a := range p.usedArrays {
		if len(p.freeArrays) < maxFree {
			clear(a)
			p.freeArrays = append(p.freeArrays, a[:0])
		}
	}
	clear(p.used)
	clear(p.usedArrays)
	p.used, p.usedArrays = p.used[:0], p.usedArrays[:0]
}

// eventParser is the fast parser of decodeEvent.
type eventParser struct {
	b    []byte
	i    int
	slow bool   // the input left the subset: encoding/json decides
	base string // references to it are made relative (decodeRelative)

	// Maps and slices handed out since the last eventDecoder.release,
	// and those free for reuse.
	used, freeMaps         []map[string]any
	usedArrays, freeArrays [][]any
}

// newMap returns an empty map, a reused one when there is one.
func (p *eventParser) newMap() map[string]any {
	var m map[string]any
	if n := len(p.freeMaps); n > 0 {
		m, p.freeMaps = p.freeMaps[n-1], p.freeMaps[:n-1]
	} else {
		m = make(map[string]any)
	}
	p.used = append(p.used, m)
	return m
}

// newArray returns an empty slice, a reused one when there is one; array
// records it for reuse once it is complete (after append has grown it,
// if it had to).
func (p *eventParser) newArray() []any {
	if n := len(p.freeArrays); n > 0 {
		a := p.freeArrays[n-1]
		p.freeArrays = p.freeArrays[:n-1]
		return a
	}
	return make([]any, 0, 4)
}

// maxEventDepth bounds nesting in the fast parser (events are about six
// levels deep); deeper input goes to encoding/json.
const maxEventDepth = 32

// event parses a whole input holding one object and nothing after it
// but whitespace.
func (p *eventParser) event(s *searchparam.Shape) (map[string]any, bool) {
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, false
	}
	v := p.value(0, s)
	p.space()
	if p.slow || p.i != len(p.b) {
		return nil, false
	}
	return v.(map[string]any), true
}

func (p *eventParser) fail() any {
	p.slow = true
	return nil
}

func (p *eventParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *eventParser) value(depth int, s *searchparam.Shape) any {
	if depth > maxEventDepth || p.i >= len(p.b) {
		return p.fail()
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth, s)
	case c == '[':
		return p.array(depth, s)
	case c == '"':
		raw, ok := p.rawString()
		if !ok {
			return p.fail()
		}
		// A string in an interface is allocated: the events' fixed
		// values are boxed once.
		if v, ok := eventValues[string(raw)]; ok {
			return v
		}
		return string(raw)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case p.literal("true"):
		return true
	case p.literal("false"):
		return false
	case p.literal("null"):
		return nil
	}
	return p.fail()
}

func (p *eventParser) literal(word string) bool {
	if bytes.HasPrefix(p.b[p.i:], []byte(word)) {
		p.i += len(word)
		return true
	}
	return false
}

func (p *eventParser) object(depth int, s *searchparam.Shape) any {
	p.i++ // '{'
	m := p.newMap()
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m
	}
	for !p.slow {
		p.space()
		k, ok := p.key()
		if !ok {
			return p.fail()
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail()
		}
		p.i++
		p.space()
		if sub, ok := s.Member(k); ok {
			v := p.value(depth+1, sub)
			if str, ok := v.(string); ok && k == "reference" && p.base != "" {
				v = relative(str, p.base)
			}
			m[k] = v
		} else {
			p.skip(depth + 1)
		}
		if p.slow {
			return nil
		}
		p.space()
		if p.i >= len(p.b) {
			return p.fail()
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m
		default:
			return p.fail()
		}
	}
	return nil
}

func (p *eventParser) array(depth int, s *searchparam.Shape) any {
	p.i++ // '['
	a := p.newArray()
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.usedArrays = append(p.usedArrays, a)
		return a
	}
	for !p.slow {
		p.space()
		a = append(a, p.value(depth+1, s))
		if p.slow {
			return nil
		}
		p.space()
		if p.i >= len(p.b) {
			return p.fail()
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			p.usedArrays = append(p.usedArrays, a)
			return a
		default:
			return p.fail()
		}
	}
	return nil
}

// skip reads past a value as value would read it, failing where it
// would fail, and builds nothing.
func (p *eventParser) skip(depth int) {
	if depth > maxEventDepth || p.i >= len(p.b) {
		p.fail()
		return
	}
	switch c := p.b[p.i]; {
	case c == '{', c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.space()
		if p.i < len(p.b) && p.b[p.i] == end {
			p.i++
			return
		}
		for !p.slow {
			p.space()
			if c == '{' {
				if _, ok := p.rawString(); !ok {
					p.fail()
					return
				}
				p.space()
				if p.i >= len(p.b) || p.b[p.i] != ':' {
					p.fail()
					return
				}
				p.i++
				p.space()
			}
			if p.skip(depth + 1); p.slow {
				return
			}
			p.space()
			switch {
			case p.i >= len(p.b):
				p.fail()
			case p.b[p.i] == ',':
				p.i++
			case p.b[p.i] == end:
				p.i++
				return
			default:
				p.fail()
			}
		}
	case c == '"':
		if _, ok := p.rawString(); !ok {
			p.fail()
		}
	case c == '-' || c >= '0' && c <= '9':
		if !p.scanNumber() {
			p.fail()
		}
	case p.literal("true"), p.literal("false"), p.literal("null"):
	default:
		p.fail()
	}
}

// key reads an object key (rawString); the keys the events use come
// from a table instead of a new allocation.
func (p *eventParser) key() (string, bool) {
	raw, ok := p.rawString()
	if !ok {
		return "", false
	}
	if s, ok := eventStrings[string(raw)]; ok {
		return s, true
	}
	return string(raw), true
}

// rawString reads a string without escapes or control characters, valid
// UTF-8 (encoding/json would replace invalid bytes: left to it), and
// returns its bytes in the input.
func (p *eventParser) rawString() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			raw := p.b[start:j]
			if !ascii && !utf8.Valid(raw) {
				return nil, false
			}
			p.i = j + 1
			return raw, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// number reads a JSON number (RFC 8259 §6) as a json.Number of its text.
func (p *eventParser) number() any {
	start := p.i
	if !p.scanNumber() {
		return p.fail()
	}
	return json.Number(p.b[start:p.i])
}

// scanNumber reads past a JSON number; false if there is none.
func (p *eventParser) scanNumber() bool {
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return false
		}
	}
	return true
}

func (p *eventParser) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// eventStrings are the object keys and the fixed values of the events
// package audit writes, shared by every decoded event instead of
// allocated for each (a lookup by a []byte converted in place does not
// allocate).
var eventStrings = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		// keys
		"action", "address", "agent", "altId", "code", "coding", "detail", "display", "entity",
		"extension", "id", "identifier", "meta", "name", "network", "observer", "outcome",
		"outcomeDesc", "period", "end", "start", "policy", "profile", "purposeOfEvent",
		"purposeOfUse", "query", "recorded", "reference", "requestor", "resourceType", "role",
		"site", "source", "subtype", "system", "text", "type", "url", "value", "valueString",
		"valueIdentifier", "what", "who", "lastUpdated", "versionId",
		// values
		"AuditEvent", "GET", "POST", "PUT", "DELETE", "PATCH", "R", "C", "U", "D", "E",
		"0", "1", "2", "4", "8", "12", "24", "200", "201", "204", "400", "401", "403", "404",
		"method", "path", "status", "deny-rule", "read", "vread", "search-type", "rest",
		"Warden", "Patient", "Person", "Domain Resource", "System Object", "Query",
		"RESTful Operation", "Application Server", "Source Role ID", "Destination Role ID",
		"User OAuth Agent participant", "information recipient", "UserOauthAgent", "IRCP",
		"110152", "110153", "TREAT", "XrequestId", "X-Request-Id",
		"urn:ietf:rfc:3986",
		"http://dicom.nema.org/resources/ontology/DCM",
		"http://hl7.org/fhir/restful-interaction",
		"http://terminology.hl7.org/CodeSystem/audit-entity-type",
		"http://terminology.hl7.org/CodeSystem/audit-event-type",
		"http://terminology.hl7.org/CodeSystem/object-role",
		"http://terminology.hl7.org/CodeSystem/security-source-type",
		"http://terminology.hl7.org/CodeSystem/v3-ActReason",
		"http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
		"https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
		"https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes",
	} {
		m[s] = s
	}
	return m
}()

// eventValues are eventStrings boxed once, for string values.
var eventValues = func() map[string]any {
	m := make(map[string]any, len(eventStrings))
	for s := range eventStrings {
		m[s] = s
	}
	return m
}()
