//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrLocked reports a CA directory another process kept locked too long.
var ErrLocked = errors.New("pki: the CA directory is locked by another process (remove its .lock file if none runs)")

// lockDir creates dir's lock file exclusively, waiting up to ten seconds
// for another holder; where flock is missing, a crashed process leaves
// the file behind and ErrLocked says so.
func lockDir(dir string) (unlock func(), err error) {
	name := filepath.Join(dir, lockFile)
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("pki: locking %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			return nil, ErrLocked
		}
		time.Sleep(20 * time.Millisecond)
	}
}
