package sealing

import (
	"context"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/smart"
)

func principalWith(scope string, mutate func(*policy.Principal)) *policy.Principal {
	sc, _ := smart.ParseScopes(scope)
	p := &policy.Principal{ClientID: "app", Subject: "u1", FHIRUser: "Patient/p1", Patient: "p1", Scope: scope, Scopes: sc,
		ACR: policy.ACRPassword, AuthTime: time.Now()}
	if mutate != nil {
		mutate(p)
	}
	return p
}

// TestClearanceFor tries to get a category's clearance without what it
// needs, then with it.
func TestClearanceFor(t *testing.T) {
	now := time.Now()
	pol := Policy{Categories: map[string]Category{"HIV": {StepUp: true}, "PSY": {}, "ETH": {NoBreakGlass: true}}}
	o := policy.Options{MaxAuthAge: 15 * time.Minute}
	mfa := func(p *policy.Principal) { p.ACR = policy.ACRMultiFactor }
	glass := func(p *policy.Principal) { p.BreakGlassReason = "emergency" }
	for _, c := range []struct {
		name  string
		p     *policy.Principal
		cat   string
		clear bool
	}{
		{"no principal", nil, "PSY", false},
		{"no sensitive scope", principalWith("patient/*.rs", nil), "PSY", false},
		{"another category's scope", principalWith("patient/*.rs sensitive/ETH", nil), "PSY", false},
		{"a scope that only looks like it", principalWith("patient/*.rs sensitive/PSYX", nil), "PSY", false},
		{"the prefix alone", principalWith("patient/*.rs sensitive/", nil), "PSY", false},
		{"a category not sealed", principalWith("sensitive/SEX", nil), "SEX", false},
		{"step-up, password login", principalWith("sensitive/HIV", nil), "HIV", false},
		{"step-up, stale second factor", principalWith("sensitive/HIV", func(p *policy.Principal) {
			mfa(p)
			p.AuthTime = now.Add(-time.Hour)
		}), "HIV", false},
		{"step-up, no auth time", principalWith("sensitive/HIV", func(p *policy.Principal) { mfa(p); p.AuthTime = time.Time{} }), "HIV", false},
		{"break the glass where it is closed", principalWith("patient/*.rs", glass), "ETH", false},
		{"break the glass without a reason", principalWith("patient/*.rs", func(p *policy.Principal) { p.BreakGlassReason = "" }), "PSY", false},

		{"the category's scope", principalWith("patient/*.rs sensitive/PSY", nil), "PSY", true},
		{"every category", principalWith("patient/*.rs sensitive/*", nil), "ETH", true},
		{"step-up, recent second factor", principalWith("sensitive/HIV", mfa), "HIV", true},
		{"step-up, broken glass", principalWith("sensitive/HIV", glass), "HIV", true},
		{"break the glass, no scope", principalWith("patient/*.rs", glass), "PSY", true},
		{"backend service: no user to step up", principalWith("system/*.rs sensitive/HIV", func(p *policy.Principal) {
			p.FHIRUser, p.Subject, p.Patient, p.ACR, p.AuthTime = "", "app", "", "", time.Time{}
		}), "HIV", true},
	} {
		got := pol.ClearanceFor(c.p, o, now).Covers(c.cat)
		if got != c.clear {
			t.Errorf("%s: cleared for %s = %v, want %v", c.name, c.cat, got, c.clear)
		}
	}
}

// TestClearanceContext: a context without a clearance clears nothing.
func TestClearanceContext(t *testing.T) {
	ctx := context.Background()
	if ClearanceFrom(ctx).Covers("HIV") {
		t.Fatal("an empty context is cleared")
	}
	if !ClearanceFrom(WithClearance(ctx, All())).Covers("ANY") || ClearanceFrom(WithClearance(ctx, For("PSY"))).Covers("HIV") {
		t.Fatal("WithClearance")
	}
	if For("PSY", "HIV", "PSY").String() != "HIV,PSY" || All().String() != "*" {
		t.Fatal("String")
	}
}
