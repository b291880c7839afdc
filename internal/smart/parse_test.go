package smart

import (
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const labCategory = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

func TestParseScopesValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ResourceScope
	}{
		{"patient/Observation.rs", ResourceScope{Context: ContextPatient, Type: "Observation", Perms: PermRead | PermSearch}},
		{"user/*.cruds", ResourceScope{Context: ContextUser, Type: "*", Perms: PermAll}},
		{"system/Patient.r", ResourceScope{Context: ContextSystem, Type: "Patient", Perms: PermRead}},
		{"user/Encounter.c", ResourceScope{Context: ContextUser, Type: "Encounter", Perms: PermCreate}},
		{"system/*.s", ResourceScope{Context: ContextSystem, Type: "*", Perms: PermSearch}},
		{"patient/Appointment.cud", ResourceScope{Context: ContextPatient, Type: "Appointment", Perms: PermCreate | PermUpdate | PermDelete}},
		{"patient/Slot.rd", ResourceScope{Context: ContextPatient, Type: "Slot", Perms: PermRead | PermDelete}},
		// v1
		{"patient/*.read", ResourceScope{Context: ContextPatient, Type: "*", Perms: PermRead | PermSearch, V1: true}},
		{"user/Observation.write", ResourceScope{Context: ContextUser, Type: "Observation", Perms: PermCreate | PermUpdate | PermDelete, V1: true}},
		{"patient/*.*", ResourceScope{Context: ContextPatient, Type: "*", Perms: PermAll, V1: true}},
		{"system/MedicationRequest.*", ResourceScope{Context: ContextSystem, Type: "MedicationRequest", Perms: PermAll, V1: true}},
		// granular
		{"patient/Observation.rs?category=" + labCategory, ResourceScope{Context: ContextPatient, Type: "Observation", Perms: PermRead | PermSearch,
			Query: url.Values{"category": {labCategory}}}},
		{"patient/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory", ResourceScope{Context: ContextPatient, Type: "Observation", Perms: PermRead | PermSearch,
			Query: url.Values{"category": {labCategory}}}},
		{"user/Observation.s?code=8867-4&category=vital-signs", ResourceScope{Context: ContextUser, Type: "Observation", Perms: PermSearch,
			Query: url.Values{"category": {"vital-signs"}, "code": {"8867-4"}}}},
		{"patient/Condition.rs?category=b&category=a&category=b", ResourceScope{Context: ContextPatient, Type: "Condition", Perms: PermRead | PermSearch,
			Query: url.Values{"category": {"a", "b"}}}},
		{"patient/Observation.r?code:text=blood+pressure", ResourceScope{Context: ContextPatient, Type: "Observation", Perms: PermRead,
			Query: url.Values{"code:text": {"blood pressure"}}}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			sc, unknown := ParseScopes(tc.in)
			if len(unknown) != 0 {
				t.Fatalf("unknown = %q", unknown)
			}
			tc.want.Raw = tc.in
			if len(sc.Resources) != 1 || !reflect.DeepEqual(sc.Resources[0], tc.want) {
				t.Fatalf("got %+v, want %+v", sc.Resources, tc.want)
			}
			if len(sc.Other) != 0 {
				t.Errorf("Other = %q", sc.Other)
			}
		})
	}
}

func TestParseScopesOther(t *testing.T) {
	sc, unknown := ParseScopes("profile openid fhirUser launch launch/patient launch/encounter offline_access online_access")
	if len(unknown) != 0 || len(sc.Resources) != 0 {
		t.Fatalf("unknown = %q, resources = %v", unknown, sc.Resources)
	}
	want := []string{"fhirUser", "launch", "launch/encounter", "launch/patient", "offline_access", "online_access", "openid", "profile"}
	if !slices.Equal(sc.Other, want) {
		t.Errorf("Other = %q, want %q", sc.Other, want)
	}
	for _, o := range want {
		if !sc.Has(o) {
			t.Errorf("Has(%q) = false", o)
		}
	}
	if sc.Has("patient/*.rs") || sc.Has("") {
		t.Error("Has reports a scope that is not there")
	}
}

