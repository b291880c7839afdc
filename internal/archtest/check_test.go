package archtest

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cleanTree is a small module that breaks no rule. Each case of
// TestCheckCatches changes it in one way and expects exactly the
// violations that change makes.
var cleanTree = map[string]string{
	"go.mod": "module example.com/m\n\ngo 1.22\n",
	"cmd/app/main.go": `// Command app runs the example.
package main

import (
	"os"

	"example.com/m/internal/cli"
)

func main() { os.Exit(cli.Main()) }
`,
	"cmd/app/main_test.go": `package main

import (
	"testing"

	"example.com/m/internal/server"
)

func TestMain(t *testing.T) { _ = server.Name }
`,
	"internal/cli/cli.go": `// Package cli wires everything.
package cli

import (
	"example.com/m/internal/fhir"
	"example.com/m/internal/policy"
	"example.com/m/internal/server"
	"example.com/m/internal/store/sqlite"
)

// Main runs the program.
func Main() int { _, _, _, _ = fhir.Name, policy.Name, server.Name, sqlite.Name; return 0 }
`,
	"internal/cli/cli_test.go": `package cli_test

import (
	"testing"

	"example.com/m/internal/cli"
)

func TestMain(t *testing.T) { cli.Main() }
`,
	"internal/server/server.go": `// Package server serves HTTP.
package server

import "net/http"

// Name names the package.
var Name = http.MethodGet
`,
	"internal/fhir/fhir.go": `// Package fhir knows FHIR.
package fhir

import "encoding/json"

// Name names the package.
var Name = json.Valid
`,
	"internal/fhir/fhir_test.go": `package fhir

import (
	"net/http/httptest"
	"testing"
)

func TestX(t *testing.T) { _ = httptest.NewRecorder }
`,
	"internal/policy/policy.go": `// Package policy decides.
package policy

// Name names the package.
const Name = "policy"
`,
	"internal/store/store.go": `// Package store stores.
package store

// Name names the package.
const Name = "store"
`,
	"internal/store/storetest/storetest.go": `// Package storetest tests stores.
package storetest

import (
	"testing"

	"example.com/m/internal/store"
)

// Run runs the suite.
func Run(t *testing.T) { _ = store.Name }
`,
	"internal/store/sqlite/sqlite.go": `// Package sqlite stores in SQLite.
package sqlite

import "example.com/m/internal/store"

// Name names the package.
const Name = store.Name
`,
	"internal/store/sqlite/sqlite_test.go": `package sqlite

import (
	"testing"

	"example.com/m/internal/store/storetest"
)

func TestConformance(t *testing.T) { storetest.Run(t) }
`,
	"internal/gen/gen.go": `//go:build ignore

package main

func init() {}
`,
	"internal/gen/doc.go": `// Package gen shows that ignored files are not checked.
package gen
`,
}

