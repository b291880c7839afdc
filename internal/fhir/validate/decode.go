package validate

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits bound what Decode accepts. A zero field takes its default.
type Limits struct {
	MaxBytes      int64 // size of the body; default DefaultMaxBytes
	MaxDepth      int   // nesting of objects and arrays; default DefaultMaxDepth
	MaxArrayLen   int   // items in one array; default DefaultMaxArrayLen
	MaxObjectKeys int   // properties of one object; default DefaultMaxObjectKeys
}

// Default limits. A FHIR resource nests about 10 levels deep (a Bundle
// entry's Questionnaire items a few more) and no R4 type has more than a
// few hundred properties, even counting "_" siblings and choice types.
const (
	DefaultMaxBytes      = 10 << 20
	DefaultMaxDepth      = 64
	DefaultMaxArrayLen   = 100_000
	DefaultMaxObjectKeys = 1_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxArrayLen <= 0 {
		l.MaxArrayLen = DefaultMaxArrayLen
	}
	if l.MaxObjectKeys <= 0 {
		l.MaxObjectKeys = DefaultMaxObjectKeys
	}
	return l
}

// The reasons Decode rejects a body; a *DecodeError wraps one of them.
var (
	ErrTooLarge      = errors.New("body exceeds the size limit")
	ErrTooDeep       = errors.New("JSON nests deeper than the limit")
	ErrTooManyItems  = errors.New("array or object exceeds the size limit")
	ErrSyntax        = errors.New("malformed JSON")
	ErrInvalidUTF8   = errors.New("text is not valid UTF-8")
	ErrDuplicateKey  = errors.New("object has a duplicate property")
	ErrTrailingData  = errors.New("data after the JSON value")
	ErrNotObject     = errors.New("JSON value is not an object")
	ErrLoneSurrogate = errors.New("string escapes a lone UTF-16 surrogate")
)

// DecodeError is a body that Decode rejects. Its text names the reason and
// the byte offset, never the content.
type DecodeError struct {
	Err    error // one of the Err* values above
	Offset int64 // byte offset of the problem in the body
	// Expression locates the problem, FHIRPath-like ("Patient.name[0]"),
	// as far as the decoder got; it names properties, not values. Empty
	// for problems with the body as a whole.
	Expression string
}

func (e *DecodeError) Error() string {
	return e.Err.Error() + " (at byte " + strconv.FormatInt(e.Offset, 10) + ")"
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Code is the FHIR IssueType for the error: too-costly for exceeded
// limits, structure otherwise.
func (e *DecodeError) Code() string {
	switch e.Err {
	case ErrTooLarge, ErrTooDeep, ErrTooManyItems:
		return "too-costly"
	}
	return "structure"
}

// Decode parses a resource body (RFC 8259 JSON) into maps, slices,
// strings, booleans, nil and json.Number (numbers keep their exact text, so
// decimals keep their precision). It is stricter than encoding/json:
//
//   - the body must be a single JSON object, with nothing but whitespace
//     after it (R4 §2.6.2: a resource is a JSON object);
//   - an object must not have the same property twice (after unescaping);
//   - all text must be valid UTF-8 and \u escapes must not leave a lone
//     surrogate (R4 §2.6.2.3: strings are Unicode);
//   - size, nesting depth, array length and object size are bounded by lim.
//
// It does not check FHIR rules; Validate does.
func Decode(body []byte, lim Limits) (map[string]any, error) {
	lim = lim.withDefaults()
	if int64(len(body)) > lim.MaxBytes {
		return nil, &DecodeError{Err: ErrTooLarge, Offset: lim.MaxBytes}
	}
	d := decoder{data: body, lim: lim}
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		if d.pos >= len(d.data) {
			return nil, d.fail(ErrSyntax)
		}
		return nil, d.fail(ErrNotObject)
	}
	v, err := d.object()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.fail(ErrTrailingData)
	}
	return v, nil
}

type decoder struct {
	data  []byte
	pos   int
	lim   Limits
	depth int
	// path is the stack of property names and array indexes leading to
	// the value being parsed, for DecodeError.Expression.
	path []step
	root string // the top-level resourceType, once seen
}

type step struct {
	key   string
	index int // -1 for a property
}

func (d *decoder) fail(err error) error {
	return &DecodeError{Err: err, Offset: int64(d.pos), Expression: d.expression()}
}

func (d *decoder) expression() string {
	if len(d.path) == 0 {
		return ""
	}
	root := d.root
	if root == "" {
		root = "Resource"
	}
	b := []byte(root)
	for _, s := range d.path {
		if s.index >= 0 {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.index), 10)
			b = append(b, ']')
		} else {
			b = append(b, '.')
			b = append(b, s.key...)
		}
	}
	return string(b)
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return nil, d.fail(ErrSyntax)
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.fail(ErrSyntax)
}

func (d *decoder) literal(lit string) error {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return d.fail(ErrSyntax)
	}
	d.pos += len(lit)
	return nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > d.lim.MaxDepth {
		return d.fail(ErrTooDeep)
	}
	return nil
}

