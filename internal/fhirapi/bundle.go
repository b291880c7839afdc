package fhirapi

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/store"
)

// bundle implements POST [base] with a batch or transaction Bundle
// (FHIR R4 §3.1.0.11).
func (a *API) bundle(w http.ResponseWriter, r *http.Request, _ []string) error {
	body, err := a.readLimited(r)
	if err != nil {
		return err
	}
	out, err := a.ProcessBundle(r.Context(), body, BundleOptions{WithResources: parsePrefer(r).ret == "representation"})
	if err != nil {
		return err
	}
	// Entries answered 404 take their floor as a plain 404 does, so a
	// batch of reads cannot time "missing" against "not yours" either.
	if n := bytes.Count(out, []byte(`"response":{"status":"404 `)); n > 0 {
		a.notFoundFloorN(r, n)
	}
	writeRaw(w, http.StatusOK, out)
	return nil
}

// bundleEntry is one parsed Bundle.entry of a batch or transaction.
type bundleEntry struct {
	index    int
	fullURL  string
	resource map[string]any
	method   string
	typ, id  string     // from request.url: Type or Type/id
	cond     url.Values // conditional PUT/DELETE query, or GET search
	rawQuery string
	ifNone   string // request.ifNoneExist
	ifMatch  string // request.ifMatch

	// results
	status    int
	out       *store.Resource
	location  string
	searchRes []byte

	// prepared is version 1 of a POST or PUT entry, built before the
	// store transaction when its id and every reference it holds were
	// known without the database; used when the resource is new.
	prepared *store.Write
}

// BundleOptions adjust ProcessBundle.
type BundleOptions struct {
	// WithResources puts the stored resources into the response
	// (Prefer: return=representation).
	WithResources bool
	// StableIDs turns each unconditional POST entry whose fullUrl is
	// urn:uuid:X into PUT Type/X, so that loading the same Bundle twice
	// updates (and, content being equal, leaves unchanged) instead of
	// duplicating. Used by import; never for API requests, where ids are
	// the server's to assign.
	//
	// It also makes a condition (conditional create or reference) that
	// matches several resources resolve to the first of them instead of
	// failing: data merged from several sources can hold the same
	// identifier twice, and loading it again must not fail.
	StableIDs bool
}

type anyMatchKey struct{}

// anyMatch reports whether conditions in ctx may resolve to the first of
// several matches (import only; see BundleOptions.StableIDs).
func anyMatch(ctx context.Context) bool {
	v, _ := ctx.Value(anyMatchKey{}).(bool)
	return v
}

