package export

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Message is one syslog message (RFC 5424 §6). Empty header strings and a
// zero Timestamp are the NILVALUE "-".
type Message struct {
	Facility  int // 0–23 (RFC 5424 §6.2.1); FacilityAuthpriv for audit events
	Severity  int // 0–7 (RFC 5424 §6.2.1)
	Timestamp time.Time
	Hostname  string // RFC 5424 §6.2.4: 1–255 printable US-ASCII
	AppName   string // §6.2.5: 1–48
	ProcID    string // §6.2.6: 1–128
	MsgID     string // §6.2.7: 1–32
	Data      []Element
	Msg       []byte // UTF-8; sent after a BOM (§6.4)
}

// Element is one SD-ELEMENT of STRUCTURED-DATA (RFC 5424 §6.3.1).
type Element struct {
	ID     string
	Params []Param
}

// Param is one SD-PARAM (RFC 5424 §6.3.3).
type Param struct {
	Name, Value string
}

// Facility and severity codes used by the exporter (RFC 5424 §6.2.1,
// Table 1 and Table 2).
const (
	FacilityAuthpriv = 10 // security/authorization messages (private)

	SeverityCritical = 2
	SeverityError    = 3
	SeverityWarning  = 4
	SeverityNotice   = 5
	SeverityInfo     = 6
)

// Errors of the syslog encoding; test with errors.Is.
var (
	// ErrInvalidMessage: a Message that RFC 5424 cannot carry (a header
	// field with spaces or too long, a bad SD-NAME, a Msg not UTF-8).
	ErrInvalidMessage = errors.New("export: invalid syslog message")
	// ErrMalformed: bytes that are not an RFC 5424 message or RFC 5425
	// frame. Its text names the part, never the content.
	ErrMalformed = errors.New("export: malformed syslog frame")
)

// bom is the UTF-8 byte order mark that introduces a UTF-8 MSG (RFC 5424
// §6.4).
const bom = "\xEF\xBB\xBF"

// timestampLayout is RFC 5424 §6.2.3: RFC 3339 with at most six
// fractional digits, here always in UTC.
const timestampLayout = "2006-01-02T15:04:05.999999Z07:00"

// headerField checks one header field: NILVALUE or 1*max PRINTUSASCII.
func headerField(name, s string, max int) error {
	if s == "-" || len(s) > max {
		return fmt.Errorf("%w: %s", ErrInvalidMessage, name)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return fmt.Errorf("%w: %s", ErrInvalidMessage, name)
		}
	}
	return nil
}

// sdName reports whether s is an SD-NAME: 1*32 PRINTUSASCII except '=',
// SP, ']' and '"' (RFC 5424 §6.3.3).
func sdName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			return false
		}
	}
	return true
}

// AppendMessage appends the RFC 5424 form of m to dst:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [SP BOM MSG]
//
// PARAM-VALUEs escape '"', '\' and ']' (RFC 5424 §6.3.3).
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	if m.Facility < 0 || m.Facility > 23 || m.Severity < 0 || m.Severity > 7 {
		return dst, fmt.Errorf("%w: priority", ErrInvalidMessage)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"hostname", m.Hostname, 255}, {"app-name", m.AppName, 48}, {"procid", m.ProcID, 128}, {"msgid", m.MsgID, 32}} {
		if err := headerField(f.name, f.v, f.max); err != nil {
			return dst, err
		}
	}
	if !utf8.Valid(m.Msg) {
		return dst, fmt.Errorf("%w: msg is not UTF-8", ErrInvalidMessage)
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(m.Facility*8+m.Severity), 10)
	dst = append(dst, ">1 "...)
	if m.Timestamp.IsZero() {
		dst = append(dst, '-')
	} else {
		t := m.Timestamp.UTC()
		if t.Year() > 9999 || t.Year() < 0 {
			return dst, fmt.Errorf("%w: timestamp", ErrInvalidMessage)
		}
		dst = t.AppendFormat(dst, timestampLayout)
	}
	for _, s := range []string{m.Hostname, m.AppName, m.ProcID, m.MsgID} {
		dst = append(dst, ' ')
		if s == "" {
			s = "-"
		}
		dst = append(dst, s...)
	}
	dst = append(dst, ' ')
	if len(m.Data) == 0 {
		dst = append(dst, '-')
	}
	for _, e := range m.Data {
		if !sdName(e.ID) {
			return dst, fmt.Errorf("%w: sd-id", ErrInvalidMessage)
		}
		dst = append(dst, '[')
		dst = append(dst, e.ID...)
		for _, p := range e.Params {
			if !sdName(p.Name) {
				return dst, fmt.Errorf("%w: param-name", ErrInvalidMessage)
			}
			if !utf8.ValidString(p.Value) {
				return dst, fmt.Errorf("%w: param-value is not UTF-8", ErrInvalidMessage)
			}
			dst = append(dst, ' ')
			dst = append(dst, p.Name...)
			dst = append(dst, '=', '"')
			for i := 0; i < len(p.Value); i++ {
				if c := p.Value[i]; c == '"' || c == '\\' || c == ']' {
					dst = append(dst, '\\')
				}
				dst = append(dst, p.Value[i])
			}
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	}
	if len(m.Msg) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, bom...)
		dst = append(dst, m.Msg...)
	}
	return dst, nil
}

