package archtest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRepository checks Warden itself; each rule is a subtest, so a
// failure names the rule broken, and each violation names the file and
// line.
func TestRepository(t *testing.T) {
	root := moduleRoot(t)
	vs, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	byRule := map[string][]Violation{}
	for _, v := range vs {
		byRule[v.Rule] = append(byRule[v.Rule], v)
	}
	for _, name := range RuleNames() {
		t.Run(name, func(t *testing.T) {
			for _, v := range byRule[name] {
				t.Errorf("%s", v)
			}
		})
	}
}

// moduleRoot finds the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}