// ProcessBundle runs a batch or transaction Bundle given as JSON and
// returns the response Bundle. A transaction is all or nothing: on any
// failure the error names the entry and nothing is written.
func (a *API) ProcessBundle(ctx context.Context, body []byte, opts BundleOptions) ([]byte, error) {
	withResources := opts.WithResources
	if opts.StableIDs {
		ctx = context.WithValue(ctx, anyMatchKey{}, true)
	}
	doc, err := a.decodeResource(body, "Bundle")
	if err != nil {
		return nil, err
	}
	btype, _ := doc["type"].(string)
	auditFrom(ctx).setAction(btype)
	if btype != "batch" && btype != "transaction" {
		return nil, errorf(http.StatusBadRequest, "invalid", "Only batch and transaction Bundles can be posted to the base URL", "Bundle.type")
	}
	raw, _ := doc["entry"].([]any)
	if len(raw) > a.opts.MaxBundleEntries {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", "The Bundle has more than "+strconv.Itoa(a.opts.MaxBundleEntries)+" entries")
	}
	if err := a.chargeEntries(ctx, len(raw)); err != nil {
		return nil, err
	}
	entries := make([]*bundleEntry, 0, len(raw))
	for i, e := range raw {
		be, err := a.parseEntry(i, e)
		if err != nil {
			if btype == "transaction" {
				return nil, err
			}
			be = &bundleEntry{index: i}
		}
		if opts.StableIDs && err == nil && be.method == "POST" && be.ifNone == "" && strings.HasPrefix(be.fullURL, "urn:uuid:") && validID(be.fullURL[9:]) {
			be.method, be.id = "PUT", be.fullURL[9:]
			be.resource = cloneTop(be.resource)
			be.resource["id"] = be.id
		}
		entries = append(entries, be)
		if err != nil {
			be.status = -1
			be.out = nil
			be.location = ""
			be.searchRes, _ = marshalResource(outcomeOf(err))
		}
	}
	if btype == "transaction" {
		if err := a.transaction(ctx, entries); err != nil {
			return nil, err
		}
		return a.bundleResponse("transaction-response", entries, withResources), nil
	}
	// A batch's entries are independent (FHIR R4 §3.1.0.11.1: no entry
	// may depend on another, and the order they are processed in is not
	// significant): each is its own store transaction, run several at a
	// time, so that the store commits them in groups. Conditional
	// creates stay exact: each checks and writes within its transaction.
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(a.opts.BatchParallel, len(entries)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(entries) {
					return
				}
				be := entries[i]
				if be.status == -1 {
					continue
				}
				err := a.db(ctx).Tx(ctx, func(tx store.Tx) error {
					return a.runEntry(ctx, tx, be, nil)
				})
				if err != nil {
					e, _ := toError(err)
					be.status = -e.Status
					be.searchRes, _ = marshalResource(outcome(e.Issues))
				}
			}
		})
	}
	wg.Wait()
	return a.bundleResponse("batch-response", entries, withResources), nil
}

// defaultBatchParallel is how many entries of a batch Bundle run at once
// unless Options.BatchParallel says otherwise.
const defaultBatchParallel = 16

func outcomeOf(err error) map[string]any {
	e, _ := toError(err)
	return outcome(e.Issues)
}

func (a *API) parseEntry(i int, raw any) (*bundleEntry, error) {
	at := "Bundle.entry[" + strconv.Itoa(i) + "]"
	bad := func(msg string) error { return errorf(http.StatusBadRequest, "invalid", msg, at+".request") }
	e, _ := raw.(map[string]any)
	req, _ := e["request"].(map[string]any)
	if req == nil {
		return nil, bad("Each entry needs a request")
	}
	be := &bundleEntry{index: i}
	be.fullURL, _ = e["fullUrl"].(string)
	be.resource, _ = e["resource"].(map[string]any)
	be.method, _ = req["method"].(string)
	be.ifNone, _ = req["ifNoneExist"].(string)
	be.ifMatch, _ = req["ifMatch"].(string)
	u, _ := req["url"].(string)
	path, query, _ := strings.Cut(u, "?")
	path = strings.TrimPrefix(path, a.base+"/")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 0 || !a.model.IsResourceType(parts[0]) {
		return nil, bad("request.url must start with a resource type")
	}
	be.typ = parts[0]
	if len(parts) == 2 {
		if !validID(parts[1]) {
			return nil, bad("request.url has an invalid id")
		}
		be.id = parts[1]
	} else if len(parts) > 2 {
		return nil, bad("request.url must be Type, Type/id or Type?query")
	}
	if query != "" {
		v, err := url.ParseQuery(query)
		if err != nil {
			return nil, bad("request.url has a malformed query")
		}
		be.cond, be.rawQuery = v, query
	}
	switch be.method {
	case "POST":
		if be.id != "" || be.resource == nil {
			return nil, bad("POST needs a resource and a type-only url")
		}
	case "PUT":
		if be.resource == nil || (be.id == "" && be.cond == nil) {
			return nil, bad("PUT needs a resource and a url Type/id or Type?condition")
		}
	case "DELETE":
		if be.id == "" && be.cond == nil {
			return nil, bad("DELETE needs a url Type/id or Type?condition")
		}
	case "GET":
	default:
		return nil, bad("request.method must be GET, POST, PUT or DELETE")
	}
	if be.resource != nil {
		if rt, _ := be.resource["resourceType"].(string); rt != be.typ {
			return nil, errorf(http.StatusBadRequest, "invalid", "The resource type does not match request.url", at+".resource")
		}
	}
	return be, nil
}

