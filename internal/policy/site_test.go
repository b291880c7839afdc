package policy

import (
	"strings"
	"testing"
)

func TestDefaultSitePolicy(t *testing.T) {
	site, err := DefaultSite()
	if err != nil {
		t.Fatal(err)
	}
	prac := &Principal{ClientID: "app", FHIRUser: "Practitioner/d1"}
	glass := &Principal{ClientID: "app", FHIRUser: "Practitioner/d1", BreakGlassReason: "unconscious patient in the ED"}
	related := &Principal{ClientID: "app", FHIRUser: "RelatedPerson/r1"}
	patient := &Principal{ClientID: "app", FHIRUser: "Patient/p2"}
	care := SiteFacts{CareRelationship: true}
	for _, c := range []struct {
		name   string
		p      *Principal
		write  bool
		facts  SiteFacts
		allow  bool
		review bool
	}{
		// Refusals first.
		{"practitioner without a care relationship", prac, false, SiteFacts{}, false, false},
		{"break-the-glass does not write", glass, true, SiteFacts{}, false, false},
		{"related person cannot write", related, true, SiteFacts{RelatedPerson: true}, false, false},
		{"related person of someone else", related, false, SiteFacts{}, false, false},
		{"a patient reaching another patient", patient, false, care, false, false},
		{"a related person with a care fact", related, false, care, false, false},
		{"no principal", nil, false, care, false, false},
		// Allowed.
		{"practitioner in the care team reads", prac, false, care, true, false},
		{"practitioner in the care team writes", prac, true, care, true, false},
		{"break-the-glass reads, flagged", glass, false, SiteFacts{}, true, true},
		{"related person reads", related, false, SiteFacts{RelatedPerson: true}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := site.Decide(c.p, "p1", c.write, c.facts)
			if d.Allow != c.allow || (d.Review != "") != c.review {
				t.Errorf("Decide = %+v, want allow %v review %v", d, c.allow, c.review)
			}
		})
	}
	var nilSite *Site
	if nilSite.Decide(prac, "p1", false, care).Allow {
		t.Error("no site policy allowed")
	}
}

func TestSitePolicyFiles(t *testing.T) {
	if _, err := NewSite(nil); err == nil {
		t.Error("no files accepted")
	}
	_, err := NewSite(map[string][]byte{"bad.cedar": []byte("permit (principal, action, resource) when { ")})
	if err == nil || !strings.Contains(err.Error(), "bad.cedar") {
		t.Errorf("a broken file: %v, want an error naming it", err)
	}
	dup := []byte(`@id("x") permit (principal, action, resource); @id("x") forbid (principal, action, resource);`)
	if _, err := NewSite(map[string][]byte{"dup.cedar": dup}); err == nil {
		t.Error("a policy id used twice was accepted")
	}
	// A site forbid beats the default permits.
	def, _ := defaultSitePolicy.ReadFile("sitepolicy/default.cedar")
	site, err := NewSite(map[string][]byte{
		"default.cedar": def,
		"local.cedar":   []byte(`@id("no-vip") forbid (principal, action, resource == Patient::"vip");`),
	})
	if err != nil {
		t.Fatal(err)
	}
	prac := &Principal{FHIRUser: "Practitioner/d1"}
	if d := site.Decide(prac, "vip", false, SiteFacts{CareRelationship: true}); d.Allow || len(d.Policies) != 1 || d.Policies[0] != "no-vip" {
		t.Errorf("forbid: %+v", d)
	}
	if !site.Decide(prac, "p1", false, SiteFacts{CareRelationship: true}).Allow {
		t.Error("the permits stopped working")
	}
	// A policy that errs (unknown attribute) permits nothing.
	broken, err := NewSite(map[string][]byte{"x.cedar": []byte(`permit (principal, action, resource) when { principal.nosuch == "x" };`)})
	if err != nil {
		t.Fatal(err)
	}
	if broken.Decide(prac, "p1", false, SiteFacts{}).Allow {
		t.Error("an erring policy allowed")
	}
}

// BenchmarkSiteDecide is the Cedar evaluation a practitioner's request
// adds (facts are cached separately).
func BenchmarkSiteDecide(b *testing.B) {
	site, err := DefaultSite()
	if err != nil {
		b.Fatal(err)
	}
	p := &Principal{ClientID: "app", FHIRUser: "Practitioner/d1"}
	b.ReportAllocs()
	for b.Loop() {
		if !site.Decide(p, "p1", false, SiteFacts{CareRelationship: true}).Allow {
			b.Fatal("denied")
		}
	}
}