// ParseMessage reads one RFC 5424 message (the inverse of AppendMessage).
// It is strict: VERSION 1 only, no leading zeros in PRI, TIME-SECFRAC of
// at most six digits, SD-NAMEs and escapes as §6.3 defines them. A MSG
// with a BOM loses it; a MSG that is not UTF-8 is refused.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	bad := func(part string) (Message, error) { return Message{}, fmt.Errorf("%w: %s", ErrMalformed, part) }
	if len(b) < 3 || b[0] != '<' {
		return bad("pri")
	}
	end := bytes.IndexByte(b[:min(len(b), 5)], '>')
	if end < 2 || (end > 2 && b[1] == '0') {
		return bad("pri")
	}
	pri, err := strconv.Atoi(string(b[1:end]))
	if err != nil || pri < 0 || pri > 191 || !allDigits(b[1:end]) {
		return bad("pri")
	}
	m.Facility, m.Severity = pri/8, pri%8
	rest := b[end+1:]
	if !bytes.HasPrefix(rest, []byte("1 ")) {
		return bad("version")
	}
	rest = rest[2:]
	field := func() (string, bool) {
		i := bytes.IndexByte(rest, ' ')
		if i <= 0 {
			return "", false
		}
		s := string(rest[:i])
		rest = rest[i+1:]
		return s, true
	}
	ts, ok := field()
	if !ok {
		return bad("timestamp")
	}
	if ts != "-" {
		if !validTimestamp(ts) {
			return bad("timestamp")
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || t.UTC().Year() > 9999 || t.UTC().Year() < 0 {
			return bad("timestamp")
		}
		m.Timestamp = t
	}
	for _, f := range []struct {
		name string
		dst  *string
		max  int
	}{{"hostname", &m.Hostname, 255}, {"app-name", &m.AppName, 48}, {"procid", &m.ProcID, 128}, {"msgid", &m.MsgID, 32}} {
		s, ok := field()
		if !ok || len(s) > f.max {
			return bad(f.name)
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 33 || s[i] > 126 {
				return bad(f.name)
			}
		}
		if s != "-" {
			*f.dst = s
		}
	}
	// STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT
	switch {
	case len(rest) > 0 && rest[0] == '-':
		rest = rest[1:]
	case len(rest) > 0 && rest[0] == '[':
		for len(rest) > 0 && rest[0] == '[' {
			var e Element
			var ok bool
			if e, rest, ok = parseElement(rest[1:]); !ok {
				return bad("structured-data")
			}
			m.Data = append(m.Data, e)
		}
	default:
		return bad("structured-data")
	}
	if len(rest) == 0 {
		return m, nil
	}
	if rest[0] != ' ' {
		return bad("structured-data")
	}
	rest = rest[1:]
	// Warden's messages are UTF-8 (MSG-UTF8); other octets are refused
	// rather than passed on.
	rest = bytes.TrimPrefix(rest, []byte(bom))
	if !utf8.Valid(rest) {
		return bad("msg")
	}
	if len(rest) > 0 {
		m.Msg = bytes.Clone(rest)
	}
	return m, nil
}

