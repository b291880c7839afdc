package searchparam

import (
	"encoding/json"
	"math"
	"strconv"
)

// This file turns a value reached by a parameter's expression into index
// entries, according to the parameter's type and the value's FHIR type
// (FHIR R4 Search, "Search Parameter Types", whose per-type sections
// say which data types each parameter type indexes and how). Values of
// the wrong JSON shape (a number where a string belongs, …) yield
// nothing: extraction runs before or without validation and never fails.

// convertFunc appends the entries for value v to out. e carries the
// parameter's code and type.
type convertFunc func(out []Entry, e Entry, v any) []Entry

// converterSet says, for one parameter type, how to index each kind of
// value; nil where that kind cannot be indexed.
type converterSet [kindCount]convertFunc

var converters = map[Type]*converterSet{
	String: {
		kindString:    stringPrimitive,
		kindMarkdown:  stringPrimitive,
		kindCode:      stringPrimitive,
		kindID:        stringPrimitive,
		kindURI:       stringPrimitive,
		kindCanonical: stringPrimitive,
		kindHumanName: stringHumanName,
		kindAddress:   stringAddress,
	},
	Token: {
		kindString:          tokenPrimitive,
		kindCode:            tokenPrimitive,
		kindID:              tokenPrimitive,
		kindURI:             tokenPrimitive,
		kindCanonical:       tokenPrimitive,
		kindBoolean:         tokenBoolean,
		kindCoding:          tokenCoding,
		kindCodeableConcept: tokenCodeableConcept,
		kindIdentifier:      tokenIdentifier,
		kindContactPoint:    tokenContactPoint,
	},
	Reference: {
		kindReference: referenceReference,
		kindCanonical: referenceCanonical,
		kindURI:       referenceURI,
	},
	Date: {
		kindDate:   datePrimitive,
		kindPeriod: datePeriod,
		kindTiming: dateTiming,
	},
	Number: {
		kindNumber: numberPrimitive,
		kindRange:  numberRange,
	},
	Quantity: {
		kindQuantity: quantityQuantity,
		kindMoney:    quantityMoney,
		kindRange:    quantityRange,
	},
	URI: {
		kindURI:       uriPrimitive,
		kindCanonical: uriPrimitive,
	},
}

