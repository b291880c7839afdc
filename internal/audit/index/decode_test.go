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
	// With references made relative as it decodes: what relativize
	// makes of the decoded event. (The base is one the fuzz inputs can
	// name: "https://h/" or the seeds' server.)
	for _, base := range []string{"https://h/", "https://warden.test/fhir/"} {
		want, err1 := reused.decodeShape(b, auditEventShape)
		if err1 == nil {
			relativize(want, base, 0)
		}
		cut := any(want)
		var wantCopy any
		if err1 == nil {
			wantCopy = deepCopy(cut)
		}
		reused.release()
		got, err2 := reused.decodeRelative(b, auditEventShape, base)
		if (err1 != nil) != (err2 != nil) || err1 == nil && !reflect.DeepEqual(any(got), wantCopy) {
			t.Fatalf("decodeRelative(%q, %q) = %#v, %v; want %#v, %v", b, base, got, err2, wantCopy, err1)
		}
		reused.release()
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
		// References to the base (made relative), to elsewhere and not
		// to Type/id (kept), and an escape that leaves it to encoding/json.
		`{"resourceType":"AuditEvent","entity":[{"what":{"reference":"https://h/Patient/p1"}},{"what":{"reference":"https://h/a/b/c"}},{"what":{"reference":"https://x/Patient/p2"}}],"agent":[{"who":{"reference":"https://warden.test/fhir/Practitioner/pr1"}}]}`,
		`{"resourceType":"AuditEvent","entity":[{"what":{"reference":"https://h/Patient/p1"}}],"source":{"site":"\u0041"}}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// TestDecodeRelative: references to the base come out relative, on
// both of the decoder's paths; others are left as they are.
func TestDecodeRelative(t *testing.T) {
	seeds := decodeSeeds(t)
	for _, b := range seeds[len(seeds)-2:] {
		ev, err := reused.decodeRelative(b, auditEventShape, "https://h/")
		if err != nil {
			t.Fatal(err)
		}
		what := ev["entity"].([]any)[0].(map[string]any)["what"].(map[string]any)
		if what["reference"] != "Patient/p1" {
			t.Fatalf("%s: entity[0] reference %v", b, what["reference"])
		}
		if es := ev["entity"].([]any); len(es) == 3 {
			for i, want := range []string{"https://h/a/b/c", "https://x/Patient/p2"} {
				if got := es[i+1].(map[string]any)["what"].(map[string]any)["reference"]; got != want {
					t.Fatalf("entity[%d] reference %v, want %s", i+1, got, want)
				}
			}
		}
		reused.release()
	}
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

// deepCopy copies a decoded JSON value (maps and slices anew), so that
// it outlives the decoder's release.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		if v == nil {
			return v
		}
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}

// TestFormatLastUpdated: the indexer's formatter writes what Format with
// the API's layout writes, for times across the years and to the
// millisecond.
func TestFormatLastUpdated(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 11, 30, 9, 5, 7, 123_456_789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.FixedZone("x", 3600)),
		time.Unix(0, 0).UTC(),
	}
	for i := range 2000 {
		times = append(times, time.Unix(int64(i)*7_919_993_611%253_402_300_799, int64(i)*104_729%1_000_000_000).UTC())
	}
	for _, at := range times {
		at = at.Truncate(time.Millisecond)
		if got, want := formatLastUpdated(at), at.Format(lastUpdatedLayout); got != want {
			t.Fatalf("formatLastUpdated(%v) = %q, want %q", at, got, want)
		}
	}
}

// BenchmarkPrepareRead is the indexer's work on one read's event before
// its store write: decoding the journal entry and the event, references
// made relative, meta.lastUpdated, the search entries and the Patient
// compartment.
func BenchmarkPrepareRead(b *testing.B) {
	reg, err := searchparam.R4()
	if err != nil {
		b.Fatal(err)
	}
	x := &Indexer{reg: reg, shape: eventShape(reg), base: "https://warden.test/fhir/", canonical: true}
	at := time.Date(2026, 11, 30, 9, 0, 0, 123456789, time.UTC)
	r := audit.Record{RequestID: "0a1b2c3d4e5f60718293a4b5", Time: at, Duration: 3 * time.Millisecond, Surface: audit.SurfaceFHIR,
		Action: "read", Method: "GET", Path: "/fhir/Patient/0b3c6a2e-5b1c-4c2f-9a3e-1f2d3c4b5a69", Status: 200,
		ClientID: "bench-backend", Subject: "bench-backend", TokenID: "5f1e0c8a9b7d6e4f3a2b1c0d",
		Patients: []string{"0b3c6a2e-5b1c-4c2f-9a3e-1f2d3c4b5a69"}, Resources: []string{"Patient/0b3c6a2e-5b1c-4c2f-9a3e-1f2d3c4b5a69/_history/1"}}
	canonical, err := audit.AppendCanonical(nil, r, "https://warden.test/fhir", "0a1b2c3d4e5f60718293a4b5")
	if err != nil {
		b.Fatal(err)
	}
	c, err := audit.Commit(canonical)
	if err != nil {
		b.Fatal(err)
	}
	entry, err := audit.JournalEntry{ID: "0a1b2c3d4e5f60718293a4b5", Leaf: c.Leaf, Nonce: c.Nonce, Time: at, Canonical: canonical,
		Patients: r.Patients}.Encode()
	if err != nil {
		b.Fatal(err)
	}
	var dec eventDecoder
	var buf []searchparam.Entry
	for b.Loop() {
		w, err := x.write(&dec, entry, &buf)
		if err != nil || len(w.Patients) != 1 {
			b.Fatal(w.Patients, err)
		}
		buf = buf[:0]
	}
}
