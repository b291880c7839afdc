package journal

import "os"

// A syncer makes what the writer wrote to the journal file durable: an
// fsync of the file, in this process or in a helper process (see
// fsyncHelper). Only the writer goroutine calls sync.
type syncer interface {
	sync() error
	close() error
	mode() string
}

// inProcess fsyncs from the writer goroutine.
type inProcess struct{ f *os.File }

func (s inProcess) sync() error  { return s.f.Sync() }
func (s inProcess) close() error { return nil }
func (s inProcess) mode() string { return SyncInProcess }

// The ways a journal can make its writes durable, as SyncMode names them.
const (
	SyncInProcess = "in-process"
	SyncHelper    = "helper-process"
)

// helperOff makes Open fsync in process (tests of that mode).
var helperOff bool

// newSyncer is the helper process where there is one (Linux), else
// in-process fsync; failing to start the helper falls back to it.
func newSyncer(f *os.File) syncer {
	if !helperOff {
		if h, err := startHelper(f); err == nil {
			return h
		}
	}
	return inProcess{f}
}
