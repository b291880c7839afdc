package verify

import (
	"context"
	"fmt"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/store"
)

// Records is the part of the store verification reads: the leaf-index
// records audit.JournaledPipeline writes. It is never written.
type Records interface {
	ListRecords(ctx context.Context, kind string) ([]store.Record, error)
}

// leafIndexes returns the recorded log index of journal entries 0, 1, …
// (audit.LeafIndexes).
func leafIndexes(ctx context.Context, r Records) ([]uint64, error) {
	idx, err := audit.LeafIndexes(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecords, err)
	}
	return idx, nil
}
