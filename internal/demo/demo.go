// Package demo holds the sample data `warden demo` loads: 14 Synthea
// patients (transaction Bundles, gzip-compressed; see patients/SOURCE.md).
package demo

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io"
	"io/fs"
	"sort"
	"strings"
)

//go:embed patients/*.json.gz
var patients embed.FS

// Bundle is one sample patient's transaction Bundle.
type Bundle struct {
	Name string // file name without .gz
	JSON []byte
}

// Patients returns the sample patients' Bundles in file-name order.
func Patients() ([]Bundle, error) {
	names, err := fs.Glob(patients, "patients/*.json.gz")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Bundle, 0, len(names))
	for _, n := range names {
		raw, err := patients.ReadFile(n)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(zr)
		zr.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, Bundle{Name: strings.TrimSuffix(strings.TrimPrefix(n, "patients/"), ".gz"), JSON: b})
	}
	return out, nil
}
