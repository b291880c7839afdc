package fhirapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/validate"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

const lastUpdatedLayout = "2006-01-02T15:04:05.000Z07:00"

// read implements GET [base]/[type]/[id] (FHIR R4 §3.1.0.2).
func (a *API) read(w http.ResponseWriter, r *http.Request, seg []string) error {
	res, err := a.db(r.Context()).Read(r.Context(), seg[0], seg[1])
	if err != nil {
		return err
	}
	return a.writeVersion(w, r, res, http.StatusOK)
}

// vread implements GET [base]/[type]/[id]/_history/[vid] (FHIR R4 §3.1.0.3).
func (a *API) vread(w http.ResponseWriter, r *http.Request, seg []string) error {
	v, err := strconv.ParseInt(seg[3], 10, 64)
	if err != nil || v < 1 {
		return store.ErrNotFound
	}
	res, err := a.db(r.Context()).VRead(r.Context(), seg[0], seg[1], v)
	if err != nil {
		return err
	}
	if res.Deleted {
		return store.ErrDeleted
	}
	return a.writeVersion(w, r, res, http.StatusOK)
}

func (a *API) writeVersion(w http.ResponseWriter, r *http.Request, res *store.Resource, status int) error {
	h := w.Header()
	h.Set("ETag", etag(res.Version))
	h.Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
	if inm := r.Header.Get("If-None-Match"); inm != "" && status == http.StatusOK && inm == etag(res.Version) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	body := res.JSON
	if r.URL.RawQuery == "" {
		writeRaw(w, status, body)
		return nil
	}
	if q := r.URL.Query(); q.Has("_summary") || q.Has("_elements") {
		p, err := parseProjection(q)
		if err != nil {
			return err
		}
		if body, err = a.project(body, p); err != nil {
			return err
		}
	}
	writeRaw(w, status, body)
	return nil
}

// readBody reads and validates a request body holding a resource of type
// typ. Nothing is written when it fails.
func (a *API) readBody(r *http.Request, typ string) (map[string]any, error) {
	body, err := a.readLimited(r)
	if err != nil {
		return nil, err
	}
	return a.decodeResource(body, typ)
}

// readLimited reads a request body of at most MaxBodyBytes (413 beyond).
func (a *API) readLimited(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, a.opts.MaxBodyBytes+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "structure", "Could not read the request body")
	}
	if int64(len(body)) > a.opts.MaxBodyBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", "Request body exceeds the limit of "+strconv.FormatInt(a.opts.MaxBodyBytes, 10)+" bytes")
	}
	return body, nil
}

func (a *API) decodeResource(body []byte, typ string) (map[string]any, error) {
	res, err := validate.Decode(body, a.limits)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "structure", "Invalid JSON: "+err.Error())
	}
	rt, _ := res["resourceType"].(string)
	if typ != "" && rt != typ {
		return nil, errorf(http.StatusBadRequest, "invalid", "resourceType does not match the type in the URL", "resourceType")
	}
	if e := invalidResource(validate.Validate(res)); e != nil {
		return nil, e
	}
	return res, nil
}

// prefer is the parsed Prefer header (RFC 7240; FHIR R4 §3.1.0.5.4).
type prefer struct {
	ret      string // minimal, representation, OperationOutcome
	lenient  bool
	explicit bool // handling given
}

func parsePrefer(r *http.Request) prefer {
	var p prefer
	for _, h := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(h, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			v = strings.Trim(v, `"`)
			switch strings.ToLower(k) {
			case "return":
				p.ret = v
			case "handling":
				p.explicit = true
				p.lenient = v == "lenient"
			}
		}
	}
	return p
}

// respondWrite answers a successful create or update per Prefer.
func (a *API) respondWrite(w http.ResponseWriter, r *http.Request, res *store.Resource, status int) {
	h := w.Header()
	h.Set("Location", a.base+"/"+res.Type+"/"+res.ID+"/_history/"+strconv.FormatInt(res.Version, 10))
	h.Set("ETag", etag(res.Version))
	h.Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
	switch parsePrefer(r).ret {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		writeJSON(w, status, informational("Resource "+res.Type+"/"+res.ID+" version "+strconv.FormatInt(res.Version, 10)+" stored"))
	default:
		writeRaw(w, status, res.JSON)
	}
}

