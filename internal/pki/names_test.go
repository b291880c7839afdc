package pki

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseSPIFFEID(t *testing.T) {
	good := map[string]SPIFFEID{
		"spiffe://hospital-a.example":                 {TrustDomain: "hospital-a.example"},
		"spiffe://hospital-a.example/ns/lab/sa/b_1.x": {TrustDomain: "hospital-a.example", Path: "/ns/lab/sa/b_1.x"},
		"spiffe://td_1/A-b":                           {TrustDomain: "td_1", Path: "/A-b"},
	}
	for s, want := range good {
		if got, err := ParseSPIFFEID(s); err != nil || got != want || got.String() != s {
			t.Errorf("ParseSPIFFEID(%q) = %+v, %v", s, got, err)
		}
	}
	for _, s := range []string{
		"", "spiffe://", "spiffe:///path", "spiffe://td/", "spiffe://td//a", "spiffe://td/./a",
		"spiffe://td/a/..", "spiffe://TD/a", "spiffe://td:1/a", "spiffe://u@td/a", "spiffe://td/a?b",
		"spiffe://td/a#b", "spiffe://td/a%20b", "spiffe://td/a b", "SPIFFE://td/a", "spiffe:td/a",
		"https://td/a", "spiffe://td/" + strings.Repeat("a", 2048),
	} {
		if _, err := ParseSPIFFEID(s); !errors.Is(err, ErrBadSPIFFEID) {
			t.Errorf("ParseSPIFFEID(%q) = %v, want ErrBadSPIFFEID", s, err)
		}
	}
}

// FuzzParseSPIFFEID: an accepted ID prints back to the same bytes, and a
// URL parser agrees on its scheme, host and path (so what the index
// records is what relying parties match).
func FuzzParseSPIFFEID(f *testing.F) {
	for _, s := range []string{"spiffe://hospital-a.example/ns/lab", "spiffe://td", "spiffe://td/a/../b", "spiffe://TD/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseSPIFFEID(s)
		if err != nil {
			if !errors.Is(err, ErrBadSPIFFEID) {
				t.Fatalf("error %v is not ErrBadSPIFFEID", err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("%q parsed to %+v", s, id)
		}
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "spiffe" || u.Host != id.TrustDomain || u.Path != id.Path || u.RawQuery != "" || u.User != nil || u.Port() != "" {
			t.Fatalf("url.Parse(%q) = %+v, %v; we said %+v", s, u, err, id)
		}
		if _, err := checkURI(s); err != nil {
			t.Fatalf("checkURI refuses an accepted SPIFFE ID %q: %v", s, err)
		}
	})
}

func TestCheckDNSName(t *testing.T) {
	for _, s := range []string{"localhost", "fhir.hospital-a.example", "xn--hpital-fva.example", "a1.b2", "1a.example"} {
		if err := CheckDNSName(s, false); err != nil {
			t.Errorf("CheckDNSName(%q) = %v", s, err)
		}
	}
	if err := CheckDNSName("*.api.example", true); err != nil {
		t.Errorf("wildcard: %v", err)
	}
	for _, s := range []string{"", ".", "a..b", "a.", ".a", "-a", "a-", "a_b", "a b", "é.example", "*.api.example", "123", "1.2.3.4", "::1", strings.Repeat("a.", 127) + "a"} {
		if err := CheckDNSName(s, false); !errors.Is(err, ErrBadDNSName) {
			t.Errorf("CheckDNSName(%q) = %v", s, err)
		}
	}
}

// FuzzCheckDNSName: an accepted name fits RFC 1035's limits, has only
// letter-digit-hyphen labels (a "*" leftmost when wildcards are allowed)
// and is accepted whatever its case.
func FuzzCheckDNSName(f *testing.F) {
	for _, s := range []string{"fhir.example", "*.a.example", "a..b", "1.2.3.4", "xn--hpital-fva.example"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, wildcard bool) {
		if err := CheckDNSName(s, wildcard); err != nil {
			if !errors.Is(err, ErrBadDNSName) {
				t.Fatalf("error %v is not ErrBadDNSName", err)
			}
			return
		}
		if len(s) > 253 {
			t.Fatalf("%d bytes accepted", len(s))
		}
		for i, l := range strings.Split(s, ".") {
			if i == 0 && l == "*" && wildcard {
				continue
			}
			if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" || l[0] == '-' || l[len(l)-1] == '-' {
				t.Fatalf("%q accepted with label %q", s, l)
			}
		}
		if err := CheckDNSName(strings.ToUpper(s), wildcard); err != nil {
			t.Fatalf("%q accepted but not in upper case: %v", s, err)
		}
	})
}
