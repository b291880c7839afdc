package smart

import (
	"net/url"
	"slices"
	"testing"
)

// mustParse parses s and fails the test if any of it is unknown.
func mustParse(t testing.TB, s string) Scopes {
	t.Helper()
	sc, unknown := ParseScopes(s)
	if len(unknown) != 0 {
		t.Fatalf("ParseScopes(%q): unknown %q", s, unknown)
	}
	return sc
}

func TestGrant(t *testing.T) {
	for _, tc := range []struct {
		name, requested, ceiling, want string
	}{
		{"v1 granted whole stays v1", "patient/*.read", "patient/*.cruds", "patient/*.read"},
		{"v1 write granted whole", "user/Observation.write", "user/Observation.cud", "user/Observation.write"},
		{"v2 granted whole keeps its text", "patient/Observation.rs?category=http%3A%2F%2Fx%7Claboratory", "patient/Observation.cruds",
			"patient/Observation.rs?category=http%3A%2F%2Fx%7Claboratory"},
		{"wildcard request expands to the ceiling's types", "patient/*.read", "patient/Observation.rs patient/Condition.r",
			"patient/Observation.rs patient/Condition.r"},
		{"concrete request under a wildcard ceiling", "patient/Observation.rs", "patient/*.read", "patient/Observation.rs"},
		{"perms intersected", "patient/Observation.cruds", "patient/Observation.rs", "patient/Observation.rs"},
		{"perms intersected, v1 answered in v2", "patient/Observation.*", "patient/Observation.rs", "patient/Observation.rs"},
		{"wildcard both sides, perms intersected", "user/*.*", "user/*.r", "user/*.r"},
		{"no common perms", "patient/Observation.write", "patient/Observation.rs", ""},
		{"other context", "user/Observation.rs", "patient/Observation.rs", ""},
		{"system does not cover patient", "patient/Observation.rs", "system/*.cruds", ""},
		{"other type", "patient/Condition.rs", "patient/Observation.rs", ""},
		{"ceiling query is carried", "patient/Observation.rs", "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory"},
		{"ceiling query is carried onto a wildcard request", "patient/*.read", "patient/Observation.r?category=laboratory",
			"patient/Observation.r?category=laboratory"},
		{"same query both sides", "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory",
			"patient/Observation.rs?category=laboratory"},
		{"conflicting query grants nothing", "patient/Observation.rs?category=vital-signs", "patient/Observation.rs?category=laboratory", ""},
		{"more values is not the same values", "patient/Observation.rs?category=a&category=b", "patient/Observation.rs?category=a", ""},
		{"queries on different keys combine", "patient/Observation.rs?code=8867-4", "patient/Observation.rs?category=vital-signs",
			"patient/Observation.rs?category=vital-signs&code=8867-4"},
		{"request query kept under an open ceiling", "patient/Observation.s?code=x", "patient/*.rs", "patient/Observation.s?code=x"},
		{"several ceiling scopes, no duplicates", "patient/Observation.rs", "patient/Observation.rs patient/*.rs patient/Observation.cruds",
			"patient/Observation.rs"},
		{"duplicates after narrowing collapse", "patient/*.rs patient/Observation.rs", "patient/Observation.rs", "patient/Observation.rs"},
		{"other scopes only if the ceiling lists them", "openid fhirUser offline_access launch/patient", "openid fhirUser launch/patient online_access",
			"fhirUser launch/patient openid"},
		{"nothing requested", "", "patient/*.cruds openid", ""},
		{"empty ceiling", "patient/*.cruds openid", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, ceil := mustParse(t, tc.requested), mustParse(t, tc.ceiling)
			got := Grant(req, ceil)
			if got.String() != tc.want {
				t.Errorf("Grant(%q, %q) = %q, want %q", tc.requested, tc.ceiling, got.String(), tc.want)
			}
			checkWithin(t, got, ceil, "ceiling")
			checkWithin(t, got, req, "request")
		})
	}
}