// create implements POST [base]/[type], with If-None-Exist for
// conditional create (FHIR R4 §3.1.0.8).
func (a *API) create(w http.ResponseWriter, r *http.Request, seg []string) error {
	typ := seg[0]
	res, err := a.readBody(r, typ)
	if err != nil {
		return err
	}
	var out *store.Resource
	status := http.StatusCreated
	cond := r.Header.Get("If-None-Exist")
	err = a.db(r.Context()).Tx(r.Context(), func(tx store.Tx) error {
		out, status = nil, http.StatusCreated
		if cond != "" {
			existing, err := a.conditionalMatch(r.Context(), tx, typ, cond)
			if err != nil {
				return err
			}
			if len(existing) == 1 {
				out, status = &existing[0], http.StatusOK
				return nil
			}
		}
		fresh := cloneTop(res)
		if err := a.resolveReferences(r.Context(), tx, fresh, nil); err != nil {
			return err
		}
		out, err = a.put(r.Context(), tx, typ, newID(), fresh, nil)
		return err
	})
	if err != nil {
		return err
	}
	a.respondWrite(w, r, out, status)
	return nil
}

// conditionalMatch runs the search of a conditional operation inside tx,
// under a lock on the condition, and returns its match (none or one), or
// errMultipleMatches (412) together with two of the matches.
func (a *API) conditionalMatch(ctx context.Context, tx store.Tx, typ, cond string) ([]store.Resource, error) {
	q, key, err := a.conditionQuery(typ, cond)
	if err != nil {
		return nil, err
	}
	if err := tx.Lock(ctx, key); err != nil {
		return nil, err
	}
	sr, err := tx.Search(ctx, q, store.PageRequest{})
	if err != nil {
		return nil, err
	}
	if len(sr.Matches) > 1 {
		if anyMatch(ctx) {
			return sr.Matches[:1], nil
		}
		return sr.Matches, errMultipleMatches
	}
	return sr.Matches, nil
}

// conditionQuery parses the search of a conditional operation or
// reference (If-None-Exist, Type?query): at most two matches are asked
// for, since only "none, one or several" matters. key names the condition
// for Tx.Lock.
func (a *API) conditionQuery(typ, cond string) (q *search.Query, key string, err error) {
	cond = strings.TrimPrefix(cond, typ+"?")
	cond = strings.TrimPrefix(cond, "?")
	vals, err := url.ParseQuery(cond)
	if err != nil || len(vals) == 0 {
		return nil, "", errorf(http.StatusBadRequest, "invalid", "The condition is not a valid search query")
	}
	q, err = a.parseQuery(typ, vals, search.Options{DefaultCount: 2, MaxCount: 2})
	if err != nil {
		return nil, "", err
	}
	if len(q.Includes)+len(q.RevIncludes)+len(q.Sort) > 0 {
		return nil, "", errorf(http.StatusBadRequest, "invalid", "A condition may not use _include, _revinclude or _sort")
	}
	q.Count = 2
	return q, "cond:" + typ + "?" + vals.Encode(), nil
}

var errMultipleMatches = errorf(http.StatusPreconditionFailed, "multiple-matches", "The condition matches more than one resource")

// put labels res and records it as the next version of typ/id after
// prev (nil for a new resource): it sets id and meta, extracts search
// entries and the patient compartment, and writes.
func (a *API) put(ctx context.Context, tx store.Tx, typ, id string, res map[string]any, prev *store.Resource) (*store.Resource, error) {
	if _, err := a.label(res, a.storeLabels(ctx, tx.Read)); err != nil {
		return nil, err
	}
	return a.putLabelled(ctx, tx, typ, id, res, prev)
}

