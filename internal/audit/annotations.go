package audit

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Annotations is what a handler outside the FHIR API (the authorization
// server, the admin API) learns while it serves one request and the
// request's audit event must say: who the client and user turned out to
// be, which patient a token was issued for, which token, why it refused.
// The HTTP layer that builds the Record puts an Annotations in the
// request's context (WithAnnotations); handlers fill it through
// AnnotationsFrom, which is safe to call when nothing is being audited.
type Annotations struct {
	mu        sync.Mutex
	clientID  string
	subject   string
	fhirUser  string
	tokenID   string
	denyRule  string
	reason    string
	patients  []string
	effective time.Time
}

type annotationsKey struct{}

// WithAnnotations returns ctx carrying a fresh Annotations, and it.
func WithAnnotations(ctx context.Context) (context.Context, *Annotations) {
	a := &Annotations{}
	return context.WithValue(ctx, annotationsKey{}, a), a
}

// AnnotationsFrom returns the request's Annotations, or nil; the methods
// of a nil *Annotations do nothing.
func AnnotationsFrom(ctx context.Context) *Annotations {
	a, _ := ctx.Value(annotationsKey{}).(*Annotations)
	return a
}

// Client records the OAuth client the request was made by (once it is
// authenticated, or as claimed when the request was refused).
func (a *Annotations) Client(clientID string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.clientID = clientID
	a.mu.Unlock()
}

// User records the signed-in user: the subject and, when known, fhirUser.
func (a *Annotations) User(subject, fhirUser string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.subject, a.fhirUser = subject, fhirUser
	a.mu.Unlock()
}

// Token records the jti of the access token issued or presented.
func (a *Annotations) Token(jti string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.tokenID = jti
	a.mu.Unlock()
}

// Patient records a patient the request concerned (a token issued in its
// context, a launch for it).
func (a *Annotations) Patient(id string) {
	if a == nil || id == "" {
		return
	}
	a.mu.Lock()
	if !slices.Contains(a.patients, id) {
		a.patients = append(a.patients, id)
	}
	a.mu.Unlock()
}

// Denied records the rule that refused the request (the first one wins).
func (a *Annotations) Denied(rule string) {
	if a == nil || rule == "" {
		return
	}
	a.mu.Lock()
	if a.denyRule == "" {
		a.denyRule = rule
	}
	a.mu.Unlock()
}

// BreakGlass records the reason a user gave for breaking the glass.
func (a *Annotations) BreakGlass(reason string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.reason = reason
	a.mu.Unlock()
}

// Effective records when a change the request made to authorization
// state took effect everywhere (the latest one wins).
func (a *Annotations) Effective(t time.Time) {
	if a == nil {
		return
	}
	a.mu.Lock()
	if t.After(a.effective) {
		a.effective = t
	}
	a.mu.Unlock()
}

// Apply copies the annotations into r, leaving fields it already has.
func (a *Annotations) Apply(r *Record) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&r.ClientID, a.clientID)
	set(&r.Subject, a.subject)
	set(&r.FHIRUser, a.fhirUser)
	set(&r.TokenID, a.tokenID)
	set(&r.DenyRule, a.denyRule)
	set(&r.BreakGlassReason, a.reason)
	if r.Effective.IsZero() {
		r.Effective = a.effective
	}
	for _, p := range a.patients {
		if !slices.Contains(r.Patients, p) {
			r.Patients = append(r.Patients, p)
		}
	}
}
