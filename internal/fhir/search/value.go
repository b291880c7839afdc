package search

import (
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
)

// parseValues parses one occurrence of a parameter: its comma-separated
// alternatives (OR, FHIR R4 §3.1.1.4.17), each read according to the
// parameter's type and modifier.
func parseValues(name string, sh *shape, raw string) ([]Value, *Error) {
	n := count(raw, ',') + 1
	if n > maxOr {
		return nil, fail(name, reasonTooManyValues)
	}
	if sh.mod == ModMissing && n > 1 {
		return nil, fail(name, reasonMissingList)
	}
	out := make([]Value, 0, n)
	for rest, more := raw, true; more; {
		var alt string
		alt, rest, more = cut(rest, ',')
		if alt == "" {
			return nil, fail(name, reasonEmptyAlternative)
		}
		v, reason := parseValue(sh, alt)
		if reason != "" {
			return nil, fail(name, reason)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseValue parses one alternative, still escaped, and returns a reason
// when it is malformed.
func parseValue(sh *shape, alt string) (Value, string) {
	switch sh.mod {
	case ModMissing:
		// §3.1.1.4.4: "gender:missing=true (or false)".
		switch alt {
		case "true":
			return Value{Missing: true}, ""
		case "false":
			return Value{Missing: false}, ""
		}
		return Value{}, reasonMissingValue
	case ModText:
		return textValue(unescape(alt))
	case ModExact:
		// :exact compares Exact only; punctuation alone is a fair query.
		s := unescape(alt)
		return Value{Text: searchparam.NormalizeString(s), Exact: s}, ""
	case ModIdentifier:
		return tokenValue(alt)
	}
	if sh.param.Type == searchparam.Composite {
		return compositeValue(sh.components, alt)
	}
	return typedValue(sh.param, sh.target, alt)
}

// typedValue parses alt by the type of sp. typeMod is the type named by a
// :[Type] modifier on a reference parameter, "" otherwise.
func typedValue(sp *searchparam.Param, typeMod, alt string) (Value, string) {
	switch sp.Type {
	case searchparam.String:
		return stringValue(unescape(alt))
	case searchparam.Token:
		if sp.Code == "_id" {
			return idValue(unescape(alt))
		}
		return tokenValue(alt)
	case searchparam.Reference:
		return referenceValue(sp, typeMod, alt)
	case searchparam.Date:
		return dateValue(alt)
	case searchparam.Number:
		return numberValue(alt)
	case searchparam.Quantity:
		return quantityValue(alt)
	case searchparam.URI:
		return Value{Exact: unescape(alt)}, ""
	}
	return Value{}, reasonParamType
}

// stringValue: FHIR R4 §3.1.1.4.8. Text is compared case- and
// accent-insensitively from the start (or anywhere, :contains), Exact as
// written (:exact). Without :exact, a value with nothing left to compare
// after normalisation would match everything, so it is refused.
func stringValue(s string) (Value, string) {
	v := Value{Text: searchparam.NormalizeString(s), Exact: s}
	if v.Text == "" {
		return Value{}, reasonNothingToSearch
	}
	return v, ""
}

// textValue: the :text modifier of token parameters (§3.1.1.4.10) works
// as a string search on the text of the code.
func textValue(s string) (Value, string) {
	v := Value{Text: searchparam.NormalizeString(s)}
	if v.Text == "" {
		return Value{}, reasonNothingToSearch
	}
	return v, ""
}

// tokenValue parses a token (FHIR R4 §3.1.1.4.10): "code" (any system),
// "system|code", "|code" (no system) or "system|" (any code in system).
func tokenValue(alt string) (Value, string) {
	sys, code, piped := cut(alt, '|')
	if !piped {
		return Value{Code: unescape(alt), AnySystem: true}, ""
	}
	if count(code, '|') > 0 {
		return Value{}, reasonToken
	}
	v := Value{System: unescape(sys), Code: unescape(code)}
	switch {
	case v.System == "" && v.Code == "":
		return Value{}, reasonEmptyToken
	case v.Code == "":
		v.AnyCode = true
	}
	return v, ""
}

// idValue parses a value of _id, a token without system that SHALL match
// exactly (§3.1.1.4.1).
func idValue(s string) (Value, string) {
	if !isID(s) {
		return Value{}, reasonID
	}
	return Value{Code: s, AnySystem: true}, ""
}

// cutPrefix splits the comparison prefix (FHIR R4 §3.1.1.4.5) off a value
// of an ordered type; without one the prefix is eq.
func cutPrefix(s string) (Prefix, string) {
	if len(s) >= 2 {
		switch p := Prefix(s[:2]); p {
		case Eq, Ne, Gt, Lt, Ge, Le, Sa, Eb, Ap:
			return p, s[2:]
		}
	}
	return Eq, s
}

// dateValue: FHIR R4 §3.1.1.4.7, [prefix]yyyy[-mm[-dd[Thh:mm[:ss[.fff]][zone]]]],
// as the range [Lo, Hi) it covers at its precision.
func dateValue(alt string) (Value, string) {
	prefix, s := cutPrefix(alt)
	lo, hi, err := searchparam.DateRange(unescape(s))
	if err != nil || lo >= hi {
		return Value{}, reasonDate
	}
	return Value{Prefix: prefix, Lo: lo, Hi: hi}, ""
}

// numberValue: FHIR R4 §3.1.1.4.6, [prefix]decimal, with the range implied
// by its precision.
func numberValue(alt string) (Value, string) {
	prefix, s := cutPrefix(alt)
	num, lo, hi, ok := decimal(unescape(s))
	if !ok {
		return Value{}, reasonNumber
	}
	return Value{Prefix: prefix, Num: num, NumLo: lo, NumHi: hi}, ""
}

// quantityValue: FHIR R4 §3.1.1.4.11, [prefix]number|system|code,
// [prefix]number||code or [prefix]number. An empty system or code means
// any; with a code but no system, Text carries the normalised code so it
// can also match the unit as written.
func quantityValue(alt string) (Value, string) {
	prefix, s := cutPrefix(alt)
	numPart, unit, hasUnit := cut(s, '|')
	num, lo, hi, ok := decimal(unescape(numPart))
	if !ok {
		return Value{}, reasonQuantity
	}
	v := Value{Prefix: prefix, Num: num, NumLo: lo, NumHi: hi}
	if hasUnit {
		sys, code, ok := cut(unit, '|')
		if !ok || count(code, '|') > 0 {
			return Value{}, reasonQuantity
		}
		v.System, v.Code = unescape(sys), unescape(code)
		if v.System == "" && v.Code != "" {
			v.Text = searchparam.NormalizeString(v.Code)
		}
	}
	return v, ""
}

// decimal parses a FHIR decimal (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)
// and the range its precision implies.
func decimal(s string) (v, lo, hi float64, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == start || s[start] == '0' && i-start > 1 {
		return 0, 0, 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, 0, 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d || i-d > 4 {
			return 0, 0, 0, false
		}
	}
	if i != len(s) {
		return 0, 0, 0, false
	}
	v, lo, hi, err := searchparam.NumberRange(s)
	return v, lo, hi, err == nil
}

// compositeValue: FHIR R4 §3.1.1.4.17, one value per component joined by
// "$", each read by its component's type (with its own prefix, for
// ordered types).
func compositeValue(components []*searchparam.Param, alt string) (Value, string) {
	if count(alt, '$') != len(components)-1 {
		return Value{}, reasonCompositeParts
	}
	v := Value{Components: make([]Value, len(components))}
	rest := alt
	for i, c := range components {
		var part string
		part, rest, _ = cut(rest, '$')
		if part == "" {
			return Value{}, reasonEmptyComponent
		}
		cv, reason := typedValue(c, "", part)
		if reason != "" {
			return Value{}, reason
		}
		v.Components[i] = cv
	}
	return v, ""
}
