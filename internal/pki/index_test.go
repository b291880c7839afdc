package pki

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"testing"
)

func TestParseIndexRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":          `{`,
		"unknown field":     `{"version":1,"crl_number":0,"certificates":[],"extra":1}`,
		"wrong version":     `{"version":2,"crl_number":0,"certificates":[]}`,
		"negative number":   `{"version":1,"crl_number":-1,"certificates":[]}`,
		"trailing document": `{"version":1,"crl_number":0,"certificates":[]} {}`,
		"bad serial":        `{"version":1,"crl_number":0,"certificates":[{"serial":"xyz","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"valid"}]}`,
		"non-canonical":     `{"version":1,"crl_number":0,"certificates":[{"serial":"0A","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"valid"}]}`,
		"duplicate serial":  `{"version":1,"crl_number":0,"certificates":[{"serial":"a","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"valid"},{"serial":"a","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"valid"}]}`,
		"unknown kind":      `{"version":1,"crl_number":0,"certificates":[{"serial":"a","kind":"ca","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"valid"}]}`,
		"unknown status":    `{"version":1,"crl_number":0,"certificates":[{"serial":"a","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"held"}]}`,
		"revoked, no time":  `{"version":1,"crl_number":0,"certificates":[{"serial":"a","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"revoked"}]}`,
		"valid with reason": `{"version":1,"crl_number":0,"certificates":[{"serial":"a","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"valid","reason":1}]}`,
		"hold reason":       `{"version":1,"crl_number":0,"certificates":[{"serial":"a","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"revoked","revoked_at":"2026-01-02T00:00:00Z","reason":6}]}`,
	} {
		if _, err := parseIndex([]byte(doc)); !errors.Is(err, ErrBadIndex) {
			t.Errorf("%s: parseIndex = %v", name, err)
		}
	}
}

// FuzzParseIndex: an accepted index survives writing and reading back
// unchanged (what Open accepts, the next write keeps).
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"version":1,"crl_number":2,"certificates":[{"serial":"a","kind":"client","name":"a","subject":"CN=a","not_before":"2026-01-01T00:00:00Z","not_after":"2026-02-01T00:00:00Z","status":"revoked","revoked_at":"2026-01-02T00:00:00Z","reason":1}]}`))
	f.Add([]byte(`{"version":1,"crl_number":0,"certificates":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := parseIndex(b)
		if err != nil {
			if !errors.Is(err, ErrBadIndex) {
				t.Fatalf("error %v is not ErrBadIndex", err)
			}
			return
		}
		out, err := json.Marshal(ix)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseIndex(out)
		if err != nil {
			t.Fatalf("re-reading %s: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if string(out) != string(out2) {
			t.Fatalf("index changed on a round trip:\n%s\n%s", out, out2)
		}
	})
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]int64{"0a": 10, "0A": 10, "0x0a": 10, "01:00": 256, " ff ": 255} {
		if n, err := ParseSerial(in); err != nil || n.Cmp(big.NewInt(want)) != 0 {
			t.Errorf("ParseSerial(%q) = %v, %v", in, n, err)
		}
	}
	for _, in := range []string{"", "0", "00", "-1", "g", "0x", "1 2", "12345678901234567890123456789012345678901"} {
		if _, err := ParseSerial(in); !errors.Is(err, ErrBadSerial) {
			t.Errorf("ParseSerial(%q) = %v", in, err)
		}
	}
}

// FuzzParseSerial: an accepted serial is positive, at most 20 octets
// (RFC 5280 §4.1.2.2), and its canonical form parses to the same number.
func FuzzParseSerial(f *testing.F) {
	for _, s := range []string{"0a", "01:ab:CD", "0xff", "-1", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSerial(s)
		if err != nil {
			return
		}
		if n.Sign() <= 0 || len(n.Bytes()) > 20 {
			t.Fatalf("%q accepted as %v", s, n)
		}
		m, err := ParseSerial(FormatSerial(n))
		if err != nil || m.Cmp(n) != 0 || !reflect.DeepEqual(FormatSerial(m), FormatSerial(n)) {
			t.Fatalf("%q → %s → %v, %v", s, FormatSerial(n), m, err)
		}
	})
}
