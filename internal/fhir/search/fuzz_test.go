package search

import (
	"errors"
	"net/url"
	"reflect"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// FuzzParse feeds raw query strings (seeds in testdata/fuzz/FuzzParse) to
// Parse for two resource types, strict and lenient, and checks:
//
//   - Parse never panics and is deterministic;
//   - on failure the error is an *Error whose Param is a parameter name
//     of the request and whose Reason is one of the reason constants, so
//     its text does not contain any value (checked directly for values
//     longer than 8 bytes, except text that is also part of a name or of
//     the constant reason; see errorProblem);
//   - on success the Query respects its contract and the bounds: every
//     clause has a Param or a Has, at most 50 clauses of 1 to 100 values,
//     Count within [0, MaxCount], date values with Lo < Hi, at most 10
//     includes and 5 sort keys, Ignored only when lenient.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, query string) {
		vals, err := url.ParseQuery(query)
		if err != nil {
			return // the API rejects malformed query strings before Parse
		}
		for _, typ := range []string{"Observation", "Patient"} {
			for _, lenient := range []bool{false, true} {
				opts := Options{DefaultCount: 20, MaxCount: 100, Lenient: lenient}
				q, err := Parse(r4, typ, vals, opts)
				if err != nil {
					var e *Error
					if !errors.As(err, &e) {
						t.Fatalf("Parse(%q) error %T %v, want *Error", query, err, err)
					}
					if problem := errorProblem(e, vals); problem != "" {
						t.Fatalf("Parse(%q) error %q: %s", query, err, problem)
					}
					continue
				}
				checkQuery(t, query, q, opts)
				again, err := Parse(r4, typ, vals, opts)
				if err != nil || !reflect.DeepEqual(q, again) {
					t.Fatalf("Parse(%q) is not deterministic (%v)", query, err)
				}
			}
		}
	})
}

func checkQuery(t *testing.T, query string, q *Query, opts Options) {
	t.Helper()
	if q.Count < 0 || q.Count > opts.MaxCount {
		t.Fatalf("Parse(%q): Count %d outside [0, %d]", query, q.Count, opts.MaxCount)
	}
	if q.Summary == SummaryCount && q.Count != 0 {
		t.Fatalf("Parse(%q): _summary=count with Count %d", query, q.Count)
	}
	if len(q.Clauses) > maxClauses {
		t.Fatalf("Parse(%q): %d clauses", query, len(q.Clauses))
	}
	for _, c := range q.Clauses {
		checkClause(t, query, c, true)
	}
	if n := len(q.Includes) + len(q.RevIncludes); n > maxIncludes {
		t.Fatalf("Parse(%q): %d includes", query, n)
	}
	for _, inc := range append(append([]Include(nil), q.Includes...), q.RevIncludes...) {
		if inc.SourceType == "" || inc.Param != nil && inc.Param.Type != searchparam.Reference {
			t.Fatalf("Parse(%q): bad include %+v", query, inc)
		}
	}
	if len(q.Sort) > maxSortKeys {
		t.Fatalf("Parse(%q): %d sort keys", query, len(q.Sort))
	}
	for _, s := range q.Sort {
		if s.Param == nil {
			t.Fatalf("Parse(%q): sort key without parameter", query)
		}
	}
	if !opts.Lenient && len(q.Ignored) > 0 {
		t.Fatalf("Parse(%q): strict mode ignored %q", query, q.Ignored)
	}
}

// checkClause checks one clause; top is false for the clause inside a
// chain or _has, which may not nest further.
func checkClause(t *testing.T, query string, c Clause, top bool) {
	t.Helper()
	switch {
	case c.Has != nil:
		if !top || c.Param != nil || c.Chain != nil || len(c.Values) > 0 {
			t.Fatalf("Parse(%q): malformed _has clause %+v", query, c)
		}
		if c.Has.Type == "" || c.Has.Ref == nil || c.Has.Ref.Type != searchparam.Reference {
			t.Fatalf("Parse(%q): _has without a reference %+v", query, c.Has)
		}
		checkClause(t, query, c.Has.Clause, false)
		return
	case c.Param == nil:
		t.Fatalf("Parse(%q): clause with neither Param nor Has", query)
	case c.Chain != nil:
		if !top || len(c.Values) > 0 || c.Param.Type != searchparam.Reference {
			t.Fatalf("Parse(%q): malformed chain %+v", query, c)
		}
		checkClause(t, query, *c.Chain, false)
		return
	}
	if len(c.Values) == 0 || len(c.Values) > maxOr {
		t.Fatalf("Parse(%q): %s has %d values", query, c.Param.Code, len(c.Values))
	}
	if c.Modifier == ModMissing {
		return
	}
	for _, v := range c.Values {
		switch c.Param.Type {
		case searchparam.Date:
			checkDate(t, query, v)
		case searchparam.Composite:
			if len(v.Components) != len(c.Param.Components) {
				t.Fatalf("Parse(%q): %d components for %d", query, len(v.Components), len(c.Param.Components))
			}
			for i, comp := range c.Param.Components {
				if comp.Type == searchparam.Date {
					checkDate(t, query, v.Components[i])
				}
			}
		}
	}
}

func checkDate(t *testing.T, query string, v Value) {
	t.Helper()
	if v.Lo >= v.Hi {
		t.Fatalf("Parse(%q): date range [%d, %d) is empty", query, v.Lo, v.Hi)
	}
}
