package fhirapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// everythingCap bounds one $everything answer; larger records belong to
// bulk export.
const everythingCap = 20000

// everything implements Patient/[id]/$everything (FHIR R4
// OperationDefinition Patient-everything): the patient and every resource
// in the patient's compartment, optionally limited by _type. Entries come
// in one Bundle of type searchset.
func (a *API) everything(w http.ResponseWriter, r *http.Request, seg []string) error {
	id := seg[1]
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "The query string is malformed")
	}
	db := a.db(r.Context())
	g, guarded := db.(*guard)
	if guarded {
		// $everything is an action of its own (step-up may apply).
		if _, err := g.decide(policy.ActEverything, "Patient"); err != nil {
			return err
		}
	}
	patient, err := db.Read(r.Context(), "Patient", id)
	if err != nil {
		return err
	}
	var types []string
	for _, t := range a.model.ResourceTypes() {
		if len(a.reg.PatientCompartmentParams(t)) > 0 {
			types = append(types, t)
		}
	}
	if t := vals.Get("_type"); t != "" {
		types = nil
		for _, name := range strings.Split(t, ",") {
			if !a.model.IsResourceType(name) {
				return errorf(http.StatusBadRequest, "invalid", "_type lists an unknown resource type", "_type")
			}
			types = append(types, name)
		}
	}
	for k := range vals {
		if k != "_type" && k != "_format" {
			return errorf(http.StatusBadRequest, "not-supported", "$everything supports only the _type parameter")
		}
	}
	b := newBundle("searchset", a.now())
	b.entry(a.base+"/Patient/"+id, patient.JSON, `"search":{"mode":"match"}`)
	n := 1
	for _, typ := range types {
		if typ == "Patient" || guarded && !g.may(policy.ActSearch, typ) {
			continue // the types the token does not cover are left out
		}
		q := &search.Query{Type: typ, Compartment: &search.Compartment{Type: "Patient", ID: id}, Count: a.opts.MaxCount}
		cursor := ""
		for {
			res, err := db.Search(r.Context(), q, store.PageRequest{Cursor: cursor})
			if err != nil {
				return err
			}
			n += len(res.Matches)
			if n > everythingCap {
				return errorf(http.StatusUnprocessableEntity, "too-costly", "The record is too large for $everything; use _type to narrow it")
			}
			for i := range res.Matches {
				m := &res.Matches[i]
				b.entry(a.base+"/"+m.Type+"/"+m.ID, m.JSON, `"search":{"mode":"match"}`)
			}
			if res.Next == "" {
				break
			}
			cursor = res.Next
		}
	}
	b.total(n)
	b.link("self", a.selfURL(r))
	writeBundle(w, http.StatusOK, b.finish())
	return nil
}
