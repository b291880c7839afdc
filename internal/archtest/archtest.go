// Package archtest enforces Warden's architecture: which packages may
// import which, that test helpers stay in tests, that no package has
// init-time side effects, and that every package says what it owns in a
// doc comment. Its tests run [Check] on the repository; the rules are in
// rules.go, each with the reason it exists.
//
// It reads source and 'go list' output only; it never builds or runs the
// code it checks.
package archtest

import (
	"fmt"
	"slices"
	"strings"
)

// A Violation is one place where the code breaks a rule.
type Violation struct {
	Rule    string // name of the rule broken
	Package string // package, relative to the module: "internal/store/sqlite"
	Pos     string // file:line relative to the module root, or the package directory
	Msg     string // what is wrong
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s: %s [%s]", v.Pos, v.Package, v.Msg, v.Rule)
}

// Check loads every package of the Go module rooted at dir and returns
// every violation of the rules, sorted by position. An error means the
// module could not be loaded at all; a package that fails to load is
// reported as a violation of the rule "load".
func Check(dir string) ([]Violation, error) {
	m, err := load(dir)
	if err != nil {
		return nil, err
	}
	var out []Violation
	for _, p := range m.own {
		for _, r := range rules {
			for _, v := range r.check(m, p) {
				if v.Pos == "" {
					v.Pos = m.dirPos(p)
				}
				out = append(out, v)
			}
		}
	}
	slices.SortFunc(out, func(a, b Violation) int {
		return strings.Compare(a.Pos+a.Rule+a.Msg, b.Pos+b.Rule+b.Msg)
	})
	return out, nil
}

// RuleNames lists the names of the rules, in the order they are checked.
func RuleNames() []string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.name
	}
	return names
}
