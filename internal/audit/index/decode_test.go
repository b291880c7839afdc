package index

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// slowDecode is what decodeEvent must agree with: encoding/json with
// UseNumber, the first value of the input into a map.
func slowDecode(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var ev map[string]any
	err := d.Decode(&ev)
	return ev, err
}

// checkDecode holds decodeEvent to encoding/json on b: the same value,
// or an error exactly when encoding/json errs; and, when the fast parser
// took b, the very same value.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := slowDecode(b)
	got, err := decodeEvent(b)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decodeEvent(%q) error %v, encoding/json %v", b, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeEvent(%q) = %#v, encoding/json %#v", b, got, want)
	}
	p := eventParser{b: b}
	fast, tookFull := p.event(nil)
	if tookFull && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
		t.Fatalf("fast parser took %q as %#v; encoding/json gives %#v, %v", b, fast, want, wantErr)
	}
	p = eventParser{b: b}
	if _, took := p.event(auditEventShape); took != tookFull {
		t.Fatalf("fast parser took %q: %v whole, %v to the indexer's shape", b, tookFull, took)
	}
	// Built only to the shape the indexer reads of an AuditEvent: the
	// same error, and what encoding/json gives, cut to that shape.
	// (Left to encoding/json, the whole event.)
	if wantErr == nil {
		shaped, err := reused.decodeShape(b, auditEventShape)
		cut := any(want)
		if tookFull {
			cut = auditEventShape.Cut(want)
		}
		if err != nil || !reflect.DeepEqual(any(shaped), cut) {
			t.Fatalf("decodeShape(%q) = %#v, %v; want %#v", b, shaped, err, cut)
		}
		reused.release()
	} else if _, err := reused.decodeShape(b, auditEventShape); err == nil {
		t.Fatalf("decodeShape(%q) took what encoding/json refuses: %v", b, wantErr)
	}
	// The same from a decoder reusing what every input before left it.
	got, err = reused.decode(b)
	defer reused.release()
	if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("reused decoder on %q: %#v, %v; encoding/json %#v, %v", b, got, err, want, wantErr)
	}
}

// auditEventShape is what the indexer decodes of an event.
var auditEventShape = func() *searchparam.Shape {
	reg, err := searchparam.R4()
	if err != nil {
		panic(err)
	}
	return eventShape(reg)
}()

// reused is checkDecode's decoder, kept from one input to the next (tests
// and fuzz inputs of a process run one at a time).
var reused eventDecoder

// decodeSeeds are events as package audit writes them and JSON at the
// edges of the fast parser's subset.
func decodeSeeds(t testing.TB) [][]byte {
	at := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	var seeds [][]byte
	for _, r := range []audit.Record{
		{RequestID: "r1", Time: at, Duration: time.Millisecond, Surface: audit.SurfaceFHIR, Action: "read", Method: "GET",
			Path: "/fhir/Patient/p1", Status: 200, ClientID: "app", Subject: "alice", FHIRUser: "Practitioner/pr1", TokenID: "jti",
			PurposeOfUse: []string{"TREAT"}, Patients: []string{"p1"}, Resources: []string{"Patient/p1/_history/2"}},
		{RequestID: "r2", Time: at, Surface: audit.SurfaceFHIR, Action: "search-type", Method: "GET", Path: "/fhir/Observation",
			Query: map[string][]string{"code": {"8867-4"}, "name": {"Zoë \"quoted\"\n"}}, Status: 403, DenyRule: "consent ✓",
			ClientID: "app", BreakGlassReason: "emergency"},
		{RequestID: "r3", Time: at, Surface: audit.SurfaceAuth, Action: "token", Method: "POST", Path: "/auth/token", Status: 400},
	} {
		b, err := audit.AppendCanonical(nil, r, "https://warden.test/fhir", "0123456789abcdef0123456789abcdef")
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, s := range []string{
		`{}`, ` {"a" : [ 1 , -0 , 2.5e-3 , 1E+9 , true , false , null , {} , [] ] } `, `{"a":"\u00e9"}`, `{"a":"\\"}`,
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":"x"} trailing`, `{"a":"x"}{"b":1}`, `[1]`, `null`, `"s"`,
		`{"a":"` + "\xff" + `"}`, `{"a":"` + "\x01" + `"}`, `{"a":tru}`, `{"a" 1}`, `{"a":1,}`, `{"a":[1,]}`, `{"a":1`,
		`{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}`,
		`{"dup":1,"dup":"two"}`, ``, `{"a":"𝄞"}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

func TestDecodeEvent(t *testing.T) {
	for _, b := range decodeSeeds(t) {
		checkDecode(t, b)
	}
	// The events audit writes take the fast path.
	for _, b := range decodeSeeds(t)[:3] {
		p := eventParser{b: b}
		if _, ok := p.event(nil); !ok {
			t.Errorf("the fast parser left an audit event to encoding/json: %.80s…", b)
		}
	}
}

// A decoder that reuses the maps and slices of released events decodes
// every seed, one after another, to what encoding/json gives, including
// after inputs that left the fast path half-way; and once warm it
// allocates a fraction of what decoding anew does.
func TestEventDecoderReuse(t *testing.T) {
	var d eventDecoder
	seeds := decodeSeeds(t)
	for round := range 3 {
		for _, b := range seeds {
			want, wantErr := slowDecode(b)
			got, err := d.decode(b)
			if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, reused decoder on %.60q: %#v, %v; encoding/json %#v, %v", round, b, got, err, want, wantErr)
			}
			d.release()
		}
	}
	// Two events decoded before one release are both whole.
	a, err := d.decode(seeds[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.decode(seeds[1]); err != nil {
		t.Fatal(err)
	}
	if want, _ := slowDecode(seeds[0]); !reflect.DeepEqual(a, want) {
		t.Fatal("decoding a second event changed the first before release")
	}
	d.release()
	ev := seeds[0]
	fresh := testing.AllocsPerRun(50, func() { decodeEvent(ev) })
	reused := testing.AllocsPerRun(50, func() { d.decode(ev); d.release() })
	if reused > fresh/3 {
		t.Fatalf("a reused decoder allocates %.0f times per event, a fresh one %.0f", reused, fresh)
	}
}

// FuzzDecodeEvent: on any input, decodeEvent answers what encoding/json
// answers (the same value, or an error exactly when it errs).
func FuzzDecodeEvent(f *testing.F) {
	for _, b := range decodeSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}

// BenchmarkDecodeEvent compares the fast parser with encoding/json on an
// event of a read.
func BenchmarkDecodeEvent(b *testing.B) {
	ev := decodeSeeds(b)[0]
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(ev)))
		for b.Loop() {
			if _, err := decodeEvent(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reused", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(ev)))
		var d eventDecoder
		for b.Loop() {
			if _, err := d.decode(ev); err != nil {
				b.Fatal(err)
			}
			d.release()
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(ev)))
		for b.Loop() {
			if _, err := slowDecode(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
