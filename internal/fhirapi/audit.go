package fhirapi

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audithttp"
	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/reqid"
	"github.com/wardenfhir/warden/internal/store"
)

// requestAudit collects, while one request runs, what the audit event
// must say: what the guard disclosed or changed, and why it refused.
type requestAudit struct {
	mu        sync.Mutex
	action    string // the interaction, when a handler knows better than the route
	patients  map[string]struct{}
	resources []string
	denyRule  string
	review    string
	principal *policy.Principal // the caller, once authenticated
	parent    *requestAudit     // set on an attempt's recorder (attempt)
}

type auditKey struct{}

func auditFrom(ctx context.Context) *requestAudit {
	ra, _ := ctx.Value(auditKey{}).(*requestAudit)
	return ra
}

// disclosed records resources the caller received or wrote.
func (ra *requestAudit) disclosed(_ *API, rs ...store.Resource) {
	if ra == nil {
		return
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.patients == nil {
		ra.patients = map[string]struct{}{}
	}
	ra.resources = slices.Grow(ra.resources, max(min(len(rs), audit.MaxResources-len(ra.resources)), 0))
	for i := range rs {
		r := &rs[i]
		// Current versions carry their compartments from the store;
		// older ones (history, vread) are named by reference only, not
		// decoded again on the request path.
		for _, p := range r.Patients {
			ra.patients[p] = struct{}{}
		}
		if r.Type == "Patient" {
			ra.patients[r.ID] = struct{}{}
		}
		if len(ra.resources) < audit.MaxResources {
			ra.resources = append(ra.resources, r.Type+"/"+r.ID+"/_history/"+strconv.FormatInt(r.Version, 10))
		}
	}
}

// attempt returns the recorder of one attempt of a store transaction:
// what it discloses stays apart until merge, so that an attempt the store
// rolls back and runs again (sealing.Store.Tx) discloses nothing, and so
// that attempts running beside each other (a batch's entries) never drop
// what another recorded. Refusals and reviews go to ra at once.
func (ra *requestAudit) attempt() *requestAudit {
	if ra == nil {
		return nil
	}
	return &requestAudit{parent: ra}
}

// merge adds what an attempt disclosed to ra.
func (ra *requestAudit) merge(at *requestAudit) {
	if ra == nil || at == nil {
		return
	}
	at.mu.Lock()
	patients, resources := at.patients, at.resources
	at.mu.Unlock()
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if len(patients) > 0 && ra.patients == nil {
		ra.patients = make(map[string]struct{}, len(patients))
	}
	for p := range patients {
		ra.patients[p] = struct{}{}
	}
	for _, r := range resources {
		if len(ra.resources) == audit.MaxResources {
			break
		}
		ra.resources = append(ra.resources, r)
	}
}

// patientIDs are the patients disclosed so far.
func (ra *requestAudit) patientIDs() []string {
	if ra == nil {
		return nil
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	out := make([]string, 0, len(ra.patients))
	for p := range ra.patients {
		out = append(out, p)
	}
	return out
}

// withhold forgets what the response would have disclosed: it is not
// released.
func (ra *requestAudit) withhold() {
	ra.mu.Lock()
	ra.patients, ra.resources = nil, nil
	ra.mu.Unlock()
}

// denied records the rule that refused (the first one wins).
func (ra *requestAudit) denied(rule string) {
	if ra == nil || rule == "" {
		return
	}
	if ra.parent != nil {
		ra.parent.denied(rule)
		return
	}
	ra.mu.Lock()
	if ra.denyRule == "" {
		ra.denyRule = rule
	}
	ra.mu.Unlock()
}

// flagged records that an allowing policy asked for review.
func (ra *requestAudit) flagged(review string) {
	if ra == nil {
		return
	}
	if ra.parent != nil {
		ra.parent.flagged(review)
		return
	}
	ra.mu.Lock()
	ra.review = review
	ra.mu.Unlock()
}

// authenticated records the caller.
func (ra *requestAudit) authenticated(p *policy.Principal) {
	if ra == nil {
		return
	}
	ra.mu.Lock()
	ra.principal = p
	ra.mu.Unlock()
}

// setAction names the interaction when the route alone cannot (a Bundle
// is a batch or a transaction).
func (ra *requestAudit) setAction(action string) {
	if ra == nil {
		return
	}
	ra.mu.Lock()
	ra.action = action
	ra.mu.Unlock()
}

// serveAudited runs the request with its response held, appends its audit
// event, and releases the response only once the event is durable; if the
// audit trail cannot take it, the answer is 503 and nothing is disclosed
// (ARCHITECTURE: nothing is served unaudited; fail closed).
func (a *API) serveAudited(w http.ResponseWriter, r *http.Request, seg []string) {
	start := a.now()
	ra := &requestAudit{}
	r = r.WithContext(context.WithValue(r.Context(), auditKey{}, ra))
	held := audithttp.NewHeld()
	a.serve(held, r, seg)
	// The patients the response would disclose count against the
	// caller's distinct-patient budgets; over budget, nothing is released.
	if patients := ra.patientIDs(); len(patients) > 0 {
		ra.mu.Lock()
		p := ra.principal
		ra.mu.Unlock()
		d, err := a.limitPatients(r.Context(), p, patients)
		if err != nil || !d.Allowed {
			ra.withhold()
			held = audithttp.NewHeld()
			if err != nil {
				a.limitUnavailable(held, r, err)
			} else {
				a.throttled(held, r, d)
			}
		}
	}
	// Abuse detection sees every request as answered; a verdict that
	// throttles, quarantines or asks for step-up holds back this very
	// response too.
	if a.opts.Detector != nil {
		if v := a.detectAfter(r, seg, ra, held.Status()); v.Action >= detect.ActionStepUp {
			ra.mu.Lock()
			p := ra.principal
			ra.mu.Unlock()
			refusal := audithttp.NewHeld()
			if !a.detectBefore(refusal, r, p) {
				ra.withhold()
				held = refusal
			}
		}
	}
	if a.opts.Audit == nil {
		held.Release(w)
		return
	}
	rec := a.auditRecord(r, seg, ra, held.Status(), start)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), audithttp.Timeout)
	defer cancel()
	if _, err := a.opts.Audit.Append(ctx, rec); err != nil {
		a.log.Error("audit trail refused an event; request answered 503", "request_id", rec.RequestID, "error", err.Error())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, outcome([]Issue{{Severity: "error", Code: "transient",
			Diagnostics: "The audit trail is unavailable; nothing was disclosed. Retry later (error id " + rec.RequestID + ")"}}))
		return
	}
	held.Release(w)
}

