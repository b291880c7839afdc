package search

import (
	"net/url"
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// Bounds on what one search may ask for. They keep the work a query
// causes (joins, OR lists, sort keys) near what a legitimate client needs.
const (
	maxClauses    = 50   // search clauses (parameter occurrences) per query
	maxOr         = 100  // comma-separated alternatives per clause
	maxValueBytes = 1024 // bytes per parameter value
	maxIncludes   = 10   // _include and _revinclude directives together
	maxSortKeys   = 5    // _sort keys
	maxNameBytes  = 256  // bytes per parameter name
	maxIgnored    = 50   // unknown parameters skipped in lenient mode

	// Page sizes used when Options leaves them zero.
	defaultCount    = 20
	defaultMaxCount = 1000
)

// invalidName stands in Error.Param for a parameter name that fails
// validation: such a name is not echoed back.
const invalidName = "(invalid name)"

// Parse turns the parameters of a search on resourceType (FHIR R4 §3.1.1)
// into a Query, looking parameters up in reg (which must not be nil). The
// caller has already checked that resourceType is a resource type,
// removed its own parameters (paging cursors), and sets Query.Compartment
// itself.
//
// Every error is an *Error naming the parameter at fault; its text never
// contains a parameter value. Parameters are processed in name order, so
// the same request always yields the same Query or the same error.
//
// Parameters with an empty value are ignored (§3.1.1.3). Unknown and
// unsupported parameters are an error unless opts.Lenient is set (Prefer:
// handling=lenient, §3.1.1.3), in which case their names go to
// Query.Ignored. Unsupported modifiers and malformed values are always an
// error (§3.1.1.4.4: servers SHALL reject modifiers they do not support).
func Parse(reg *searchparam.Registry, resourceType string, params url.Values, opts Options) (*Query, error) {
	if opts.MaxCount <= 0 {
		opts.MaxCount = defaultMaxCount
	}
	if opts.DefaultCount <= 0 {
		opts.DefaultCount = defaultCount
	}
	opts.DefaultCount = min(opts.DefaultCount, opts.MaxCount)
	p := &parser{reg: reg, typ: resourceType, opts: opts, q: &Query{Type: resourceType, Count: opts.DefaultCount}}

	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := p.param(name, params[name]); err != nil {
			return nil, err
		}
	}

	// §3.1.1.5.3: _count=0 is treated the same as _summary=count, and
	// _summary=count returns no entries. Either way Count is 0, so callers
	// can test Count alone.
	if p.q.Summary == SummaryCount {
		p.q.Count = 0
	}
	// §3.1.1.5.8: _include and _revinclude cannot be mixed with _summary=text.
	if p.q.Summary == SummaryText && len(p.q.Includes)+len(p.q.RevIncludes) > 0 {
		return nil, fail("_summary", reasonSummaryText)
	}
	return p.q, nil
}

type parser struct {
	reg  *searchparam.Registry
	typ  string
	opts Options
	q    *Query
}

func fail(param, reason string) *Error { return &Error{Param: param, Reason: reason} }

// param handles every occurrence of one parameter name.
func (p *parser) param(name string, values []string) *Error {
	if !validName(name) {
		return fail(invalidName, reasonName)
	}
	empty := true
	for _, v := range values {
		if reason := checkValue(v); reason != "" {
			return fail(name, reason)
		}
		empty = empty && v == ""
	}
	if empty {
		return nil // §3.1.1.3: empty parameters are ignored
	}

	code := name
	if i := strings.IndexAny(name, ":."); i >= 0 {
		code = name[:i]
	}
	switch code {
	case "_count", "_sort", "_summary", "_elements", "_total", "_format", "_pretty":
		if name != code {
			return fail(name, reasonControlModifier)
		}
		if len(values) > 1 {
			return fail(name, reasonRepeated)
		}
		return p.control(name, values[0])
	case "_include", "_revinclude":
		return p.includes(name, code, values)
	case "_has":
		return p.has(name, values)
	case "_contained", "_containedType", "_list", "_query", "_filter", "_text", "_content", "_type":
		return p.skip(name, reasonUnsupported)
	}
	return p.search(name, values)
}

// skip rejects an unknown or unsupported parameter, or under
// Options.Lenient records it in Query.Ignored.
func (p *parser) skip(name, reason string) *Error {
	if !p.opts.Lenient {
		return fail(name, reason)
	}
	if len(p.q.Ignored) == maxIgnored {
		return fail(name, reasonTooManyIgnored)
	}
	p.q.Ignored = append(p.q.Ignored, name)
	return nil
}

// addClause appends c, keeping the number of clauses bounded.
func (p *parser) addClause(name string, c Clause) *Error {
	if len(p.q.Clauses) == maxClauses {
		return fail(name, reasonTooManyClauses)
	}
	p.q.Clauses = append(p.q.Clauses, c)
	return nil
}

// search handles a search parameter of the resource type: code, code:modifier,
// or a chain ref[:Type].code[:modifier] (§3.1.1.4.15).
func (p *parser) search(name string, values []string) *Error {
	head, tail, chained := strings.Cut(name, ".")
	if chained && strings.Contains(tail, ".") {
		return fail(name, reasonChainDepth)
	}
	code, mod, ok := cutModifier(head)
	if !ok {
		return fail(name, reasonEmptyModifier)
	}
	sp := p.reg.Param(p.typ, code)
	if sp == nil {
		if p.reg.Defined(p.typ, code) {
			return p.skip(name, reasonUnsupported)
		}
		return p.skip(name, reasonUnknown)
	}
	if sp.Type == searchparam.Special {
		return p.skip(name, reasonSpecial)
	}
	var sh *shape
	var err *Error
	if chained {
		sh, err = p.chain(name, sp, mod, tail)
	} else {
		sh, err = p.shape(name, sp, mod)
	}
	if err != nil {
		return err
	}
	for _, raw := range values {
		if raw == "" {
			continue
		}
		c, err := p.clause(name, sh, raw)
		if err != nil {
			return err
		}
		if err := p.addClause(name, c); err != nil {
			return err
		}
	}
	return nil
}

// clause parses one occurrence of a parameter whose name resolved to sh.
func (p *parser) clause(name string, sh *shape, raw string) (Clause, *Error) {
	c := Clause{Param: sh.param, Modifier: sh.mod, TargetType: sh.target}
	if sh.chain != nil {
		inner, err := p.clause(name, sh.chain, raw)
		if err != nil {
			return Clause{}, err
		}
		c.Chain = &inner
		return c, nil
	}
	values, err := parseValues(name, sh, raw)
	if err != nil {
		return Clause{}, err
	}
	c.Values = values
	return c, nil
}

// cutModifier splits code[:modifier]; ok is false for "code:" (a colon
// without a modifier).
func cutModifier(s string) (code, mod string, ok bool) {
	code, mod, found := strings.Cut(s, ":")
	return code, mod, !found || mod != ""
}

// validName reports whether name is a plausible parameter name: 1 to
// maxNameBytes ASCII letters, digits and _ - . : $.
func validName(name string) bool {
	if name == "" || len(name) > maxNameBytes {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '-', c == '.', c == ':', c == '$':
		default:
			return false
		}
	}
	return true
}

// isTypeName reports whether s has the shape of a resource type name.
func isTypeName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isID reports whether s is a valid resource id (the FHIR R4 id data
// type: [A-Za-z0-9\-\.]{1,64}).
func isID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// isCode reports whether s has the shape of a search parameter code.
func isCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
