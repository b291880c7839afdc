package fhirapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store"
)

// labelsLookup returns the security labels of a referenced resource
// ("Type/id"), nil when unknown.
type labelsLookup func(ref string) []labels.Coding

// label classifies res (about to be stored) and merges the labels into
// its meta.security: the labels of its own codes (labels.Labeller.Label)
// and, for the types the site policy propagates along references, those
// of the resources it references (through lookup; nil: none). Labels the
// client sent are kept and never lowered (labels.Merge). It reports
// whether meta.security changed.
func (a *API) label(res map[string]any, lookup labelsLookup) (bool, error) {
	l := a.opts.Labeller
	if l == nil {
		return false, nil
	}
	// res passed validation, so it is read as decoded (LabelResource):
	// encoding it to label it cost the import a tenth of its CPU.
	own, err := l.LabelResource(res)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "invalid", "The resource's coded elements cannot be read: "+err.Error())
	}
	computed := own.Security
	typ, _ := res["resourceType"].(string)
	if lookup != nil && l.Propagates(typ) {
		body, err := marshalResource(res)
		if err != nil {
			return false, err
		}
		inherited, err := l.Propagate(body, lookup)
		if err != nil {
			return false, errorf(http.StatusBadRequest, "invalid", "The resource's references cannot be read: "+err.Error())
		}
		computed = labels.Merge(computed, inherited.Security)
	}
	return mergeSecurity(res, computed), nil
}

// mergeSecurity merges computed into res's meta.security (labels.Merge:
// never lowering what is there) and reports whether it changed.
func mergeSecurity(res map[string]any, computed []labels.Coding) bool {
	meta, _ := res["meta"].(map[string]any)
	existing := securityOf(meta)
	merged := labels.Merge(existing, computed)
	if slices.Equal(merged, existing) {
		return false
	}
	if meta == nil {
		meta = map[string]any{}
		res["meta"] = meta
	}
	list := make([]any, len(merged))
	for i, c := range merged {
		m := map[string]any{"system": c.System, "code": c.Code}
		if c.Display != "" {
			m["display"] = c.Display
		}
		list[i] = m
	}
	meta["security"] = list
	return true
}

// securityOf reads meta.security as labels.
func securityOf(meta map[string]any) []labels.Coding {
	list, _ := meta["security"].([]any)
	out := make([]labels.Coding, 0, len(list))
	for _, c := range list {
		m, _ := c.(map[string]any)
		sys, _ := m["system"].(string)
		code, _ := m["code"].(string)
		disp, _ := m["display"].(string)
		if code != "" {
			out = append(out, labels.Coding{System: sys, Code: code, Display: disp})
		}
	}
	return out
}

// storeLabels looks labels up in the store (current versions) as rd
// reads them.
func (a *API) storeLabels(ctx context.Context, rd func(context.Context, string, string) (*store.Resource, error)) labelsLookup {
	// A sealed resource's labels are read whatever the caller's
	// clearance: a resource that references it must inherit them, or it
	// would be stored in clear.
	ctx = sealing.WithClearance(ctx, sealing.All())
	return func(ref string) []labels.Coding {
		typ, id, ok := a.cutRef(ref)
		if !ok {
			return nil
		}
		r, err := rd(ctx, typ, id)
		if err != nil || r == nil || r.Deleted {
			return nil
		}
		var doc struct {
			Meta struct {
				Security []labels.Coding `json:"security"`
			} `json:"meta"`
		}
		if json.Unmarshal(r.JSON, &doc) != nil {
			return nil
		}
		return doc.Meta.Security
	}
}

// cutRef splits a relative reference Type/id of a known type.
func (a *API) cutRef(ref string) (typ, id string, ok bool) {
	typ, id, ok = strings.Cut(ref, "/")
	return typ, id, ok && a.model.IsResourceType(typ) && validID(id)
}
