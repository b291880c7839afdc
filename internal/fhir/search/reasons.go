package search

// The reasons an Error gives. Every Error.Reason is one of these constants
// (FuzzParse checks it): an Error never carries text taken from the
// request besides the parameter name, so values — which may be health
// data — cannot reach responses or logs through it.
const (
	// Names and raw values
	reasonName         = "parameter names are at most 256 bytes of letters, digits and _ - . : $"
	reasonValueTooLong = "value too long (at most 1024 bytes)"
	reasonNotUTF8      = "value is not valid UTF-8"
	reasonControl      = "value contains control characters"
	reasonEscape       = `invalid escape: "\" may only precede \ , $ or |`

	// Unknown and unsupported parameters and modifiers
	reasonUnknown       = "unknown search parameter for this resource type"
	reasonUnsupported   = "this search parameter is not supported"
	reasonSpecial       = "special search parameters are not supported"
	reasonParamType     = "parameters of this type are not supported"
	reasonComposite     = "this composite parameter is not supported"
	reasonNoComponents  = "this composite parameter has no components"
	reasonModifier      = "modifier not supported for this parameter"
	reasonEmptyModifier = "empty modifier"
	reasonTypeModifier  = "the type modifier names a type this reference parameter cannot point to"

	// Values
	reasonEmptyAlternative = "empty value in a comma-separated list"
	reasonMissingValue     = ":missing takes true or false"
	reasonMissingList      = ":missing takes a single value, true or false"
	reasonNothingToSearch  = "value has no letters or digits to search for"
	reasonToken            = `a token is code, system|code, |code or system|; escape a literal "|" as "\|"`
	reasonEmptyToken       = "a token needs a system or a code"
	reasonID               = "not a valid resource id"
	reasonDate             = "not a valid date (yyyy, yyyy-mm, yyyy-mm-dd or yyyy-mm-ddThh:mm[:ss][zone], with an optional prefix)"
	reasonNumber           = "not a valid number (a decimal with an optional prefix)"
	reasonQuantity         = "not a valid quantity (number, number|system|code or number||code, with an optional prefix)"
	reasonCompositeParts   = `a composite value has one part per component, joined by "$"`
	reasonEmptyComponent   = "empty component in a composite value"
	reasonReference        = "not a valid reference (id, Type/id, Type/id/_history/version or an absolute URL)"
	reasonCanonicalVersion = `versioned canonical references (url|version) are not supported; escape a literal "|" as "\|"`
	reasonRefType          = "the reference names a type this parameter cannot point to"
	reasonRefTypeConflict  = "the reference names a type other than the type modifier"
	reasonRefTypeAbsolute  = "a type modifier cannot be combined with this absolute reference"

	// Chains and _has
	reasonChainDepth        = "only one level of chaining is supported"
	reasonChainNotReference = "only reference parameters can be chained"
	reasonChainModifier     = "in a chain the reference may only carry a resource type modifier"
	reasonChainName         = "the chained parameter name is malformed"
	reasonChainHas          = "_has cannot be chained"
	reasonChainAmbiguous    = "the chained parameter differs between the types this reference can point to; name the type (ref:Type.param)"
	reasonChainUnknown      = "the chained parameter is not defined on any type this reference can point to"
	reasonHasForm           = "_has takes the form _has:Type:reference:parameter"
	reasonHasNested         = "nested _has is not supported"
	reasonHasChain          = "chained parameters inside _has are not supported"
	reasonHasRef            = "_has names a parameter that is not a reference parameter of its type"
	reasonHasTarget         = "the _has reference parameter cannot point to the searched type"
	reasonHasUnknown        = "_has names a parameter its type does not define"

	// _include and _revinclude
	reasonIncludeModifier  = "the only modifier of _include and _revinclude is :iterate"
	reasonIncludeForm      = "the value is SourceType:parameter[:TargetType], or SourceType:* for every reference parameter"
	reasonIncludeSource    = "the source type of _include must be the searched type (use _include:iterate to start from included resources)"
	reasonIncludeWildcard  = "the source type has no reference parameter that fits"
	reasonIncludeParam     = "the parameter is not a reference parameter of the source type"
	reasonIncludeTarget    = "the target type is not one the parameter can point to"
	reasonRevIncludeTarget = "the parameter of _revinclude cannot point to the searched type"
	reasonSummaryText      = "_summary=text cannot be combined with _include or _revinclude"

	// Result parameters
	reasonControlModifier = "this parameter takes no modifier"
	reasonRepeated        = "this parameter may be given only once"
	reasonCount           = "_count is a whole number"
	reasonSortForm        = "_sort is a comma-separated list of parameter names, each optionally prefixed with -"
	reasonSortUnknown     = "_sort names a parameter this resource type does not define"
	reasonSortType        = "_sort names a parameter that cannot be sorted on"
	reasonSortTwice       = "_sort names a parameter twice"
	reasonSummary         = "_summary is one of true, text, data, count or false"
	reasonElements        = "_elements is a comma-separated list of element names"
	reasonTotal           = "_total is one of none, estimate or accurate"
	reasonFormat          = "only JSON is supported (_format=json, application/fhir+json or application/json)"
	reasonPretty          = "_pretty is true or false"
	reasonControlUnknown  = "this parameter is not supported"

	// Bounds
	reasonTooManyClauses  = "too many search clauses (at most 50)"
	reasonTooManyValues   = "too many comma-separated values (at most 100)"
	reasonTooManyIncludes = "too many _include and _revinclude parameters (at most 10)"
	reasonTooManySortKeys = "too many sort keys (at most 5)"
	reasonTooManyIgnored  = "too many unknown parameters (at most 50)"
)
