package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonical returns the canonical JSON of event: object members sorted by
// key, no insignificant whitespace, strings escaped as RFC 8785 (JCS) §3.2.2.2
// prescribes (only '"', '\\' and control characters; no HTML escaping),
// keys ordered by UTF-16 code units (§3.2.3) and numbers in the ECMAScript
// form of §3.2.2.3. The bytes it returns are what a Commitment commits to,
// so the same event always gives the same bytes.
//
// It accepts the values Build produces and those encoding/json decodes
// (map[string]any, []any, string, bool, nil, float64, json.Number, the
// integer types); anything else, NaN, infinities and invalid UTF-8 are
// ErrNotCanonical.
func Canonical(event map[string]any) ([]byte, error) {
	stack := memberStacks.Get().(*[]member)
	defer memberStacks.Put(stack)
	b := &canonicalWriter{buf: make([]byte, 0, 4096), members: (*stack)[:0]}
	err := writeValue(b, event, 0)
	if err != nil {
		// writeValue clears what it pushed unless it failed half-way.
		clear(b.members[:cap(b.members)])
	}
	*stack = b.members[:0]
	if err != nil {
		return nil, err
	}
	return b.buf, nil
}

// memberStacks are Canonical's stacks of object members, reused.
var memberStacks = sync.Pool{New: func() any { s := make([]member, 0, 64); return &s }}

// canonicalWriter is the output buffer of Canonical.
type canonicalWriter struct {
	buf     []byte
	members []member // stack of the members of the objects being written
}

// member is one name/value pair of an object.
type member struct {
	key   string
	value any
}

func (w *canonicalWriter) WriteByte(c byte) error { w.buf = append(w.buf, c); return nil }
func (w *canonicalWriter) WriteString(s string)   { w.buf = append(w.buf, s...) }

// maxDepth bounds recursion on hostile input.
const maxDepth = 64

func writeValue(b *canonicalWriter, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested too deeply", ErrNotCanonical)
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		return writeString(b, v)
	case map[string]any:
		// The members of all open objects share one stack: nested objects
		// push theirs after ours, and a reallocation leaves ours intact.
		start := len(b.members)
		for k, e := range v {
			b.members = append(b.members, member{k, e})
		}
		members := b.members[start:]
		sortMembers(members)
		b.WriteByte('{')
		for i, m := range members {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeString(b, m.key); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := writeValue(b, m.value, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		clear(b.members[start:])
		b.members = b.members[:start]
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeValue(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case int:
		b.WriteString(strconv.FormatInt(int64(v), 10))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case uint64:
		b.WriteString(strconv.FormatUint(v, 10))
	case float64:
		return writeNumber(b, v)
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return fmt.Errorf("%w: number", ErrNotCanonical)
		}
		return writeNumber(b, f)
	default:
		return fmt.Errorf("%w: unsupported type %T", ErrNotCanonical, v)
	}
	return nil
}

// writeNumber writes f as ECMAScript's Number.prototype.toString does
// (RFC 8785 §3.2.2.3): integers without exponent below 1e21, otherwise the
// shortest round-tripping digits.
func writeNumber(b *canonicalWriter, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%w: NaN or infinity", ErrNotCanonical)
	}
	if f == 0 {
		b.WriteByte('0') // -0 too
		return nil
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		b.WriteString(strconv.FormatFloat(f, 'f', -1, 64))
		return nil
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // 1e+21, 1.5e-07
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	b.WriteString(mant)
	b.WriteByte('e')
	b.WriteByte(sign)
	b.WriteString(exp)
	return nil
}

// writeString writes s as a JSON string escaped per RFC 8785 §3.2.2.2:
// only '"', '\\' and control characters are escaped, everything else is
// written as is (so s must be valid UTF-8).
func writeString(b *canonicalWriter, s string) error {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		// Eight plain ASCII bytes at a time: most of an event is.
		if i+8 <= len(s) && plainWord(load64(s[i:i+8])) {
			i += 8
			continue
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Errorf("%w: invalid UTF-8", ErrNotCanonical)
			}
			i += n
			continue
		}
		if plainASCII[c] {
			i++
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		i++
		start = i
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
	return nil
}

// plainWord reports whether all eight bytes of w are plain ASCII (see
// plainASCII): none is at or above 0x80, below 0x20, '"' or '\\'. It is
// the classic test for a zero byte, (v - 0x01…01) &^ v & 0x80…80,
// applied to w itself (bytes below 0x20 become "zero" after subtracting
// 0x20 from each) and to w XOR '"' and w XOR '\\'; a byte at or above
// 0x80, which the test could also flag, makes the word not plain anyway.
func plainWord(w uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	return (w&highs | (w-0x20*ones)&^w&highs | zero(w^'"'*ones) | zero(w^'\\'*ones)) == 0
}

// load64 is the first eight bytes of s as a little-endian word (the
// compiler makes it one load).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plainASCII marks the ASCII bytes a JSON string holds unescaped.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// sortMembers sorts object members by key in UTF-16 code units. UTF-8
// byte order is code point order, which differs from UTF-16 order only for
// characters above U+FFFF (4-byte sequences, lead byte 0xF0..0xF4):
// without them a byte comparison is exact.
func sortMembers(ms []member) {
	for _, m := range ms {
		for i := 0; i < len(m.key); i++ {
			if m.key[i] >= 0xF0 {
				slices.SortFunc(ms, func(a, b member) int { return compareUTF16(a.key, b.key) })
				return
			}
		}
	}
	if len(ms) > 12 {
		slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
		return
	}
	for i := 1; i < len(ms); i++ { // insertion sort: objects are small
		for j := i; j > 0 && ms[j].key < ms[j-1].key; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// compareUTF16 orders strings by their UTF-16 code units (RFC 8785
// §3.2.3). It equals byte order except where a character above U+FFFF
// meets one in U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return unitOf(ra) - unitOf(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// unitOf returns the first UTF-16 code unit of r.
func unitOf(r rune) int {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return int(hi)
	}
	return int(r)
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }
