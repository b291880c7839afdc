package labels

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// ValueSet is one sensitivity category and the clinical codes that put a
// resource in it.
type ValueSet struct {
	// Category is the sensitivity code written to meta.security
	// (HIV, PSY, ...; a site may define its own).
	Category string
	// LabelSystem is the code system of Category; SensitivitySystem
	// unless the file says otherwise (@label-system).
	LabelSystem string
	// Confidentiality is the level a resource in this category gets:
	// R (the default, per HL7 guidance for sensitive conditions) or V.
	Confidentiality string
	Title           string
	Sources         []string
	Codes           []ValueSetCode
	// DisplayTerms are matched against the display text of codings whose
	// code is not a valid code of its (standard) system; see Label.
	DisplayTerms []string
	// Name is where the value set came from (a file name), for Reasons.
	Name string
}

// ValueSetCode is one clinical code of a value set.
type ValueSetCode struct {
	System, Code, Display, Note string
}

var (
	categoryPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_-]{0,31}$`)
	systemPattern   = regexp.MustCompile(`^[a-z][a-z0-9+.-]*:[^\s]+$`)
)

const maxValueSetSize = 8 << 20

// ParseValueSet reads a value set in Warden's TSV format (described in
// valuesets/SOURCES.md): '#' comment lines; directive lines
// "@category", "@confidentiality", "@title", "@source" (repeatable),
// "@label-system" and "@display-term" (repeatable), each followed by a tab
// and its value; one header line "system<TAB>code<TAB>display<TAB>note";
// then one code per line with those four tab-separated fields (display and
// note may be empty). name identifies the file in errors and Reasons.
func ParseValueSet(name string, data []byte) (ValueSet, error) {
	vs := ValueSet{Name: name, LabelSystem: SensitivitySystem, Confidentiality: "R"}
	if len(data) > maxValueSetSize {
		return ValueSet{}, fmt.Errorf("%w: %s: larger than %d bytes", ErrMalformedValueSet, name, maxValueSetSize)
	}
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrMalformedValueSet, name, line, fmt.Sprintf(format, args...))
	}
	seen := map[string]bool{}
	header := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if strings.HasPrefix(fields[0], "@") {
			if len(fields) < 2 || fields[1] == "" {
				return ValueSet{}, bad(n, "directive %q without a value", fields[0])
			}
			for _, extra := range fields[2:] {
				if extra != "" {
					return ValueSet{}, bad(n, "directive %q has more than one value", fields[0])
				}
			}
			v := fields[1]
			switch fields[0] {
			case "@category":
				if vs.Category != "" {
					return ValueSet{}, bad(n, "second @category")
				}
				if !categoryPattern.MatchString(v) {
					return ValueSet{}, bad(n, "category %q is not an upper-case code", v)
				}
				vs.Category = v
			case "@confidentiality":
				if v != "R" && v != "V" {
					return ValueSet{}, bad(n, "confidentiality %q: a sensitivity category is R or V", v)
				}
				vs.Confidentiality = v
			case "@title":
				vs.Title = v
			case "@source":
				vs.Sources = append(vs.Sources, v)
			case "@label-system":
				if !systemPattern.MatchString(v) {
					return ValueSet{}, bad(n, "label system %q is not a URI", v)
				}
				vs.LabelSystem = v
			case "@display-term":
				term := strings.ToLower(v)
				if len(term) < 3 {
					return ValueSet{}, bad(n, "display term %q is shorter than 3 characters", v)
				}
				vs.DisplayTerms = append(vs.DisplayTerms, term)
			default:
				return ValueSet{}, bad(n, "unknown directive %q", fields[0])
			}
			continue
		}
		if !header {
			if len(fields) != 4 || fields[0] != "system" || fields[1] != "code" || fields[2] != "display" || fields[3] != "note" {
				return ValueSet{}, bad(n, "expected the header line system<TAB>code<TAB>display<TAB>note")
			}
			header = true
			continue
		}
		if len(fields) < 2 || len(fields) > 4 {
			return ValueSet{}, bad(n, "a code line has 2 to 4 tab-separated fields, not %d", len(fields))
		}
		for len(fields) < 4 {
			fields = append(fields, "")
		}
		c := ValueSetCode{System: fields[0], Code: fields[1], Display: fields[2], Note: fields[3]}
		if !systemPattern.MatchString(c.System) {
			return ValueSet{}, bad(n, "system %q is not a URI", c.System)
		}
		if c.Code == "" || strings.ContainsAny(c.Code, " \t") {
			return ValueSet{}, bad(n, "empty code or code with spaces")
		}
		if cs, ok := standardSystems[c.System]; ok && !cs.valid(c.Code) {
			return ValueSet{}, bad(n, "%q is not a valid %s code", c.Code, cs.name)
		}
		key := c.System + "|" + c.Code
		if seen[key] {
			return ValueSet{}, bad(n, "duplicate code %s", key)
		}
		seen[key] = true
		vs.Codes = append(vs.Codes, c)
	}
	if err := sc.Err(); err != nil {
		return ValueSet{}, fmt.Errorf("%w: %s: %v", ErrMalformedValueSet, name, err)
	}
	if vs.Category == "" {
		return ValueSet{}, fmt.Errorf("%w: %s: no @category", ErrMalformedValueSet, name)
	}
	if len(vs.Sources) == 0 {
		return ValueSet{}, fmt.Errorf("%w: %s: no @source (say where the codes come from)", ErrMalformedValueSet, name)
	}
	if len(vs.Codes) == 0 && len(vs.DisplayTerms) == 0 {
		return ValueSet{}, fmt.Errorf("%w: %s: no codes", ErrMalformedValueSet, name)
	}
	return vs, nil
}

//go:embed valuesets/*.tsv
var builtinFiles embed.FS

// BuiltinValueSets returns the value sets shipped with Warden (HIV, PSY,
// ETH, SEX, SDV, GDIS), parsed from the embedded valuesets/*.tsv files.
func BuiltinValueSets() ([]ValueSet, error) {
	names, err := fs.Glob(builtinFiles, "valuesets/*.tsv")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]ValueSet, 0, len(names))
	for _, name := range names {
		data, err := builtinFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		vs, err := ParseValueSet(name, data)
		if err != nil {
			return nil, err
		}
		out = append(out, vs)
	}
	return out, nil
}