func (d *decoder) object() (map[string]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // '{'
	m := make(map[string]any, 8)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return m, nil
	}
	d.path = append(d.path, step{index: -1})
	top := len(d.path) - 1
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.fail(ErrSyntax)
		}
		keyAt := d.pos
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		d.path[top].key = key
		if _, dup := m[key]; dup {
			d.pos = keyAt
			return nil, d.fail(ErrDuplicateKey)
		}
		if len(m) == d.lim.MaxObjectKeys {
			d.pos = keyAt
			return nil, d.fail(ErrTooManyItems)
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.fail(ErrSyntax)
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[key] = v
		if top == 0 && key == "resourceType" {
			d.root, _ = v.(string)
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.fail(ErrSyntax)
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.path = d.path[:top]
			d.depth--
			return m, nil
		default:
			return nil, d.fail(ErrSyntax)
		}
	}
}

func (d *decoder) array() ([]any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.pos++ // '['
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return []any{}, nil
	}
	a := make([]any, 0, 4)
	d.path = append(d.path, step{})
	top := len(d.path) - 1
	for {
		d.path[top].index = len(a)
		if len(a) == d.lim.MaxArrayLen {
			return nil, d.fail(ErrTooManyItems)
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.fail(ErrSyntax)
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.path = d.path[:top]
			d.depth--
			return a, nil
		default:
			return nil, d.fail(ErrSyntax)
		}
	}
}

// number scans an RFC 8259 §6 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() (json.Number, error) {
	start := d.pos
	p := d.pos
	if d.data[p] == '-' {
		p++
	}
	n := countDigits(d.data[p:])
	if n == 0 || d.data[p] == '0' && n > 1 {
		d.pos = p
		return "", d.fail(ErrSyntax)
	}
	p += n
	if p < len(d.data) && d.data[p] == '.' {
		p++
		n = countDigits(d.data[p:])
		if n == 0 {
			d.pos = p
			return "", d.fail(ErrSyntax)
		}
		p += n
	}
	if p < len(d.data) && (d.data[p] == 'e' || d.data[p] == 'E') {
		p++
		if p < len(d.data) && (d.data[p] == '+' || d.data[p] == '-') {
			p++
		}
		n = countDigits(d.data[p:])
		if n == 0 {
			d.pos = p
			return "", d.fail(ErrSyntax)
		}
		p += n
	}
	d.pos = p
	return json.Number(d.data[start:p]), nil
}

func countDigits(b []byte) int {
	i := 0
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// str scans a string (RFC 8259 §7) starting at its opening quote.
func (d *decoder) str() (string, error) {
	d.pos++ // '"'
	start := d.pos
	ascii := true
	for p := start; p < len(d.data); p++ {
		c := d.data[p]
		switch {
		case c == '"':
			s := d.data[start:p]
			if !ascii && !utf8.Valid(s) {
				d.pos = start + invalidUTF8At(s)
				return "", d.fail(ErrInvalidUTF8)
			}
			d.pos = p + 1
			return string(s), nil
		case c == '\\':
			d.pos = p
			return d.escaped(start)
		case c < 0x20:
			d.pos = p
			return "", d.fail(ErrSyntax)
		case c >= 0x80:
			ascii = false
		}
	}
	d.pos = len(d.data)
	return "", d.fail(ErrSyntax)
}

// escaped finishes a string that contains escapes; d.pos is at the first
// backslash, start just after the opening quote.
func (d *decoder) escaped(start int) (string, error) {
	if !utf8.Valid(d.data[start:d.pos]) {
		d.pos = start + invalidUTF8At(d.data[start:d.pos])
		return "", d.fail(ErrInvalidUTF8)
	}
	buf := make([]byte, d.pos-start, d.pos-start+16)
	copy(buf, d.data[start:d.pos])
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return string(buf), nil
		case c < 0x20:
			return "", d.fail(ErrSyntax)
		case c == '\\':
			if d.pos+1 >= len(d.data) {
				return "", d.fail(ErrSyntax)
			}
			switch e := d.data[d.pos+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4(d.pos + 2)
				if !ok {
					return "", d.fail(ErrSyntax)
				}
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if d.pos+11 < len(d.data) && d.data[d.pos+6] == '\\' && d.data[d.pos+7] == 'u' {
						r2, ok = d.hex4(d.pos + 8)
					}
					r = utf16.DecodeRune(r, r2)
					if !ok || r == utf8.RuneError {
						return "", d.fail(ErrLoneSurrogate)
					}
					d.pos += 6
				}
				buf = utf8.AppendRune(buf, r)
				d.pos += 4
			default:
				return "", d.fail(ErrSyntax)
			}
			d.pos += 2
		case c < 0x80:
			buf = append(buf, c)
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && n <= 1 {
				return "", d.fail(ErrInvalidUTF8)
			}
			buf = append(buf, d.data[d.pos:d.pos+n]...)
			d.pos += n
		}
	}
	return "", d.fail(ErrSyntax)
}

func (d *decoder) hex4(p int) (rune, bool) {
	if p+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[p : p+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func invalidUTF8At(s []byte) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(s)
}