// TestGrantSchedulingApp is the example: an app registered for
// Appointment, Slot and Schedule gets no lab results whatever it asks.
func TestGrantSchedulingApp(t *testing.T) {
	ceiling := mustParse(t, "patient/Appointment.cruds patient/Slot.rs patient/Schedule.rs")
	for _, ask := range []string{
		"patient/*.read",
		"patient/*.*",
		"patient/*.cruds",
		"patient/Observation.rs",
		"patient/Observation.rs?category=" + labCategory,
		"patient/DiagnosticReport.read",
		"user/*.*",
		"user/Observation.read",
		"system/*.read",
		"system/*.cruds",
		"patient/*.read user/*.* system/*.* patient/Observation.cruds openid offline_access",
	} {
		got := Grant(mustParse(t, ask), ceiling)
		for _, typ := range []string{"Observation", "DiagnosticReport", "Condition", "Patient", "*"} {
			for _, l := range permLetters {
				if m := got.Matching(l.perm, typ); len(m) != 0 {
					t.Errorf("asking %q: granted %q, which allows %c on %s", ask, got.String(), l.letter, typ)
				}
			}
		}
		_, user, system := got.Contexts()
		if user || system || len(got.Other) != 0 {
			t.Errorf("asking %q: granted %q", ask, got.String())
		}
		checkWithin(t, got, ceiling, ask)
	}
	// What it is registered for, it gets.
	got := Grant(mustParse(t, "patient/*.read"), ceiling)
	if want := "patient/Appointment.rs patient/Slot.rs patient/Schedule.rs"; got.String() != want {
		t.Errorf("patient/*.read: granted %q, want %q", got.String(), want)
	}
}

func TestGrantDoesNotShareMaps(t *testing.T) {
	req := mustParse(t, "patient/Observation.rs?code=x")
	ceil := mustParse(t, "patient/Observation.rs?category=lab patient/*.rs")
	got := Grant(req, ceil)
	for _, g := range got.Resources {
		for k := range g.Query {
			g.Query[k][0] = "changed"
		}
		g.Query.Set("extra", "1")
	}
	if req.String() != "patient/Observation.rs?code=x" || req.Resources[0].Query.Get("code") != "x" || len(req.Resources[0].Query) != 1 {
		t.Errorf("request changed: %+v", req.Resources[0].Query)
	}
	if c := ceil.Resources[0].Query; c.Get("category") != "lab" || len(c) != 1 {
		t.Errorf("ceiling changed: %+v", c)
	}
}

func TestWithout(t *testing.T) {
	sc := mustParse(t, "patient/Observation.read patient/Condition.rs?category=problem-list-item patient/Appointment.cruds openid offline_access launch/patient")
	for _, tc := range []struct {
		deselected []string
		want       string
	}{
		{nil, sc.String()},
		{[]string{"patient/Observation.read"}, "patient/Condition.rs?category=problem-list-item patient/Appointment.cruds launch/patient offline_access openid"},
		{[]string{"patient/Observation.rs"}, "patient/Condition.rs?category=problem-list-item patient/Appointment.cruds launch/patient offline_access openid"},
		{[]string{"offline_access", "patient/Condition.rs?category=problem-list-item"}, "patient/Observation.read patient/Appointment.cruds launch/patient openid"},
		{[]string{"patient/Appointment.rs", "patient/*.read", "bogus", ""}, sc.String()}, // only exact scopes are removed, never parts
		{[]string{"patient/Observation.read", "patient/Condition.rs?category=problem-list-item", "patient/Appointment.cruds", "openid", "offline_access", "launch/patient"}, ""},
	} {
		got := sc.Without(tc.deselected)
		if got.String() != tc.want {
			t.Errorf("Without(%q) = %q, want %q", tc.deselected, got.String(), tc.want)
		}
		checkWithin(t, got, sc, "original")
	}
	if sc.String() != "patient/Observation.read patient/Condition.rs?category=problem-list-item patient/Appointment.cruds launch/patient offline_access openid" {
		t.Errorf("Without changed its receiver: %q", sc.String())
	}
}

// checkTypes are the types checkWithin asks about, besides those the
// scopes name: "*" (all types at once) and a type no scope names.
var checkTypes = []string{"*", "Basic"}

// checkWithin fails the test if inner allows any access (context ×
// permission × type × query) that outer does not, or holds another scope
// outer lacks. It asks through Matching, as package policy does, and
// judges with allows, which is written independently of Grant.
func checkWithin(t testing.TB, inner, outer Scopes, what string) {
	t.Helper()
	types := slices.Clone(checkTypes)
	for _, sc := range []Scopes{inner, outer} {
		for _, r := range sc.Resources {
			types = append(types, r.Type)
		}
	}
	for _, typ := range types {
		for _, l := range permLetters {
			for _, g := range inner.Matching(l.perm, typ) {
				if g.Type != "*" && g.Type != typ {
					t.Fatalf("Matching(%c, %s) returned %q", l.letter, typ, g.String())
				}
				if !allows(outer, g.Context, l.perm, typ, g.Query) {
					t.Errorf("%q allows %s %c on %s (%v), which %s %q does not", inner.String(), g.Context, l.letter, typ, g.Query, what, outer.String())
				}
			}
		}
	}
	for _, o := range inner.Other {
		if !outer.Has(o) {
			t.Errorf("%q holds %s, which %s %q does not", inner.String(), o, what, outer.String())
		}
	}
}

