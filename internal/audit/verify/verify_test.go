package verify_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/audit/verify"
	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
)

const events = 40

func trailOf(tr *verifytest.Trail, state string) verify.Trail {
	return verify.Trail{JournalDir: tr.JournalDir(), Log: verify.DirLog(tr.LogDir()), VKey: tr.VKey, Records: tr.Store, StateDir: state}
}

// cleanTrail builds a fresh trail of events events, so every tamper
// starts from a clean one.
func cleanTrail(t *testing.T) *verifytest.Trail {
	t.Helper()
	tr := verifytest.New(t, t.TempDir())
	tr.Append(t, events)
	return tr
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func journalPath(tr *verifytest.Trail) string { return filepath.Join(tr.JournalDir(), "journal.log") }

// frames splits the journal file into its entries.
func frames(t *testing.T, tr *verifytest.Trail) [][]byte {
	t.Helper()
	b, err := os.ReadFile(journalPath(tr))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) > 0 {
		n := binary.LittleEndian.Uint32(b)
		out = append(out, bytes.Clone(b[8:8+n]))
		b = b[8+n:]
	}
	return out
}

// writeFrames rewrites the journal with valid frames (correct CRCs), so a
// tamper is never mistaken for a torn write.
func writeFrames(t *testing.T, tr *verifytest.Trail, entries [][]byte) {
	t.Helper()
	var b []byte
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(e, castagnoli))
		b = append(b, e...)
	}
	if err := os.WriteFile(journalPath(tr), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// indexes returns the recorded log index of each journal entry, as the
// pipeline reads them.
func indexes(t *testing.T, tr *verifytest.Trail) []uint64 {
	t.Helper()
	var out []uint64
	list, err := tr.Store.ListRecords(context.Background(), "audit-leaves")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		var b struct {
			First   uint64   `json:"first"`
			Indexes []uint64 `json:"indexes"`
		}
		if err := json.Unmarshal(r.Value, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out[:b.First], b.Indexes...)
	}
	return out
}

