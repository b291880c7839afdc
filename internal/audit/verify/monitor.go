package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit/tlog"
)

// Monitor follows a log, typically a remote one (HTTPLog): each new
// checkpoint must be signed by VKey (and cosigned by Policy's quorum, if
// set) and consistent with the last checkpoint it accepted (RFC 6962
// §2.1.2); it keeps the accepted checkpoints in StateDir, so a restarted
// monitor still catches a log that rewound or forked while it was down.
//
// Tessera's client.LogStateTracker is not used: it ignores a checkpoint
// smaller than or as large as the one it holds, which is exactly how a
// rewind or a same-size fork shows.
type Monitor struct {
	Log      LogReader
	VKey     string
	StateDir string // required
	Policy   []byte // optional C2SP witness policy
	// Alarm, if set, is called with each finding before Check returns it.
	Alarm func(Finding)
}

// Check fetches the checkpoint once. It returns the finding that makes it
// refuse the checkpoint (nil when it accepted it, or it is the one it
// holds) and stores an accepted one. The error is for a log it could not
// read, not for a log that misbehaved.
func (m *Monitor) Check(ctx context.Context) (*Finding, error) {
	if m.StateDir == "" {
		return nil, fmt.Errorf("%w: the monitor needs a state directory", ErrState)
	}
	v, err := note.NewVerifier(m.VKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerifierKey, err)
	}
	state := checkpointState{m.StateDir}
	seen, err := state.load(v)
	if err != nil {
		return nil, err
	}
	raw, err := m.Log.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: reading the checkpoint: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
	if err != nil {
		return m.alarm(Finding{Kind: KindSignature, Detail: err.Error()}), nil
	}
	if m.Policy != nil {
		g, err := tessera.NewWitnessGroupFromPolicy(m.Policy)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
		}
		if !g.Satisfied(raw) {
			return m.alarm(Finding{Kind: KindWitness, Detail: fmt.Sprintf("checkpoint of size %d", cp.Size)}), nil
		}
	}
	if len(seen) > 0 {
		last := seen[len(seen)-1]
		var p [][]byte
		if cp.Size > last.cp.Size && last.cp.Size > 0 {
			pb, err := client.NewProofBuilder(ctx, cp.Size, m.Log.ReadTile)
			if err != nil {
				return nil, fmt.Errorf("verify: proof builder: %w", err)
			}
			if p, err = pb.ConsistencyProof(ctx, last.cp.Size, cp.Size); err != nil {
				return nil, fmt.Errorf("verify: consistency proof: %w", err)
			}
		}
		err := tlog.VerifyConsistency(m.VKey, last.raw, raw, p)
		switch {
		case errors.Is(err, tlog.ErrRewound):
			return m.alarm(Finding{Kind: KindRewind, Detail: fmt.Sprintf("size %d after size %d was accepted", cp.Size, last.cp.Size)}), nil
		case errors.Is(err, tlog.ErrFork), errors.Is(err, tlog.ErrInconsistent):
			return m.alarm(Finding{Kind: KindFork, Detail: fmt.Sprintf("size %d is not consistent with the accepted size %d", cp.Size, last.cp.Size)}), nil
		case err != nil:
			return nil, fmt.Errorf("verify: %w", err)
		}
		if cp.Size == last.cp.Size {
			return nil, nil
		}
	}
	return nil, state.add(cp.Size, raw)
}

func (m *Monitor) alarm(f Finding) *Finding {
	if m.Alarm != nil {
		m.Alarm(f)
	}
	return &f
}

// Run calls Check at once and then every interval until ctx ends (nil) or
// a check finds a fault (an error wrapping ErrAlarm and naming it). A log
// it cannot read is retried at the next interval; report is called with
// each such error (it may be nil).
func (m *Monitor) Run(ctx context.Context, interval time.Duration, report func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f, err := m.Check(ctx)
		if f != nil {
			return fmt.Errorf("%w: %s", ErrAlarm, f)
		}
		if err != nil {
			if errors.Is(err, ErrState) || errors.Is(err, ErrVerifierKey) || errors.Is(err, ErrPolicy) {
				return err
			}
			if report != nil && ctx.Err() == nil {
				report(err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