// auditRecord describes the finished request for the audit trail.
func (a *API) auditRecord(r *http.Request, seg []string, ra *requestAudit, status int, start time.Time) audit.Record {
	rec := audit.Record{
		RequestID: reqid.From(r.Context()),
		Time:      start,
		Duration:  max(a.now().Sub(start), 0),
		Surface:   audit.SurfaceFHIR,
		Action:    interaction(r.Method, seg, a),
		Method:    r.Method,
		Path:      validUTF8(r.URL.Path),
		Query:     auditQuery(r.URL.RawQuery),
		Status:    status,
	}
	if rec.RequestID == "" || rec.RequestID == "-" {
		rec.RequestID = reqid.New() // no server in front (tests)
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		rec.PeerAddr = ap.Addr().Unmap()
	}
	// The certificate the connection presented (a bound token's, checked
	// by authenticate, or any other).
	rec.CertThumbprint = mtls.PeerThumbprint(r.TLS)
	ra.mu.Lock()
	p := ra.principal
	ra.mu.Unlock()
	if p != nil {
		rec.ClientID, rec.TokenID, rec.BreakGlassReason = p.ClientID, p.TokenID, p.BreakGlassReason
		if !p.IsBackend() {
			rec.Subject, rec.FHIRUser = p.Subject, p.FHIRUser
		}
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.action != "" {
		rec.Action = ra.action
	}
	rec.DenyRule, rec.Review = ra.denyRule, ra.review
	for p := range ra.patients {
		rec.Patients = append(rec.Patients, p)
	}
	slices.Sort(rec.Patients)
	rec.Resources = slices.Clone(ra.resources)
	return rec
}

// interaction names the FHIR interaction of a route (AuditEvent subtype,
// http://hl7.org/fhir/restful-interaction).
func interaction(method string, seg []string, a *API) string {
	n := len(seg)
	isType := func(i int) bool { return i < n && a.model.IsResourceType(seg[i]) }
	switch {
	case n == 0 && method == http.MethodPost:
		return "batch"
	case n == 1 && seg[0] == "metadata":
		return "capabilities"
	case n == 1 && seg[0] == "_history":
		return "history-system"
	case n == 1 && isType(0):
		switch method {
		case http.MethodPost:
			return "create"
		case http.MethodPut:
			return "update"
		case http.MethodDelete:
			return "delete"
		}
		return "search-type"
	case n == 2 && seg[1] == "_search":
		return "search-type"
	case n == 2 && seg[1] == "_history":
		return "history-type"
	case n == 2:
		switch method {
		case http.MethodPut:
			return "update"
		case http.MethodDelete:
			return "delete"
		}
		return "read"
	case n == 3 && seg[2] == "_history":
		return "history-instance"
	case n == 3 && isType(2):
		return "search-type"
	case n == 4:
		return "vread"
	}
	return "operation"
}

// auditQuery keeps the request's query for the local event, made valid
// UTF-8 (the event must be a valid resource whatever the client sent).
func auditQuery(raw string) url.Values {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return url.Values{"_unparsed": {validUTF8(raw)}}
	}
	out := make(url.Values, len(q))
	for k, vs := range q {
		for _, v := range vs {
			out[validUTF8(k)] = append(out[validUTF8(k)], validUTF8(v))
		}
	}
	return out
}

func validUTF8(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\f", " ")
}