// putLabelled is put for a resource already labelled.
func (a *API) putLabelled(ctx context.Context, tx store.Tx, typ, id string, res map[string]any, prev *store.Resource) (*store.Resource, error) {
	version := int64(1)
	if prev != nil {
		version = prev.Version + 1
	}
	w, err := a.build(typ, id, res, version)
	if err != nil {
		return nil, err
	}
	if err := tx.Put(ctx, w); err != nil {
		return nil, err
	}
	return &w.Resource, nil
}

func (a *API) prepare(typ, id string, res map[string]any, version int64, lookup labelsLookup) (store.Write, error) {
	if _, err := a.label(res, lookup); err != nil {
		return store.Write{}, err
	}
	return a.build(typ, id, res, version)
}

// build is prepare for a resource already labelled.
func (a *API) build(typ, id string, res map[string]any, version int64) (store.Write, error) {
	now := a.now().UTC().Truncate(time.Millisecond)
	res["id"] = id
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	} else {
		meta = cloneTop(meta)
	}
	meta["versionId"] = strconv.FormatInt(version, 10)
	meta["lastUpdated"] = now.Format(lastUpdatedLayout)
	res["meta"] = meta
	entries := a.reg.Extract(typ, res)
	patients := a.reg.PatientCompartment(typ, entries)
	if typ == "Patient" && !slices.Contains(patients, id) {
		patients = append(patients, id)
	}
	body, err := marshalResource(res)
	if err != nil {
		return store.Write{}, err
	}
	if typ == "Consent" && a.opts.Consents != nil {
		if err := a.opts.Consents.Validate(body); err != nil {
			return store.Write{}, errorf(http.StatusBadRequest, "invalid", "The Consent cannot be enforced as written: "+err.Error())
		}
	}
	return store.Write{Resource: store.Resource{Type: typ, ID: id, Version: version, LastUpdated: now, JSON: body}, Entries: entries, Patients: patients}, nil
}

// update implements PUT [base]/[type]/[id], including update-as-create
// and If-Match version checks (FHIR R4 §3.1.0.4, §3.1.0.5.3).
func (a *API) update(w http.ResponseWriter, r *http.Request, seg []string) error {
	typ, id := seg[0], seg[1]
	res, err := a.readBody(r, typ)
	if err != nil {
		return err
	}
	if bodyID, _ := res["id"].(string); bodyID != id {
		return errorf(http.StatusBadRequest, "invalid", "The resource id must be present and equal the id in the URL", typ+".id")
	}
	ifMatch := r.Header.Get("If-Match")
	var out *store.Resource
	var status int
	err = a.db(r.Context()).Tx(r.Context(), func(tx store.Tx) error {
		var err error
		out, status, err = a.updateIn(r.Context(), tx, typ, id, cloneTop(res), ifMatch)
		return err
	})
	if err != nil {
		return err
	}
	a.respondWrite(w, r, out, status)
	return nil
}

func (a *API) updateIn(ctx context.Context, tx store.Tx, typ, id string, res map[string]any, ifMatch string) (*store.Resource, int, error) {
	ctx = asUpsert(ctx)
	prev, err := readForWrite(ctx, tx, policy.ActUpdate, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		prev, err = nil, nil
	case errors.Is(err, store.ErrDeleted):
		err = nil
	}
	if err != nil {
		return nil, 0, err
	}
	if ifMatch != "" {
		if prev == nil || prev.Deleted || etag(prev.Version) != normalizeETag(ifMatch) {
			return nil, 0, errorf(http.StatusPreconditionFailed, "conflict", "If-Match does not match the current version")
		}
	}
	if err := a.resolveReferences(ctx, tx, res, nil); err != nil {
		return nil, 0, err
	}
	// Labelled first, so that it is compared as it would be stored.
	if _, err := a.label(res, a.storeLabels(ctx, tx.Read)); err != nil {
		return nil, 0, err
	}
	status := http.StatusOK
	if prev == nil || prev.Deleted {
		status = http.StatusCreated
	} else if unchanged(prev, res) {
		return prev, status, nil
	}
	out, err := a.putLabelled(ctx, tx, typ, id, res, prev)
	return out, status, err
}

