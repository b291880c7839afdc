package limits

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// ErrUnavailable is returned when the store cannot answer and the limits
// fail closed: the request is refused with 503, never served unmetered.
var ErrUnavailable = errors.New("limits: the limits store is unavailable")

// Keys name who is asking, as verified upstream: each non-empty field is
// one key the request is counted against. Leave a field empty when it is
// unknown (no user for a backend client, no patient context, no client
// certificate); never fill it from unverified input.
type Keys struct {
	Client  string     // OAuth client_id of a verified token
	Class   string     // the client's class; "" is Config.DefaultClass
	User    string     // the user (token sub) for user-facing clients; "" for backend services
	Patient string     // the launch-context patient id
	Address netip.Addr // the trusted peer address (proxies only when configured)
	Cert    string     // the client certificate's SHA-256 thumbprint (RFC 8705 x5t#S256)
}

// Decision is the answer of the Limiter. Limit names the limit that
// refused, or when allowed the one with the least room left; it names a
// class of limit, never an identifier, so it may go to logs and clients.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration // when refused: wait at least this long
	Limit      string        // e.g. "client rate (clinician-app)"; "" when no limit applied
	Policy     string        // Limit's short name for RateLimit headers: client, user, patient, address, certificate, patients-client, patients-user, concurrency
	Remaining  int           // units (or patients, or slots) left under Limit
	Quota      int           // Limit's burst (or budget count, or concurrency)
	Window     time.Duration // the time Limit's quota refills in (or the budget's window)
	Reset      time.Duration // time until Limit's quota is whole again
}

// Limiter enforces the limits of a Config over a Store. It is safe for
// concurrent use.
type Limiter struct {
	cfg     Config
	store   Store
	now     func() time.Time
	classes map[string]*profile
	clients map[string]*profile
	timeout time.Duration
	open    bool // fail open on store errors

	mu       sync.Mutex
	inflight map[string]int
}

// New returns a Limiter for cfg over store; cfg must pass Validate.
func New(cfg Config, store Store) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, fmt.Errorf("%w: no store", ErrInvalidConfig)
	}
	l := &Limiter{cfg: cfg, store: store, now: time.Now, timeout: cfg.StoreTimeout,
		open: cfg.OnStoreError == "open", inflight: map[string]int{}}
	l.classes, l.clients = cfg.profiles()
	return l, nil
}

// SetClock replaces the Limiter's clock, for tests.
func (l *Limiter) SetClock(now func() time.Time) { l.now = now }

// profile is the limits that apply to the client of k.
func (l *Limiter) profile(k Keys) *profile {
	if p, ok := l.clients[k.Client]; ok {
		return p
	}
	if p, ok := l.classes[k.Class]; ok {
		return p
	}
	return l.classes[l.cfg.DefaultClass]
}

// addressKey counts IPv6 addresses by their configured prefix.
func (l *Limiter) addressKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(l.cfg.IPv6Prefix); err == nil {
			return "addr/" + p.String()
		}
	}
	return "addr/" + a.String()
}

// scoped is the store key of id within a scope (a class, or a named
// client): the scope is length-prefixed, so no two (scope, id) pairs give
// the same key whatever bytes they hold. Keys are KIND/REST: stores may
// digest REST, never KIND.
func scoped(kind, scope, id string) string {
	return kind + "/" + strconv.Itoa(len(scope)) + ":" + scope + "/" + id
}

type bucketInfo struct {
	policy, limit string
	rl            RateLimit
}

// Allow charges cost units against every rate limit that k names (client,
// user and patient context by the client's class; source address;
// certificate), all or nothing, and says whether the request may proceed.
// A cost above a limit's burst is charged as the whole burst, so no request
// is refused forever. The error is ErrUnavailable (wrapped) when the store
// cannot answer and the limits fail closed.
func (l *Limiter) Allow(ctx context.Context, k Keys, cost int) (Decision, error) {
	if l.cfg.Disabled {
		return Decision{Allowed: true}, nil
	}
	cost = min(max(cost, 1), maxCost)
	var bArr [5]Bucket
	var iArr [5]bucketInfo
	buckets, infos := bArr[:0], iArr[:0]
	add := func(key, policy, limit string, rl RateLimit) {
		if rl.Rate.Off() {
			return
		}
		buckets = append(buckets, Bucket{Key: key, Interval: rl.Rate.Interval(), Burst: rl.Burst, Cost: min(cost, rl.Burst)})
		infos = append(infos, bucketInfo{policy, limit, rl})
	}
	if k.Client != "" {
		p := l.profile(k)
		add("client/"+k.Client, "client", p.limClient, p.client)
		if k.User != "" {
			add(scoped("user", p.key, k.User), "user", p.limUser, p.user)
		}
		if k.Patient != "" {
			add(scoped("patient", p.key, k.Patient), "patient", p.limPatient, p.patient)
		}
	}
	if k.Address.IsValid() {
		add(l.addressKey(k.Address), "address", "source-address rate", l.cfg.PerAddress)
	}
	if k.Cert != "" {
		add("cert/"+k.Cert, "certificate", "client-certificate rate", l.cfg.PerCertificate)
	}
	if len(buckets) == 0 {
		return Decision{Allowed: true}, nil
	}
	var sArr [5]BucketState
	states := sArr[:len(buckets)]
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if err := l.store.Take(ctx, l.now(), buckets, states); err != nil {
		return l.storeFailed(err)
	}
	return decide(states, infos), nil
}

// AllowAuth charges one unit of the authorization server's budget of
// addr (Config.AuthPerAddress; IPv6 by its prefix), apart from the FHIR
// API's per-address budget. An invalid addr is not metered.
func (l *Limiter) AllowAuth(ctx context.Context, addr netip.Addr) (Decision, error) {
	rl := l.cfg.AuthPerAddress
	if l.cfg.Disabled || rl.Rate.Off() || !addr.IsValid() {
		return Decision{Allowed: true}, nil
	}
	buckets := [1]Bucket{{Key: "auth-" + l.addressKey(addr), Interval: rl.Rate.Interval(), Burst: rl.Burst, Cost: 1}}
	var states [1]BucketState
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if err := l.store.Take(ctx, l.now(), buckets[:], states[:]); err != nil {
		return l.storeFailed(err)
	}
	return decide(states[:], []bucketInfo{{"auth-address", "authorization-server rate per source address", rl}}), nil
}

// decide combines bucket states: refused when any bucket is, after the
// longest wait; else naming the bucket with the least room left.
func decide(states []BucketState, infos []bucketInfo) Decision {
	pick, allowed := -1, true
	for i, st := range states {
		switch {
		case !st.Allowed && (allowed || st.RetryAfter > states[pick].RetryAfter):
			pick, allowed = i, false
		case allowed && (pick < 0 || st.Remaining < states[pick].Remaining):
			pick = i
		}
	}
	st, in := states[pick], infos[pick]
	return Decision{
		Allowed: allowed, RetryAfter: st.RetryAfter, Limit: in.limit, Policy: in.policy, Remaining: st.Remaining,
		Quota: in.rl.Burst, Window: in.rl.Rate.Interval() * time.Duration(in.rl.Burst), Reset: st.Reset,
	}
}

func (l *Limiter) storeFailed(err error) (Decision, error) {
	if l.open {
		return Decision{Allowed: true, Limit: "none: limits store unavailable, failing open"}, nil
	}
	return Decision{Limit: "limits store unavailable"}, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Cost is the cost of r under the configured cost table.
func (l *Limiter) Cost(r Request) int { return l.cfg.Costs.Cost(r) }
