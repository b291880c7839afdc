package labels

import "strings"

// codeSystem is a standard code system whose code syntax we can check.
// Labelling cannot carry whole terminologies, but it can tell that a code
// filed under a standard system is not one of its codes: Synthea's
// OpenMRS/CIEL ids such as "1040AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" filed
// under http://loinc.org fail these checks, and only such codings are
// matched on display text.
type codeSystem struct {
	name  string
	valid func(code string) bool
}

var standardSystems = map[string]codeSystem{
	"http://loinc.org":                            {"LOINC", validLOINC},
	"http://snomed.info/sct":                      {"SNOMED CT", validSNOMED},
	"http://www.nlm.nih.gov/research/umls/rxnorm": {"RxNorm", validRxNorm},
	"http://hl7.org/fhir/sid/icd-10-cm":           {"ICD-10-CM", validICD10CM},
	"http://hl7.org/fhir/sid/icd-9-cm":            {"ICD-9-CM", validICD9CM},
	"http://hl7.org/fhir/sid/cvx":                 {"CVX", validCVX},
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validLOINC checks the LOINC code syntax "NNNNN-C" and its mod-10 check
// digit (LOINC Users' Guide, Appendix: Calculating Mod 10 Check Digits).
func validLOINC(code string) bool {
	i := strings.IndexByte(code, '-')
	if i < 1 || i > 7 || i != len(code)-2 {
		return false
	}
	body, check := code[:i], code[i+1]
	if !allDigits(body) || check < '0' || check > '9' {
		return false
	}
	// Mod 10 (Luhn-style): double every other digit from the right of the body.
	sum := 0
	double := true
	for j := len(body) - 1; j >= 0; j-- {
		d := int(body[j] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10-sum%10)%10 == int(check-'0')
}

// Verhoeff tables (SNOMED CT Technical Implementation Guide §6.2.3:
// SCTIDs end in a Verhoeff check digit).
var (
	verhoeffD = [10][10]uint8{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
		{2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
		{4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
		{8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	verhoeffP = [8][10]uint8{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
		{5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
		{9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
	}
)

// validSNOMED checks an SCTID: 6 to 18 digits, no leading zero, a
// partition identifier for a concept (00 or 10), and a valid Verhoeff
// check digit (SNOMED CT TIG §6.2).
func validSNOMED(code string) bool {
	if len(code) < 6 || len(code) > 18 || !allDigits(code) || code[0] == '0' {
		return false
	}
	if p := code[len(code)-3 : len(code)-1]; p != "00" && p != "10" {
		return false
	}
	c := uint8(0)
	for i := 0; i < len(code); i++ {
		c = verhoeffD[c][verhoeffP[i%8][code[len(code)-1-i]-'0']]
	}
	return c == 0
}

// validRxNorm checks an RxCUI: 1 to 8 digits.
func validRxNorm(code string) bool { return len(code) <= 8 && allDigits(code) && code[0] != '0' }

// validCVX checks a CVX code: 1 to 3 digits.
func validCVX(code string) bool { return len(code) <= 3 && allDigits(code) }

// validICD10CM checks the ICD-10-CM syntax: a letter, two characters
// (digit, then digit or letter), optionally a dot and 1 to 4 characters.
func validICD10CM(code string) bool {
	if len(code) < 3 || len(code) > 8 {
		return false
	}
	if code[0] < 'A' || code[0] > 'Z' || code[1] < '0' || code[1] > '9' || !alnumUpper(code[2]) {
		return false
	}
	if len(code) == 3 {
		return true
	}
	if code[3] != '.' || len(code) < 5 {
		return false
	}
	for i := 4; i < len(code); i++ {
		if !alnumUpper(code[i]) {
			return false
		}
	}
	return true
}

// validICD9CM checks the ICD-9-CM syntax: NNN, VNN or ENNN, optionally a
// dot and 1 or 2 digits.
func validICD9CM(code string) bool {
	head, tail, dotted := strings.Cut(code, ".")
	switch {
	case len(head) == 3 && allDigits(head):
	case len(head) == 3 && head[0] == 'V' && allDigits(head[1:]):
	case len(head) == 4 && head[0] == 'E' && allDigits(head[1:]):
	default:
		return false
	}
	if !dotted {
		return true
	}
	return len(tail) >= 1 && len(tail) <= 2 && allDigits(tail)
}

func alnumUpper(b byte) bool { return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') }
