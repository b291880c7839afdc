// Package spec embeds the official FHIR R4 (4.0.1) definitions that Warden
// needs at run time: the search parameters, the resource and data-type
// StructureDefinitions, the value sets and code systems (for required
// bindings) and the Patient CompartmentDefinition.
//
// The files are the HL7 originals, gzip-compressed and otherwise unchanged;
// see r4/SOURCE.md for where they come from and r4/LICENSE (CC0-1.0).
// This package only hands out bytes; it never interprets them.
package spec

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/binary"
	"fmt"
)

//go:embed r4/*.json.gz
var r4 embed.FS

// Names of the embedded R4 definition files.
const (
	SearchParameters   = "search-parameters"
	ProfilesResources  = "profiles-resources"
	ProfilesTypes      = "profiles-types"
	ValueSets          = "valuesets"
	CompartmentPatient = "compartment-patient"
)

// maxHint caps the buffer R4 sizes from a file's gzip trailer.
const maxHint = 64 << 20

// R4 returns the decompressed JSON of one embedded definition file.
func R4(name string) ([]byte, error) {
	raw, err := r4.ReadFile("r4/" + name + ".json.gz")
	if err != nil {
		return nil, fmt.Errorf("spec: no embedded file %q: %w", name, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("spec: %s: %w", name, err)
	}
	defer zr.Close()
	// The gzip trailer ends with the uncompressed size (mod 2³²): read
	// into a buffer of that size at once, rather than one grown (and
	// cleared) again and again, which allocated twice the bytes and
	// took 15–40 % longer (BenchmarkR4). Past it by a read's slack, so
	// that the final read that sees the end does not grow it either.
	// The size is only a hint: a wrong one costs growth, not
	// correctness, and is capped (the largest file is ~15 MB).
	var size int
	if len(raw) >= 4 {
		size = min(int(binary.LittleEndian.Uint32(raw[len(raw)-4:])), maxHint)
	}
	out := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := out.ReadFrom(zr); err != nil {
		return nil, fmt.Errorf("spec: %s: %w", name, err)
	}
	return out.Bytes(), nil
}
