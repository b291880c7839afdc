package tlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// A key used only by FuzzCheckpoint: the seeds in
// testdata/fuzz/FuzzCheckpoint are signed with it. Not a secret.
const (
	fuzzSKey = "PRIVATE+KEY+warden.fuzz/audit+d2825e69+AfTarYDB/zymNsl5Jufso7aSDsvI9mdvFq/nFVGIx1TX"
	fuzzVKey = "warden.fuzz/audit+d2825e69+AYvIrkqVfSqHCzHrrwlTwrpQJjqUnZcOLTrzKnhmWrqV"
)

func fuzzLeaves() [][]byte { return [][]byte{[]byte("leaf 0"), []byte("leaf 1"), []byte("leaf 2")} }

func rootOfLeaves(t testing.TB, leaves [][]byte) []byte {
	t.Helper()
	if len(leaves) == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, l := range leaves {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(l), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// FuzzCheckpoint feeds arbitrary bytes to the checkpoint verifiers. The
// property: only a checkpoint signed by the key, with the key's origin, that
// commits to a prefix of the three known leaves verifies; every rejection wraps
// one of the package's verification errors; a checkpoint is consistent with
// itself exactly when it opens; nothing panics.
func FuzzCheckpoint(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("warden.fuzz/audit\n3\nAAAA\n\n— warden.fuzz/audit AAAA\n"))
	leaves := fuzzLeaves()
	var roots [][]byte // roots[n]: root of the first n leaves
	for n := range len(leaves) + 1 {
		roots = append(roots, rootOfLeaves(f, leaves[:n]))
	}
	known := []error{ErrCheckpointSignature, ErrMalformedCheckpoint, ErrCheckpointOrigin, ErrTampered}
	f.Fuzz(func(t *testing.T, cp []byte) {
		rep, err := Verify(t.Context(), fuzzVKey, cp, leafSource(leaves))
		if err == nil {
			if rep.Size > 3 || rep.Origin != "warden.fuzz/audit" || !bytes.Equal(rep.RootHash, roots[rep.Size]) || rep.Fault != FaultNone {
				t.Fatalf("accepted a checkpoint that does not commit to the leaves: %+v", rep)
			}
		} else {
			if rep == nil || rep.Fault == FaultNone {
				t.Fatalf("rejection without a fault: %+v, %v", rep, err)
			}
			matched := false
			for _, k := range known {
				matched = matched || errors.Is(err, k)
			}
			if !matched {
				t.Fatalf("rejection wraps no verification error: %v", err)
			}
		}
		_, _, openErr := openCheckpoint(fuzzVKey, cp)
		if cerr := VerifyConsistency(fuzzVKey, cp, cp, nil); (openErr == nil) != (cerr == nil) {
			t.Fatalf("open err %v but self-consistency err %v", openErr, cerr)
		}
		if err := VerifyInclusion(fuzzVKey, cp, leaves[0], 0, nil); err == nil {
			if r, _, _ := openCheckpoint(fuzzVKey, cp); r.Size != 1 || !bytes.Equal(r.Hash, rfc6962.DefaultHasher.HashLeaf(leaves[0])) {
				t.Fatalf("empty inclusion proof accepted for a tree of size %d", r.Size)
			}
		}
	})
}
