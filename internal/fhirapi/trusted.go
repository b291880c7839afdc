package fhirapi

import (
	"context"
	"net/url"
	"strconv"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/store"
)

// maxTrustedMatches bounds what SearchTrusted returns.
const maxTrustedMatches = 1000

// ReadTrusted reads the current version of typ/id as Warden itself: no
// principal, no consent. It is for Warden's own services (the grant
// ledger), never for anything a caller names without its own checks.
func (a *API) ReadTrusted(ctx context.Context, typ, id string) (*store.Resource, error) {
	ctx = Trusted(ctx)
	return a.db(ctx).Read(ctx, typ, id)
}

// SearchTrusted runs a search as Warden itself and returns at most
// _count matches (1,000 when not given or larger; no includes);
// AuditEvents are caught up first, as for an API read.
func (a *API) SearchTrusted(ctx context.Context, typ string, vals url.Values) ([]store.Resource, error) {
	limit := maxTrustedMatches
	if n, err := strconv.Atoi(vals.Get("_count")); err == nil && n > 0 {
		limit = min(n, limit)
	}
	q, err := a.parseQuery(typ, vals, search.Options{DefaultCount: 100, MaxCount: 100})
	if err != nil {
		return nil, err
	}
	q.Includes, q.RevIncludes = nil, nil
	if typ == "AuditEvent" && a.opts.BeforeAuditEventRead != nil {
		if err := a.opts.BeforeAuditEventRead(ctx); err != nil {
			return nil, err
		}
	}
	ctx = Trusted(ctx)
	db := a.db(ctx)
	var out []store.Resource
	cursor := ""
	for {
		res, err := db.Search(ctx, q, store.PageRequest{Cursor: cursor})
		if err != nil {
			return nil, err
		}
		out = append(out, res.Matches...)
		if res.Next == "" || len(out) >= limit {
			return out[:min(len(out), limit)], nil
		}
		cursor = res.Next
	}
}

// PutTrusted creates or updates typ/id with body as Warden itself, with
// the validation, versioning and indexing of an API update (a Consent is
// announced to every process before it returns). ifVersion, when not 0,
// must be the current version (optimistic locking: store.ErrConflict).
func (a *API) PutTrusted(ctx context.Context, typ, id string, body []byte, ifVersion int64) (*store.Resource, error) {
	res, err := a.decodeResource(body, typ)
	if err != nil {
		return nil, err
	}
	ctx = Trusted(ctx)
	ifMatch := ""
	if ifVersion != 0 {
		ifMatch = etag(ifVersion)
	}
	var out *store.Resource
	err = a.db(ctx).Tx(ctx, func(tx store.Tx) error {
		var err error
		out, _, err = a.updateIn(ctx, tx, typ, id, res, ifMatch)
		return err
	})
	return out, err
}

// ResourceTypes lists the R4 resource types the API serves.
func (a *API) ResourceTypes() []string { return a.model.ResourceTypes() }

// EachTrusted calls fn for every current resource of typ, as Warden
// itself, in pages of 200 (for maintenance commands: relabelling).
func (a *API) EachTrusted(ctx context.Context, typ string, fn func(store.Resource) error) error {
	q, err := a.parseQuery(typ, url.Values{"_sort": {"_id"}}, search.Options{DefaultCount: 200, MaxCount: 200})
	if err != nil {
		return err
	}
	ctx = Trusted(ctx)
	db := a.db(ctx)
	cursor := ""
	for {
		res, err := db.Search(ctx, q, store.PageRequest{Cursor: cursor})
		if err != nil {
			return err
		}
		for _, r := range res.Matches {
			if err := fn(r); err != nil {
				return err
			}
		}
		if res.Next == "" {
			return nil
		}
		cursor = res.Next
	}
}