// stringField returns the string at m[key], or "" when there is none.
func stringField(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// stringList returns the values of a repeating string element (a lone
// string, though invalid, counts as one).
func stringList(m map[string]any, key string) []any {
	switch v := m[key].(type) {
	case []any:
		return v
	case string:
		return []any{v}
	}
	return nil
}

// String parameters (Search, "string"): Text is normalised for the default
// "starts with" and :contains searches, Exact kept for :exact.

func stringPrimitive(out []Entry, e Entry, v any) []Entry {
	s, _ := v.(string)
	return appendString(out, e, s)
}

func appendString(out []Entry, e Entry, s string) []Entry {
	if s == "" {
		return out
	}
	e.Text, e.Exact = NormalizeString(s), s
	return append(out, e)
}

// stringHumanName indexes every part of a name separately, so that
// name=smi finds "Smith" as a family name and name=jo finds a given
// name "John" (Search, "string": a HumanName matches on family, given,
// prefix, suffix and text).
func stringHumanName(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	out = appendString(out, e, stringField(m, "family"))
	for _, key := range []string{"given", "prefix", "suffix"} {
		for _, part := range stringList(m, key) {
			s, _ := part.(string)
			out = appendString(out, e, s)
		}
	}
	return appendString(out, e, stringField(m, "text"))
}

// stringAddress indexes every part of an address separately (Search,
// "string": line, city, district, state, country, postalCode and text).
func stringAddress(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	for _, part := range stringList(m, "line") {
		s, _ := part.(string)
		out = appendString(out, e, s)
	}
	for _, key := range []string{"city", "district", "state", "postalCode", "country", "text"} {
		out = appendString(out, e, stringField(m, key))
	}
	return out
}

// Token parameters (Search, "token").

// tokenPrimitive indexes code, string, id and uri values as a code
// without a system. Codes bound to a code system carry it implicitly;
// a search with "system|code" on them matches only when the system is
// given in the resource, which for primitives it never is.
func tokenPrimitive(out []Entry, e Entry, v any) []Entry {
	s, _ := v.(string)
	if s == "" {
		return out
	}
	e.Code = s
	return append(out, e)
}

func tokenBoolean(out []Entry, e Entry, v any) []Entry {
	b, ok := v.(bool)
	if !ok {
		return out
	}
	e.Code = strconv.FormatBool(b)
	return append(out, e)
}

func tokenCoding(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	e.System, e.Code = stringField(m, "system"), stringField(m, "code")
	if d := stringField(m, "display"); d != "" {
		e.Text = NormalizeString(d)
	}
	if e.System == "" && e.Code == "" && e.Text == "" {
		return out
	}
	return append(out, e)
}

// tokenCodeableConcept indexes each coding, with its display as Text,
// and the concept's text as an entry of its own without system and code,
// for :text (unless a coding's display already says the same).
func tokenCodeableConcept(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	start := len(out)
	codings, _ := m["coding"].([]any)
	text := stringField(m, "text")
	for _, c := range codings {
		out = tokenCoding(out, e, c)
		if cm, ok := c.(map[string]any); ok && text != "" && stringField(cm, "display") == text {
			text = "" // the display as written: no need to normalise and compare
		}
	}
	if text == "" {
		return out
	}
	norm := NormalizeString(text)
	for _, x := range out[start:] {
		if x.Text == norm {
			return out
		}
	}
	e.Text = norm
	return append(out, e)
}

// tokenIdentifier indexes system|value, and Identifier.type.text as Text
// for :text.
func tokenIdentifier(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	e.System, e.Code = stringField(m, "system"), stringField(m, "value")
	if t, ok := m["type"].(map[string]any); ok {
		e.Text = NormalizeString(stringField(t, "text"))
	}
	if e.System == "" && e.Code == "" && e.Text == "" {
		return out
	}
	return append(out, e)
}

// tokenContactPoint indexes the value as the code; the token table of
// Search, "token" gives ContactPoint no system (ContactPoint.system says
// phone or email, not a code system).
func tokenContactPoint(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	return tokenPrimitive(out, e, m["value"])
}

// Reference parameters (Search, "reference").

// referenceReference indexes the literal reference (see parseReference)
// and the logical one (Reference.identifier, for :identifier) in one
// entry.
func referenceReference(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	e.RefType, e.RefID, e.URL = parseReference(stringField(m, "reference"))
	if id, ok := m["identifier"].(map[string]any); ok {
		e.System, e.Code = stringField(id, "system"), stringField(id, "value")
	}
	if e.RefID == "" && e.URL == "" && e.System == "" && e.Code == "" {
		return out
	}
	return append(out, e)
}

// referenceCanonical indexes a canonical reference by its URL. One that
// starts with "#" points at a contained resource and is skipped, like a
// contained Reference.
func referenceCanonical(out []Entry, e Entry, v any) []Entry {
	s, _ := v.(string)
	if s == "" || s[0] == '#' {
		return out
	}
	e.URL = canonicalURL(s)
	return append(out, e)
}

func referenceURI(out []Entry, e Entry, v any) []Entry {
	s, _ := v.(string)
	if s == "" {
		return out
	}
	e.URL = s
	return append(out, e)
}

// Date parameters (Search, "date"): every value is the range of instants it
// covers.

func datePrimitive(out []Entry, e Entry, v any) []Entry {
	s, _ := v.(string)
	lo, hi, err := DateRange(s)
	if err != nil {
		return out
	}
	e.Lo, e.Hi = lo, hi
	return append(out, e)
}

// datePeriod indexes a Period from the start of its start to the end of
// its end; a missing (or unreadable) end is open (DateMax), as is a
// missing start (DateMin). A period with neither yields nothing.
func datePeriod(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	lo, hi, ok := periodRange(m)
	if !ok {
		return out
	}
	e.Lo, e.Hi = lo, hi
	return append(out, e)
}

func periodRange(m map[string]any) (lo, hi int64, ok bool) {
	lo, hi = DateMin, DateMax
	slo, shi, serr := DateRange(stringField(m, "start"))
	elo, ehi, eerr := DateRange(stringField(m, "end"))
	switch {
	case serr != nil && eerr != nil:
		return 0, 0, false
	case serr == nil && eerr == nil:
		// An end before the start is invalid (Period.per-1); index the
		// span of both rather than an empty range.
		lo, hi = min(slo, elo), max(shi, ehi)
	case serr == nil:
		lo = slo
	default:
		hi = ehi
	}
	return lo, hi, true
}

// dateTiming indexes each Timing.event and the bounds of repeat
// (Search, "date": for a Timing only the outer limits matter).
func dateTiming(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	events, _ := m["event"].([]any)
	for _, ev := range events {
		out = datePrimitive(out, e, ev)
	}
	if r, ok := m["repeat"].(map[string]any); ok {
		if b, ok := r["boundsPeriod"].(map[string]any); ok {
			out = datePeriod(out, e, b)
		}
	}
	return out
}

// Number parameters (Search, "number").

// numberText returns the literal of a JSON number. json.Decoder.UseNumber
// keeps it as written, which carries its precision; a float64 (from a
// decoder without UseNumber) is formatted in its shortest form.
func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case float64:
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return "", false
		}
		return strconv.FormatFloat(n, 'g', -1, 64), true
	}
	return "", false
}