// transaction processes entries in one store transaction, in the order
// FHIR R4 §3.1.0.11.2 prescribes: DELETE, POST, PUT, GET. Ids are
// assigned first so that references to urn:uuid and other fullUrls can
// be rewritten before anything is stored.
func (a *API) transaction(ctx context.Context, entries []*bundleEntry) error {
	pre, cond := a.prepareEntries(ctx, entries)
	return a.db(ctx).Tx(ctx, func(tx store.Tx) error {
		refs := maps.Clone(pre) // fullUrl (or conditional reference) → Type/id
		for _, be := range entries {
			be.status, be.out, be.location = 0, nil, ""
		}
		// Conditional references resolved before the transaction must
		// resolve the same inside it; if one does not, nothing prepared
		// outside is used.
		for ref, target := range cond {
			var err error
			if a.rewriteRef(ctx, tx, ref, refs, &err) != target || err != nil {
				for _, be := range entries {
					be.prepared = nil
				}
				break
			}
		}
		for _, method := range []string{"DELETE", "POST", "PUT", "GET"} {
			for _, be := range entries {
				if be.method != method {
					continue
				}
				if method == "POST" || method == "PUT" {
					if err := a.assignID(ctx, tx, be, refs); err != nil {
						return entryErr(be, err)
					}
				}
			}
			for _, be := range entries {
				if be.method != method {
					continue
				}
				if err := a.runEntry(ctx, tx, be, refs); err != nil {
					return entryErr(be, err)
				}
			}
		}
		return nil
	})
}

func entryErr(be *bundleEntry, err error) error {
	e, _ := toError(err)
	out := &Error{Status: e.Status}
	for _, is := range e.Issues {
		is.Expression = append([]string{"Bundle.entry[" + strconv.Itoa(be.index) + "]"}, is.Expression...)
		out.Issues = append(out.Issues, is)
	}
	if errors.Is(err, store.ErrUnavailable) {
		return errors.Join(out, err)
	}
	return out
}

// prepareEntries does, before the store transaction, the work of the
// entries that need no writes: it assigns the ids of unconditional POSTs,
// maps fullUrls to ids, resolves conditional references against the
// committed data, and for entries whose references all resolve builds
// their version-1 write (extraction and encoding are most of a write's
// CPU). It returns the fullUrl map and the conditional references it
// resolved, which the transaction re-checks.
func (a *API) prepareEntries(ctx context.Context, entries []*bundleEntry) (refs, cond map[string]string) {
	refs, cond = map[string]string{}, map[string]string{}
	for _, be := range entries {
		be.prepared = nil
		switch {
		case be.method == "POST" && be.ifNone == "":
			be.id = newID()
		case be.method == "PUT" && be.cond == nil:
		default:
			continue
		}
		if be.fullURL != "" {
			refs[be.fullURL] = be.typ + "/" + be.id
		}
	}
	prepared := map[*bundleEntry]map[string]any{}
	for _, be := range entries {
		if be.id == "" || be.cond != nil || be.ifNone != "" || (be.method != "POST" && be.method != "PUT") {
			continue
		}
		res := cloneTop(be.resource)
		if !a.resolveLocal(ctx, res, refs, cond) {
			continue
		}
		if bid, _ := res["id"].(string); be.method == "PUT" && bid != "" && bid != be.id {
			continue // runEntry reports the mismatch
		}
		// Own labels first; what an entry inherits is added below, once
		// every entry's own labels are known.
		w, err := a.prepare(be.typ, be.id, res, 1, nil)
		if err == nil {
			be.prepared = &w
			prepared[be] = res
		}
	}
	a.propagateInBundle(entries, prepared, a.storeLabels(ctx, a.store.Read))
	return refs, cond
}

