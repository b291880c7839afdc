package tlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// leafSource serves leaves from a slice; a nil entry is a missing leaf.
func leafSource(leaves [][]byte) func(uint64) ([]byte, error) {
	return func(i uint64) ([]byte, error) {
		if i >= uint64(len(leaves)) || leaves[i] == nil {
			return nil, ErrLeafNotFound
		}
		return leaves[i], nil
	}
}

// signedLog builds a real log of n leaves and returns its checkpoint of
// size n, the leaves in order, the signer and the verifier key.
func signedLog(t *testing.T, n int) (*Log, []byte, [][]byte, note.Signer, string) {
	t.Helper()
	s, _, vkey := testKeys(t)
	l := openTestLog(t, t.TempDir(), s)
	byIndex := appendN(t, l, "verify", n)
	leaves := make([][]byte, n)
	for i, leaf := range byIndex {
		leaves[i] = leaf
	}
	cp, _ := waitCheckpoint(t, l, vkey, uint64(n))
	return l, cp, leaves, s, vkey
}

func signCheckpoint(t *testing.T, s note.Signer, c log.Checkpoint) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: string(c.Marshal())}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 40
	l, cp, leaves, s, vkey := signedLog(t, n)
	parsed, _, err := openCheckpoint(vkey, cp)
	if err != nil {
		t.Fatal(err)
	}
	reference := func(i uint64) ([]byte, error) { return l.Leaf(t.Context(), i) }

	otherSigner, _, _ := testKeys(t) // same name, different key
	originSigned := signCheckpoint(t, s, log.Checkpoint{Origin: "evil.example/audit", Size: parsed.Size, Hash: parsed.Hash})
	resized := bytes.Replace(cp, []byte("\n40\n"), []byte("\n39\n"), 1)

	edit := func(f func([][]byte) [][]byte) [][]byte { return f(slices.Clone(leaves)) }
	cases := []struct {
		name       string
		checkpoint []byte
		leaves     [][]byte
		wantErr    error
		wantFault  Fault // from VerifyAgainst
		wantIndex  int   // -1: no index named
	}{
		{"edited leaf", cp, edit(func(x [][]byte) [][]byte {
			x[7] = append([]byte{}, x[7]...)
			x[7][0] ^= 1
			return x
		}), ErrTampered, FaultEditedLeaf, 7},
		{"deleted leaf, later ones moved down", cp, edit(func(x [][]byte) [][]byte { return slices.Delete(x, 7, 8) }), ErrTampered, FaultDeletedLeaf, 7},
		{"deleted leaf, hole left", cp, edit(func(x [][]byte) [][]byte { x[7] = nil; return x }), ErrTampered, FaultMissingLeaf, 7},
		{"last leaf deleted", cp, leaves[:n-1], ErrTampered, FaultMissingLeaf, n - 1},
		{"two leaves swapped", cp, edit(func(x [][]byte) [][]byte { x[7], x[8] = x[8], x[7]; return x }), ErrTampered, FaultSwappedLeaves, 7},
		{"leaf inserted", cp, edit(func(x [][]byte) [][]byte { return slices.Insert(x, 7, testLeaf("forged", 0)) }), ErrTampered, FaultInsertedLeaf, 7},
		{"first leaf edited", cp, edit(func(x [][]byte) [][]byte { x[0] = testLeaf("forged", 1); return x }), ErrTampered, FaultEditedLeaf, 0},
		{"checkpoint signed by another key", signCheckpoint(t, otherSigner, *parsed), leaves, ErrCheckpointSignature, FaultSignature, -1},
		{"checkpoint with another origin", originSigned, leaves, ErrCheckpointOrigin, FaultOrigin, -1},
		{"checkpoint body edited after signing", resized, leaves, ErrCheckpointSignature, FaultSignature, -1},
		{"checkpoint truncated", cp[:len(cp)/2], leaves, ErrCheckpointSignature, FaultSignature, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Verify(t.Context(), vkey, c.checkpoint, leafSource(c.leaves))
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("Verify err = %v, want %v", err, c.wantErr)
			}
			if rep == nil || rep.Fault == FaultNone {
				t.Fatalf("Verify report = %+v, want a fault", rep)
			}
			rep, err = VerifyAgainst(t.Context(), vkey, c.checkpoint, leafSource(c.leaves), reference)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("VerifyAgainst err = %v, want %v", err, c.wantErr)
			}
			if rep.Fault != c.wantFault {
				t.Errorf("fault = %v, want %v (%v)", rep.Fault, c.wantFault, err)
			}
			if c.wantIndex >= 0 && (!rep.IndexKnown || rep.Index != uint64(c.wantIndex)) {
				t.Errorf("index = %d (known %v), want %d", rep.Index, rep.IndexKnown, c.wantIndex)
			}
			if c.wantIndex < 0 && rep.IndexKnown {
				t.Errorf("index %d named for a checkpoint fault", rep.Index)
			}
		})
	}

	t.Run("reference also tampered", func(t *testing.T) {
		bad := slices.Clone(leaves)
		bad[3] = testLeaf("forged", 3)
		_, err := VerifyAgainst(t.Context(), vkey, cp, leafSource(bad), leafSource(bad))
		if !errors.Is(err, ErrReferenceMismatch) {
			t.Fatalf("err = %v, want ErrReferenceMismatch", err)
		}
	})
	t.Run("malformed verifier key", func(t *testing.T) {
		if _, err := Verify(t.Context(), "not a key", cp, leafSource(leaves)); !errors.Is(err, ErrBadVerifierKey) {
			t.Fatalf("err = %v, want ErrBadVerifierKey", err)
		}
	})
	t.Run("leaf source I/O error is returned, not reported as tampering", func(t *testing.T) {
		ioErr := errors.New("disk on fire")
		_, err := Verify(t.Context(), vkey, cp, func(uint64) ([]byte, error) { return nil, ioErr })
		if !errors.Is(err, ioErr) || errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v, want the I/O error", err)
		}
	})
	t.Run("untouched leaves verify", func(t *testing.T) {
		for name, src := range map[string]func(uint64) ([]byte, error){"slice": leafSource(leaves), "entry bundles": reference} {
			rep, err := VerifyAgainst(t.Context(), vkey, cp, src, reference)
			if err != nil || rep.Fault != FaultNone || rep.Size != n || rep.Origin != testOrigin {
				t.Fatalf("%s: report %+v, err %v", name, rep, err)
			}
		}
	})
}

