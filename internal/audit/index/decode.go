package index

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
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
	p := eventParser{b: b}
	if ev, ok := p.event(); ok {
		return ev, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var ev map[string]any
	if err := d.Decode(&ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// eventParser is the fast parser of decodeEvent.
type eventParser struct {
	b    []byte
	i    int
	slow bool // the input left the subset: encoding/json decides
}

// maxEventDepth bounds nesting in the fast parser (events are about six
// levels deep); deeper input goes to encoding/json.
const maxEventDepth = 32

// event parses a whole input holding one object and nothing after it
// but whitespace.
func (p *eventParser) event() (map[string]any, bool) {
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, false
	}
	v := p.value(0)
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

func (p *eventParser) value(depth int) any {
	if depth > maxEventDepth || p.i >= len(p.b) {
		return p.fail()
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, ok := p.string(false)
		if !ok {
			return p.fail()
		}
		return s
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

func (p *eventParser) object(depth int) any {
	p.i++ // '{'
	m := make(map[string]any)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m
	}
	for !p.slow {
		p.space()
		k, ok := p.string(true)
		if !ok {
			return p.fail()
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail()
		}
		p.i++
		p.space()
		m[k] = p.value(depth + 1)
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

func (p *eventParser) array(depth int) any {
	p.i++ // '['
	a := make([]any, 0, 4)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a
	}
	for !p.slow {
		p.space()
		a = append(a, p.value(depth+1))
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
			return a
		default:
			return p.fail()
		}
	}
	return nil
}

// string reads a string without escapes or control characters, valid
// UTF-8 (encoding/json would replace invalid bytes: left to it). Object
// keys the events use come from a table instead of a new allocation.
func (p *eventParser) string(key bool) (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			raw := p.b[start:j]
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			p.i = j + 1
			if s, ok := eventStrings[string(raw)]; ok {
				return s, true
			}
			return string(raw), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// number reads a JSON number (RFC 8259 §6) as a json.Number of its text.
func (p *eventParser) number() any {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return p.fail()
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return p.fail()
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return p.fail()
		}
	}
	return json.Number(p.b[start:p.i])
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