// propagateInBundle labels again the prepared entries whose type inherits
// labels along references, now that every entry's own labels are known:
// an Encounter inherits the HIV label of a Condition later in the same
// Bundle. (One level: what an entry inherits is not passed on again
// within the Bundle.)
func (a *API) propagateInBundle(entries []*bundleEntry, prepared map[*bundleEntry]map[string]any, stored labelsLookup) {
	l := a.opts.Labeller
	if l == nil {
		return
	}
	own := map[string][]labels.Coding{}
	for be, res := range prepared {
		meta, _ := res["meta"].(map[string]any)
		own[be.typ+"/"+be.id] = securityOf(meta)
	}
	lookup := func(ref string) []labels.Coding {
		if sec, ok := own[ref]; ok {
			return sec
		}
		return stored(ref)
	}
	for _, be := range entries {
		res := prepared[be]
		if res == nil || !l.Propagates(be.typ) || be.prepared == nil {
			continue
		}
		// Most references lead to nothing sensitive: prepare again only
		// when something is inherited that the entry does not have.
		inherited, err := l.Propagate(be.prepared.Resource.JSON, lookup)
		if err != nil {
			be.prepared = nil // runEntry prepares it again, and reports
			continue
		}
		if !mergeSecurity(res, inherited.Security) {
			continue
		}
		if w, err := a.build(be.typ, be.id, res, 1); err == nil {
			be.prepared = &w
		} else {
			be.prepared = nil // runEntry prepares it again, and reports
		}
	}
}

// resolveLocal rewrites the references of res that refs resolves, and
// conditional references that match exactly one committed resource
// (recording them in cond), and reports whether none is left unresolved
// (a urn: reference to an entry whose id is not known yet, or a
// conditional reference without exactly one match).
func (a *API) resolveLocal(ctx context.Context, res map[string]any, refs, cond map[string]string) bool {
	clean := true
	mapReferences(res, func(s string) string {
		if target, ok := refs[s]; ok {
			return target
		}
		if target, ok := cond[s]; ok {
			return target
		}
		if rel, ok := strings.CutPrefix(s, a.base+"/"); ok {
			return rel
		}
		if typ, query, ok := strings.Cut(s, "?"); ok && a.model.IsResourceType(typ) {
			if target, ok := a.matchCommitted(ctx, typ, query); ok {
				cond[s] = target
				return target
			}
		}
		if strings.HasPrefix(s, "urn:") || strings.Contains(s, "?") {
			clean = false
		}
		return s
	})
	return clean
}

// matchCommitted resolves a conditional reference against committed data,
// outside any transaction: Type/id of its one match, or false.
func (a *API) matchCommitted(ctx context.Context, typ, query string) (string, bool) {
	q, _, err := a.conditionQuery(typ, query)
	if err != nil {
		return "", false
	}
	sr, err := a.db(ctx).Search(ctx, q, store.PageRequest{})
	if err != nil || len(sr.Matches) == 0 || (len(sr.Matches) > 1 && !anyMatch(ctx)) {
		return "", false
	}
	return typ + "/" + sr.Matches[0].ID, true
}

// mapReferences replaces every Reference.reference string in res (outside
// its id and meta) by f of it. Objects and arrays on the way to a changed
// reference are copied, never modified, since they may be shared with
// the caller's copy of the resource.
func mapReferences(res map[string]any, f func(string) string) {
	var walk func(v any) (any, bool)
	walk = func(v any) (any, bool) {
		switch t := v.(type) {
		case map[string]any:
			var cp map[string]any
			for k, sub := range t {
				var nv any
				changed := false
				if s, ok := sub.(string); ok && k == "reference" {
					ns := f(s)
					nv, changed = ns, ns != s
				} else {
					nv, changed = walk(sub)
				}
				if changed {
					if cp == nil {
						cp = cloneTop(t)
					}
					cp[k] = nv
				}
			}
			if cp != nil {
				return cp, true
			}
		case []any:
			var cp []any
			for i, sub := range t {
				if nv, changed := walk(sub); changed {
					if cp == nil {
						cp = append([]any(nil), t...)
					}
					cp[i] = nv
				}
			}
			if cp != nil {
				return cp, true
			}
		}
		return v, false
	}
	for k, v := range res {
		if k == "resourceType" || k == "id" || k == "meta" {
			continue
		}
		if nv, changed := walk(v); changed {
			res[k] = nv
		}
	}
}