func TestCheckCatches(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // added to, or replacing files of, cleanTree
		want  []string          // "rule package pos" of each violation
	}{
		{"clean", nil, nil},
		{"cmd imports another package", map[string]string{
			"cmd/app/extra.go": "package main\n\nimport _ \"example.com/m/internal/server\"\n",
		}, []string{"cmd-imports-only-cli cmd/app cmd/app/extra.go:3"}},
		{"cmd imports a third-party package", map[string]string{
			"go.mod":           "module example.com/m\n\ngo 1.22\n\nrequire example.org/dep v1.0.0\n\nreplace example.org/dep => ./dep\n",
			"dep/go.mod":       "module example.org/dep\n\ngo 1.22\n",
			"dep/dep.go":       "// Package dep is another module.\npackage dep\n",
			"cmd/app/extra.go": "package main\n\nimport _ \"example.org/dep\"\n",
		}, []string{"cmd-imports-only-cli cmd/app cmd/app/extra.go:3"}},
		{"a package imports cli", map[string]string{
			"internal/web/web.go": "// Package web shows pages.\npackage web\n\nimport _ \"example.com/m/internal/cli\"\n",
		}, []string{"cli-only-from-cmd internal/web internal/web/web.go:4"}},
		{"a test imports cli", map[string]string{
			"internal/policy/policy_test.go": "package policy\n\nimport _ \"example.com/m/internal/cli\"\n",
		}, []string{"cli-only-from-cmd internal/policy internal/policy/policy_test.go:3"}},
		{"pure package imports net/http", map[string]string{
			"internal/policy/http.go": "package policy\n\nimport _ \"net/http\"\n",
		}, []string{"pure-no-http internal/policy internal/policy/http.go:3"}},
		{"pure subpackage imports net/http/httputil", map[string]string{
			"internal/fhir/search/search.go": "// Package search parses.\npackage search\n\nimport _ \"net/http/httputil\"\n",
		}, []string{"pure-no-http internal/fhir/search internal/fhir/search/search.go:4"}},
		{"pure package reaches net/http through another", map[string]string{
			"internal/fhir/json.go": "package fhir\n\nimport _ \"example.com/m/internal/server\"\n",
		}, []string{"pure-no-http internal/fhir internal/fhir/json.go:3"}},
		{"pure package reaches net/http through the standard library", map[string]string{
			"internal/policy/metrics.go": "package policy\n\nimport _ \"expvar\"\n",
		}, []string{"pure-no-http internal/policy internal/policy/metrics.go:3"}},
		{"store backend imports policy", map[string]string{
			"internal/store/sqlite/acl.go": "package sqlite\n\nimport _ \"example.com/m/internal/policy\"\n",
		}, []string{"store-no-http-policy-api internal/store/sqlite internal/store/sqlite/acl.go:3"}},
		{"store backend imports the API", map[string]string{
			"internal/fhirapi/api.go":    "// Package fhirapi serves.\npackage fhirapi\n",
			"internal/store/sqlite/x.go": "package sqlite\n\nimport _ \"example.com/m/internal/fhirapi\"\n",
		}, []string{"store-no-http-policy-api internal/store/sqlite internal/store/sqlite/x.go:3"}},
		{"store imports net/http", map[string]string{
			"internal/store/x.go": "package store\n\nimport _ \"net/http\"\n",
		}, []string{
			// The backend and the helper reach it through the store.
			"store-no-http-policy-api internal/store internal/store/x.go:3",
			"store-no-http-policy-api internal/store/sqlite internal/store/sqlite/sqlite.go:4",
			"store-no-http-policy-api internal/store/storetest internal/store/storetest/storetest.go:7",
		}},
		{"scanner imports the store", map[string]string{
			"internal/scan/scan.go": "// Package scan scans.\npackage scan\n\nimport _ \"example.com/m/internal/store/sqlite\"\n",
		}, []string{"scan-outside-client internal/scan internal/scan/scan.go:4"}},
		{"helper imported by non-test code", map[string]string{
			"internal/store/sqlite/x.go": "package sqlite\n\nimport _ \"example.com/m/internal/store/storetest\"\n",
		}, []string{"test-helpers-only-in-tests internal/store/sqlite internal/store/sqlite/x.go:3"}},
		{"httptest imported by non-test code", map[string]string{
			"internal/server/x.go": "package server\n\nimport _ \"net/http/httptest\"\n",
		}, []string{"test-helpers-only-in-tests internal/server internal/server/x.go:3"}},
		{"init function", map[string]string{
			"internal/server/reg.go": "package server\n\nvar registry = map[string]int{}\n\nfunc init() { registry[\"x\"] = 1 }\n",
		}, []string{"no-init internal/server internal/server/reg.go:5"}},
		{"init in a command", map[string]string{
			"cmd/app/flags.go": "package main\n\nfunc init() {}\n",
		}, []string{"no-init cmd/app cmd/app/flags.go:3"}},
		{"init method and init in tests are fine", map[string]string{
			"internal/server/t.go":      "package server\n\ntype T struct{}\n\nfunc (T) init() {}\n",
			"internal/server/x_test.go": "package server\n\nfunc init() {}\n",
		}, nil},
		{"no package doc", map[string]string{
			"internal/policy/policy.go": "package policy\n\n// Name names the package.\nconst Name = \"policy\"\n",
		}, []string{"package-doc internal/policy internal/policy/"}},
		{"package doc of the wrong form", map[string]string{
			"internal/policy/policy.go": "// Policy decides.\npackage policy\n\n// Name names the package.\nconst Name = \"policy\"\n",
		}, []string{"package-doc internal/policy internal/policy/"}},
		{"command without doc", map[string]string{
			"cmd/app/main.go": strings.TrimPrefix(cleanTree["cmd/app/main.go"], "// Command app runs the example.\n"),
		}, []string{"package-doc cmd/app cmd/app/"}},
		{"unparsable file", map[string]string{
			"internal/policy/bad.go": "package policy\n\nfunc {\n",
		}, []string{"load internal/policy internal/policy/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := maps.Clone(cleanTree)
			maps.Copy(files, tt.files)
			dir := t.TempDir()
			for name, text := range files {
				path := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			vs, err := Check(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				got = append(got, v.Rule+" "+v.Package+" "+v.Pos)
				if v.Msg == "" {
					t.Errorf("violation without a message: %+v", v)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if !slices.Equal(got, want) {
				t.Errorf("violations:\n got %q\nwant %q\nall:\n%s", got, want, strings.Join(strs(vs), "\n"))
			}
		})
	}
}

// TestViolationText shows the chain of imports for a transitive violation.
func TestViolationText(t *testing.T) {
	v := Violation{Rule: "pure-no-http", Package: "internal/fhir", Pos: "internal/fhir/json.go:3",
		Msg: "depends on net/http through internal/server → net/http: a pure package (internal/fhir) never depends on net/http"}
	want := "internal/fhir/json.go:3: internal/fhir: depends on net/http through internal/server → net/http: a pure package (internal/fhir) never depends on net/http [pure-no-http]"
	if got := v.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}

func strs(vs []Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}
