// Package search turns a FHIR search request (the query string of
// GET [base]/[type]?… or the form body of POST …/_search) into a typed,
// validated Query. It knows FHIR search semantics — parameter types,
// modifiers, prefixes, chaining, _has, _include, _sort, paging and
// projection controls — but nothing about storage: no SQL here.
//
// Parsing is the first line of defence against malformed input: every
// value is bounded and checked, and errors name the parameter at fault
// without echoing its value.
package search

import "github.com/wardenfhir/warden/internal/fhir/searchparam"

// Query is a parsed search over one resource type.
type Query struct {
	Type string // the resource type searched

	// Compartment restricts results to one compartment
	// (GET Patient/{id}/{type}); nil when not a compartment search.
	Compartment *Compartment

	Clauses     []Clause // all must match (AND)
	Includes    []Include
	RevIncludes []Include
	Sort        []Sort
	Count       int     // page size, already bounded by Options
	Summary     Summary // _summary
	Elements    []string
	Total       string // _total: "", "none", "estimate", "accurate"

	// Ignored lists parameters skipped under Prefer: handling=lenient,
	// for an OperationOutcome warning; never populated in strict mode.
	Ignored []string
}

// Compartment names one compartment instance.
type Compartment struct {
	Type string // "Patient"
	ID   string
}

// Clause is one occurrence of a search parameter; its Values are
// alternatives (OR). Repeating a parameter gives several Clauses (AND).
type Clause struct {
	Param    *searchparam.Param
	Modifier Modifier
	// TargetType is the type given with a reference modifier
	// (subject:Patient=…) or in a chain (subject:Patient.name=…). In a
	// chain without a type it is the one target type that defines the
	// chained parameter, or empty when several do: Chain.Param is then
	// the definition on the first of them (all read values alike) and the
	// chain matches any target type defining a parameter with that code.
	TargetType string
	// Chain, when set, means the clause matches resources whose Param
	// reference points at a resource (of TargetType, if given) matching
	// Chain. Values is then empty.
	Chain *Clause
	// Has, when set (_has:Type:refParam:param=…), means the clause matches
	// resources referenced through Has.Ref by a resource of Has.Type that
	// matches Has.Clause. Param is nil and Values empty.
	Has    *Has
	Values []Value
}

// Has is a reverse chain.
type Has struct {
	Type   string             // the referring resource type
	Ref    *searchparam.Param // its reference parameter pointing back at us
	Clause Clause             // the condition on the referring resource
}

// Modifier is a search parameter modifier.
type Modifier string

// Supported modifiers.
const (
	ModNone       Modifier = ""
	ModExact      Modifier = "exact"
	ModContains   Modifier = "contains"
	ModMissing    Modifier = "missing"
	ModNot        Modifier = "not"
	ModText       Modifier = "text"
	ModIdentifier Modifier = "identifier"
	ModType       Modifier = "type" // reference with a [type] modifier; see Clause.TargetType
)

// Prefix is a comparison prefix for ordered types (number, date, quantity).
type Prefix string

// The FHIR R4 prefixes.
const (
	Eq Prefix = "eq"
	Ne Prefix = "ne"
	Gt Prefix = "gt"
	Lt Prefix = "lt"
	Ge Prefix = "ge"
	Le Prefix = "le"
	Sa Prefix = "sa"
	Eb Prefix = "eb"
	Ap Prefix = "ap"
)

// Value is one alternative of a clause, parsed according to the
// parameter's type. Which fields are set mirrors searchparam.Entry.
type Value struct {
	Prefix Prefix // eq when absent (ordered types only)

	// String: Text is searchparam.NormalizeString of the value; Exact is
	// the value as given (for :exact).
	// URI: Exact.
	// Token: System/Code; AnySystem is true when no "|" was given
	// ("code" matches any system); "|code" means no system; "sys|" means
	// any code in sys (Code empty, AnyCode true). :text uses Text.
	// :missing uses Missing.
	Text      string
	Exact     string
	System    string
	Code      string
	AnySystem bool
	AnyCode   bool
	Missing   bool

	// Reference: RefType+RefID for "Type/id" or an id alone (RefType
	// empty unless given by a :Type modifier or the parameter's single
	// target); URL for absolute/canonical references. :identifier uses
	// System/Code.
	RefType string
	RefID   string
	URL     string

	// Date: [Lo, Hi) in Unix microseconds, from searchparam.DateRange.
	Lo, Hi int64

	// Number, Quantity: the value and its precision range, from
	// searchparam.NumberRange; Quantity also System/Code (unit), either
	// may be empty meaning "any". For "number||code" (no system), Text is
	// also set to searchparam.NormalizeString(Code), to compare with the
	// unit as written (FHIR R4 §3.1.1.4.11).
	Num, NumLo, NumHi float64

	// Composite: one Value per component, in definition order.
	Components []Value
}

// Include is an _include or _revinclude directive.
type Include struct {
	SourceType string             // the resource type holding the reference
	Param      *searchparam.Param // the reference parameter; nil for "*"
	TargetType string             // optional target type restriction
	Iterate    bool               // :iterate (one level)
}

// Sort is one _sort key.
type Sort struct {
	Param *searchparam.Param
	Desc  bool
}

// Summary is the _summary mode.
type Summary string

// The _summary modes.
const (
	SummaryNone  Summary = ""
	SummaryTrue  Summary = "true"
	SummaryCount Summary = "count"
	SummaryData  Summary = "data"
	SummaryText  Summary = "text"
	SummaryFalse Summary = "false"
)

// Options bound what a query may ask for.
type Options struct {
	DefaultCount int  // page size when _count is absent; 0 means 20 (never above MaxCount)
	MaxCount     int  // _count above this is clamped to it; 0 means 1000
	Lenient      bool // Prefer: handling=lenient: skip unknown parameters
}

// Error is a problem with one search parameter. Its message names the
// parameter and the problem, never the value.
type Error struct {
	Param  string
	Reason string
}

func (e *Error) Error() string { return "search parameter " + e.Param + ": " + e.Reason }
