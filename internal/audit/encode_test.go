package audit

import (
	"bytes"
	"errors"
	"net/netip"
	"net/url"
	"testing"
	"time"
)

// canonicalOfBuild is the reference AppendCanonical must equal.
func canonicalOfBuild(r Record, base, id string) ([]byte, error) {
	ev, err := Build(r, base)
	if err != nil {
		return nil, err
	}
	ev["id"] = id
	return Canonical(ev)
}

// fuzzRecord makes a Record from fuzz input; each bit of mask leaves one
// optional part out, so every combination of present and absent parts
// is reached.
func fuzzRecord(mask uint32, surface uint8, action, s1, s2, s3 string, status int) Record {
	on := func(bit uint) bool { return mask&(1<<bit) == 0 }
	r := Record{RequestID: "req-1", Time: t0, Duration: 3 * time.Millisecond, Action: action, Status: status}
	r.Surface = []string{SurfaceFHIR, SurfaceAuth, SurfaceAdmin}[int(surface)%3]
	pick := func(bit uint, v string) string {
		if on(bit) {
			return v
		}
		return ""
	}
	r.Method = pick(0, "GET")
	r.Path = pick(1, "/fhir/"+s1)
	if on(2) {
		r.Query = url.Values{s1: {s2}, "code": {s3}, "password": {s2}}
	}
	r.ClientID = pick(3, s1)
	r.Subject = pick(4, s2)
	r.FHIRUser = pick(5, s3)
	r.OnBehalfOf = pick(6, s3)
	r.TokenID = pick(7, s2+"/jti")
	r.CertThumbprint = pick(8, "thumb-"+s1)
	if on(9) {
		r.PeerAddr = netip.MustParseAddr("2001:db8::1")
	}
	if on(10) {
		r.PurposeOfUse = []string{s2, "TREAT", "http://x|BTG"}
	}
	r.BreakGlassReason = pick(11, s3)
	r.Review = pick(12, s1)
	r.DenyRule = pick(13, s2)
	if on(14) {
		r.Patients = []string{"p1", "Patient/p2", "p1"}
	}
	if on(15) {
		r.Resources = []string{"Patient/p1", "Observation/o1/_history/2"}
	}
	if on(16) {
		for i := range MaxResources + 1 {
			r.Resources = append(r.Resources, "Observation/o"+string(rune('a'+i%26)))
		}
	}
	if on(17) {
		r.Outcome = OutcomeMajor
	}
	if on(18) {
		r.Effective = r.Time.Add(3 * time.Millisecond)
	}
	return r
}

// FuzzAppendCanonical: the request path's encoder writes exactly the
// bytes of Canonical(Build), or fails exactly when Build does.
func FuzzAppendCanonical(f *testing.F) {
	f.Add(uint32(0), uint8(0), "read", "alice", "Practitioner/1", "https://h.example/fhir/Patient/9", 200)
	f.Add(uint32(0xffffffff), uint8(1), "token", "", "", "", 0)
	f.Add(uint32(0x5555), uint8(2), "client-add", "é\u2028", "c\"l\\", "urn:x", 403)
	f.Add(uint32(0xaaaa), uint8(0), "search-type", "a b", "\t", "Patient/x", 500)
	f.Add(uint32(1<<5), uint8(1), "login", "s", "sub", "", 401)
	f.Fuzz(func(t *testing.T, mask uint32, surface uint8, action, s1, s2, s3 string, status int) {
		r := fuzzRecord(mask, surface, action, s1, s2, s3, status)
		for _, base := range []string{testBase, "", "not a url\x00"} {
			want, werr := canonicalOfBuild(r, base, "ev-1")
			got, gerr := AppendCanonical([]byte("prefix"), r, base, "ev-1")
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("base %q: Build error %v, AppendCanonical error %v", base, werr, gerr)
			}
			if werr != nil {
				if !errors.Is(gerr, ErrInvalidRecord) && !errors.Is(gerr, ErrNotCanonical) {
					t.Fatalf("unexpected error %v", gerr)
				}
				continue
			}
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("base %q:\nAppendCanonical %s\nCanonical(Build) %s", base, got, want)
			}
		}
	})
}

// Every combination of present and absent parts, on each surface.
func TestAppendCanonicalMatchesBuild(t *testing.T) {
	actions := map[int][]string{0: {"read", "search-type", "create", "operation", "transaction"}, 1: {"token", "login", "authorize", "discovery"}, 2: {"client-add", "launch-create"}}
	users := []string{"Practitioner/1", "https://h.example/fhir/Patient/9", "urn:uuid:1", ""}
	n := 0
	for s := range 3 {
		for _, a := range actions[s] {
			for _, u := range users {
				for mask := uint32(0); mask < 1<<19; mask += 8191 {
					r := fuzzRecord(mask, uint8(s), a, "app-1", "user-1", u, 200+int(mask%300))
					want, err := canonicalOfBuild(r, testBase, "ev-1")
					if err != nil {
						t.Fatalf("Build: %v", err)
					}
					got, err := AppendCanonical(nil, r, testBase, "ev-1")
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%s %s mask %x: %v\n got %s\nwant %s", r.Surface, a, mask, err, got, want)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d records compared", n)
}