func normalizeETag(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "W/") {
		s = "W/" + s
	}
	if !strings.HasSuffix(s, `"`) {
		s = `W/"` + strings.TrimPrefix(s, "W/") + `"`
	}
	return s
}

// conditionalUpdate implements PUT [base]/[type]?[search] (FHIR R4 §3.1.0.4.3).
func (a *API) conditionalUpdate(w http.ResponseWriter, r *http.Request, seg []string) error {
	typ := seg[0]
	if r.URL.RawQuery == "" {
		return errorf(http.StatusBadRequest, "invalid", "A conditional update needs search parameters")
	}
	res, err := a.readBody(r, typ)
	if err != nil {
		return err
	}
	var out *store.Resource
	var status int
	err = a.db(r.Context()).Tx(r.Context(), func(tx store.Tx) error {
		matches, err := a.conditionalMatch(r.Context(), tx, typ, r.URL.RawQuery)
		if err != nil {
			return err
		}
		bodyID, _ := res["id"].(string)
		id := bodyID
		if len(matches) == 1 {
			id = matches[0].ID
			if bodyID != "" && bodyID != id {
				return errorf(http.StatusBadRequest, "invalid", "The resource id does not match the resource found by the condition", typ+".id")
			}
		} else if id == "" {
			id = newID()
		}
		out, status, err = a.updateIn(r.Context(), tx, typ, id, cloneTop(res), r.Header.Get("If-Match"))
		return err
	})
	if err != nil {
		return err
	}
	a.respondWrite(w, r, out, status)
	return nil
}

// delete implements DELETE [base]/[type]/[id] (FHIR R4 §3.1.0.7); the
// history is kept and a later read answers 410 Gone.
func (a *API) delete(w http.ResponseWriter, r *http.Request, seg []string) error {
	err := a.db(r.Context()).Tx(r.Context(), func(tx store.Tx) error {
		return a.deleteIn(r.Context(), tx, seg[0], seg[1])
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) deleteIn(ctx context.Context, tx store.Tx, typ, id string) error {
	prev, err := readForWrite(ctx, tx, policy.ActDelete, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted):
		return nil
	case err != nil:
		return err
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	return tx.Put(ctx, store.Write{Resource: store.Resource{Type: typ, ID: id, Version: prev.Version + 1, LastUpdated: now, Deleted: true}})
}

// conditionalDelete implements DELETE [base]/[type]?[search] for a single
// match (FHIR R4 §3.1.0.7.1); more than one match is 412.
func (a *API) conditionalDelete(w http.ResponseWriter, r *http.Request, seg []string) error {
	typ := seg[0]
	if r.URL.RawQuery == "" {
		return errorf(http.StatusBadRequest, "invalid", "A conditional delete needs search parameters")
	}
	err := a.db(r.Context()).Tx(r.Context(), func(tx store.Tx) error {
		matches, err := a.conditionalMatch(r.Context(), tx, typ, r.URL.RawQuery)
		if err != nil || len(matches) == 0 {
			return err
		}
		return a.deleteIn(r.Context(), tx, typ, matches[0].ID)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// cloneTop copies the top level of a JSON object so per-attempt changes
// (id, meta) don't leak between retries.
func cloneTop(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// unchanged reports whether res, stamped with prev's id and meta version,
// encodes to exactly prev's stored bytes: such an update is a no-op and
// creates no new version (so re-running an import changes nothing).
func unchanged(prev *store.Resource, res map[string]any) bool {
	var pm struct {
		Meta map[string]any `json:"meta"`
	}
	if json.Unmarshal(prev.JSON, &pm) != nil || pm.Meta == nil {
		return false
	}
	cand := cloneTop(res)
	meta, _ := cand["meta"].(map[string]any)
	meta = cloneTop(meta)
	meta["versionId"] = pm.Meta["versionId"]
	meta["lastUpdated"] = pm.Meta["lastUpdated"]
	cand["meta"] = meta
	cand["id"] = prev.ID
	b, err := marshalResource(cand)
	return err == nil && bytes.Equal(b, prev.JSON)
}
