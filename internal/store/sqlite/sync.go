package sqlite

import (
	"errors"
	"os"
	"path/filepath"
)

// SyncFiles makes everything committed to the database at path durable
// by flushing its files (the database, its write-ahead log if any, and
// the directory) to stable storage. Bulk loads open the store with
// Synchronous "normal", which skips the flush at each commit, and call
// SyncFiles after Close: the load is then as durable as with "full"
// before it reports success, at a fraction of the flushes. (A crash in
// the middle of a load can lose its last commits, never corrupt the
// database; the load is repeated.)
func SyncFiles(path string) error {
	var errs []error
	for _, p := range []string{path, path + "-wal", filepath.Dir(path)} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, f.Sync(), f.Close())
	}
	return errors.Join(errs...)
}