// TestParseScopesInvalid lists the ways a scope can be wrong; every one
// must land in unknown, never in the typed scopes.
func TestParseScopesInvalid(t *testing.T) {
	for _, in := range []string{
		"patient/Observation.sr",     // letters out of order
		"patient/Observation.rr",     // letter repeated
		"patient/Observation.rsr",    // letter repeated after another
		"patient/Observation.x",      // unknown letter
		"patient/Observation.crudsx", // trailing unknown letter
		"patient/Observation.",       // no permissions
		"patient/Observation",        // no dot
		"patient/Observation.READ",   // v1 is lower case
		"patient/Observation.Read",
		"patient/Observation.rs.rs",           // two permission parts
		"patient/observation.rs",              // types are case-sensitive
		"patient/Foo.rs",                      // not an R4 resource type
		"patient/Resource.rs",                 // abstract
		"patient/DomainResource.rs",           // abstract
		"patient/Quantity.rs",                 // a data type
		"patient/.rs",                         // no type
		"patient//Observation.rs",             // empty segment
		"patient/**.rs",                       // not a wildcard
		"Patient/Observation.rs",              // contexts are lower case
		"group/Observation.rs",                // no such context
		"/Observation.rs",                     // no context
		"patient/Observation.read?category=a", // v1 has no granular form
		"patient/Observation.*?category=a",
		"patient/*.rs?category=a",                   // query on the wildcard
		"patient/Observation.rs?",                   // empty query
		"patient/Observation.rs?category=",          // empty value
		"patient/Observation.rs?category",           // no value
		"patient/Observation.rs?=laboratory",        // empty key
		"patient/Observation.rs?category=%zz",       // bad escape
		"patient/Observation.rs?a=b;c=d",            // semicolons are not separators
		"patient/Observation.rs?cat%20egory=a",      // key is not a parameter name
		"patient/Observation.rs?category=a&&code=b", // empty pair
		"patient/Observation.rs?&category=a",
		"patient/Observation.rs?category=a&",
		"patient/Observation.rs\"",   // '"' is not a scope-token character
		"patient/Observation.rs\\",   // nor '\'
		"patient/Observation.rs\t",   // nor tab
		"patient/Observation.r\x00s", // nor NUL
		"patient/Observation.rés",    // nor non-ASCII
		"launch/Location",            // launch context Warden does not offer
		"launch/patient?role=x",
		"__custom", // extension scope
		"http://example.com/scope",
		"OPENID", // names are case-sensitive
		"openid2",
		"fhiruser",
		"patient",
		"*",
	} {
		sc, unknown := ParseScopes(in)
		if len(sc.Resources) != 0 || len(sc.Other) != 0 {
			t.Errorf("%q parsed as %+v", in, sc)
		}
		if !slices.Equal(unknown, []string{in}) {
			t.Errorf("%q: unknown = %q", in, unknown)
		}
	}
}

func TestParseScopesCollapsesAndKeepsOrder(t *testing.T) {
	in := "openid patient/Observation.read foo launch patient/Condition.rs openid patient/Observation.rs  foo user/*.cruds user/*.* patient/Observation.rs?code=b&code=a patient/Observation.rs?code=a&code=b"
	sc, unknown := ParseScopes(in)
	var got []string
	for _, r := range sc.Resources {
		got = append(got, r.Raw)
	}
	want := []string{"patient/Observation.read", "patient/Condition.rs", "user/*.cruds", "patient/Observation.rs?code=b&code=a"}
	if !slices.Equal(got, want) {
		t.Errorf("resources = %q, want %q", got, want)
	}
	if !slices.Equal(sc.Other, []string{"launch", "openid"}) {
		t.Errorf("Other = %q", sc.Other)
	}
	if !slices.Equal(unknown, []string{"foo"}) {
		t.Errorf("unknown = %q", unknown)
	}
}

