package verify_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
	"github.com/wardenfhir/warden/internal/store"
)

// TestCrashDuplicates: a batch appended to the log a second time after a
// crash (its leaves at new indexes, the record rewritten with them) is
// not a finding: the earlier copies are counted as duplicates.
func TestCrashDuplicates(t *testing.T) {
	ctx := context.Background()
	tr := cleanTrail(t)
	list, err := tr.Store.ListRecords(ctx, "audit-leaves")
	if err != nil || len(list) == 0 {
		t.Fatalf("records: %d, %v", len(list), err)
	}
	last := list[len(list)-1]
	var batch struct {
		First   uint64   `json:"first"`
		Indexes []uint64 `json:"indexes"`
	}
	if err := json.Unmarshal(last.Value, &batch); err != nil {
		t.Fatal(err)
	}
	lg, err := tlog.Open(ctx, tlog.Options{Dir: tr.LogDir(), Origin: verifytest.Origin, Signer: tr.Signer(t), BatchMaxSize: 1, BatchMaxAge: 1e6, CheckpointInterval: 1e8})
	if err != nil {
		t.Fatal(err)
	}
	again := make([]uint64, len(batch.Indexes))
	for i, old := range batch.Indexes {
		leaf, err := lg.Leaf(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		if again[i], err = lg.Append(ctx, leaf); err != nil {
			t.Fatal(err)
		}
	}
	if err := lg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	batch.Indexes = again
	v, _ := json.Marshal(batch)
	if err := tr.Store.PutRecord(ctx, store.Record{Kind: "audit-leaves", Key: audit.IndexKey(batch.First), Value: v}); err != nil {
		t.Fatal(err)
	}
	rep := mustVerify(t, trailOf(tr, ""))
	checkFindings(t, tr, rep)
	if rep.Duplicates != uint64(len(again)) || rep.InPlace != events || rep.Size != events+uint64(len(again)) {
		t.Fatalf("report %+v, want %d duplicates", rep, len(again))
	}
}
