package search

import (
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// control handles the result parameters that take a single value: _count,
// _sort, _summary, _elements, _total, and the _format and _pretty
// parameters shared by all interactions.
func (p *parser) control(name, v string) *Error {
	switch name {
	case "_count":
		return p.count(v)
	case "_sort":
		return p.sort(v)
	case "_summary":
		// FHIR R4 §3.1.1.5.8.
		switch s := Summary(v); s {
		case SummaryTrue, SummaryText, SummaryData, SummaryCount, SummaryFalse:
			p.q.Summary = s
			return nil
		}
		return fail(name, reasonSummary)
	case "_elements":
		return p.elements(v)
	case "_total":
		// FHIR R4 §3.1.1.5.2.
		switch v {
		case "none", "estimate", "accurate":
			p.q.Total = v
			return nil
		}
		return fail(name, reasonTotal)
	case "_format":
		// FHIR R4 §3.1.1.2 and the http page: _format overrides Accept.
		// Warden speaks JSON only.
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "json", "application/fhir+json", "application/json":
			return nil
		}
		return fail(name, reasonFormat)
	case "_pretty":
		if v == "true" || v == "false" {
			return nil
		}
		return fail(name, reasonPretty)
	}
	return fail(name, reasonControlUnknown)
}

// count handles _count (FHIR R4 §3.1.1.5.3): a whole number of results per
// page, clamped to Options.MaxCount; 0 asks for the total only.
func (p *parser) count(v string) *Error {
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return fail("_count", reasonCount)
		}
		if n <= p.opts.MaxCount && n < 100_000_000 { // stop growing once clamped; no overflow
			n = n*10 + int(c-'0')
		}
	}
	p.q.Count = min(n, p.opts.MaxCount)
	return nil
}

// sort handles _sort (FHIR R4 §3.1.1.5.1): comma-separated parameter
// codes of the searched type, each optionally prefixed with "-" for
// descending order. Composite and special parameters cannot be sorted on.
func (p *parser) sort(v string) *Error {
	if strings.Count(v, ",") >= maxSortKeys {
		return fail("_sort", reasonTooManySortKeys)
	}
	for key := range strings.SplitSeq(v, ",") {
		code, desc := strings.CutPrefix(key, "-")
		if !isCode(code) {
			return fail("_sort", reasonSortForm)
		}
		sp := p.reg.Param(p.typ, code)
		if sp == nil {
			return fail("_sort", reasonSortUnknown)
		}
		if sp.Type == searchparam.Composite || sp.Type == searchparam.Special {
			return fail("_sort", reasonSortType)
		}
		if slices.ContainsFunc(p.q.Sort, func(s Sort) bool { return s.Param == sp }) {
			return fail("_sort", reasonSortTwice)
		}
		p.q.Sort = append(p.q.Sort, Sort{Param: sp, Desc: desc})
	}
	return nil
}

// elements handles _elements (FHIR R4 §3.1.1.5.9): a comma-separated list
// of top-level element names.
func (p *parser) elements(v string) *Error {
	for e := range strings.SplitSeq(v, ",") {
		if !isElementName(e) {
			return fail("_elements", reasonElements)
		}
		if !slices.Contains(p.q.Elements, e) {
			p.q.Elements = append(p.q.Elements, e)
		}
	}
	return nil
}

// isElementName reports whether s has the shape of a FHIR element name:
// a letter followed by letters and digits.
func isElementName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}
