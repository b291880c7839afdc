package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// spooled is one event waiting in the spool: everything EventStore.Put
// needs, plus the leaf so that reading it back can be checked.
type spooled struct {
	ID        string    `json:"id"`
	Canonical []byte    `json:"canonical"`
	Nonce     [32]byte  `json:"nonce"`
	Leaf      []byte    `json:"leaf"`
	Index     uint64    `json:"index"`
	Patients  []string  `json:"patients"`
	Time      time.Time `json:"time"`
}

// spool is a directory of one file per event, named after the leaf index
// and event id. A file is written under a temporary name, fsync'd, renamed
// into place and the directory fsync'd, so a listed file is complete.
type spool struct {
	dir string
	max int

	mu sync.Mutex
	n  int // files in the spool
}

const (
	spoolExt      = ".event"
	spoolTmp      = ".tmp"
	spoolRejected = ".rejected"
)

func openSpool(dir string, max int) (*spool, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no spool directory", ErrSpool)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	s := &spool{dir: dir, max: max}
	names, err := s.list()
	if err != nil {
		return nil, err
	}
	s.n = len(names)
	return s, nil
}

// list returns the spooled files in leaf index order, removing leftovers
// of interrupted writes.
func (s *spool) list() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	var names []string
	for _, e := range entries {
		switch {
		case strings.HasSuffix(e.Name(), spoolTmp):
			os.Remove(filepath.Join(s.dir, e.Name())) // never renamed: its event was not spooled
		case strings.HasSuffix(e.Name(), spoolExt):
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // zero-padded index first
	return names, nil
}

func (s *spool) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// keep writes e durably.
func (s *spool) keep(e spooled) error {
	s.mu.Lock()
	if s.n >= s.max {
		s.mu.Unlock()
		return fmt.Errorf("%w: spool full", ErrSpool)
	}
	s.n++
	s.mu.Unlock()
	if err := s.write(e); err != nil {
		s.mu.Lock()
		s.n--
		s.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	return nil
}

func (s *spool) write(e spooled) error {
	e.Leaf = leafHash(e.Nonce, e.Canonical)
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%020d-%s", e.Index, e.ID)
	tmp := filepath.Join(s.dir, name+spoolTmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name+spoolExt))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// read returns the event in file name, checking that it opens its leaf.
func (s *spool) read(name string) (spooled, error) {
	var e spooled
	body, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("%w: spool file %s: corrupt", ErrSpool, name)
	}
	if !Open(e.Leaf, e.Nonce, e.Canonical) || name != fmt.Sprintf("%020d-%s%s", e.Index, e.ID, spoolExt) {
		return e, fmt.Errorf("%w: spool file %s: does not match its commitment", ErrSpool, name)
	}
	return e, nil
}

// reject renames a spool file that cannot be recovered out of the way.
func (s *spool) reject(name string) error {
	if err := os.Rename(filepath.Join(s.dir, name), filepath.Join(s.dir, name+spoolRejected)); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	s.mu.Lock()
	s.n--
	s.mu.Unlock()
	return syncDir(s.dir)
}

func (s *spool) remove(name string) error {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	s.mu.Lock()
	s.n--
	s.mu.Unlock()
	return nil
}

// syncDir fsyncs a directory, making a rename or removal in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
