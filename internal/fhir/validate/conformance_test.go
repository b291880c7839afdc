package validate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/model"
)

// The shared test data, relative to this package (see
// shared/data/fhir-r4/SOURCE.md and shared/data/synthea/SOURCE.md).
const (
	examplesDir = "../../../../shared/data/fhir-r4/examples"
	syntheaDir  = "../../../../shared/data/synthea"
)

// invalidExamples are the official R4 examples that break rules Validate
// enforces, each with the locations of the errors it must report, so the
// list cannot hide a new failure or outlive a fixed one.
var invalidExamples = map[string][]string{
	// DeviceMetric.parent is Reference(Device) in R4; the example points
	// to a DeviceDefinition.
	"DeviceMetric-example.json": {"DeviceMetric.parent.reference"},
	// DeviceUseStatement.reasonReference allows Condition, Observation,
	// DiagnosticReport, DocumentReference and Media; the example points to
	// a Procedure.
	"DeviceUseStatement-example.json": {"DeviceUseStatement.reasonReference[0].reference"},
	// The package's own ImplementationGuide lacks the mandatory name and
	// status, and one manifest entry points to a SearchParameter whose id
	// has 69 characters (an id has at most 64).
	"ImplementationGuide-fhir.json": {
		"ImplementationGuide.manifest.resource[11904].reference.reference",
		"ImplementationGuide.name",
		"ImplementationGuide.status",
	},
}

func readDir(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skipf("no files match %s (shared test data absent)", pattern)
	}
	return files
}

func errorExpressions(issues []Issue) []string {
	var out []string
	for _, is := range issues {
		if is.Severity == "error" || is.Severity == "fatal" {
			out = append(out, is.Expression)
		}
	}
	return out
}

// TestSpecExamples validates every official R4 example resource.
func TestSpecExamples(t *testing.T) {
	files := readDir(t, filepath.Join(examplesDir, "*-*.json"))
	n := 0
	for _, f := range files {
		name := filepath.Base(f)
		if name == "hl7.fhir.r4.examples-package.json" { // the package manifest
			continue
		}
		n++
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Decode(body, Limits{})
		if err != nil {
			t.Errorf("%s: Decode: %v", name, err)
			continue
		}
		got := errorExpressions(Validate(res))
		if want := invalidExamples[name]; !slices.Equal(got, want) {
			t.Errorf("%s: errors at %q, want %q\n%v", name, got, want, Validate(res))
		}
	}
	if n != 406 {
		t.Errorf("validated %d examples, want 406", n)
	}
}

// TestSynthea validates every Synthea bundle, and every resource in it on
// its own (in the context of its transaction, which its conditional and
// urn:uuid references need).
func TestSynthea(t *testing.T) {
	m, err := model.R4()
	if err != nil {
		t.Fatal(err)
	}
	files := readDir(t, filepath.Join(syntheaDir, "*", "*.json"))
	files = append(files, readDir(t, filepath.Join(syntheaDir, "*", "support", "*.json"))...)
	bundles, resources := 0, 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bundle, err := Decode(body, Limits{})
		if err != nil {
			t.Errorf("%s: Decode: %v", f, err)
			continue
		}
		bundles++
		if issues := Validate(bundle); len(issues) > 0 {
			t.Errorf("%s: %d issues, first %+v", f, len(issues), issues[0])
			continue
		}
		scope := newBundleScope(bundle)
		entries, _ := bundle["entry"].([]any)
		for i, e := range entries {
			res := e.(map[string]any)["resource"].(map[string]any)
			v := newValidator(m)
			v.bundle = scope
			if issues := v.run(res); len(issues) > 0 {
				t.Errorf("%s: entry %d: %+v", f, i, issues)
			}
			// Re-encoded, the resource is still valid.
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(b, Limits{}); err != nil {
				t.Errorf("%s: entry %d re-encoded: %v", f, i, err)
			}
			resources++
		}
	}
	if bundles != 102 || resources < 21609 {
		t.Errorf("validated %d bundles with %d resources, want 102 bundles (98 patients, 4 support) and at least 21609 resources", bundles, resources)
	}
}
