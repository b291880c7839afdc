package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Verification errors. Every fault found by Verify, VerifyAgainst,
// VerifyInclusion or VerifyConsistency wraps exactly one of them.
var (
	ErrBadVerifierKey      = errors.New("tlog: malformed verifier key")
	ErrCheckpointSignature = errors.New("tlog: checkpoint not signed by the log key")
	ErrMalformedCheckpoint = errors.New("tlog: malformed checkpoint")
	ErrCheckpointOrigin    = errors.New("tlog: checkpoint origin is not the log's")
	ErrLeafNotFound        = errors.New("tlog: leaf not found") // returned by leaf sources for a missing index
	ErrTampered            = errors.New("tlog: leaves do not match the checkpoint")
	ErrReferenceMismatch   = errors.New("tlog: reference leaves do not match the checkpoint either")
	ErrInclusion           = errors.New("tlog: inclusion proof does not verify")
	ErrInconsistent        = errors.New("tlog: checkpoints are not consistent")
	ErrRewound             = errors.New("tlog: newer checkpoint is smaller than older (log rewound)")
	ErrFork                = errors.New("tlog: two checkpoints of the same size with different roots (log forked)")
)

// Fault names the kind of problem a verification found.
type Fault int

// Faults, from the checkpoint inwards.
const (
	FaultNone          Fault = iota
	FaultSignature           // checkpoint not signed by the key, or malformed
	FaultOrigin              // checkpoint origin is not the key's name
	FaultMissingLeaf         // a leaf below the checkpoint size is absent (deleted)
	FaultRootMismatch        // leaves hash to another root; kind and index need a reference (VerifyAgainst)
	FaultEditedLeaf          // leaf at Index differs from the logged one
	FaultDeletedLeaf         // logged leaf at Index is gone and later leaves moved down
	FaultInsertedLeaf        // an unlogged leaf sits at Index and later leaves moved up
	FaultSwappedLeaves       // leaves at Index and Index+1 are exchanged
)

var faultNames = [...]string{"none", "bad signature", "wrong origin", "missing leaf", "root mismatch", "edited leaf", "deleted leaf", "inserted leaf", "swapped leaves"}

func (f Fault) String() string {
	if f < 0 || int(f) >= len(faultNames) {
		return fmt.Sprintf("Fault(%d)", int(f))
	}
	return faultNames[f]
}

// Report is the outcome of Verify or VerifyAgainst.
type Report struct {
	Origin     string // from the checkpoint (set once it parsed)
	Size       uint64 // tree size the checkpoint commits to
	RootHash   []byte // root hash the checkpoint commits to
	Fault      Fault  // FaultNone when the leaves match the checkpoint
	Index      uint64 // first bad index, when IndexKnown
	IndexKnown bool
}

