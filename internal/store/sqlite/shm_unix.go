//go:build unix

package sqlite

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// walIndexHeaderWords is the size of one copy of the WAL-index header,
// which SQLite keeps twice at the start of the database's -shm file (see
// "The WAL-Index Format" in SQLite's file format documentation): 48
// bytes, in the machine's byte order.
const walIndexHeaderWords = 12

// walIndexVersion is the header's first word in the WAL-index format this
// reading follows (WALINDEX_MAX_VERSION in SQLite's wal.c). Another
// version is not read: the cache then asks the database on every hit.
const walIndexVersion = 3007000

// commitWatch reads the WAL-index header of a database from a read-only
// shared mapping of its -shm file. Every commit to the database, by any
// connection of any process, publishes a new header (its frame count,
// frame checksum and salts change), and SQLite writes the second copy
// before the first, so two equal copies are a header not being written.
// A header read now that equals one read earlier means that nothing was
// committed in between: the read cache's answer without a query
// (sqlstore.CommitWatcher).
//
// The mapping is made while this process has connections open, and
// dropped before they close: SQLite truncates the -shm file only when no
// connection has it open, and reading a truncated mapping would fault.
type commitWatch struct {
	mu  sync.RWMutex // held for reading while the mapping is read
	mem []byte       // nil once closed
}

// watchCommits maps path's -shm file, or returns nil when that cannot be
// done (the read cache then asks the database on every hit).
func watchCommits(path string) *commitWatch {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < 2*4*walIndexHeaderWords {
		return nil
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 2*4*walIndexHeaderWords, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return &commitWatch{mem: mem}
}

// CommitStamp implements sqlstore.CommitWatcher.
func (w *commitWatch) CommitStamp() (s sqlstore.CommitStamp, ok bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.mem == nil {
		return s, false
	}
	words := (*[2 * walIndexHeaderWords]uint32)(unsafe.Pointer(&w.mem[0]))
	var second [walIndexHeaderWords]uint32
	for i := range walIndexHeaderWords {
		s[i] = atomic.LoadUint32(&words[i])
	}
	for i := range walIndexHeaderWords {
		second[i] = atomic.LoadUint32(&words[walIndexHeaderWords+i])
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], s[3])
	isInit := b[0] // byte 12 of the header
	return s, isInit != 0 && s[0] == walIndexVersion && s == second
}

// close drops the mapping; later stamps are not ok.
func (w *commitWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mem != nil {
		syscall.Munmap(w.mem)
		w.mem = nil
	}
}