// Editing an entry bundle on disk is caught by verifying the log's own
// leaves against a checkpoint obtained before the edit.
func TestVerifyDetectsEditedEntryBundle(t *testing.T) {
	s, _, vkey := testKeys(t)
	dir := t.TempDir()
	l, err := Open(t.Context(), testOptions(dir, s))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "bundle", 20)
	cp, _ := waitCheckpoint(t, l, vkey, 20)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// 20 leaves: the only bundle is the partial tile/entries/000.p/20
	// (c2sp.org/tlog-tiles).
	var edited bool
	for _, b := range []string{filepath.Join(dir, "tile", "entries", "000.p", "20")} {
		raw, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)-1] ^= 0xff // last byte of the last leaf in the bundle
		if err := os.WriteFile(b, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		edited = true
	}
	if !edited {
		t.Fatal("no entry bundle file edited")
	}
	l = openTestLog(t, dir, s)
	rep, err := Verify(t.Context(), vkey, cp, func(i uint64) ([]byte, error) { return l.Leaf(t.Context(), i) })
	if !errors.Is(err, ErrTampered) || rep.Fault != FaultRootMismatch {
		t.Fatalf("Verify = %+v, %v; want root mismatch", rep, err)
	}
}

func TestInclusionProofs(t *testing.T) {
	l, cp, leaves, s, vkey := signedLog(t, 300)
	parsed, _, _ := openCheckpoint(vkey, cp)
	size := parsed.Size
	other := signCheckpoint(t, s, log.Checkpoint{Origin: testOrigin, Size: size, Hash: bytes.Repeat([]byte{1}, 32)})
	otherKey, _, _ := testKeys(t)

	for _, idx := range []uint64{0, 1, 255, 256, 299} {
		p, err := l.InclusionProof(t.Context(), idx, size)
		if err != nil {
			t.Fatalf("InclusionProof(%d): %v", idx, err)
		}
		leaf := leaves[idx]
		if err := VerifyInclusion(vkey, cp, leaf, idx, p); err != nil {
			t.Fatalf("good proof for %d rejected: %v", idx, err)
		}
		flipped := slices.Clone(p)
		flipped[0] = append([]byte{}, p[0]...)
		flipped[0][5] ^= 1
		cases := []struct {
			name    string
			cp      []byte
			leaf    []byte
			index   uint64
			proof   [][]byte
			wantErr error
		}{
			{"proof hash flipped", cp, leaf, idx, flipped, ErrInclusion},
			{"proof truncated", cp, leaf, idx, p[:len(p)-1], ErrInclusion},
			{"proof extended", cp, leaf, idx, append(slices.Clone(p), make([]byte, 32)), ErrInclusion},
			{"another leaf", cp, testLeaf("forged", idx), idx, p, ErrInclusion},
			{"another index", cp, leaf, (idx + 1) % size, p, ErrInclusion},
			{"index beyond size", cp, leaf, size, p, ErrInclusion},
			{"checkpoint with another root", other, leaf, idx, p, ErrInclusion},
			{"checkpoint signed by another key", signCheckpoint(t, otherKey, *parsed), leaf, idx, p, ErrCheckpointSignature},
		}
		for _, c := range cases {
			if err := VerifyInclusion(vkey, c.cp, c.leaf, c.index, c.proof); !errors.Is(err, c.wantErr) {
				t.Errorf("index %d, %s: err = %v, want %v", idx, c.name, err, c.wantErr)
			}
		}
	}
}

