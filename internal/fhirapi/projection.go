package fhirapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/validate"
)

// projection is a _summary or _elements request (FHIR R4 §3.1.1.5.7, §3.1.1.5.8).
type projection struct {
	summary  search.Summary
	elements []string
}

func parseProjection(q url.Values) (projection, error) {
	var p projection
	switch s := q.Get("_summary"); s {
	case "", "false":
	case "true", "data", "text":
		p.summary = search.Summary(s)
	default:
		return p, errorf(http.StatusBadRequest, "invalid", "_summary must be true, text, data or false on a read", "_summary")
	}
	if e := q.Get("_elements"); e != "" {
		for _, name := range strings.Split(e, ",") {
			name = strings.TrimSpace(name)
			if !validID(name) {
				return p, errorf(http.StatusBadRequest, "invalid", "_elements must list element names", "_elements")
			}
			p.elements = append(p.elements, name)
		}
	}
	return p, nil
}

var subsetted = map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED", "display": "Resource encoded in summary mode"}

// project returns a copy of the resource JSON reduced to what the
// projection asks for, tagged SUBSETTED as the specification requires.
func (a *API) project(body []byte, p projection) ([]byte, error) {
	if p.summary == search.SummaryNone && len(p.elements) == 0 {
		return body, nil
	}
	res, err := validate.Decode(body, validate.Limits{MaxBytes: int64(len(body)) + 1, MaxDepth: 1000})
	if err != nil {
		return nil, err
	}
	typ, _ := res["resourceType"].(string)
	keep := func(k string) bool {
		switch k {
		case "resourceType", "id", "meta":
			return true
		}
		if len(p.elements) > 0 {
			for _, e := range p.elements {
				if e == k {
					return true
				}
			}
			return false
		}
		switch p.summary {
		case search.SummaryData:
			return k != "text"
		case search.SummaryText:
			return k == "text" || a.model.IsMandatory(typ, k)
		case search.SummaryTrue:
			return a.model.IsSummary(typ, k)
		}
		return true
	}
	out := make(map[string]any, len(res))
	for k, v := range res {
		if keep(k) {
			out[k] = v
		}
	}
	meta, _ := out["meta"].(map[string]any)
	meta = cloneTop(meta)
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(append([]any(nil), tags...), subsetted)
	out["meta"] = meta
	return marshalResource(out)
}
