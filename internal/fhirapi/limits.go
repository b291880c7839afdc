package fhirapi

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/policy"
)

// The API's rate, cost and concurrency limits (issue 8): a peer this
// process saw over its limit is refused first, from memory; then the
// caller (client, user, patient context) and its connection (address,
// certificate) are charged the request's cost in FHIR terms in one step,
// with a concurrency slot (a request with no caller charges its peer one
// unit); after the response is built, the distinct patients it discloses
// count against the client's and user's budgets. Two round trips to a
// shared store per request.

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

// peerKeys are the limits' keys of the connection: its address and
// certificate.
func peerKeys(r *http.Request) limits.Keys {
	k := limits.Keys{Cert: mtls.PeerThumbprint(r.TLS)}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		k.Address = ap.Addr().Unmap()
	}
	return k
}

// peerBlocks remembers peers refused for their address or certificate
// limit until their Retry-After, so that a flood is refused before any
// work — even before a round trip to a shared store.
type peerBlocks struct {
	mu    sync.Mutex
	until map[string]time.Time
}

const maxPeerBlocks = 100_000

func peerBlockKey(k limits.Keys) string { return k.Address.String() + "|" + k.Cert }

func (b *peerBlocks) blocked(k limits.Keys, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[peerBlockKey(k)]
	if !ok || !now.Before(t) {
		return 0, false
	}
	return t.Sub(now), true
}

func (b *peerBlocks) block(k limits.Keys, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until == nil {
		b.until = map[string]time.Time{}
	}
	if len(b.until) >= maxPeerBlocks {
		now := time.Now()
		for key, t := range b.until {
			if !now.Before(t) {
				delete(b.until, key)
			}
		}
		if len(b.until) >= maxPeerBlocks {
			return // the store still refuses them, one round trip each
		}
	}
	b.until[peerBlockKey(k)] = until
}

// peerAllowed refuses a peer this process saw over its address or
// certificate limit, until its Retry-After; no store is asked.
func (a *API) peerAllowed(w http.ResponseWriter, r *http.Request) bool {
	if a.opts.Limiter == nil {
		return true
	}
	if wait, ok := a.peers.blocked(peerKeys(r), time.Now()); ok {
		a.throttled(w, r, limits.Decision{RetryAfter: wait, Limit: "address or certificate rate", Policy: "address"})
		return false
	}
	return true
}

// refused answers a refusal, remembering a peer refused for its address
// or certificate.
func (a *API) refused(w http.ResponseWriter, r *http.Request, k limits.Keys, d limits.Decision) {
	if d.Policy == "address" || d.Policy == "certificate" {
		a.peers.block(k, time.Now().Add(d.RetryAfter))
	}
	a.throttled(w, r, d)
}

// limitPeer charges one unit to the peer's address and certificate, for
// requests with no caller to charge (refused authentication, public
// routes); false means the request was answered (429 or 503).
func (a *API) limitPeer(w http.ResponseWriter, r *http.Request) bool {
	l := a.opts.Limiter
	if l == nil {
		return true
	}
	k := peerKeys(r)
	d, err := l.Allow(r.Context(), k, 1)
	if err != nil {
		a.limitUnavailable(w, r, err)
		return false
	}
	if !d.Allowed {
		a.refused(w, r, k, d)
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
	// The caller and its connection, in one step (one round trip to a
	// shared store).
	peer := peerKeys(r)
	k.Address, k.Cert = peer.Address, peer.Cert
	d, err := l.Allow(r.Context(), k, l.Cost(a.costRequest(r, seg)))
	if err != nil {
		release()
		a.limitUnavailable(w, r, err)
		return nil, false
	}
	if !d.Allowed {
		release()
		a.refused(w, r, peer, d)
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
	k := callerKeys(p)
	// A caller reading more of the patients it read a moment ago adds no
	// patient to its budgets: skip the store for them (their last touch
	// is at most retouchEvery old in the store, which a budget's window
	// of minutes or hours hardly notices).
	now := time.Now()
	fresh := a.touched.filter(k, patients, now)
	if len(fresh) == 0 {
		return limits.Decision{Allowed: true}, nil
	}
	d, err := l.Touch(ctx, k, patients)
	if err == nil && d.Allowed {
		a.touched.remember(k, patients, now)
	}
	return d, err
}

// retouchEvery is how long a (caller, patient) pair counted in the
// distinct-patient budgets is not sent to the store again by this process.
const retouchEvery = 30 * time.Second

// touchedPatients remembers, per process, the (caller, patient) pairs
// counted recently.
type touchedPatients struct {
	mu sync.Mutex
	at map[string]time.Time
}

func touchedKey(k limits.Keys, patient string) string {
	return k.Client + "\x00" + k.User + "\x00" + patient
}

// filter returns the patients not counted for k within retouchEvery.
func (t *touchedPatients) filter(k limits.Keys, patients []string, now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, p := range patients {
		if at, ok := t.at[touchedKey(k, p)]; !ok || now.Sub(at) >= retouchEvery {
			out = append(out, p)
		}
	}
	return out
}

func (t *touchedPatients) remember(k limits.Keys, patients []string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at == nil || len(t.at) > 200_000 {
		t.at = map[string]time.Time{} // bounded: forgetting only costs store round trips
	}
	for _, p := range patients {
		t.at[touchedKey(k, p)] = now
	}
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

// chargeEntries charges a batch or transaction Bundle's entries to its
// caller, once their number is known (the request itself was charged as
// one bundle): a Bundle of a thousand reads costs what a thousand reads
// do. Trusted calls (import) are not charged.
func (a *API) chargeEntries(ctx context.Context, n int) error {
	l, p := a.opts.Limiter, PrincipalFrom(ctx)
	if l == nil || p == nil || n == 0 {
		return nil
	}
	cost := l.Cost(limits.Request{Interaction: limits.Batch, Entries: n}) - l.Cost(limits.Request{Interaction: limits.Batch})
	if cost <= 0 {
		return nil
	}
	d, err := l.Allow(ctx, callerKeys(p), cost)
	if err != nil {
		a.log.Error("rate limits cannot be checked; request refused", "error", err.Error())
		return errorf(http.StatusServiceUnavailable, "transient", "Request limits cannot be checked right now; retry later")
	}
	if !d.Allowed {
		auditFrom(ctx).denied("limit: " + d.Limit)
		e := errorf(http.StatusTooManyRequests, "throttled", "Too many requests ("+d.Limit+"): the Bundle's "+strconv.Itoa(n)+" entries exceed what remains")
		e.RetryAfter = max(d.RetryAfter, time.Second)
		return e
	}
	return nil
}
