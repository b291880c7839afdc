package routes

import (
	"context"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Guard.
type Options struct {
	Inventory Inventory
	// Classify names a request; nil treats every request as non-FHIR.
	Classify func(*http.Request) Request
	// OnExpired is told when an expired route is asked for (at most once
	// a minute per route): the alert.
	OnExpired func(ctx context.Context, r Route)
	// Now is the clock (nil: time.Now); expiry is checked on each
	// request, no restart needed.
	Now func() time.Time
	// Metrics, when set, receives warden_routes_requests_total{route}
	// and warden_routes_refused_total{reason}.
	Metrics prometheus.Registerer
}

// Guard serves only declared routes.
type Guard struct {
	o        Options
	requests *prometheus.CounterVec
	refused  *prometheus.CounterVec

	mu      sync.Mutex
	alerted map[string]time.Time
}

// NotFoundFloor is the least time a refused undeclared FHIR request
// takes, as the FHIR API's own 404s do (fhirapi.Options.NotFoundFloor).
const NotFoundFloor = 2 * time.Millisecond

// New checks the inventory and returns its Guard.
func New(o Options) (*Guard, error) {
	if err := o.Inventory.Validate(); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &Guard{o: o, alerted: map[string]time.Time{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_routes_requests_total", Help: "Requests by declared route (the inventory's names)."}, []string{"route"}),
		refused:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warden_routes_refused_total", Help: "Requests refused by the inventory: undeclared or expired."}, []string{"reason"}),
	}
	if o.Metrics != nil {
		if err := o.Metrics.Register(g.requests); err != nil {
			return nil, err
		}
		if err := o.Metrics.Register(g.refused); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Handler answers requests of no declared route with 404 (the answer of
// an unknown route: nothing says the route exists elsewhere), of an
// expired route with 410 Gone, and marks deprecated routes' responses
// with Deprecation (RFC 9745 §2), Sunset (RFC 8594 §3) and Link
// rel="deprecation" (RFC 9745 §3).
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if !clean(r.URL.Path) {
			// The router answers a path that is not in canonical form
			// with a redirect to the canonical one, serving nothing; the
			// redirected request comes back here.
			next.ServeHTTP(w, r)
			return
		}
		req := Request{Method: r.Method, Path: r.URL.Path}
		if g.o.Classify != nil {
			req = g.o.Classify(r)
		}
		rt := g.o.Inventory.Match(req)
		if rt == nil {
			g.refused.WithLabelValues("undeclared").Inc()
			if req.FHIR {
				if d := NotFoundFloor - time.Since(start); d > 0 {
					time.Sleep(d)
				}
				writeOutcome(w, http.StatusNotFound, "not-found", "Unknown path or method")
				return
			}
			http.NotFound(w, r)
			return
		}
		now := g.o.Now()
		switch rt.StatusAt(now) {
		case Expired:
			g.refused.WithLabelValues("expired").Inc()
			g.alert(r.Context(), *rt, now)
			writeOutcome(w, http.StatusGone, "not-supported", "This endpoint was retired on "+rt.Expires.UTC().Format(time.DateOnly))
			return
		case Deprecated:
			h := w.Header()
			h.Set("Deprecation", "@"+strconv.FormatInt(rt.Deprecated.Unix(), 10))
			if !rt.Sunset.IsZero() {
				h.Set("Sunset", rt.Sunset.UTC().Format(http.TimeFormat))
			}
			if rt.Link != "" {
				h.Add("Link", "<"+rt.Link+`>; rel="deprecation"`)
			}
		}
		g.requests.WithLabelValues(rt.Name).Inc()
		next.ServeHTTP(w, r)
	})
}

// alert tells OnExpired, at most once a minute per route.
func (g *Guard) alert(ctx context.Context, rt Route, now time.Time) {
	if g.o.OnExpired == nil {
		return
	}
	g.mu.Lock()
	last, ok := g.alerted[rt.Name]
	if ok && now.Sub(last) < time.Minute {
		g.mu.Unlock()
		return
	}
	g.alerted[rt.Name] = now
	g.mu.Unlock()
	g.o.OnExpired(ctx, rt)
}

func writeOutcome(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"` + code + `","diagnostics":"` + msg + `"}]}`))
}

// Register adds the Guard's metrics to reg (once the registry exists).
func (g *Guard) Register(reg prometheus.Registerer) error {
	if err := reg.Register(g.requests); err != nil {
		return err
	}
	return reg.Register(g.refused)
}

// clean reports whether p is in the canonical form net/http's router
// serves (no ".", "..", or empty segments; a trailing slash allowed).
func clean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