// parseElement reads SD-ID *(SP SD-PARAM) "]" after the "[".
func parseElement(b []byte) (Element, []byte, bool) {
	var e Element
	i := 0
	for i < len(b) && b[i] != ' ' && b[i] != ']' {
		i++
	}
	e.ID = string(b[:i])
	if !sdName(e.ID) || i == len(b) {
		return e, nil, false
	}
	b = b[i:]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
		eq := bytes.IndexByte(b, '=')
		if eq < 0 || !sdName(string(b[:eq])) || eq+1 >= len(b) || b[eq+1] != '"' {
			return e, nil, false
		}
		p := Param{Name: string(b[:eq])}
		b = b[eq+2:]
		var v []byte
		closed := false
		for j := 0; j < len(b); j++ {
			c := b[j]
			if c == '\\' && j+1 < len(b) && (b[j+1] == '"' || b[j+1] == '\\' || b[j+1] == ']') {
				v = append(v, b[j+1])
				j++
				continue
			}
			if c == '"' {
				b, closed = b[j+1:], true
				break
			}
			if c == ']' { // must be escaped (§6.3.3)
				return e, nil, false
			}
			v = append(v, c)
		}
		if !closed || !utf8.Valid(v) {
			return e, nil, false
		}
		p.Value = string(v)
		e.Params = append(e.Params, p)
	}
	if len(b) == 0 || b[0] != ']' {
		return e, nil, false
	}
	return e, b[1:], true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// validTimestamp checks the shape RFC 5424 §6.2.3 allows, stricter than
// time.Parse's RFC 3339 (which also takes a one-digit hour and a comma
// before the fraction): YYYY-MM-DDThh:mm:ss, at most six fractional digits
// after a '.', then 'Z' or ±hh:mm, upper-case 'T' and 'Z'.
func validTimestamp(s string) bool {
	digits := func(i, n int) bool {
		for k := i; k < i+n; k++ {
			if k >= len(s) || s[k] < '0' || s[k] > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(0, 4) || s[4] != '-' || !digits(5, 2) || s[7] != '-' || !digits(8, 2) || s[10] != 'T' ||
		!digits(11, 2) || s[13] != ':' || !digits(14, 2) || s[16] != ':' || !digits(17, 2) {
		return false
	}
	i := 19
	if s[i] == '.' {
		n := 0
		for digits(i+1+n, 1) {
			n++
		}
		if n == 0 || n > 6 {
			return false
		}
		i += 1 + n
	}
	rest := s[i:]
	return rest == "Z" || len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && digits(i+1, 2) && rest[3] == ':' && digits(i+4, 2)
}

// MaxFrame bounds the SYSLOG-MSG a ReadFrame accepts. RFC 5425 §4.3.1
// asks receivers to take at least 2048 octets and advises 8192; audit
// events listing many resources are longer, so the receiver that takes
// Warden's events must accept larger messages.
const MaxFrame = 1 << 20

// AppendFrame appends the RFC 5425 §4.3 octet-counting frame of msg
// (the bytes of an RFC 5424 message): MSG-LEN SP SYSLOG-MSG.
func AppendFrame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

// ReadFrame reads one RFC 5425 §4.3 frame and returns its SYSLOG-MSG:
// MSG-LEN = NONZERO-DIGIT 0*9DIGIT, at most max octets. At the end of the
// stream before a frame starts it returns io.EOF; inside a frame,
// io.ErrUnexpectedEOF.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	n := 0
	for digits := 0; ; digits++ {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if c == ' ' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || (digits == 0 && c == '0') || digits == 10 {
			return nil, fmt.Errorf("%w: msg-len", ErrMalformed)
		}
		n = n*10 + int(c-'0')
		if n > max {
			return nil, fmt.Errorf("%w: frame longer than %d octets", ErrMalformed, max)
		}
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}
