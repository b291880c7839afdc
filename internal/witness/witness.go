// Package witness is a C2SP tlog-witness (c2sp.org/tlog-witness): it
// cosigns a transparency log's checkpoint only if the checkpoint is signed
// by the log's key and is consistent with the last checkpoint it cosigned
// for that log, so a forked or rewritten log is refused. Partner
// organisations run it (warden witness) against Warden's audit log.
//
// It owns the add-checkpoint request format, the checks the specification
// orders, the durable compare-and-swap state of the latest cosigned
// checkpoint per log, and the witness key. It must never cosign a
// checkpoint it has not first recorded durably, never move its state
// backwards, and never see anything but checkpoints and proofs (no PHI).
package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Errors returned by [Witness.AddCheckpoint], one per refusal the
// specification distinguishes (c2sp.org/tlog-witness, "add-checkpoint").
// Callers test with errors.Is; a conflict on the old size is a
// [*ConflictError], which also matches ErrConflict.
var (
	ErrMalformed       = errors.New("witness: malformed request")
	ErrUnknownLog      = errors.New("witness: unknown log origin")
	ErrBadSignature    = errors.New("witness: no valid signature by the log's key")
	ErrOldSizeTooLarge = errors.New("witness: old size larger than checkpoint size")
	ErrConflict        = errors.New("witness: checkpoint conflicts with the latest cosigned one")
	ErrBadProof        = errors.New("witness: consistency proof does not verify")
	ErrBadOptions      = errors.New("witness: invalid options")
)

// ConflictError reports that the request's old size is not the size of the
// latest checkpoint the witness cosigned for the log. Size is that size
// (zero if it never cosigned one): the log retries from it.
type ConflictError struct {
	Size uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: old size does not match the latest cosigned size %d", e.Size)
}

// Is makes a ConflictError match ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Options configure [New].
type Options struct {
	// Signer is the witness's cosignature/v1 signer
	// (formats/note.NewSignerForCosignatureV1), see [LoadOrCreateKey].
	Signer note.Signer
	// Logs are the verifier keys of the logs the witness follows; a log's
	// origin is its key's name.
	Logs []note.Verifier
	// State holds the latest cosigned checkpoint per log.
	State *State
}

// Witness checks and cosigns checkpoints. It is safe for concurrent use:
// two requests that race from the same old size cannot both advance, the
// state's compare-and-swap lets one through and the other gets a conflict.
type Witness struct {
	signer note.Signer
	logs   map[string]note.Verifier
	state  *State
}

// New returns a witness for o.Logs.
func New(o Options) (*Witness, error) {
	if o.Signer == nil || o.State == nil {
		return nil, fmt.Errorf("%w: signer and state are required", ErrBadOptions)
	}
	logs := make(map[string]note.Verifier, len(o.Logs))
	for _, v := range o.Logs {
		if _, dup := logs[v.Name()]; dup {
			return nil, fmt.Errorf("%w: log %q listed twice", ErrBadOptions, v.Name())
		}
		logs[v.Name()] = v
	}
	return &Witness{signer: o.Signer, logs: logs, state: o.State}, nil
}

// Outcome describes a request the witness handled, for its log line.
type Outcome struct {
	Origin  string // empty when the checkpoint's origin could not be read
	OldSize uint64
	Size    uint64 // the checkpoint's size, zero if it did not parse
}

// AddCheckpoint runs the add-checkpoint checks of c2sp.org/tlog-witness on
// req in the order the specification gives, and on success records the
// checkpoint as the log's latest and returns the witness's cosignature
// lines (c2sp.org/tlog-cosignature, cosignature/v1): the signed-note
// signature lines without the checkpoint text.
//
//   - the origin must be a known log (ErrUnknownLog);
//   - a signature by the log's key must verify (ErrBadSignature);
//   - the old size must not exceed the checkpoint size (ErrOldSizeTooLarge);
//   - the old size must equal the latest cosigned size, zero if none
//     (*ConflictError); at equal sizes the root hashes must match
//     (ErrConflict);
//   - the consistency proof from the old tree to the new must verify
//     (RFC 6962 §2.1.2; ErrBadProof).
func (w *Witness) AddCheckpoint(ctx context.Context, req Request) ([]byte, Outcome, error) {
	out := Outcome{OldSize: req.OldSize}
	origin, _, ok := strings.Cut(string(req.Checkpoint), "\n")
	if !ok || origin == "" {
		return nil, out, fmt.Errorf("%w: checkpoint has no origin line", ErrMalformed)
	}
	v, known := w.logs[origin]
	if !known {
		return nil, out, ErrUnknownLog
	}
	out.Origin = origin
	n, err := note.Open(req.Checkpoint, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, out, ErrBadSignature
		}
		return nil, out, fmt.Errorf("%w: checkpoint note: %v", ErrMalformed, err)
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil || cp.Origin != origin {
		return nil, out, fmt.Errorf("%w: checkpoint body", ErrMalformed)
	}
	out.Size = cp.Size
	if req.OldSize > cp.Size {
		return nil, out, ErrOldSizeTooLarge
	}
	latest, found, err := w.state.Latest(ctx, origin)
	if err != nil {
		return nil, out, err
	}
	if req.OldSize != latest.Size {
		return nil, out, &ConflictError{Size: latest.Size}
	}
	if found && req.OldSize == cp.Size && !bytes.Equal(latest.Root, cp.Hash) {
		return nil, out, w.keepEvidence(ctx, origin, req,
			fmt.Errorf("%w: same size %d, different root hash", ErrConflict, cp.Size))
	}
	if !found {
		// First contact: every tree extends the empty one, and the proof
		// from size zero is empty.
		if len(req.Proof) > 0 {
			return nil, out, fmt.Errorf("%w: proof lines from size 0", ErrBadProof)
		}
	} else if err := proof.VerifyConsistency(rfc6962.DefaultHasher, req.OldSize, cp.Size, req.Proof, latest.Root, cp.Hash); err != nil {
		return nil, out, w.keepEvidence(ctx, origin, req,
			fmt.Errorf("%w: %d to %d: %v", ErrBadProof, req.OldSize, cp.Size, err))
	}
	next := Record{Size: cp.Size, Root: cp.Hash, Checkpoint: req.Checkpoint}
	var prev *Record
	if found {
		prev = &latest
	}
	if err := w.state.Swap(ctx, origin, prev, next); err != nil {
		if !errors.Is(err, errStateMoved) {
			return nil, out, err
		}
		// Another request advanced the log between our read and our swap.
		now, _, rerr := w.state.Latest(ctx, origin)
		if rerr != nil {
			return nil, out, rerr
		}
		return nil, out, &ConflictError{Size: now.Size}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, out, fmt.Errorf("witness: cosign: %w", err)
	}
	// note.Sign returns text, a blank line, then the signature lines.
	return signed[len(n.Text)+1:], out, nil
}

// keepEvidence stores a refused request whose checkpoint the log signed
// (c2sp.org/tlog-witness: it "might be proof of log misbehavior") and
// returns refusal. A failure to store is joined to the refusal, which
// stands either way.
func (w *Witness) keepEvidence(ctx context.Context, origin string, req Request, refusal error) error {
	err := w.state.AddEvidence(ctx, origin, Evidence{Received: time.Now(), Reason: refusal.Error(), Request: req.Marshal()})
	if err != nil {
		return errors.Join(refusal, err)
	}
	return refusal
}
