package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// syntheaPatients returns the Patient ids of the Synthea bundles under
// dir (one transaction Bundle per patient; support bundles hold none).
// A missing dir is not an error: it returns no ids.
func syntheaPatients(dir string) ([]string, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var ids []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".json") || strings.Contains(path, string(filepath.Separator)+"support"+string(filepath.Separator)) {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var b struct {
			Entry []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := json.NewDecoder(f).Decode(&b); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, e := range b.Entry {
			if e.Resource.ResourceType == "Patient" && e.Resource.ID != "" {
				ids = append(ids, e.Resource.ID)
			}
		}
		return nil
	})
	slices.Sort(ids)
	return slices.Compact(ids), err
}

// syntheticID is a random version-4 UUID drawn from rng (deterministic
// for a seed), shaped like the Synthea ids.
func syntheticID(rng *rand.Rand) string {
	a, b := rng.Uint64(), rng.Uint64()
	a = a&^0xf000 | 0x4000
	b = b&^(3<<62) | 2<<62
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}