// TestParseScopesManyDuplicates crosses the point where duplicates are
// found through a map instead of one by one.
func TestParseScopesManyDuplicates(t *testing.T) {
	types := r4(t).ResourceTypes()[:40]
	var toks, wantRes, wantUnknown []string
	for i, typ := range types {
		wantRes = append(wantRes, "patient/"+typ+".rs", "user/"+typ+".s")
		wantUnknown = append(wantUnknown, "x"+strconv.Itoa(i))
	}
	for range 3 {
		for i, typ := range types {
			// patient/T.read means patient/T.rs: it collapses into it.
			toks = append(toks, "patient/"+typ+".rs", "patient/"+typ+".read", "user/"+typ+".s", wantUnknown[i], "openid")
		}
	}
	sc, unknown := ParseScopes(strings.Join(toks, " "))
	var got []string
	for _, r := range sc.Resources {
		got = append(got, r.Raw)
	}
	if !slices.Equal(got, wantRes) {
		t.Errorf("resources = %q,\nwant %q", got, wantRes)
	}
	if !slices.Equal(unknown, wantUnknown) || !slices.Equal(sc.Other, []string{"openid"}) {
		t.Errorf("unknown %q, Other %q", unknown, sc.Other)
	}
}

func TestParseScopesEmpty(t *testing.T) {
	for _, in := range []string{"", " ", "   "} {
		sc, unknown := ParseScopes(in)
		if len(sc.Resources)+len(sc.Other)+len(unknown) != 0 {
			t.Errorf("%q: %+v %q", in, sc, unknown)
		}
	}
}

func TestResourceScopeString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"patient/Observation.rs", "patient/Observation.rs"},
		{"patient/*.read", "patient/*.rs"},
		{"user/Observation.write", "user/Observation.cud"},
		{"system/*.*", "system/*.cruds"},
		{"patient/Observation.rs?category=" + labCategory, "patient/Observation.rs?category=" + labCategory},
		{"patient/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory", "patient/Observation.rs?category=" + labCategory},
		{"patient/Observation.rs?code=b&category=z&code=a", "patient/Observation.rs?category=z&code=a&code=b"},
		{"patient/Observation.rs?code:text=blood+pressure%2B%26%3D%25%22", "patient/Observation.rs?code:text=blood%20pressure%2B%26%3D%25%22"},
	} {
		sc, unknown := ParseScopes(tc.in)
		if len(unknown) != 0 || len(sc.Resources) != 1 {
			t.Fatalf("%q: %+v %q", tc.in, sc, unknown)
		}
		r := sc.Resources[0]
		if got := r.String(); got != tc.want {
			t.Errorf("%q: String() = %q, want %q", tc.in, got, tc.want)
		}
		// The canonical form parses back to the same access.
		again, unknown := ParseScopes(r.String())
		if len(unknown) != 0 || len(again.Resources) != 1 {
			t.Fatalf("%q: canonical form %q does not parse", tc.in, r.String())
		}
		if !sameAccess(again.Resources[0], r) {
			t.Errorf("%q: canonical form parses to %+v", tc.in, again.Resources[0])
		}
	}
}

func TestScopesString(t *testing.T) {
	in := "openid patient/Observation.read launch/patient patient/Condition.rs?category=problem-list-item fhirUser"
	sc, _ := ParseScopes(in)
	want := "patient/Observation.read patient/Condition.rs?category=problem-list-item fhirUser launch/patient openid"
	if got := sc.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	again, unknown := ParseScopes(sc.String())
	if len(unknown) != 0 || !reflect.DeepEqual(again, sc) {
		t.Errorf("round trip: %+v %q, want %+v", again, unknown, sc)
	}
	derived := Scopes{Resources: []ResourceScope{{Context: ContextUser, Type: "Appointment", Perms: PermRead | PermSearch}}}
	if got := derived.String(); got != "user/Appointment.rs" {
		t.Errorf("derived String() = %q", got)
	}
	if got := (Scopes{}).String(); got != "" {
		t.Errorf("empty String() = %q", got)
	}
}

func TestPermAndContextString(t *testing.T) {
	for p, want := range map[Perm]string{0: "", PermAll: "cruds", PermRead | PermSearch: "rs", PermDelete | PermCreate: "cd", PermAll | 0xE0: "cruds"} {
		if got := p.String(); got != want {
			t.Errorf("Perm(%d).String() = %q, want %q", p, got, want)
		}
	}
	for c, want := range map[Context]string{0: "", ContextPatient: "patient", ContextUser: "user", ContextSystem: "system", 9: ""} {
		if got := c.String(); got != want {
			t.Errorf("Context(%d).String() = %q, want %q", c, got, want)
		}
	}
}

