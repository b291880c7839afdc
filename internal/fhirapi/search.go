package fhirapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// search implements GET [base]/[type]?…, POST [base]/[type]/_search and
// the Patient compartment search GET [base]/Patient/[id]/[type]
// (FHIR R4 §3.1.0.9, §3.1.1).
func (a *API) search(w http.ResponseWriter, r *http.Request, seg []string) error {
	vals, err := a.searchValues(r)
	if err != nil {
		return err
	}
	typ := seg[0]
	var comp *search.Compartment
	self := a.base + "/" + typ
	if len(seg) == 3 {
		typ = seg[2]
		comp = &search.Compartment{Type: "Patient", ID: seg[1]}
		self = a.base + "/Patient/" + seg[1] + "/" + typ
	}
	cursor := vals.Get("_cursor")
	vals.Del("_cursor")
	canonical := self + "?" + vals.Encode()
	storeCursor := ""
	if cursor != "" {
		if storeCursor, err = a.openCursor(bindCursor(r.Context(), canonical), cursor); err != nil {
			return err
		}
	}
	pref := parsePrefer(r)
	lenient := a.opts.LenientSearchDefault
	if pref.explicit {
		lenient = pref.lenient
	}
	q, err := a.parseQuery(typ, vals, search.Options{DefaultCount: a.opts.DefaultCount, MaxCount: a.opts.MaxCount, Lenient: lenient})
	if err != nil {
		return err
	}
	q.Compartment = comp
	page := store.PageRequest{
		Cursor:    storeCursor,
		OnlyCount: q.Summary == search.SummaryCount || q.Count == 0,
	}
	page.WantTotal = page.OnlyCount || q.Total == "accurate" || q.Total == "estimate" || (q.Total == "" && cursor == "")
	res, err := a.db(r.Context()).Search(r.Context(), q, page)
	if err != nil {
		return err
	}
	var proj *projection
	if q.Summary != search.SummaryNone && q.Summary != search.SummaryFalse || len(q.Elements) > 0 {
		proj = &projection{summary: q.Summary, elements: q.Elements}
	}
	b := newBundle("searchset", a.now())
	if res.Total >= 0 {
		b.total(res.Total)
	}
	selfURL := canonical
	if cursor != "" {
		selfURL += "&_cursor=" + url.QueryEscape(cursor)
	}
	b.link("self", selfURL)
	if res.Next != "" {
		b.link("next", canonical+"&_cursor="+url.QueryEscape(a.sealCursor(bindCursor(r.Context(), canonical), res.Next)))
	}
	if res.Prev != "" {
		b.link("previous", canonical+"&_cursor="+url.QueryEscape(a.sealCursor(bindCursor(r.Context(), canonical), res.Prev)))
	}
	b.stream(a.base, res.Matches, res.Included)
	if len(q.Ignored) > 0 {
		b.outcome(a.base, "Ignored unknown search parameters: "+strings.Join(q.Ignored, ", "))
	}
	for i := range res.Matches {
		if err := a.addEntry(b, &res.Matches[i], "match", proj); err != nil {
			return err
		}
	}
	for i := range res.Included {
		if err := a.addEntry(b, &res.Included[i], "include", proj); err != nil {
			return err
		}
	}
	writeBundle(w, http.StatusOK, b.finish())
	return nil
}

func (a *API) addEntry(b *bundleWriter, res *store.Resource, mode string, proj *projection) error {
	body := res.JSON
	if proj != nil {
		var err error
		if body, err = a.project(body, *proj); err != nil {
			return err
		}
	}
	b.entry(a.base+"/"+res.Type+"/"+res.ID, body, `"search":{"mode":"`+mode+`"}`)
	return nil
}

// searchValues collects the parameters of a search: the query string and,
// for POST _search, the form body (FHIR R4 §3.1.0.9: both count).
func (a *API) searchValues(r *http.Request) (url.Values, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid", "The query string is malformed")
	}
	if r.Method == http.MethodPost {
		ct := strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0])
		if ct != "application/x-www-form-urlencoded" {
			return nil, errorf(http.StatusUnsupportedMediaType, "not-supported", "POST _search needs an application/x-www-form-urlencoded body")
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
		if err != nil || len(body) > 1<<20 {
			return nil, errorf(http.StatusRequestEntityTooLarge, "too-costly", "The search form is too large")
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "invalid", "The search form is malformed")
		}
		for k, v := range form {
			vals[k] = append(vals[k], v...)
		}
	}
	for _, k := range []string{"_format", "_pretty"} {
		vals.Del(k)
	}
	return vals, nil
}

// bundleWriter assembles a Bundle's JSON directly from stored resource
// bytes, without decoding them again.
type bundleWriter struct {
	head    bytes.Buffer
	links   [][2]string
	entries bytes.Buffer
	n       int
	tot     int
	hasTot  bool
	// streaming: the head, total and links are already in entries
	// (see stream), which then is the whole Bundle.
	streaming bool
}

func newBundle(typ string, now time.Time) *bundleWriter {
	b := &bundleWriter{}
	b.head.WriteString(`{"resourceType":"Bundle","id":"`)
	b.head.WriteString(newID())
	b.head.WriteString(`","meta":{"lastUpdated":"`)
	b.head.WriteString(now.UTC().Format(lastUpdatedLayout))
	b.head.WriteString(`"},"type":"`)
	b.head.WriteString(typ)
	b.head.WriteString(`"`)
	return b
}

