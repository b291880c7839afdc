package eventdb

import (
	"bytes"
	"slices"
	"testing"
)

// The stored form of an event round-trips, and no bytes make decodeEvent
// panic or read past its input.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte("ev-1"), []byte("p1"), []byte(`{"resourceType":"AuditEvent"}`), false)
	f.Add([]byte(""), []byte(""), []byte(""), true)
	f.Add([]byte("\x00\xff"), []byte("x"), []byte("{}"), true)
	f.Fuzz(func(t *testing.T, id, patient, body []byte, raw bool) {
		if raw {
			// Any bytes: an error or a value, never a panic.
			_, _, _, _ = decodeEvent(slices.Concat(id, patient, body))
			return
		}
		patients := []string{string(patient)}
		v := encodeEvent(string(id), patients, body)
		gotID, gotPatients, gotBody, err := decodeEvent(v)
		if err != nil {
			t.Fatalf("decode(encode): %v", err)
		}
		if gotID != string(id) || !slices.Equal(gotPatients, patients) || !bytes.Equal(gotBody, body) {
			t.Fatalf("round trip: %q %q %q, want %q %q %q", gotID, gotPatients, gotBody, id, patients, body)
		}
	})
}

// A cursor decodes only from the form encode gives, and back to it.
func FuzzCursor(f *testing.F) {
	p := makePos(1_700_000_000_000_000, 42)
	for _, c := range []cursor{{at: p}, {at: p, spec: "d-l+", back: true}} {
		f.Add(c.encode())
	}
	f.Add("Ef")
	f.Add("Eb" + string(make([]byte, 33)))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}
		if again, err := decodeCursor(c.encode()); err != nil || again != c {
			t.Fatalf("%q: decoded %+v, which encodes to %q and decodes to %+v, %v", s, c, c.encode(), again, err)
		}
	})
}
