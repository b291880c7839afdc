package labels

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// BenchmarkLabel labels a mix of real resources from the shared data (the
// first 3 patient bundles of each of the three sources), one resource per op.
func BenchmarkLabel(b *testing.B) {
	mix := benchMix(b)
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, r := range mix {
		size += int64(len(r))
	}
	b.SetBytes(size / int64(len(mix)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Label(mix[i%len(mix)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(mix)), "resources-in-mix")
}

// benchMix is the resources of the first 3 patient bundles of each of
// the three sources of the shared data.
func benchMix(b *testing.B) [][]byte {
	var mix [][]byte
	perDir := map[string]int{}
	for _, f := range patientBundles(b) {
		key := filepath.Dir(f)
		if perDir[key] >= 3 {
			continue
		}
		perDir[key]++
		for _, e := range readBundle(b, f) {
			mix = append(mix, e.Resource)
		}
	}
	return mix
}

// BenchmarkApply measures Label plus rewriting meta.security.
func BenchmarkApply(b *testing.B) {
	files := patientBundles(b)
	entries := readBundle(b, files[0])
	mix := make([]json.RawMessage, len(entries))
	for i, e := range entries {
		mix[i] = e.Resource
	}
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, _, err := l.Apply(mix[i%len(mix)]); err != nil {
			b.Fatal(err)
		}
	}
}
