package fhirapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/validate"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/reqid"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store"
)

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// Error is a failure with the HTTP status and the public issues that go to
// the client. Its text never contains resource content.
type Error struct {
	Status int
	Issues []Issue
	// Challenge is the WWW-Authenticate header of a 401 (RFC 6750 §3).
	Challenge string
	// DPoPNonce, when set, is sent as DPoP-Nonce (RFC 9449 §8): the nonce
	// the client's next proof must carry.
	DPoPNonce string
	// RetryAfter, when set, is sent as Retry-After in seconds (a 429).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return http.StatusText(e.Status)
	}
	return e.Issues[0].Diagnostics
}

func errorf(status int, code, msg string, expr ...string) *Error {
	return &Error{Status: status, Issues: []Issue{{Severity: "error", Code: code, Diagnostics: msg, Expression: expr}}}
}

// toError is the one table that maps Go errors to HTTP status and
// OperationOutcome. Unknown errors become a 500 whose public text carries
// only the error id; the real error goes to the log under the same id.
func toError(err error) (e *Error, internal bool) {
	var ae *Error
	var se *search.Error
	switch {
	case errors.As(err, &ae):
		return ae, false
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, "invalid", se.Error(), se.Param), false
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "not-found", "Resource not found"), false
	case errors.Is(err, store.ErrDeleted):
		return errorf(http.StatusGone, "deleted", "Resource was deleted"), false
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "The resource was changed concurrently; retry with the current version"), false
	case errors.Is(err, store.ErrBadCursor):
		return errorf(http.StatusBadRequest, "invalid", "The paging link is invalid or has expired; repeat the search"), false
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, "transient", "The service is temporarily unavailable; retry later"), true
	case errors.Is(err, context.Canceled):
		return errorf(499, "transient", "Request cancelled"), false
	case errors.Is(err, sealing.ErrForged):
		return errorf(http.StatusBadRequest, "invalid", "A resource may not carry the _sealed member"), false
	case errors.Is(err, fieldcrypt.ErrShredded):
		return errorf(http.StatusConflict, "conflict", "This patient's data in a sensitivity category was erased (crypto-shredded); new data in that category is refused"), false
	}
	return errorf(http.StatusInternalServerError, "exception", "Internal error"), true
}

// invalidResource turns validation issues into a 400 answer; nil when
// none of them is an error.
func invalidResource(issues []validate.Issue) *Error {
	e := &Error{Status: http.StatusBadRequest}
	failed := false
	for _, is := range issues {
		failed = failed || is.Severity == "error" || is.Severity == "fatal"
		e.Issues = append(e.Issues, Issue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Message, Expression: nonEmpty(is.Expression)})
	}
	if !failed {
		return nil
	}
	return e
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// writeError answers with an OperationOutcome. The request id goes into
// the outcome (as the error id) and into the log line.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, internal := toError(err)
	if e.Status == http.StatusNotFound {
		a.notFoundFloor(r)
	}
	id := reqid.From(r.Context())
	level := slog.LevelInfo
	if internal {
		level = slog.LevelError
	}
	a.log.LogAttrs(r.Context(), level, "request failed", slog.String("request_id", id), slog.Int("status", e.Status), slog.String("error", err.Error()))
	issues := e.Issues
	if internal {
		issues = []Issue{{Severity: "error", Code: issues[0].Code, Diagnostics: issues[0].Diagnostics + " (error id " + id + ")"}}
	}
	if e.DPoPNonce != "" {
		w.Header().Set("DPoP-Nonce", e.DPoPNonce)
	}
	if e.Challenge != "" {
		w.Header().Set("WWW-Authenticate", e.Challenge)
	}
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	writeJSON(w, e.Status, outcome(issues))
}

func outcome(issues []Issue) map[string]any {
	return map[string]any{"resourceType": "OperationOutcome", "issue": issues}
}

func informational(msg string) map[string]any {
	return outcome([]Issue{{Severity: "information", Code: "informational", Diagnostics: msg}})
}

func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// startKey holds when the API began serving a request.
type startKey struct{}

// defaultNotFoundFloor is how long a 404 takes at least, from the start
// of the request: longer than reading and refusing a resource that
// exists in another patient's record, so that the time of a 404 does
// not tell "not there" from "not yours" (and ID walking slows down).
const defaultNotFoundFloor = 2 * time.Millisecond

// notFoundFloor waits until the request is Options.NotFoundFloor old.
func (a *API) notFoundFloor(r *http.Request) { a.notFoundFloorN(r, 1) }

// notFoundFloorN waits until the request is n floors old: a batch with n
// entries answered 404 takes as long whichever of them exist elsewhere.
func (a *API) notFoundFloorN(r *http.Request, n int) {
	floor := a.opts.NotFoundFloor * time.Duration(n)
	if floor == 0 {
		floor = defaultNotFoundFloor * time.Duration(n)
	}
	start, ok := r.Context().Value(startKey{}).(time.Time)
	if !ok || floor < 0 {
		return
	}
	if d := floor - time.Since(start); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
}