func numberPrimitive(out []Entry, e Entry, v any) []Entry {
	s, ok := numberText(v)
	if !ok {
		return out
	}
	num, lo, hi, err := NumberRange(s)
	if err != nil {
		return out
	}
	e.Num, e.NumLo, e.NumHi = num, lo, hi
	return append(out, e)
}

// numberRange indexes a Range (RiskAssessment.prediction.probability) as
// the values from its low to its high bound; see rangeBounds.
func numberRange(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	num, lo, hi, _, ok := rangeBounds(m)
	if !ok {
		return out
	}
	e.Num, e.NumLo, e.NumHi = num, lo, hi
	return append(out, e)
}

// rangeBounds reads a Range: NumLo from the precision range of low, NumHi
// from that of high, an open side unbounded (±math.MaxFloat64), Num the
// low value (the high one when low is absent). unit is the quantity that
// gives the range its unit. A low above high (invalid, Range.rng-2) spans
// both rather than nothing.
func rangeBounds(m map[string]any) (num, lo, hi float64, unit map[string]any, ok bool) {
	low, _ := m["low"].(map[string]any)
	high, _ := m["high"].(map[string]any)
	lv, llo, lhi, haveLow := quantityValue(low)
	hv, hlo, hhi, haveHigh := quantityValue(high)
	switch {
	case haveLow && haveHigh:
		return lv, min(llo, hlo), max(lhi, hhi), low, true
	case haveLow:
		return lv, llo, math.MaxFloat64, low, true
	case haveHigh:
		return hv, -math.MaxFloat64, hhi, high, true
	}
	return 0, 0, 0, nil, false
}

// quantityValue reads the value of a Quantity and its precision range.
func quantityValue(q map[string]any) (v, lo, hi float64, ok bool) {
	s, isNum := numberText(q["value"])
	if !isNum {
		return 0, 0, 0, false
	}
	v, lo, hi, err := NumberRange(s)
	return v, lo, hi, err == nil
}

// Quantity parameters (Search, "quantity").

// iso4217 is the code system of currencies.
const iso4217 = "urn:iso:std:iso:4217"

// quantityQuantity indexes value, system and code, and the unit as
// written (or the code when there is no unit) normalised as Text, which
// "number||unit" searches compare with.
func quantityQuantity(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	num, lo, hi, ok := quantityValue(m)
	if !ok {
		return out
	}
	e.Num, e.NumLo, e.NumHi = num, lo, hi
	setUnit(&e, m)
	return append(out, e)
}

func setUnit(e *Entry, q map[string]any) {
	e.System, e.Code = stringField(q, "system"), stringField(q, "code")
	unit := stringField(q, "unit")
	if unit == "" {
		unit = e.Code
	}
	e.Text = NormalizeString(unit)
}

// quantityMoney indexes Money as a quantity whose unit is its currency, a
// code of ISO 4217.
func quantityMoney(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	num, lo, hi, ok := quantityValue(m)
	if !ok {
		return out
	}
	e.Num, e.NumLo, e.NumHi = num, lo, hi
	if cur := stringField(m, "currency"); cur != "" {
		e.System, e.Code, e.Text = iso4217, cur, NormalizeString(cur)
	}
	return append(out, e)
}

func quantityRange(out []Entry, e Entry, v any) []Entry {
	m, _ := v.(map[string]any)
	num, lo, hi, unit, ok := rangeBounds(m)
	if !ok {
		return out
	}
	e.Num, e.NumLo, e.NumHi = num, lo, hi
	setUnit(&e, unit)
	return append(out, e)
}

// URI parameters (Search, "uri"): the value as written.
func uriPrimitive(out []Entry, e Entry, v any) []Entry {
	s, _ := v.(string)
	if s == "" {
		return out
	}
	e.Exact = s
	return append(out, e)
}