func TestMatching(t *testing.T) {
	sc, _ := ParseScopes("patient/Observation.rs user/*.r system/Observation.cruds?category=vital-signs patient/Appointment.c")
	raws := func(rs []ResourceScope) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Raw)
		}
		return out
	}
	for _, tc := range []struct {
		p    Perm
		typ  string
		want []string
	}{
		{PermRead, "Observation", []string{"patient/Observation.rs", "user/*.r", "system/Observation.cruds?category=vital-signs"}},
		{PermSearch, "Observation", []string{"patient/Observation.rs", "system/Observation.cruds?category=vital-signs"}},
		{PermRead | PermSearch, "Observation", []string{"patient/Observation.rs", "system/Observation.cruds?category=vital-signs"}},
		{PermRead | PermCreate, "Observation", []string{"system/Observation.cruds?category=vital-signs"}},
		{PermRead, "Condition", []string{"user/*.r"}},
		{PermSearch, "Condition", nil},
		{PermCreate, "Appointment", []string{"patient/Appointment.c"}},
		{PermRead, "Appointment", []string{"user/*.r"}},
		{PermDelete, "Appointment", nil},
		{0, "Observation", nil}, // no permission asked is no match, not every match
		{PermRead, "", nil},
		{PermRead, "*", []string{"user/*.r"}},
	} {
		if got := raws(sc.Matching(tc.p, tc.typ)); !slices.Equal(got, tc.want) {
			t.Errorf("Matching(%s, %q) = %q, want %q", tc.p, tc.typ, got, tc.want)
		}
	}
}

// FuzzParseScopes: parsing never panics; what parses is written back by
// String to a string that parses to exactly the same Scopes, with nothing
// unknown; each resource scope's canonical v2 form parses to the same
// access; unknown tokens are never also typed.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"openid fhirUser launch/patient offline_access patient/*.read",
		"patient/Observation.rs?category=" + labCategory,
		"user/*.cruds system/Patient.* patient/Observation.sr foo",
		"patient/Observation.rs?code=a%20b&code=%2B",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, unknown := ParseScopes(s)
		again, unknown2 := ParseScopes(sc.String())
		if len(unknown2) != 0 {
			t.Fatalf("String() %q has unknown scopes %q", sc.String(), unknown2)
		}
		if !reflect.DeepEqual(again, sc) {
			t.Fatalf("parse(String()) = %+v, want %+v", again, sc)
		}
		if !slices.IsSorted(sc.Other) {
			t.Fatalf("Other not sorted: %q", sc.Other)
		}
		for _, r := range sc.Resources {
			c, u := ParseScopes(r.String())
			if len(u) != 0 || len(c.Resources) != 1 || !sameAccess(c.Resources[0], r) {
				t.Fatalf("canonical %q of %q parses to %+v %q", r.String(), r.Raw, c, u)
			}
			if r.Perms == 0 || r.Perms&^PermAll != 0 {
				t.Fatalf("%q: perms %b", r.Raw, r.Perms)
			}
			if r.Query != nil && (r.V1 || r.Type == "*" || len(r.Query) == 0) {
				t.Fatalf("%q: query where none may be", r.Raw)
			}
		}
		written := strings.Split(sc.String(), " ")
		for _, u := range unknown {
			if slices.Contains(written, u) {
				t.Fatalf("%q is both unknown and parsed", u)
			}
		}
	})
}

// BenchmarkParseScopes parses a typical 8-scope request, as token
// verification does when the parsed scopes are not cached.
func BenchmarkParseScopes(b *testing.B) {
	const s = "openid fhirUser launch/patient offline_access patient/Patient.rs patient/Observation.rs?category=" + labCategory + " patient/Condition.read patient/MedicationRequest.rs"
	if sc, unknown := ParseScopes(s); len(sc.Resources) != 4 || len(sc.Other) != 4 || len(unknown) != 0 {
		b.Fatalf("%+v %q", sc, unknown)
	}
	b.ReportAllocs()
	for b.Loop() {
		ParseScopes(s)
	}
}