// allows reports whether s allows permission p on type typ (or on every
// type, for "*") in context ctx, to an access limited by the constraints
// q: some scope of the context covers the type and the permission, and
// each of its constraints is among q.
func allows(s Scopes, ctx Context, p Perm, typ string, q url.Values) bool {
	for _, r := range s.Resources {
		if r.Context != ctx || r.Perms&p != p || (r.Type != "*" && r.Type != typ) {
			continue
		}
		within := true
		for k, vs := range r.Query {
			for _, v := range vs {
				if !slices.Contains(q[k], v) {
					within = false
				}
			}
		}
		if within {
			return true
		}
	}
	return false
}

// generatedScopes is every resource scope over three contexts, two named
// types and the wildcard, all 31 permission sets, and (on named types)
// no query or one of three.
func generatedScopes() []ResourceScope {
	queries := []url.Values{nil, {"category": {"laboratory"}}, {"category": {"vital-signs"}}, {"code": {"x"}}}
	var out []ResourceScope
	for _, ctx := range []Context{ContextPatient, ContextUser, ContextSystem} {
		for _, typ := range []string{"*", "Observation", "Appointment"} {
			for p := Perm(1); p <= PermAll; p++ {
				for _, q := range queries {
					if q != nil && typ == "*" {
						continue
					}
					out = append(out, ResourceScope{Context: ctx, Type: typ, Perms: p, Query: q})
				}
			}
		}
	}
	return out
}

// TestGrantNeverWidens checks the property exhaustively: for every pair of
// generated scopes (a fifth of them with -short), and for a stride of
// two-scope requests under two-scope ceilings, the grant is within both
// the ceiling and the request.
func TestGrantNeverWidens(t *testing.T) {
	all := generatedScopes()
	// Round trip each generated scope through its text, so the property
	// is checked on scopes as the parser makes them.
	for i, r := range all {
		sc := mustParse(t, r.String())
		if len(sc.Resources) != 1 || !sameAccess(sc.Resources[0], r) {
			t.Fatalf("%q parses to %+v", r.String(), sc)
		}
		all[i] = sc.Resources[0]
	}
	one := func(r ...ResourceScope) Scopes { return Scopes{Resources: r} }
	step := 1
	if testing.Short() {
		step = 5 // every request, a fifth of the ceilings
	}
	pairs := 0
	for i, r := range all {
		for j := i % step; j < len(all); j += step {
			c := all[j]
			checkWithin(t, Grant(one(r), one(c)), one(c), "ceiling")
			pairs++
		}
		if t.Failed() {
			return
		}
	}
	// Two-scope ceilings and requests, on a stride to keep the run short.
	for i, r := range all {
		for j := i % 7; j+1 < len(all); j += 37 {
			ceil := one(all[j], all[j+1])
			req := one(r, all[(i*13+j)%len(all)])
			g := Grant(req, ceil)
			checkWithin(t, g, ceil, "ceiling")
			checkWithin(t, g, req, "request")
			pairs++
		}
	}
	t.Logf("%d generated scopes, %d grants checked", len(all), pairs)
}

// FuzzGrant: whatever is requested and whatever the ceiling, the grant
// allows nothing the ceiling does not, nor anything not requested; it has
// no duplicates, and its text parses back to itself.
func FuzzGrant(f *testing.F) {
	f.Add("patient/*.read user/*.* system/*.read patient/Observation.rs openid", "patient/Appointment.cruds patient/Slot.rs patient/Schedule.rs")
	f.Add("patient/Observation.rs?code=x", "patient/Observation.rs?category=lab patient/*.rs")
	f.Add("patient/Observation.rs?category=a", "patient/Observation.rs?category=b")
	f.Fuzz(func(t *testing.T, requested, ceiling string) {
		req, _ := ParseScopes(requested)
		ceil, _ := ParseScopes(ceiling)
		g := Grant(req, ceil)
		checkWithin(t, g, ceil, "ceiling")
		checkWithin(t, g, req, "request")
		seen := map[string]bool{}
		for _, r := range g.Resources {
			if seen[r.String()] {
				t.Fatalf("duplicate %q in %q", r.String(), g.String())
			}
			seen[r.String()] = true
		}
		again, unknown := ParseScopes(g.String())
		if len(unknown) != 0 || len(again.Resources) != len(g.Resources) || !slices.Equal(again.Other, g.Other) {
			t.Fatalf("grant %q parses to %+v %q", g.String(), again, unknown)
		}
		for i := range g.Resources {
			if !sameAccess(again.Resources[i], g.Resources[i]) {
				t.Fatalf("grant %q: scope %d parses to %+v", g.String(), i, again.Resources[i])
			}
		}
		// Granting the grant again under the same ceiling loses nothing.
		checkWithin(t, g, Grant(g, ceil), "the grant granted again")
	})
}
