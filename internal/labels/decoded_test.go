package labels

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/fhir/validate"
)

// specExamples is the official R4 examples, relative to this package.
const specExamples = "../../../shared/data/fhir-r4/examples"

// TestLabelResourceMatchesLabel labels every valid resource of the shared
// data (the Synthea patients' and support bundles, the R4 examples, and
// the resources inside the examples' Bundles) both ways: from its JSON
// (Label) and from the map Warden's validating decoder gives
// (LabelResource). The results must be the same, reasons included.
func TestLabelResourceMatchesLabel(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	synthea, _ := filepath.Glob(filepath.Join(sharedData, "*", "*.json"))
	examples, _ := filepath.Glob(filepath.Join(specExamples, "*.json"))
	if len(synthea) == 0 || len(examples) == 0 {
		t.Skipf("shared data not found at %s and %s", sharedData, specExamples)
	}
	lim := validate.Limits{MaxBytes: 256 << 20, MaxDepth: 1000}
	compared, labelled, rejected := 0, 0, 0
	check := func(name string, body []byte) {
		t.Helper()
		m, err := validate.Decode(body, lim)
		if err != nil || invalid(validate.Validate(m)) {
			rejected++
			return // only resources Warden would accept
		}
		want, werr := l.Label(body)
		got, gerr := l.LabelResource(m)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: Label error %v, LabelResource error %v", name, werr, gerr)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\nLabelResource %+v\n        Label %+v", name, got, want)
		}
		compared++
		if len(want.Why) > 0 {
			labelled++
		}
	}
	for _, f := range append(synthea, examples...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(f), data)
		m, err := validate.Decode(data, lim)
		if err != nil || m["resourceType"] != "Bundle" {
			continue
		}
		for i, e := range readBundle(t, f) {
			if len(e.Resource) > 0 {
				check(fmt.Sprintf("%s entry %d", filepath.Base(f), i), e.Resource)
			}
		}
	}
	if compared < 20000 || labelled < 1000 {
		t.Fatalf("compared %d resources, %d of them labelled sensitive: too few", compared, labelled)
	}
	t.Logf("%d resources compared, %d labelled sensitive; %d invalid ones left out", compared, labelled, rejected)
}

// invalid reports whether issues make a resource invalid (as the FHIR
// API judges them: an error or fatal issue). Conditional references,
// which a resource may hold inside a transaction only (Synthea's do), do
// not count.
func invalid(issues []validate.Issue) bool {
	for _, is := range issues {
		if (is.Severity == "error" || is.Severity == "fatal") && !strings.HasPrefix(is.Message, "Conditional references are allowed") {
			return true
		}
	}
	return false
}

// BenchmarkLabelResource is BenchmarkLabel from decoded maps (the same
// mix of resources).
func BenchmarkLabelResource(b *testing.B) {
	var mix []map[string]any
	for _, body := range benchMix(b) {
		m, err := validate.Decode(body, validate.Limits{MaxBytes: 1 << 24, MaxDepth: 100})
		if err != nil {
			b.Fatal(err)
		}
		mix = append(mix, m)
	}
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.LabelResource(mix[i%len(mix)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(mix)), "resources-in-mix")
}