// assignID decides the id a POST or PUT entry will have and records the
// entry's fullUrl → Type/id mapping. A conditional create that matches
// an existing resource maps to it and writes nothing.
func (a *API) assignID(ctx context.Context, tx store.Tx, be *bundleEntry, refs map[string]string) error {
	switch {
	case be.method == "POST" && be.ifNone != "":
		m, err := a.conditionalMatch(ctx, tx, be.typ, be.ifNone)
		if err != nil {
			return err
		}
		if len(m) == 1 {
			be.out, be.status = &m[0], http.StatusOK
			be.id = m[0].ID
		} else {
			be.id = newID()
		}
	case be.method == "POST":
		if be.id == "" {
			be.id = newID()
		}
	case be.method == "PUT" && be.cond != nil:
		m, err := a.conditionalMatch(ctx, tx, be.typ, be.rawQuery)
		if err != nil {
			return err
		}
		if len(m) == 1 {
			be.id = m[0].ID
		} else if bid, _ := be.resource["id"].(string); bid != "" {
			be.id = bid
		} else {
			be.id = newID()
		}
	}
	if be.fullURL != "" {
		refs[be.fullURL] = be.typ + "/" + be.id
	}
	return nil
}

// runEntry executes one entry. refs is nil for batch entries (which may
// not refer to each other).
func (a *API) runEntry(ctx context.Context, tx store.Tx, be *bundleEntry, refs map[string]string) error {
	switch be.method {
	case "DELETE":
		id := be.id
		if be.cond != nil {
			m, err := a.conditionalMatch(ctx, tx, be.typ, be.rawQuery)
			if err != nil {
				return err
			}
			if len(m) == 0 {
				be.status = http.StatusNoContent
				return nil
			}
			id = m[0].ID
		}
		be.status = http.StatusNoContent
		return a.deleteIn(ctx, tx, be.typ, id)
	case "POST", "PUT":
		if refs == nil && be.id == "" {
			if err := a.assignID(ctx, tx, be, map[string]string{}); err != nil {
				return err
			}
		}
		if be.out != nil { // conditional create matched
			return nil
		}
		if w := be.prepared; w != nil {
			fresh := be.method == "POST"
			if !fresh {
				_, err := tx.Read(ctx, be.typ, be.id)
				if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrDeleted) {
					return err
				}
				fresh = errors.Is(err, store.ErrNotFound)
			}
			if fresh {
				if err := tx.Put(ctx, *w); err != nil {
					return err
				}
				be.out, be.status = &w.Resource, http.StatusCreated
				be.location = be.typ + "/" + be.id + "/_history/1"
				return nil
			}
		}
		res := cloneTop(be.resource)
		if err := a.resolveReferences(ctx, tx, res, refs); err != nil {
			return err
		}
		if be.method == "PUT" {
			if bid, _ := res["id"].(string); bid != "" && bid != be.id {
				return errorf(http.StatusBadRequest, "invalid", "The resource id does not match request.url")
			}
			out, status, err := a.updateIn(ctx, tx, be.typ, be.id, res, be.ifMatch)
			if err != nil {
				return err
			}
			be.out, be.status = out, status
		} else {
			out, err := a.put(ctx, tx, be.typ, be.id, res, nil)
			if err != nil {
				return err
			}
			be.out, be.status = out, http.StatusCreated
		}
		be.location = be.typ + "/" + be.id + "/_history/" + strconv.FormatInt(be.out.Version, 10)
		return nil
	case "GET":
		if be.id != "" {
			res, err := tx.Read(ctx, be.typ, be.id)
			if err != nil {
				return err
			}
			be.out, be.status = res, http.StatusOK
			return nil
		}
		q, err := a.parseQuery(be.typ, be.cond, search.Options{DefaultCount: a.opts.DefaultCount, MaxCount: a.opts.MaxCount})
		if err != nil {
			return err
		}
		sr, err := tx.Search(ctx, q, store.PageRequest{WantTotal: true})
		if err != nil {
			return err
		}
		b := newBundle("searchset", a.now())
		b.total(sr.Total)
		for i := range sr.Matches {
			m := &sr.Matches[i]
			b.entry(a.base+"/"+m.Type+"/"+m.ID, m.JSON, `"search":{"mode":"match"}`)
		}
		be.searchRes, be.status = b.finish(), http.StatusOK
		return nil
	}
	return errorf(http.StatusBadRequest, "invalid", "Unsupported method")
}