// Verify checks that checkpoint is a c2sp.org/tlog-checkpoint signed by vkey
// whose origin is vkey's name, then recomputes the RFC 6962 §2.1 Merkle tree
// hash over leaves(0) … leaves(size-1) and compares it with the checkpoint's
// root. leaves returns ErrLeafNotFound (or the Log's ErrOutOfRange) for a
// missing index; any other error aborts verification and is returned as is.
//
// On a fault Verify returns a Report naming it and an error wrapping one of
// ErrCheckpointSignature, ErrMalformedCheckpoint, ErrCheckpointOrigin or
// ErrTampered. A root mismatch alone cannot say which leaf is wrong: use
// VerifyAgainst with a second copy of the leaves to name the index and kind.
func Verify(ctx context.Context, vkey string, checkpoint []byte, leaves func(i uint64) ([]byte, error)) (*Report, error) {
	cp, rep, err := openCheckpoint(vkey, checkpoint)
	if err != nil {
		return rep, err
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	tree := rf.NewEmptyRange(0)
	for i := range cp.Size {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		leaf, err := leaves(i)
		if isMissing(err) {
			rep.Fault, rep.Index, rep.IndexKnown = FaultMissingLeaf, i, true
			return rep, fmt.Errorf("%w: leaf %d missing", ErrTampered, i)
		}
		if err != nil {
			return nil, fmt.Errorf("tlog: verify: leaf %d: %w", i, err)
		}
		if err := tree.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			return nil, fmt.Errorf("tlog: verify: %w", err)
		}
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if cp.Size > 0 {
		if root, err = tree.GetRootHash(nil); err != nil {
			return nil, fmt.Errorf("tlog: verify: %w", err)
		}
	}
	if !bytes.Equal(root, cp.Hash) {
		rep.Fault = FaultRootMismatch
		return rep, fmt.Errorf("%w: root of %d leaves differs from the checkpoint's", ErrTampered, cp.Size)
	}
	return rep, nil
}

// VerifyAgainst is Verify with a reference: when leaves do not match the
// checkpoint it checks that reference does (so reference is what the log
// signed — typically the log's own entry bundles, read with Log.Leaf), then
// names the first index where leaves departs from it and the kind of fault:
// an edit, a deletion (later leaves moved down), an insertion (later leaves
// moved up) or two adjacent leaves swapped. If reference does not match the
// checkpoint either, the error wraps ErrReferenceMismatch and no index is
// named.
func VerifyAgainst(ctx context.Context, vkey string, checkpoint []byte, leaves, reference func(i uint64) ([]byte, error)) (*Report, error) {
	rep, err := Verify(ctx, vkey, checkpoint, leaves)
	if err == nil || !errors.Is(err, ErrTampered) {
		return rep, err
	}
	if _, rerr := Verify(ctx, vkey, checkpoint, reference); rerr != nil {
		if errors.Is(rerr, ErrTampered) {
			return rep, fmt.Errorf("%w (%w)", ErrReferenceMismatch, err)
		}
		return rep, rerr
	}
	at := func(f func(uint64) ([]byte, error), i uint64) ([]byte, bool, error) {
		b, err := f(i)
		if isMissing(err) {
			return nil, false, nil
		}
		return b, err == nil, err
	}
	for i := range rep.Size {
		got, gotOK, err := at(leaves, i)
		if err != nil {
			return nil, fmt.Errorf("tlog: verify: leaf %d: %w", i, err)
		}
		want, _, err := at(reference, i)
		if err != nil {
			return nil, fmt.Errorf("tlog: verify: reference leaf %d: %w", i, err)
		}
		if gotOK && bytes.Equal(got, want) {
			continue
		}
		next, nextOK, err := at(leaves, i+1)
		if err != nil {
			return nil, fmt.Errorf("tlog: verify: leaf %d: %w", i+1, err)
		}
		wantNext, wantNextOK, err := at(reference, i+1)
		if err != nil && i+1 < rep.Size {
			return nil, fmt.Errorf("tlog: verify: reference leaf %d: %w", i+1, err)
		}
		wantNextOK = wantNextOK && i+1 < rep.Size
		rep.Index, rep.IndexKnown = i, true
		switch {
		case !gotOK:
			rep.Fault = FaultMissingLeaf
		case wantNextOK && nextOK && bytes.Equal(got, wantNext) && bytes.Equal(next, want):
			rep.Fault = FaultSwappedLeaves
		case wantNextOK && bytes.Equal(got, wantNext):
			rep.Fault = FaultDeletedLeaf
		case nextOK && bytes.Equal(next, want):
			rep.Fault = FaultInsertedLeaf
		default:
			rep.Fault = FaultEditedLeaf
		}
		return rep, fmt.Errorf("%w: %s at index %d", ErrTampered, rep.Fault, i)
	}
	// Every leaf equals the reference yet the roots differed: the leaf
	// source is not deterministic. Report the mismatch without an index.
	return rep, err
}

// VerifyInclusion checks that leaf is at index in the tree the checkpoint
// (signed by vkey) commits to, using the audit path proof (RFC 6962 §2.1.1).
func VerifyInclusion(vkey string, checkpoint []byte, leaf []byte, index uint64, p [][]byte) error {
	cp, _, err := openCheckpoint(vkey, checkpoint)
	if err != nil {
		return err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, rfc6962.DefaultHasher.HashLeaf(leaf), p, cp.Hash); err != nil {
		return fmt.Errorf("%w: index %d in size %d: %v", ErrInclusion, index, cp.Size, err)
	}
	return nil
}

// VerifyConsistency checks that newer extends older: both signed by vkey,
// newer not smaller (ErrRewound), equal sizes with equal roots (ErrFork), and
// otherwise the consistency proof verifies (RFC 6962 §2.1.2, ErrInconsistent).
func VerifyConsistency(vkey string, older, newer []byte, p [][]byte) error {
	o, _, err := openCheckpoint(vkey, older)
	if err != nil {
		return fmt.Errorf("older: %w", err)
	}
	n, _, err := openCheckpoint(vkey, newer)
	if err != nil {
		return fmt.Errorf("newer: %w", err)
	}
	switch {
	case n.Size < o.Size:
		return fmt.Errorf("%w: %d after %d", ErrRewound, n.Size, o.Size)
	case n.Size == o.Size && !bytes.Equal(n.Hash, o.Hash):
		return fmt.Errorf("%w: size %d", ErrFork, n.Size)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, o.Size, n.Size, p, o.Hash, n.Hash); err != nil {
		return fmt.Errorf("%w: %d to %d: %v", ErrInconsistent, o.Size, n.Size, err)
	}
	return nil
}

// openCheckpoint verifies the signed note against vkey and parses its body
// (c2sp.org/tlog-checkpoint). The expected origin is the key's name, which
// is what the Log signs with.
func openCheckpoint(vkey string, checkpoint []byte) (*log.Checkpoint, *Report, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadVerifierKey, err)
	}
	rep := &Report{Fault: FaultSignature}
	n, err := note.Open(checkpoint, note.VerifierList(v))
	if err != nil {
		return nil, rep, fmt.Errorf("%w: %v", ErrCheckpointSignature, err)
	}
	cp := &log.Checkpoint{}
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, rep, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	if len(cp.Hash) != rfc6962.DefaultHasher.Size() {
		return nil, rep, fmt.Errorf("%w: root hash of %d bytes", ErrMalformedCheckpoint, len(cp.Hash))
	}
	rep.Origin, rep.Size, rep.RootHash = cp.Origin, cp.Size, cp.Hash
	if cp.Origin != v.Name() {
		rep.Fault = FaultOrigin
		return nil, rep, fmt.Errorf("%w: got %q, want %q", ErrCheckpointOrigin, cp.Origin, v.Name())
	}
	rep.Fault = FaultNone
	return cp, rep, nil
}

func isMissing(err error) bool {
	return errors.Is(err, ErrLeafNotFound) || errors.Is(err, ErrOutOfRange)
}
