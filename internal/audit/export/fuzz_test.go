package export_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit/export"
)

// FuzzParseMessage: whatever ParseMessage accepts, AppendMessage encodes,
// and parsing that encoding gives the same message back.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`<86>1 2026-03-01T08:00:00.126456Z warden-test warden - R [warden@32473 id="ab" outcome="0" subtype="read"] ` + "\xEF\xBB\xBF" + `{"id":"ab"}`))
	f.Add([]byte(`<0>1 - - - - - -`))
	f.Add([]byte(`<191>1 2003-10-11T22:14:15.003000-07:00 h a p m [a b="\"\\\]"][c]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := export.ParseMessage(b)
		if err != nil {
			if !errors.Is(err, export.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		enc, err := export.AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("parsed %q but cannot encode it: %v", b, err)
		}
		m2, err := export.ParseMessage(enc)
		if err != nil {
			t.Fatalf("cannot parse the encoding %q: %v", enc, err)
		}
		if !equalMessages(m, m2) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, m2)
		}
		enc2, _ := export.AppendMessage(nil, m2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("the encoding is not stable: %q, %q", enc, enc2)
		}
	})
}

// FuzzRoundTrip: a message built from arbitrary fields either is refused
// by AppendMessage or comes back through a frame unchanged (the
// timestamp to the microsecond RFC 5424 keeps).
func FuzzRoundTrip(f *testing.F) {
	f.Add(86, int64(1772352000123456789), "warden-test", "R", "warden@32473", "id", `a"b]c\d`, []byte(`{"resourceType":"AuditEvent"}`))
	f.Add(0, int64(0), "", "", "x", "y", "", []byte(nil))
	f.Add(191, int64(-1), "h o", "m", "a=b", "c", "é", []byte("\xff"))
	f.Fuzz(func(t *testing.T, pri int, unixNano int64, host, msgid, sdid, name, value string, msg []byte) {
		m := export.Message{Facility: pri / 8, Severity: pri % 8, Hostname: host, AppName: "warden", MsgID: msgid,
			Data: []export.Element{{ID: sdid, Params: []export.Param{{name, value}}}}, Msg: msg}
		if unixNano != 0 {
			m.Timestamp = time.Unix(0, unixNano)
		}
		b, err := export.AppendMessage(nil, m)
		if err != nil {
			if !errors.Is(err, export.ErrInvalidMessage) {
				t.Fatalf("error %v is not ErrInvalidMessage", err)
			}
			return
		}
		r := bufio.NewReader(bytes.NewReader(export.AppendFrame(nil, b)))
		frame, err := export.ReadFrame(r, len(b))
		if err != nil || !bytes.Equal(frame, b) {
			t.Fatalf("ReadFrame = %q, %v", frame, err)
		}
		if _, err := export.ReadFrame(r, len(b)); err != io.EOF {
			t.Fatalf("after the frame: %v, want io.EOF", err)
		}
		got, err := export.ParseMessage(frame)
		if err != nil {
			t.Fatalf("ParseMessage(%q): %v", frame, err)
		}
		m.Timestamp = m.Timestamp.Truncate(time.Microsecond)
		if len(m.Msg) == 0 {
			m.Msg = nil
		}
		if !equalMessages(got, m) {
			t.Fatalf("got\n%+v\nwant\n%+v", got, m)
		}
	})
}

// FuzzReadFrame: every frame ReadFrame takes from a stream is the exact
// bytes AppendFrame would write for it, and it never reads past max.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("5 hello3 abc"), 8)
	f.Add([]byte("0 x"), 8)
	f.Add([]byte("12345678901 x"), 1<<20)
	f.Add([]byte("9 short"), 100)
	f.Fuzz(func(t *testing.T, stream []byte, max int) {
		max = max%4096 + 1
		if max < 1 {
			max += 4096
		}
		rest := stream
		r := bufio.NewReader(bytes.NewReader(stream))
		for {
			frame, err := export.ReadFrame(r, max)
			if err != nil {
				return
			}
			if len(frame) > max {
				t.Fatalf("frame of %d octets past max %d", len(frame), max)
			}
			enc := export.AppendFrame(nil, frame)
			if !bytes.HasPrefix(rest, enc) {
				t.Fatalf("frame %q does not re-encode to the bytes read", frame)
			}
			rest = rest[len(enc):]
		}
	})
}

// Timestamps are taken only in the shape RFC 5424 §6.2.3 allows, not in
// every shape time.Parse's RFC 3339 takes.
func TestParseMessageTimestamps(t *testing.T) {
	for ts, ok := range map[string]bool{
		"2003-10-11T22:14:15Z":             true,
		"2003-10-11T22:14:15.003Z":         true,
		"2003-10-11T22:14:15.123456-07:00": true,
		"2003-10-11T22:14:15+01:00":        true,
		"2003-10-11T22:14:15.1234567Z":     false, // seven fractional digits
		"2003-10-11T22:14:15,003Z":         false, // comma before the fraction
		"2003-10-11T2:14:15.003Z":          false, // one-digit hour
		"2003-10-11t22:14:15Z":             false, // lower-case t
		"2003-10-11T22:14:15z":             false,
		"2003-10-11T22:14:15.Z":            false,
		"2003-10-11T22:14:15+0100":         false,
		"2003-10-11T22:14:15":              false, // no offset
		"03-10-11T22:14:15Z":               false,
	} {
		_, err := export.ParseMessage([]byte("<13>1 " + ts + " h a p m -"))
		if (err == nil) != ok {
			t.Errorf("timestamp %s: error %v, want accepted %v", ts, err, ok)
		}
	}
}
