package fhirapi

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/policy"
)

// The API's rate, cost and concurrency limits (issue 8): a cheap check of
// the peer (address, certificate) before authentication, then the caller
// (client, user, patient context) with the request's cost in FHIR terms
// and a concurrency slot, and after the response is built the number of
// distinct patients it discloses to the client and user.

// throttled answers 429 with Retry-After and the RateLimit headers.
func (a *API) throttled(w http.ResponseWriter, r *http.Request, d limits.Decision) {
	limits.SetHeaders(w.Header(), d)
	secs := int64((d.RetryAfter + 999_999_999) / 1_000_000_000)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	auditFrom(r.Context()).denied("limit: " + d.Limit)
	a.writeError(w, r, errorf(http.StatusTooManyRequests, "throttled", "Too many requests ("+d.Limit+"); retry after "+strconv.FormatInt(max(secs, 1), 10)+" s"))
}

// limitUnavailable answers 503 when the limits' store cannot be reached
// (on_store_error: closed).
func (a *API) limitUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("rate limits cannot be checked; request refused", "error", err.Error())
	a.writeError(w, r, errorf(http.StatusServiceUnavailable, "transient", "Request limits cannot be checked right now; retry later"))
}

// limitPeer charges one unit to the peer's address and certificate; false
// means the request was answered (429 or 503).
func (a *API) limitPeer(w http.ResponseWriter, r *http.Request) bool {
	l := a.opts.Limiter
	if l == nil {
		return true
	}
	k := limits.Keys{Cert: mtls.PeerThumbprint(r.TLS)}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		k.Address = ap.Addr().Unmap()
	}
	d, err := l.Allow(r.Context(), k, 1)
	if err != nil {
		a.limitUnavailable(w, r, err)
		return false
	}
	if !d.Allowed {
		a.throttled(w, r, d)
		return false
	}
	return true
}

// callerKeys are the limits' keys of a verified caller.
func callerKeys(p *policy.Principal) limits.Keys {
	k := limits.Keys{Client: p.ClientID, Patient: p.Patient}
	switch {
	case p.IsBackend():
		k.Class = limits.Backend
	case strings.HasPrefix(p.FHIRUser, "Practitioner") || strings.Contains(p.FHIRUser, "/Practitioner"):
		k.Class, k.User = limits.ClinicianApp, p.Subject
	default:
		k.Class, k.User = limits.PatientApp, p.Subject
	}
	return k
}

// limitCaller charges the request's cost to the caller and takes a
// concurrency slot; false means the request was answered. release frees
// the slot.
func (a *API) limitCaller(w http.ResponseWriter, r *http.Request, p *policy.Principal, seg []string) (release func(), ok bool) {
	l := a.opts.Limiter
	if l == nil || p == nil {
		return func() {}, true
	}
	k := callerKeys(p)
	d, release := l.Acquire(k)
	if !d.Allowed {
		a.throttled(w, r, d)
		return nil, false
	}
	d, err := l.Allow(r.Context(), k, l.Cost(a.costRequest(r, seg)))
	if err != nil {
		release()
		a.limitUnavailable(w, r, err)
		return nil, false
	}
	if !d.Allowed {
		release()
		a.throttled(w, r, d)
		return nil, false
	}
	limits.SetHeaders(w.Header(), d)
	return release, true
}

// limitPatients counts the patients a response discloses against the
// caller's distinct-patient budgets; a refused Decision means the
// response must not be released.
func (a *API) limitPatients(ctx context.Context, p *policy.Principal, patients []string) (limits.Decision, error) {
	l := a.opts.Limiter
	if l == nil || p == nil || len(patients) == 0 {
		return limits.Decision{Allowed: true}, nil
	}
	return l.Touch(ctx, callerKeys(p), patients)
}

// costRequest describes r in the cost model's terms.
func (a *API) costRequest(r *http.Request, seg []string) limits.Request {
	q := r.URL.Query()
	req := limits.Request{}
	if len(seg) > 0 && a.model.IsResourceType(seg[0]) {
		req.Type = seg[0]
	}
	switch act := interaction(r.Method, seg, a); act {
	case "read", "history-instance":
		req.Interaction = limits.Read
	case "vread":
		req.Interaction = limits.VRead
	case "search-type", "search-system":
		req.Interaction = limits.Search
	case "history-type", "history-system":
		req.Interaction = limits.History
	case "create", "update", "delete":
		req.Interaction = limits.Interaction(act)
	case "capabilities":
		req.Interaction = limits.Capabilities
	case "batch":
		req.Interaction = limits.Batch
	default:
		req.Interaction = limits.Operation
		if n := len(seg); n > 0 {
			req.Operation = seg[n-1]
		}
	}
	if n, err := strconv.Atoi(q.Get("_count")); err == nil {
		req.Count = n
	}
	req.Summary = q.Get("_summary") == "count" || q.Get("_count") == "0"
	for key, vals := range q {
		base, mod, _ := strings.Cut(key, ":")
		switch {
		case base == "_include" || base == "_revinclude":
			req.Includes += len(vals)
			if mod == "iterate" {
				req.Iterate = true
			}
		case strings.HasPrefix(key, "_has:") || (!strings.HasPrefix(key, "_") && strings.Contains(base, ".")):
			req.Chains += len(vals)
		}
	}
	return req
}