// resolveReferences rewrites, everywhere in res, references to other
// entries' fullUrls (urn:uuid:…, absolute URLs) to their Type/id, and
// conditional references (Type?query) to the one resource they match
// (FHIR R4 §3.1.0.11.2, §3.1.0.11.3). refs may be nil outside a
// transaction. Shared sub-objects are copied before they change.
func (a *API) resolveReferences(ctx context.Context, tx store.Tx, res map[string]any, refs map[string]string) error {
	var err error
	mapReferences(res, func(ref string) string { return a.rewriteRef(ctx, tx, ref, refs, &err) })
	return err
}

func (a *API) rewriteRef(ctx context.Context, tx store.Tx, ref string, refs map[string]string, errp *error) string {
	if target, ok := refs[ref]; ok {
		return target
	}
	// References to this server's own base are stored relative, so that
	// they count for compartments and searches like any local reference.
	if rel, ok := strings.CutPrefix(ref, a.base+"/"); ok {
		return rel
	}
	if strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:") {
		if refs != nil && *errp == nil {
			*errp = errorf(http.StatusBadRequest, "not-found", "A reference to "+ref[:9]+"… does not resolve to any entry of the transaction")
		}
		return ref
	}
	typ, query, ok := strings.Cut(ref, "?")
	if !ok || !a.model.IsResourceType(typ) {
		return ref
	}
	if *errp != nil {
		return ref
	}
	m, err := a.conditionalMatch(ctx, tx, typ, query)
	if err != nil {
		*errp = err
		return ref
	}
	if len(m) != 1 {
		*errp = errorf(http.StatusPreconditionFailed, "not-found", "A conditional reference to "+typ+" matches no resource")
		return ref
	}
	if refs != nil {
		refs[ref] = typ + "/" + m[0].ID // resolved once per transaction
	}
	return typ + "/" + m[0].ID
}

// bundleResponse builds a batch-response or transaction-response Bundle,
// entries in request order.
func (a *API) bundleResponse(typ string, entries []*bundleEntry, withResources bool) []byte {
	b := newBundle(typ, a.now())
	for _, be := range entries {
		var body []byte
		full := ""
		resp := `"response":{"status":"`
		switch {
		case be.status < 0:
			resp += strconv.Itoa(-be.status) + " " + http.StatusText(-be.status) + `","outcome":` + string(be.searchRes) + `}`
			if be.status == -1 {
				resp = `"response":{"status":"400 Bad Request","outcome":` + string(be.searchRes) + `}`
			}
		case be.searchRes != nil:
			body = be.searchRes
			resp += "200 OK\"}"
		default:
			resp += strconv.Itoa(be.status) + " " + http.StatusText(be.status) + `"`
			if be.out != nil {
				full = a.base + "/" + be.out.Type + "/" + be.out.ID
				loc := be.location
				if loc == "" {
					loc = be.out.Type + "/" + be.out.ID + "/_history/" + strconv.FormatInt(be.out.Version, 10)
				}
				resp += `,"location":"` + loc + `","etag":"W/\"` + strconv.FormatInt(be.out.Version, 10) + `\"","lastModified":"` + be.out.LastUpdated.UTC().Format(lastUpdatedLayout) + `"`
				if withResources || be.method == "GET" {
					body = be.out.JSON
				}
			}
			resp += "}"
		}
		b.entry(full, body, resp)
	}
	return b.finish()
}