func mustVerify(t *testing.T, vt verify.Trail) *verify.Report {
	t.Helper()
	rep, err := verify.Verify(context.Background(), vt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

type want struct {
	kind     verify.Kind
	seq      int // -1: none
	index    int // -1: none
	eventIdx int // index into tr.IDs of the event named, -1: none
}

func checkFindings(t *testing.T, tr *verifytest.Trail, rep *verify.Report, wants ...want) {
	t.Helper()
	t.Logf("findings: %v", rep.Findings)
	if len(rep.Findings) != len(wants) {
		t.Fatalf("%d findings, want %d: %v", len(rep.Findings), len(wants), rep.Findings)
	}
	for i, w := range wants {
		f := rep.Findings[i]
		ok := f.Kind == w.kind &&
			(w.seq < 0 || f.HasSeq && f.Seq == uint64(w.seq)) &&
			(w.index < 0 || f.HasIndex && f.Index == uint64(w.index)) &&
			(w.eventIdx < 0 || f.EventID == tr.IDs[w.eventIdx])
		if !ok {
			t.Errorf("finding %d = %v, want %v seq=%d index=%d", i, f, w.kind, w.seq, w.index)
		}
	}
}

// TestTamper: every way to change the trail after the fact is detected
// and named — kind, journal seq, log index — and a clean trail verifies
// with no finding.
func TestTamper(t *testing.T) {
	const k = 17

	t.Run("edited event", func(t *testing.T) {
		tr := cleanTrail(t)
		idx := indexes(t, tr)
		fs := frames(t, tr)
		e := fs[k]
		e[len(e)-3] ^= 0x01 // a byte of the canonical event, length kept
		writeFrames(t, tr, fs)
		checkFindings(t, tr, mustVerify(t, trailOf(tr, "")), want{verify.KindEdited, k, int(idx[k]), k})
	})

	t.Run("deleted entry", func(t *testing.T) {
		tr := cleanTrail(t)
		idx := indexes(t, tr)
		fs := frames(t, tr)
		writeFrames(t, tr, slices.Delete(fs, k, k+1))
		checkFindings(t, tr, mustVerify(t, trailOf(tr, "")), want{verify.KindDeleted, k, int(idx[k]), -1})
	})

	t.Run("deleted last entry", func(t *testing.T) {
		tr := cleanTrail(t)
		idx := indexes(t, tr)
		fs := frames(t, tr)
		writeFrames(t, tr, fs[:len(fs)-1])
		checkFindings(t, tr, mustVerify(t, trailOf(tr, "")), want{verify.KindDeleted, events - 1, int(idx[events-1]), -1})
	})

	t.Run("reordered entries", func(t *testing.T) {
		tr := cleanTrail(t)
		idx := indexes(t, tr)
		fs := frames(t, tr)
		fs[k], fs[k+1] = fs[k+1], fs[k]
		writeFrames(t, tr, fs)
		checkFindings(t, tr, mustVerify(t, trailOf(tr, "")),
			want{verify.KindReordered, k, int(idx[k]), k + 1},
			want{verify.KindReordered, k + 1, int(idx[k+1]), k})
	})

	t.Run("inserted entry", func(t *testing.T) {
		tr := cleanTrail(t)
		idx := indexes(t, tr)
		fs := frames(t, tr)
		orig, err := audit.DecodeJournalEntry(fs[k])
		if err != nil {
			t.Fatal(err)
		}
		// A forged event with a valid commitment: it opens, but the log
		// never saw its leaf.
		forged := bytes.Replace(orig.Canonical, []byte(`"read"`), []byte(`"vread"`), 1)
		c, err := audit.Commit(forged)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := audit.JournalEntry{ID: "forged-event", Leaf: c.Leaf, Nonce: c.Nonce, Time: orig.Time, Canonical: forged}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		writeFrames(t, tr, slices.Insert(fs, k, raw))
		rep := mustVerify(t, trailOf(tr, ""))
		checkFindings(t, tr, rep, want{verify.KindInserted, k, int(idx[k]), -1})
		if rep.Findings[0].EventID != "forged-event" {
			t.Errorf("inserted finding names event %q, want the forged one", rep.Findings[0].EventID)
		}
	})

	t.Run("rewound checkpoint", func(t *testing.T) {
		tr := cleanTrail(t)
		state := t.TempDir()
		old, err := os.ReadFile(filepath.Join(tr.LogDir(), "checkpoint"))
		if err != nil {
			t.Fatal(err)
		}
		checkFindings(t, tr, mustVerify(t, trailOf(tr, state)))
		tr.Append(t, 10)
		if rep := mustVerify(t, trailOf(tr, state)); !rep.OK() || rep.Compared != 1 {
			t.Fatalf("grown log: %v, compared with %d checkpoints", rep.Findings, rep.Compared)
		}
		if err := os.WriteFile(filepath.Join(tr.LogDir(), "checkpoint"), old, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := mustVerify(t, trailOf(tr, state))
		checkFindings(t, tr, rep, want{verify.KindRewind, -1, -1, -1})
		if rep.Pending != 10 {
			t.Errorf("%d entries pending past the rewound checkpoint, want 10", rep.Pending)
		}
	})

	t.Run("forked log", func(t *testing.T) {
		tr := cleanTrail(t)
		state := t.TempDir()
		checkFindings(t, tr, mustVerify(t, trailOf(tr, state)))
		idx := indexes(t, tr)
		fork := forkLog(t, tr, idx[k])
		vt := trailOf(tr, state)
		vt.Log = verify.DirLog(fork)
		rep := mustVerify(t, vt)
		// The fork's checkpoint is signed and matches its own tiles; it is
		// caught against the checkpoint accepted before, and the event
		// whose leaf it replaced is named.
		checkFindings(t, tr, rep,
			want{verify.KindFork, -1, -1, -1},
			want{verify.KindInserted, k, int(idx[k]), k},
			want{verify.KindDeleted, k, int(idx[k]), -1})
	})

	t.Run("checkpoint signed by another key", func(t *testing.T) {
		tr := cleanTrail(t)
		vt := trailOf(tr, "")
		_, other, err := tlog.NewKey(verifytest.Origin)
		if err != nil {
			t.Fatal(err)
		}
		vt.VKey = other
		checkFindings(t, tr, mustVerify(t, vt), want{verify.KindSignature, -1, -1, -1})
	})

	t.Run("tiles edited", func(t *testing.T) {
		tr := cleanTrail(t)
		// Rewrite a leaf inside the entry bundle: same length, other bytes.
		bundle := filepath.Join(tr.LogDir(), "tile", "entries", "000.p", "40")
		b, err := os.ReadFile(bundle)
		if err != nil {
			t.Fatal(err)
		}
		b[2+32*3+2*3] ^= 0x80
		if err := os.WriteFile(bundle, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := mustVerify(t, trailOf(tr, ""))
		if len(rep.Findings) == 0 || rep.Findings[0].Kind != verify.KindTree {
			t.Fatalf("edited tiles: %v, want a tree mismatch first", rep.Findings)
		}
	})

	t.Run("clean", func(t *testing.T) {
		tr := cleanTrail(t)
		state := t.TempDir()
		for run := range 2 {
			rep := mustVerify(t, trailOf(tr, state))
			checkFindings(t, tr, rep)
			if rep.Entries != events || rep.InPlace != events || rep.Size != events || rep.Pending != 0 || rep.Compared != run {
				t.Fatalf("run %d: report %+v", run, rep)
			}
		}
	})
}

// forkLog builds, in a new directory, a log under the same key as tr's
// with the same leaves except the one at index at, and returns its dir.
func forkLog(t *testing.T, tr *verifytest.Trail, at uint64) string {
	t.Helper()
	ctx := context.Background()
	src, err := tlog.Open(ctx, tlog.Options{Dir: tr.LogDir(), Origin: verifytest.Origin, Signer: tr.Signer(t)})
	if err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	for i := range uint64(events) {
		l, err := src.Leaf(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, l)
	}
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}
	leaves[at] = bytes.Repeat([]byte{0x42}, audit.LeafSize)
	dir := t.TempDir()
	fork, err := tlog.Open(ctx, tlog.Options{Dir: dir, Origin: verifytest.Origin, Signer: tr.Signer(t), BatchMaxSize: 1, BatchMaxAge: 1e6, CheckpointInterval: 1e8})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range leaves {
		if got, err := fork.Append(ctx, l); err != nil || got != uint64(i) {
			t.Fatalf("fork append %d: index %d, %v", i, got, err)
		}
	}
	if err := fork.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return dir
}
