package verify

import (
	"context"
	"slices"
	"testing"

	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
)

// TestLeafIndexesAgree: verification reads the leaf-index records exactly
// as the pipeline that wrote them does.
func TestLeafIndexesAgree(t *testing.T) {
	ctx := context.Background()
	tr := verifytest.New(t, t.TempDir())
	tr.Append(t, 700) // more than one sequencing batch
	r := tr.Start(t)
	defer r.Stop(t)
	want, err := r.LeafIndexes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := leafIndexes(ctx, tr.Store)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 700 || !slices.Equal(got, want) {
		t.Fatalf("verify reads %d indexes, the pipeline %d (equal: %v)", len(got), len(want), slices.Equal(got, want))
	}
}