func TestConsistencyProofs(t *testing.T) {
	s, _, vkey := testKeys(t)
	l := openTestLog(t, t.TempDir(), s)
	appendN(t, l, "first", 100)
	cp1, c1 := waitCheckpoint(t, l, vkey, 100)
	appendN(t, l, "second", 200)
	cp2, c2 := waitCheckpoint(t, l, vkey, 300)
	if c1.Size >= c2.Size {
		t.Fatalf("checkpoints did not grow: %d then %d", c1.Size, c2.Size)
	}
	p, err := l.ConsistencyProof(t.Context(), c1.Size, c2.Size)
	if err != nil {
		t.Fatal(err)
	}
	// An inclusion proof against the older checkpoint still verifies.
	ip, err := l.InclusionProof(t.Context(), 42, c1.Size)
	if err != nil {
		t.Fatal(err)
	}
	leaf42, err := l.Leaf(t.Context(), 42)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(vkey, cp1, leaf42, 42, ip); err != nil {
		t.Fatalf("inclusion in older checkpoint: %v", err)
	}

	// A fork: another log under the same key with different leaves. Its
	// checkpoint of the same size is a genuine signature over another root.
	fork := openTestLog(t, t.TempDir(), s)
	appendN(t, fork, "forked", int(c2.Size))
	sameSizeFork, fc := waitCheckpoint(t, fork, vkey, c2.Size)
	if fc.Size != c2.Size || bytes.Equal(fc.Hash, c2.Hash) {
		t.Fatalf("fork checkpoint size %d root equal %v", fc.Size, bytes.Equal(fc.Hash, c2.Hash))
	}
	appendN(t, fork, "forked-more", 50)
	biggerFork, bfc := waitCheckpoint(t, fork, vkey, c2.Size+50)
	forkProof, err := fork.ConsistencyProof(t.Context(), c2.Size, bfc.Size)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, _ := testKeys(t)
	flipped := slices.Clone(p)
	flipped[len(flipped)-1] = bytes.Repeat([]byte{7}, 32)

	cases := []struct {
		name         string
		older, newer []byte
		proof        [][]byte
		wantErr      error
	}{
		{"rewound: older checkpoint presented as newer", cp2, cp1, p, ErrRewound},
		{"fork: same size, different root, same key", cp2, sameSizeFork, nil, ErrFork},
		{"fork: larger checkpoint of another tree", cp2, biggerFork, forkProof, ErrInconsistent},
		{"tampered proof", cp1, cp2, flipped, ErrInconsistent},
		{"truncated proof", cp1, cp2, p[:len(p)-1], ErrInconsistent},
		{"no proof", cp1, cp2, nil, ErrInconsistent},
		{"newer signed by another key", cp1, signCheckpoint(t, otherKey, *c2), p, ErrCheckpointSignature},
		{"older signed by another key", signCheckpoint(t, otherKey, *c1), cp2, p, ErrCheckpointSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := VerifyConsistency(vkey, c.older, c.newer, c.proof); !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
		})
	}
	t.Run("good proof", func(t *testing.T) {
		if err := VerifyConsistency(vkey, cp1, cp2, p); err != nil {
			t.Fatal(err)
		}
		if err := VerifyConsistency(vkey, cp2, cp2, nil); err != nil {
			t.Fatalf("checkpoint not consistent with itself: %v", err)
		}
	})
}