func (b *bundleWriter) total(n int) { b.tot, b.hasTot = n, true }

// stream writes the Bundle's head, total and links (which MUST be final,
// and no entry added yet) into one buffer sized for the resources about to be added, so that a
// large page is copied once rather than grown step by step and copied
// again by finish.
func (b *bundleWriter) stream(base string, lists ...[]store.Resource) {
	n := b.head.Len() + 64
	for _, l := range b.links {
		n += len(l[0]) + len(l[1]) + 40
	}
	for _, list := range lists {
		for i := range list {
			n += len(list[i].JSON) + len(base) + len(list[i].Type) + len(list[i].ID) + 64
		}
	}
	b.entries = *bytes.NewBuffer(bodyBuffer(n))
	b.writeHead(&b.entries)
	b.streaming = true
}

// bodies keeps the buffers of Bundles written (writeBundle) for the
// next: a page of search results is tens of kB, allocated and cleared
// for every search otherwise.
var bodies sync.Pool // of *[]byte

// maxPooledBody bounds the buffers kept in bodies.
const maxPooledBody = 1 << 20

// bodyBuffer returns an empty buffer with room for n bytes, from bodies
// when the one there is large enough.
func bodyBuffer(n int) []byte {
	if p, ok := bodies.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// recycleBody puts b's buffer in bodies. The caller MUST NOT use b, or
// anything sharing its memory, afterwards.
func recycleBody(b []byte) {
	if cap(b) > maxPooledBody {
		return
	}
	b = b[:0]
	bodies.Put(&b)
}

func (b *bundleWriter) link(rel, u string) { b.links = append(b.links, [2]string{rel, u}) }

// entry adds an entry; extra is a JSON member list (without braces) such
// as `"search":{"mode":"match"}`, or "".
func (b *bundleWriter) entry(fullURL string, resource []byte, extra string) {
	switch {
	case b.n > 0:
		b.entries.WriteByte(',')
	case b.streaming:
		b.entries.WriteString(`,"entry":[`)
	}
	b.n++
	b.entries.WriteByte('{')
	if fullURL != "" {
		b.entries.WriteString(`"fullUrl":`)
		writeString(&b.entries, fullURL)
		b.entries.WriteByte(',')
	}
	if resource != nil {
		b.entries.WriteString(`"resource":`)
		b.entries.Write(resource)
		if extra != "" {
			b.entries.WriteByte(',')
		}
	}
	b.entries.WriteString(extra)
	b.entries.WriteByte('}')
}

// outcome adds an OperationOutcome entry with search mode "outcome".
func (b *bundleWriter) outcome(base, msg string) {
	oo, _ := marshalResource(outcome([]Issue{{Severity: "warning", Code: "not-supported", Diagnostics: msg}}))
	b.entry("", oo, `"search":{"mode":"outcome"}`)
}

func (b *bundleWriter) finish() []byte {
	if b.streaming {
		if b.n > 0 {
			b.entries.WriteByte(']')
		}
		b.entries.WriteByte('}')
		return b.entries.Bytes()
	}
	size := b.head.Len() + b.entries.Len() + 64
	for _, l := range b.links {
		size += len(l[0]) + len(l[1]) + 40
	}
	out := bytes.NewBuffer(bodyBuffer(size))
	b.writeHead(out)
	if b.n > 0 {
		out.WriteString(`,"entry":[`)
		out.Write(b.entries.Bytes())
		out.WriteByte(']')
	}
	out.WriteByte('}')
	return out.Bytes()
}

// writeHead writes the Bundle up to its entries: type, id, meta, total,
// links.
func (b *bundleWriter) writeHead(out *bytes.Buffer) {
	out.Write(b.head.Bytes())
	if b.hasTot {
		out.WriteString(`,"total":`)
		out.WriteString(strconv.Itoa(b.tot))
	}
	if len(b.links) > 0 {
		out.WriteString(`,"link":[`)
		for i, l := range b.links {
			if i > 0 {
				out.WriteByte(',')
			}
			out.WriteString(`{"relation":"`)
			out.WriteString(l[0])
			out.WriteString(`","url":`)
			writeString(out, l[1])
			out.WriteByte('}')
		}
		out.WriteByte(']')
	}
}

func writeString(buf *bytes.Buffer, s string) {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	buf.Truncate(buf.Len() - 1)
}

// parseQuery parses a search for every path that runs one (search,
// batch GET entries, conditions), so all treat values alike.
func (a *API) parseQuery(typ string, vals url.Values, opts search.Options) (*search.Query, error) {
	q, err := search.Parse(a.reg, typ, vals, opts)
	if err != nil {
		return nil, err
	}
	a.localizeRefs(q.Clauses)
	return q, nil
}

// localizeRefs turns reference values that are absolute URLs on this
// server's own base into local references: references are stored
// relative to the base, so both forms must find the same resources.
func (a *API) localizeRefs(clauses []search.Clause) {
	for i := range clauses {
		c := &clauses[i]
		if c.Chain != nil {
			a.localizeRefs([]search.Clause{*c.Chain})
		}
		if c.Has != nil {
			a.localizeRefs([]search.Clause{c.Has.Clause})
		}
		if c.Param == nil || c.Param.Type != searchparam.Reference {
			continue
		}
		for j := range c.Values {
			v := &c.Values[j]
			if v.URL != "" && v.RefID != "" && strings.HasPrefix(v.URL, a.base+"/") {
				v.URL = ""
			}
		}
	}
}
