package spec

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"testing"
)

var files = []string{SearchParameters, ProfilesResources, ProfilesTypes, ValueSets, CompartmentPatient}

// R4 returns each file exactly as gzip decompresses it, whole (the size
// it reads ahead for comes from the file's trailer), and it is JSON.
func TestR4(t *testing.T) {
	for _, name := range files {
		got, err := R4(name)
		if err != nil {
			t.Fatalf("R4(%q): %v", name, err)
		}
		raw, err := r4.ReadFile("r4/" + name + ".json.gz")
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("R4(%q): %d bytes, want the %d gzip gives", name, len(got), len(want))
		}
		if !json.Valid(got) {
			t.Fatalf("R4(%q) is not JSON", name)
		}
	}
	if _, err := R4("no-such-file"); err == nil {
		t.Fatal("R4 of a file not embedded: no error")
	}
}

// go test ./internal/fhir/spec -run '^$' -bench R4 -benchmem
func BenchmarkR4(b *testing.B) {
	for _, name := range files {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := R4(name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
