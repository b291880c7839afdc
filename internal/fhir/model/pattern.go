package model

// Hand-written matchers for the regexes of the primitive types that almost
// every resource uses. Each is selected by the exact regex text of the
// embedded StructureDefinition, so a different regex falls back to package
// regexp; pattern_test.go checks that each matcher and the compiled regex
// agree on generated and adversarial inputs. The regexp package would do,
// but at about a microsecond per value it would dominate validation.
//
// Go's \s is ASCII: [\t\n\f\r ]; \S is every other rune (invalid UTF-8
// included, which regexp reads as U+FFFD).

func fastMatcher(re string) func(string) bool {
	switch re {
	case `[ \r\n\t\S]+`: // string, markdown
		return matchString
	case `\S*`: // uri, url, canonical
		return matchNoSpace
	case `[^\s]+(\s[^\s]+)*`: // code
		return matchCode
	case `[A-Za-z0-9\-\.]{1,64}`: // id
		return matchID
	case `true|false`: // boolean
		return func(s string) bool { return s == "true" || s == "false" }
	case `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`: // decimal
		return matchDecimal
	case `-?([0]|([1-9][0-9]*))`: // integer
		return func(s string) bool {
			if len(s) > 0 && s[0] == '-' {
				s = s[1:]
			}
			return matchUnsigned(s)
		}
	case `[0]|([1-9][0-9]*)`: // unsignedInt
		return matchUnsigned
	case `[1-9][0-9]*`: // positiveInt
		return func(s string) bool { return matchUnsigned(s) && s != "0" }
	case `([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?`:
		return func(s string) bool { return matchDateTime(s, false, false) }
	case `([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?`:
		return func(s string) bool { return matchDateTime(s, true, false) }
	case `([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))`:
		return func(s string) bool { return matchDateTime(s, true, true) }
	case `([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?`: // time
		return func(s string) bool {
			rest, ok := matchTime(s)
			return ok && rest == ""
		}
	case `(\s*([0-9a-zA-Z\+/=]){4}\s*)+`: // base64Binary
		return matchBase64
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// matchString: one or more of space, \r, \n, \t or a non-space rune, so
// anything non-empty without a form feed.
func matchString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\f' {
			return false
		}
	}
	return true
}

func matchNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return false
		}
	}
	return true
}

// matchCode: non-space runs separated by single spaces, none leading or
// trailing.
func matchCode(s string) bool {
	if s == "" || isSpace(s[0]) || isSpace(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isSpace(s[i]) && isSpace(s[i-1]) {
			return false
		}
	}
	return true
}

func matchID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// matchUnsigned: 0 or digits without a leading zero.
func matchUnsigned(s string) bool {
	if s == "" || s[0] == '0' && len(s) > 1 {
		return false
	}
	return digits(s) == len(s)
}

func digits(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func matchDecimal(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	n := digits(s)
	if n == 0 || s[0] == '0' && n > 1 {
		return false
	}
	s = s[n:]
	if len(s) > 0 && s[0] == '.' {
		n = digits(s[1:])
		if n == 0 {
			return false
		}
		s = s[1+n:]
	}
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		n = digits(s)
		if n == 0 {
			return false
		}
		s = s[n:]
	}
	return s == ""
}

// twoDigits parses s[0:2] as a number from lo to hi.
func twoDigits(s string, lo, hi int) bool {
	if len(s) < 2 || !isDigit(s[0]) || !isDigit(s[1]) {
		return false
	}
	n := int(s[0]-'0')*10 + int(s[1]-'0')
	return lo <= n && n <= hi
}

// matchDateTime matches date (time false), dateTime (time true) and
// instant (time and full true): YYYY[-MM[-DD[Thh:mm:ss[.f+](Z|±hh:mm)]]],
// year 0001-9999, month 01-12, day 01-31, zone offset up to 14:00.
func matchDateTime(s string, time, full bool) bool {
	if len(s) < 4 || digits(s[:4]) != 4 || s[:4] == "0000" {
		return false
	}
	s = s[4:]
	if s == "" {
		return !full
	}
	if s[0] != '-' || !twoDigits(s[1:], 1, 12) {
		return false
	}
	s = s[3:]
	if s == "" {
		return !full
	}
	if s[0] != '-' || !twoDigits(s[1:], 1, 31) {
		return false
	}
	s = s[3:]
	if s == "" {
		return !full
	}
	if !time || s[0] != 'T' {
		return false
	}
	s, ok := matchTime(s[1:])
	if !ok {
		return false
	}
	if s == "Z" {
		return true
	}
	if len(s) != 6 || s[0] != '+' && s[0] != '-' || s[3] != ':' {
		return false
	}
	if s[1:] == "14:00" {
		return true
	}
	return twoDigits(s[1:], 0, 13) && twoDigits(s[4:], 0, 59)
}

// matchTime matches hh:mm:ss[.f+] at the start of s (seconds up to 60) and
// returns the rest.
func matchTime(s string) (string, bool) {
	if len(s) < 8 || !twoDigits(s, 0, 23) || s[2] != ':' || !twoDigits(s[3:], 0, 59) || s[5] != ':' || !twoDigits(s[6:], 0, 60) {
		return s, false
	}
	s = s[8:]
	if len(s) > 0 && s[0] == '.' {
		n := digits(s[1:])
		if n == 0 {
			return s, false
		}
		s = s[1+n:]
	}
	return s, true
}

// matchBase64: groups of four base64 characters, with whitespace allowed
// only between groups.
func matchBase64(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isSpace(c):
			if n%4 != 0 {
				return false
			}
		case isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '+' || c == '/' || c == '=':
			n++
		default:
			return false
		}
	}
	return n > 0 && n%4 == 0
}
