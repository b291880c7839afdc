package mtls

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloading holds what a loader built from a set of files and rebuilds it
// when one of them changes (size or modification time, looked at no more
// often than every CheckEvery). A load that fails keeps the previous value
// in use: a half-written rotation never replaces a working certificate.
// The Listener and the upstream client (internal/upstream) use it.
type Reloading[T any] struct {
	files  []string
	every  time.Duration
	load   func() (T, error)
	logger *slog.Logger
	what   string

	mu      sync.RWMutex
	val     T
	gen     uint64
	stamps  map[string]stamp
	checked time.Time
	loadErr error
}

type stamp struct {
	size int64
	mod  time.Time
}

// NewReloading loads once (an error here is fatal to the caller) and
// returns the Reloading. what names the material in the log line that a
// failed reload writes, once per distinct failure, to logger (if any).
func NewReloading[T any](files []string, every time.Duration, logger *slog.Logger, what string, load func() (T, error)) (*Reloading[T], error) {
	if every <= 0 {
		every = time.Second
	}
	r := &Reloading[T]{files: files, every: every, load: load, logger: logger, what: what}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Current is the value of the last successful load, and its generation
// (bumped by every successful reload), after looking for changed files if
// CheckEvery has passed.
func (r *Reloading[T]) Current() (T, uint64) {
	r.maybeReload()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.val, r.gen
}

// Err is the last failure to reload changed files (nil when the current
// files are in use).
func (r *Reloading[T]) Err() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.loadErr
}

func (r *Reloading[T]) maybeReload() {
	now := time.Now()
	r.mu.RLock()
	due := now.Sub(r.checked) >= r.every
	r.mu.RUnlock()
	if !due {
		return
	}
	r.mu.Lock()
	if now.Sub(r.checked) < r.every {
		r.mu.Unlock()
		return
	}
	r.checked = now
	changed := false
	for name, st := range r.stamps {
		if fi, err := os.Stat(name); err != nil || fi.Size() != st.size || !fi.ModTime().Equal(st.mod) {
			changed = true
			break
		}
	}
	r.mu.Unlock()
	if !changed {
		return
	}
	if err := r.reload(); err != nil {
		r.mu.Lock()
		repeated := r.loadErr != nil && r.loadErr.Error() == err.Error()
		r.loadErr = err
		r.mu.Unlock()
		if r.logger != nil && !repeated {
			r.logger.Warn(r.what+" files changed but cannot be loaded; the previous ones stay in use", "error", err.Error())
		}
	}
}

// reload stamps the files before loading them, so a change during the load
// is seen at the next check.
func (r *Reloading[T]) reload() error {
	stamps := map[string]stamp{}
	for _, f := range r.files {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("mtls: %w", err)
		}
		stamps[f] = stamp{fi.Size(), fi.ModTime()}
	}
	v, err := r.load()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.val, r.stamps, r.loadErr = v, stamps, nil
	r.gen++
	r.checked = time.Now()
	r.mu.Unlock()
	return nil
}
