package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Scan reads the journal in dir without opening it for writing, so it is
// safe to run while a server appends to the same file: it calls fn with
// every complete, valid entry in order (the entry is valid only during the
// call; copy what must outlive it) and returns the number of entries. It
// stops at a torn tail — for a live journal, the frames being written at
// that moment — and never truncates or creates anything. Damage before the
// tail is ErrCorrupt, as for [Open]; an error from fn stops the scan and is
// returned as is.
func Scan(dir string, fn func(seq uint64, entry []byte) error) (uint64, error) {
	f, err := os.Open(filepath.Join(dir, fileName))
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	_, n, _, err := scan(f, fi.Size(), fn)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Follower reads a journal that another process appends to, read-only
// like Scan, remembering where it got to: each Len or Read scans only the
// frames added since (for `warden audit export --follow` beside a running
// server). It is not safe for concurrent use.
type Follower struct {
	dir   string
	end   int64   // bytes of good frames seen
	n     uint64  // entries in end
	marks []int64 // marks[k] is the offset of entry k*indexEvery
}

// NewFollower follows the journal in dir.
func NewFollower(dir string) *Follower { return &Follower{dir: dir} }

// refresh scans the frames written since the last call.
func (f *Follower) refresh() error {
	file, err := os.Open(filepath.Join(f.dir, fileName))
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if fi.Size() < f.end {
		return fmt.Errorf("%w: the journal shrank underneath", ErrCorrupt)
	}
	base, first := f.end, f.n
	off := base
	end, n, _, err := scan(io.NewSectionReader(file, base, fi.Size()-base), fi.Size()-base, func(seq uint64, payload []byte) error {
		if (first+seq)%indexEvery == 0 {
			f.marks = append(f.marks, off)
		}
		off += headerSize + int64(len(payload))
		return nil
	})
	if err != nil {
		return err
	}
	f.end, f.n = base+end, first+n
	return nil
}

// Len is the number of complete entries in the journal now (the last
// count it could establish if the file cannot be read).
func (f *Follower) Len() uint64 {
	f.refresh()
	return f.n
}

// Read calls fn for the entries from seq `from` on, up to those Len last
// counted, in order; the entry is fn's to keep.
func (f *Follower) Read(from uint64, fn func(seq uint64, entry []byte) error) error {
	if from >= f.n {
		return nil
	}
	file, err := os.Open(filepath.Join(f.dir, fileName))
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer file.Close()
	k := from / indexEvery
	start, seq0 := f.marks[k], k*indexEvery
	stop := f.n
	_, _, _, err = scan(io.NewSectionReader(file, start, f.end-start), f.end-start, func(rel uint64, payload []byte) error {
		seq := seq0 + rel
		if seq >= stop {
			return errStopFollow
		}
		if seq < from {
			return nil
		}
		return fn(seq, append([]byte(nil), payload...))
	})
	if errors.Is(err, errStopFollow) {
		return nil
	}
	return err
}

var errStopFollow = errors.New("journal: read up to the counted end")
