package verify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// checkpointState is a directory of the checkpoints a verifier or monitor
// has accepted, one file each, DIR/<size, 20 digits>.checkpoint, so that a
// later run can tell a rewound or forked log from a grown one. It holds
// only signed public checkpoints.
type checkpointState struct{ dir string }

// seenCheckpoint is an accepted checkpoint, parsed.
type seenCheckpoint struct {
	raw []byte
	cp  *log.Checkpoint
}

const checkpointExt = ".checkpoint"

// load returns the stored checkpoints by increasing size. A stored file
// that no longer verifies with the log key means the state was tampered
// with: an error, not a finding about the log.
func (s checkpointState) load(v note.Verifier) ([]seenCheckpoint, error) {
	if s.dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("verify: state: %w", err)
	}
	var out []seenCheckpoint
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), checkpointExt) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("verify: state: %w", err)
		}
		cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s does not verify with the log key: %v", ErrState, e.Name(), err)
		}
		out = append(out, seenCheckpoint{raw: raw, cp: cp})
	}
	slices.SortFunc(out, func(a, b seenCheckpoint) int { return cmpUint(a.cp.Size, b.cp.Size) })
	return out, nil
}

// add stores raw (of size) unless a checkpoint of that size is stored;
// the file is written whole and renamed into place.
func (s checkpointState) add(size uint64, raw []byte) error {
	if s.dir == "" {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("verify: state: %w", err)
	}
	name := filepath.Join(s.dir, fmt.Sprintf("%020d%s", size, checkpointExt))
	if _, err := os.Stat(name); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(s.dir, "tmp-*")
	if err != nil {
		return fmt.Errorf("verify: state: %w", err)
	}
	_, werr := tmp.Write(raw)
	if werr == nil {
		werr = tmp.Sync()
	}
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("verify: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("verify: state: %w", err)
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
