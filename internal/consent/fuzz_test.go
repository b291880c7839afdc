package consent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParse: Parse never panics; it either returns a Consent or one of
// its own errors (a *ValidationError or ErrNotPrivacy); a Consent that
// parses compiles and is decided without panicking, with the same verdict
// with and without the index, naming only its own provisions; and Narrow
// of it yields a Consent that parses again.
func FuzzParse(f *testing.F) {
	f.Add(GrantConsent("p1", "app1", []string{"patient/Observation.rs", "patient/*.c"}, granted, "g1"))
	f.Add([]byte(consentJSON("c1", "active", "p1", `{"type":"deny","provision":[{"type":"permit","actor":[`+clientActor("app1")+`],"provision":[{"type":"deny","securityLabel":[{"system":"`+SystemActCode+`","code":"PSY"}]}]}]}`)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Parse(raw)
		if err != nil {
			var ve *ValidationError
			if c != nil || (!errors.As(err, &ve) && !errors.Is(err, ErrNotPrivacy)) {
				t.Fatalf("Parse: %v (consent %v)", err, c)
			}
			return
		}
		if c.Provision == nil || c.Provision.Type == 0 {
			t.Fatalf("parsed without an effective root: %+v", c)
		}
		for _, def := range []Default{OptIn, OptOut} {
			p := Compile(c.Patient, []*Consent{c}, def)
			for _, a := range fuzzAccesses() {
				v := p.Decide(a)
				if w := linear(p).Decide(a); v != w {
					t.Fatalf("indexed %+v, linear %+v", v, w)
				}
				if v.ConsentID != "" && !strings.HasPrefix(v.Rule, "Consent.provision") {
					t.Fatalf("rule %q", v.Rule)
				}
			}
			p.MayWithhold(Actor{ClientID: "app1"}, now)
		}
		if out, err := Narrow(raw, psy); err == nil {
			if _, err := Parse(out); err != nil {
				t.Fatalf("Narrow's result does not parse: %v", err)
			}
		}
	})
}

func fuzzAccesses() []*Access {
	a := access()
	b := access()
	b.Actor = Actor{ClientID: "app1", Organization: "Organization/f001", FHIRUser: "Practitioner/f204"}
	b.Resource = Resource{Type: "MedicationRequest", Ref: "MedicationRequest/m1"}
	b.Time = time.Date(2016, 6, 23, 7, 10, 0, 0, time.UTC)
	c := access()
	c.Action = ActionCorrect
	c.Purpose = []Coding{{SystemActReason, "ETREAT"}}
	c.Resource.Date = time.Time{}
	return []*Access{a, b, c}
}
