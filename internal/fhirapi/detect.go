package fhirapi

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/policy"
)

// Spoofed reports whether a request carried forwarding headers from a
// peer that is not a trusted proxy (set by the listener; nil: never).
type Spoofed func(ctx context.Context) bool

// maxRelationChecks bounds how many disclosed patients one request's
// care relationships are looked up for (each lookup is cached; see
// siteFacts).
const maxRelationChecks = 20

// detectBefore refuses a request whose caller (client, user, token or
// address) stands throttled, quarantined or asked to step up by the
// abuse detection (package detect). It reports whether to go on.
func (a *API) detectBefore(w http.ResponseWriter, r *http.Request, p *policy.Principal) bool {
	d := a.opts.Detector
	if d == nil {
		return true
	}
	var client, user, token string
	if p != nil {
		client, user, token = p.ClientID, p.FHIRUser, p.TokenID
	}
	act, until := d.CheckUntil(client, user, token, peerAddr(r), a.now())
	switch act {
	case detect.ActionStepUp:
		auditFrom(r.Context()).denied("detect: step-up")
		a.writeError(w, r, a.stepUpError())
		return false
	case detect.ActionThrottle:
		secs := int64(1)
		if !until.IsZero() {
			secs = max(int64(time.Until(until).Seconds()+0.999), 1)
		}
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		auditFrom(r.Context()).denied("detect: throttle")
		a.writeError(w, r, errorf(http.StatusTooManyRequests, "throttled", "Requests are slowed down after unusual activity; retry after "+strconv.FormatInt(secs, 10)+" s"))
		return false
	case detect.ActionQuarantine:
		auditFrom(r.Context()).denied("detect: quarantine")
		a.writeError(w, r, errorf(http.StatusForbidden, "suspended", "Access is suspended after unusual activity; the site's security team has been alerted"))
		return false
	}
	return true
}

// detectAfter tells the detection what the request disclosed and
// answered, and returns its verdict.
func (a *API) detectAfter(r *http.Request, seg []string, ra *requestAudit, status int) detect.Verdict {
	d := a.opts.Detector
	ev := detect.Event{Time: a.now(), Peer: peerAddr(r), Status: status, Interaction: detectInteraction(r.Method, seg, a)}
	if len(seg) > 0 && a.model.IsResourceType(seg[0]) {
		ev.Type = seg[0]
		if len(seg) > 1 && !strings.HasPrefix(seg[1], "_") && !strings.HasPrefix(seg[1], "$") {
			ev.ID = seg[1]
		}
	}
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("_count")); err == nil {
		ev.Count = n
	}
	ev.Includes = len(q["_include"]) + len(q["_revinclude"]) + len(q["_include:iterate"]) + len(q["_revinclude:iterate"])
	if a.opts.Spoofed != nil {
		ev.SpoofedForwarded = a.opts.Spoofed(r.Context())
	}
	ra.mu.Lock()
	p := ra.principal
	for id := range ra.patients {
		ev.Patients = append(ev.Patients, id)
	}
	ev.Results = len(ra.resources)
	ra.mu.Unlock()
	if p != nil {
		ev.Client, ev.Token, ev.User = p.ClientID, p.TokenID, p.FHIRUser
		ev.Class = callerKeys(p).Class
		if strings.HasPrefix(p.FHIRUser, "Practitioner/") {
			ev.Unrelated = []string{}
			for i, patient := range ev.Patients {
				if i == maxRelationChecks {
					break
				}
				if !a.facts.get(a, p.FHIRUser, patient, ev.Time).CareRelationship {
					ev.Unrelated = append(ev.Unrelated, patient)
				}
			}
		}
	}
	return d.Observe(ev)
}

// detectInteraction names the interaction as package detect does.
func detectInteraction(method string, seg []string, a *API) string {
	act := interaction(method, seg, a)
	switch {
	case act == "read", act == "vread", act == "create", act == "update", act == "delete", act == "batch", act == "transaction":
		return act
	case strings.HasPrefix(act, "search"):
		return detect.Search
	case strings.HasPrefix(act, "history"):
		return detect.History
	}
	for _, s := range seg {
		switch s {
		case "$everything":
			return detect.Everything
		case "$export":
			return detect.Export
		}
	}
	if act == "operation" {
		return detect.Operation
	}
	return detect.Other
}

func peerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
