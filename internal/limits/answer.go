package limits

import (
	"encoding/json"
	"html"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// seconds rounds d up to whole seconds, at least 1 for a positive d.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// SetHeaders writes the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers-10 (§3.1 and §3.2, Structured Field
// Items with the policy name as a String) for d's limit: quota q and
// window w in seconds; remaining r and seconds to reset t. It writes
// nothing when no limit applied.
func SetHeaders(h http.Header, d Decision) {
	if d.Policy == "" || d.Quota <= 0 {
		return
	}
	name := strconv.Quote(d.Policy) // policy names are plain ASCII tokens: a valid sf-string
	h.Set("RateLimit-Policy", name+";q="+strconv.Itoa(d.Quota)+";w="+strconv.FormatInt(max(seconds(d.Window), 1), 10))
	reset := d.Reset
	if !d.Allowed {
		reset = d.RetryAfter // §4: t SHOULD match Retry-After
	}
	h.Set("RateLimit", name+";r="+strconv.Itoa(max(d.Remaining, 0))+";t="+strconv.FormatInt(seconds(reset), 10))
}

type outcomeIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics"`
}

type outcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

func writeOutcome(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(outcome{ResourceType: "OperationOutcome", Issue: []outcomeIssue{{Severity: "error", Code: code, Diagnostics: msg}}})
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteTooMany answers a refused request: 429 Too Many Requests (RFC 6585
// §4) with Retry-After in whole seconds rounded up (RFC 9110 §10.2.3), the
// RateLimit fields (SetHeaders) and a FHIR OperationOutcome whose issue
// code is "throttled" (FHIR R4 IssueType) and whose diagnostics name the
// limit class, nothing about the caller.
func WriteTooMany(w http.ResponseWriter, d Decision) {
	retry := max(seconds(d.RetryAfter), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
	SetHeaders(w.Header(), d)
	limit := d.Limit
	if limit == "" {
		limit = "request limit"
	}
	writeOutcome(w, http.StatusTooManyRequests, "throttled",
		"Too many requests: the "+limit+" is exhausted; retry after "+strconv.FormatInt(retry, 10)+" s")
}

// WriteUnavailable answers a request the limits could not meter (the
// store is down and limits fail closed): 503 with a transient
// OperationOutcome and a short Retry-After.
func WriteUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeOutcome(w, http.StatusServiceUnavailable, "transient", "The service is temporarily unavailable; retry later")
}

// Middleware meters every request that facts describes: it takes a
// concurrency slot of the client, then charges the request's cost; it
// answers 429 (WriteTooMany) or 503 (WriteUnavailable) itself, and sets
// the RateLimit fields on requests it lets through. facts returns the
// verified keys and the cost; it runs inside the handler chain, so it
// can read what authentication put in the request's context.
func Middleware(l *Limiter, facts func(*http.Request) (Keys, int), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, cost := facts(r)
		d, release := l.Acquire(k)
		if !d.Allowed {
			WriteTooMany(w, d)
			return
		}
		defer release()
		d, err := l.Allow(r.Context(), k, cost)
		switch {
		case err != nil: // ErrUnavailable: the limits fail closed
			WriteUnavailable(w)
			return
		case !d.Allowed:
			WriteTooMany(w, d)
			return
		}
		SetHeaders(w.Header(), d)
		next.ServeHTTP(w, r)
	})
}

// AuthMiddleware meters every request to the authorization server by its
// source address (Limiter.AllowAuth, the peer as the server resolved it:
// forwarded addresses only from configured proxies). A refused request
// is answered 429 with Retry-After and the RateLimit fields; a request
// the store cannot meter, 503 (the limits fail closed). Both answers are
// in OAuth's error form (RFC 6749 §5.2, error
// "temporarily_unavailable"), or a short HTML page for a browser, and
// name no caller.
func AuthMiddleware(l *Limiter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var addr netip.Addr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			addr = ap.Addr()
		}
		d, err := l.AllowAuth(r.Context(), addr)
		switch {
		case err != nil:
			w.Header().Set("Retry-After", "1")
			WriteAuthError(w, r, http.StatusServiceUnavailable, "The service is temporarily unavailable; retry later.")
			return
		case !d.Allowed:
			retry := max(seconds(d.RetryAfter), 1)
			w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
			SetHeaders(w.Header(), d)
			WriteAuthError(w, r, http.StatusTooManyRequests,
				"Too many requests from this network address; retry after "+strconv.FormatInt(retry, 10)+" s.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// WriteAuthError answers a request to the authorization server that is
// refused before it is handled, in OAuth's JSON error form (error
// "temporarily_unavailable"), or with a minimal HTML page when the caller
// is a browser asking for one. msg is shown as it is: it must name no
// caller.
func WriteAuthError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte("<!doctype html><title>Please wait</title><p>" + html.EscapeString(msg) + "</p>\n"))
		return
	}
	body, _ := json.Marshal(map[string]string{"error": "temporarily_unavailable", "error_description": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
