// Package fhirapi serves the FHIR R4 REST API (JSON) over a store.Store:
// read, vread, create, update, delete, conditional operations, history,
// search, batch and transaction Bundles, and the CapabilityStatement.
//
// It is the only package where errors become HTTP statuses and
// OperationOutcomes (see toError); everything it answers with is built so
// that no resource content is echoed in errors.
package fhirapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audithttp"
	"github.com/wardenfhir/warden/internal/detect"
	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/fhir/model"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/fhir/validate"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store"
)

// Options configure the API.
type Options struct {
	// BaseURL is the absolute FHIR base ("https://host:8443/fhir"); links
	// and Location headers are built from it.
	BaseURL string
	// CursorKey authenticates paging cursors (at least 32 bytes).
	CursorKey []byte
	// DefaultCount and MaxCount bound search page sizes.
	DefaultCount, MaxCount int
	// MaxBodyBytes bounds request bodies; MaxJSONDepth their nesting.
	MaxBodyBytes int64
	MaxJSONDepth int
	// MaxBundleEntries bounds batch and transaction Bundles.
	MaxBundleEntries int
	// BatchParallel is how many entries of a batch Bundle run at once
	// (default 16). The store commits those running together in one
	// group; a bulk load (warden import) runs more, so that its groups
	// are larger, where a server keeps one client's batch from holding
	// the store's single writer for long.
	BatchParallel int
	// LenientSearchDefault ignores unknown search parameters unless the
	// client sends Prefer: handling=strict.
	LenientSearchDefault bool
	// Version is the software version for the CapabilityStatement.
	Version string
	Logger  *slog.Logger
	// Verifier checks the access token of every request but /metadata.
	Verifier Verifier
	// RevokeGrant revokes an app grant (authserver.Server.RevokeGrant):
	// POST Consent/{id}/$revoke calls it; an id that is no grant's is a
	// no-op. Nil: the operation answers 501.
	RevokeGrant func(ctx context.Context, grantID string) error
	// Labeller, when set, labels every resource written (API, bundles,
	// import) with HL7 v3 security labels in meta.security: the
	// sensitivity of its codes and of the resources it references (site
	// policy), never lowering a client's labels.
	Labeller *labels.Labeller
	// Sealing, with Keys, seals the content of resources labelled with
	// its categories before they reach the store (package sealing) and
	// opens it only for callers cleared for them; nil seals nothing.
	Sealing *sealing.Policy
	Keys    *fieldcrypt.Keys
	// Limiter, when set, enforces rate, cost, concurrency and
	// distinct-patient limits (package limits): 429 with Retry-After.
	Limiter *limits.Limiter
	// NotFoundFloor is the least time a 404 takes from the start of the
	// request, so that "does not exist" and "exists but not yours" take
	// the same time; 0 means 2 ms, a negative value none (benchmarks).
	NotFoundFloor time.Duration
	// Detector, when set, watches every request for abuse (scraping,
	// enumeration, token replay…; package detect) and refuses callers it
	// throttles, quarantines or asks to step up. Spoofed tells it which
	// requests came with forwarding headers from untrusted peers.
	Detector *detect.Engine
	Spoofed  Spoofed
	// Consents, when set, applies the patients' privacy consents to every
	// disclosure and write (see Consents); nil enforces none.
	Consents Consents
	// Origins are the browser origins allowed to call the API (CORS);
	// nil allows none.
	Origins Origins
	// Site is the site policy consulted whenever a user reaches a record
	// that is not their own (policy.Decision.Site); nil allows none.
	Site *policy.Site
	// OAuth are the authorization server's endpoints, announced in the
	// CapabilityStatement.
	OAuth OAuthURIs
	// Audit receives an event for every request; a response is released
	// only once its event is durable, and is a 503 if it cannot be.
	// Nil audits nothing (tests of REST semantics, benchmarks).
	Audit audit.Sink
	// BeforeAuditEventRead, when set, runs before every request that can
	// return AuditEvents, so that the trail's searchable copy holds every
	// event made durable before the request (the indexer's CatchUp).
	BeforeAuditEventRead func(ctx context.Context) error
	// DPoP verifies the proofs of DPoP-bound tokens (RFC 9449); nil
	// refuses the DPoP scheme. Origin is the public scheme://host[:port]
	// the proofs' htu must name (never taken from the request).
	DPoP   *dpop.Verifier
	Origin string
	// Policy configures the authorization decisions.
	Policy policy.Options
	// Unauthenticated serves every request without a token, with the
	// whole store: for benchmarks that measure what enforcement costs
	// and for tests of the REST semantics alone. No configuration
	// setting reaches it.
	Unauthenticated bool
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// OAuthURIs are the endpoints of the SMART authorization server.
type OAuthURIs struct {
	Authorize, Token, Introspect, Revoke string
}

// API is the FHIR REST API. It is an http.Handler for requests under
// the base path.
type API struct {
	peers   peerBlocks      // peers refused for their address or certificate limit
	touched touchedPatients // (caller, patient) pairs counted in the budgets recently
	store   store.Store
	reg     *searchparam.Registry
	model   *model.Model
	opts    Options
	log     *slog.Logger
	base    string // BaseURL without trailing slash
	prefix  string // path of BaseURL ("/fhir")
	now     func() time.Time
	limits  validate.Limits

	facts siteFacts // site-policy facts, cached

	capOnce sync.Once
	capBody []byte
	capErr  error
}

// New returns the API serving st.
func New(st store.Store, opts Options) (*API, error) {
	// The two halves of the definitions load side by side (each is a
	// third of a second of start-up, once per process).
	var m *model.Model
	var merr error
	loaded := make(chan struct{})
	go func() { defer close(loaded); m, merr = model.R4() }()
	reg, err := searchparam.R4()
	<-loaded
	if err != nil {
		return nil, err
	}
	if merr != nil {
		return nil, merr
	}
	if len(opts.CursorKey) < 32 {
		return nil, errors.New("fhirapi: cursor key must be at least 32 bytes")
	}
	if opts.DefaultCount <= 0 {
		opts.DefaultCount = 20
	}
	if opts.MaxCount <= 0 {
		opts.MaxCount = 1000
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 10 << 20
	}
	if opts.MaxJSONDepth <= 0 {
		opts.MaxJSONDepth = 64
	}
	if opts.MaxBundleEntries <= 0 {
		opts.MaxBundleEntries = 1000
	}
	if opts.BatchParallel <= 0 {
		opts.BatchParallel = defaultBatchParallel
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	prefix := "/"
	if i := strings.Index(base, "://"); i >= 0 {
		if j := strings.IndexByte(base[i+3:], '/'); j >= 0 {
			prefix = base[i+3+j:]
		}
	}
	if opts.Sealing != nil {
		if opts.Keys == nil {
			return nil, errors.New("fhirapi: sealing needs keys")
		}
		ss := sealing.New(st, opts.Keys, *opts.Sealing)
		// A key service that does not answer now is not fatal: requests
		// that need it get 503 until it does.
		if err := ss.EnsureKeys(context.Background()); err != nil && !errors.Is(err, store.ErrUnavailable) {
			return nil, fmt.Errorf("fhirapi: preparing the sealing keys: %w", err)
		} else if err != nil && opts.Logger != nil {
			opts.Logger.Error("the sealing keys cannot be prepared; sealed data answers 503 until they can", "error", err.Error())
		}
		st = ss
	}
	return &API{
		store:  st,
		reg:    reg,
		model:  m,
		opts:   opts,
		log:    opts.Logger,
		base:   base,
		prefix: strings.TrimRight(prefix, "/"),
		now:    opts.Now,
		limits: validate.Limits{MaxBytes: opts.MaxBodyBytes, MaxDepth: opts.MaxJSONDepth},
	}, nil
}

// Prefix is the URL path under which the API is served ("/fhir").
func (a *API) Prefix() string { return a.prefix }

// newID returns a random, unguessable resource id (128 bits, UUID form).
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// validID reports whether s is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalResource(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"Internal error"}]}`)
	}
	writeRaw(w, status, b)
}

// writeRaw writes b as the response. b MUST NOT change afterwards: a
// response held for its audit event keeps b itself until it is released.
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	w.WriteHeader(status)
	if held, ok := w.(*audithttp.Held); ok {
		held.Adopt(b)
		return
	}
	w.Write(b)
}

// writeBundle is writeRaw for a Bundle made by bundleWriter, whose buffer
// goes back to the pool once written.
func writeBundle(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	w.WriteHeader(status)
	if held, ok := w.(*audithttp.Held); ok {
		held.AdoptRecycled(b, func() { recycleBody(b) })
		return
	}
	w.Write(b)
	recycleBody(b)
}

const contentType = "application/fhir+json; charset=utf-8"

// Base is the absolute FHIR base URL.
func (a *API) Base() string { return a.base }

// selfURL is the absolute URL of the request, for Bundle self links.
func (a *API) selfURL(r *http.Request) string {
	u := a.base + strings.TrimPrefix(r.URL.EscapedPath(), a.prefix)
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}
