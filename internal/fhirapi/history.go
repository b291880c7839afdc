package fhirapi

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// history implements instance, type and system history
// (FHIR R4 §3.1.0.11) with _since and _count, newest first.
func (a *API) history(w http.ResponseWriter, r *http.Request, seg []string) error {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid", "The query string is malformed")
	}
	hq := store.HistoryQuery{Count: a.opts.DefaultCount}
	self := a.base
	switch len(seg) {
	case 1:
		self += "/_history"
	case 2:
		hq.Type = seg[0]
		self += "/" + seg[0] + "/_history"
	case 3:
		hq.Type, hq.ID = seg[0], seg[1]
		self += "/" + seg[0] + "/" + seg[1] + "/_history"
	}
	cursor := vals.Get("_cursor")
	clean := url.Values{}
	for k, v := range vals {
		switch k {
		case "_cursor", "_format", "_pretty":
		case "_since":
			if len(v) != 1 {
				return errorf(http.StatusBadRequest, "invalid", "_since may be given once", "_since")
			}
			lo, _, err := searchparam.DateRange(v[0])
			if err != nil {
				return errorf(http.StatusBadRequest, "invalid", "_since must be an instant", "_since")
			}
			hq.Since = time.UnixMicro(lo)
			clean[k] = v
		case "_count":
			n, err := strconv.Atoi(vals.Get(k))
			if err != nil || n < 1 || len(v) != 1 {
				return errorf(http.StatusBadRequest, "invalid", "_count must be a positive integer", "_count")
			}
			hq.Count = min(n, a.opts.MaxCount)
			clean[k] = v
		default:
			return errorf(http.StatusBadRequest, "not-supported", "Unsupported history parameter "+strconv.Quote(k))
		}
	}
	canonical := self + "?" + clean.Encode()
	if cursor != "" {
		if hq.After, err = a.openCursor(bindCursor(r.Context(), canonical), cursor); err != nil {
			return err
		}
	}
	page, err := a.db(r.Context()).History(r.Context(), hq)
	if err != nil {
		return err
	}
	b := newBundle("history", a.now())
	if page.Total >= 0 {
		b.total(page.Total)
	}
	b.link("self", a.selfURL(r))
	if page.Next != "" {
		b.link("next", canonical+"&_cursor="+url.QueryEscape(a.sealCursor(bindCursor(r.Context(), canonical), page.Next)))
	}
	for _, v := range page.Versions {
		full := a.base + "/" + v.Type + "/" + v.ID
		vid := strconv.FormatInt(v.Version, 10)
		req := `"request":{"method":"PUT","url":"` + v.Type + "/" + v.ID + `"},"response":{"status":"200","etag":"W/\"` + vid + `\"","lastModified":"` + v.LastUpdated.UTC().Format(lastUpdatedLayout) + `"}`
		switch {
		case v.Deleted:
			req = `"request":{"method":"DELETE","url":"` + v.Type + "/" + v.ID + `"},"response":{"status":"204","etag":"W/\"` + vid + `\""}`
			b.entry(full, nil, req)
		case v.Version == 1:
			req = `"request":{"method":"POST","url":"` + v.Type + `"},"response":{"status":"201","etag":"W/\"` + vid + `\"","lastModified":"` + v.LastUpdated.UTC().Format(lastUpdatedLayout) + `"}`
			b.entry(full, v.JSON, req)
		default:
			b.entry(full, v.JSON, req)
		}
	}
	writeBundle(w, http.StatusOK, b.finish())
	return nil
}
