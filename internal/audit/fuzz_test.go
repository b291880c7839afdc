package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzCanonical: for any JSON object, Canonical either refuses it with
// ErrNotCanonical or returns valid JSON that means the same and that is a
// fixed point (decoding and re-encoding gives the same bytes).
func FuzzCanonical(f *testing.F) {
	f.Add([]byte(`{"b":1,"a":[true,null,"x"]}`))
	f.Add([]byte(`{"\u20ac":1e21,"\r":-0.0,"\ud83d\ude00":"\u2028"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var in map[string]any
		if dec.Decode(&in) != nil || in == nil {
			return
		}
		out, err := Canonical(in)
		if err != nil {
			if !errors.Is(err, ErrNotCanonical) {
				t.Fatalf("error outside ErrNotCanonical: %v", err)
			}
			return
		}
		var back map[string]any
		dec = json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("Canonical gave invalid JSON %q: %v", out, err)
		}
		again, err := Canonical(back)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("not a fixed point: %q then %q (%v)", out, again, err)
		}
		var a, b any
		json.Unmarshal(data, &a)
		json.Unmarshal(out, &b)
		if !jsonEqual(a, b) {
			t.Fatalf("meaning changed: %q -> %q", data, out)
		}
	})
}

// jsonEqual compares decoded JSON, numbers as float64 (so -0 equals 0,
// which RFC 8785 writes as 0).
func jsonEqual(a, b any) bool { return reflect.DeepEqual(a, b) }

// FuzzBuildCanonical: whatever the request path puts in a Record, Build
// either refuses it with ErrInvalidRecord or gives an AuditEvent whose
// canonical bytes are the same on every call and after a JSON round trip
// (so map iteration order never shows), and that validates against R4.
func FuzzBuildCanonical(f *testing.F) {
	f.Add("0a1b2c", "read", "alice", "Practitioner/1", "app", "p1", "name", "Smith", "TREAT", "", 200)
	f.Add("r-2", "search-type", "", "", "backend", "Patient/x", "code", "a|b", "system|code", "rule", 403)
	f.Add("r.3", "create", "é\u2028", "https://h/Patient/9", "c\"l", "p", "_q\x00", "\t", "ETREAT", "why", 500)
	f.Fuzz(func(t *testing.T, reqID, action, subject, fhirUser, client, patient, qk, qv, purpose, reason string, status int) {
		r := Record{
			RequestID: reqID, Time: t0, Duration: time.Millisecond, Surface: SurfaceFHIR, Action: action,
			Method: "GET", Path: "/fhir/" + patient, Query: url.Values{qk: {qv}}, Status: status,
			ClientID: client, Subject: subject, FHIRUser: fhirUser, OnBehalfOf: fhirUser,
			PurposeOfUse: []string{purpose}, BreakGlassReason: reason, DenyRule: reason, Review: reason,
			PeerAddr: netip.MustParseAddr("192.0.2.1"), Patients: []string{patient, patient},
			Resources: []string{"Patient/" + patient},
		}
		ev, err := Build(r, testBase)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("error outside ErrInvalidRecord: %v", err)
			}
			for _, s := range []string{subject, fhirUser, client, patient, qv, reason} {
				if len(s) > 3 && strings.Contains(err.Error(), s) {
					t.Fatalf("error %q quotes input %q", err, s)
				}
			}
			return
		}
		first, err := Canonical(ev)
		if err != nil {
			t.Fatalf("Canonical(Build) failed: %v", err)
		}
		ev2, _ := Build(r, testBase)
		second, _ := Canonical(ev2)
		var back map[string]any
		if err := json.Unmarshal(first, &back); err != nil {
			t.Fatal(err)
		}
		third, _ := Canonical(back)
		if !bytes.Equal(first, second) || !bytes.Equal(first, third) {
			t.Fatalf("unstable canonical form:\n%s\n%s\n%s", first, second, third)
		}
		checkValid(t, ev)
	})
}
