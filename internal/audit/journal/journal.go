// Package journal owns the local durability point of the audit trail: an
// append-only file of opaque entries, DIR/journal.log, in which an entry is
// acknowledged only once it is on stable storage. It must never acknowledge
// an entry that a crash could take back, and never silently drop an
// acknowledged one.
//
// # Guarantees
//
// When [Journal.Append] returns a nil error, the entry has been written and
// the file fsync'd; after any crash, [Open] returns it again with the same
// sequence number. Sequence numbers are 0, 1, 2, … in file order, with no
// gaps. [Journal.Read] and [Journal.Len] see only durable entries. If a
// write or an fsync fails, the journal fails closed: every Append of the
// failing batch and every later one returns an error, since after a failed
// fsync the kernel may have dropped the dirty pages and a retry could
// acknowledge data that is not on disk. Reopening the journal recovers.
//
// # Frame format
//
// The file is a sequence of frames, with no file header:
//
//	u32 length   payload length in bytes, 1 ≤ length ≤ 16 MiB, little endian
//	u32 crc      CRC-32C (Castagnoli) of the payload, little endian
//	payload
//
// # Group commit
//
// An fsync costs about as much for one entry as for a thousand, and every
// request waits on one. So Append hands its frame to a single writer
// goroutine and waits; the writer takes everything queued (up to 4 MiB or
// 1024 entries), writes it with one write call, fsyncs once, and releases
// all those waiters. There are no timers: a lone Append is written at once,
// and under load batches form by themselves while the previous fsync runs
// (a small batch first yields the processor twice, so that requests
// already running can join it).
//
// # Torn tails
//
// A crash during a write can leave a torn tail: a frame cut short by the end
// of the file, or an extension filled with zero bytes. Such a tail can only
// hold entries whose Append never returned, so Open truncates it away. Any
// other damage — a complete frame whose checksum fails, or an impossible
// length followed by data — may hide acknowledged entries, so Open refuses
// the file with [ErrCorrupt] rather than guess. (One case cannot be told
// apart: a damaged length field in the last frame that points past the end
// of the file looks exactly like a torn write, and is truncated.)
package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

// Errors returned by the journal; compare with errors.Is.
var (
	// ErrClosed is returned by Append and Read after Close.
	ErrClosed = errors.New("journal: closed")
	// ErrTooLarge is returned by Append for an entry over 16 MiB.
	ErrTooLarge = errors.New("journal: entry too large")
	// ErrCorrupt is returned by Open and Read when the file is damaged
	// somewhere other than a torn tail.
	ErrCorrupt = errors.New("journal: corrupt")
)

// errEmpty is returned by Append for an empty entry: a zero-length frame
// would be indistinguishable from a zero-filled torn tail.
var errEmpty = errors.New("journal: empty entry")

const (
	fileName    = "journal.log"
	headerSize  = 8
	maxEntry    = 16 << 20 // largest payload
	batchBytes  = 4 << 20  // a batch stops growing at this many bytes…
	batchFrames = 1024     // …or this many frames
	indexEvery  = 1024     // Read's sparse index has the offset of every n-th entry
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// A Journal is an append-only file of entries. Its methods are safe for
// concurrent use.
type Journal struct {
	f     *os.File // write handle; used only by the writer goroutine (and Close)
	disk  syncer   // fsyncs f (see fsyncHelper)
	sizes []int64  // the writer's scratch: frame sizes of the batch it commits
	rf    *os.File // read handle, for Read
	reqs  chan *request
	done  chan struct{} // closed when the writer goroutine has exited

	sendMu sync.RWMutex // held shared while sending on reqs; exclusively to close it
	closed bool         // guarded by sendMu

	frames   framePool
	requests sync.Pool // of *request

	commits   atomic.Uint64 // group commits made durable (write and fsync)
	readBytes atomic.Uint64 // bytes read by Read, Scan and ScanFrames

	mu        sync.Mutex // guards the durable state below
	durOff    int64      // bytes of the file that are fsync'd and acknowledged
	durN      uint64     // entries in durOff
	index     []int64    // index[k] is the offset of entry k*indexEvery
	parked    [parkSlots]parked
	parkClock uint64
	failed    error // sticky write/fsync failure
	rClosed   bool  // Read refuses after Close
}

type request struct {
	frame *frameBuf
	res   chan result // buffered, so the writer never blocks on it
}

// frameBuf is one entry's frame (header and payload) on its way to the
// writer.
type frameBuf struct{ b []byte }

// framePool recycles frames; frames of large entries are not kept.
type framePool struct{ pool sync.Pool }

// maxPooledFrame is the largest frame a framePool keeps.
const maxPooledFrame = 64 << 10

func (p *framePool) get(n int) *frameBuf {
	f, _ := p.pool.Get().(*frameBuf)
	if f == nil || cap(f.b) < n {
		return &frameBuf{b: make([]byte, n, max(n, 4096))}
	}
	f.b = f.b[:n]
	return f
}

func (p *framePool) put(f *frameBuf) {
	if cap(f.b) <= maxPooledFrame {
		p.pool.Put(f)
	}
}

type result struct {
	seq uint64
	err error
}

// Open opens the journal in dir, creating dir (0700) and the file (0600) if
// they are missing. It scans the whole file, truncating a torn tail (see the
// package comment); damage elsewhere makes it fail with [ErrCorrupt].
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	name := filepath.Join(dir, fileName)
	_, statErr := os.Stat(name)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// Make the new file's directory entry durable too.
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	j, err := open(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

func open(f *os.File) (*Journal, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	end, n, index, err := scan(f, fi.Size(), nil)
	if err != nil {
		return nil, err
	}
	if end < fi.Size() {
		if err := f.Truncate(end); err != nil {
			return nil, fmt.Errorf("journal: truncating torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("journal: truncating torn tail: %w", err)
		}
	}
	rf, err := os.Open(f.Name())
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{
		f:      f,
		disk:   newSyncer(f),
		rf:     rf,
		reqs:   make(chan *request, batchFrames),
		done:   make(chan struct{}),
		durOff: end,
		durN:   n,
		index:  index,
	}
	go j.write()
	return j, nil
}

// scan reads the frames of a file of the given size and returns the end of
// the last good frame, the number of good frames and the sparse index. A
// torn tail is left out of end; other damage is ErrCorrupt. If visit is not
// nil it is called with each good frame's payload, valid only during the
// call; its error stops the scan and is returned as is.
func scan(r io.ReaderAt, size int64, visit func(seq uint64, payload []byte) error) (end int64, n uint64, index []int64, err error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<20)
	var hdr [headerSize]byte
	var payload []byte
	for end < size {
		rem := size - end
		if rem < headerSize {
			return end, n, index, nil // a header cut short by the end of the file
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return 0, 0, nil, fmt.Errorf("journal: %w", err)
		}
		length := int64(binary.LittleEndian.Uint32(hdr[0:]))
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if length == 0 || length > maxEntry {
			if err := torn(r, end, size); err != nil {
				return 0, 0, nil, fmt.Errorf("%w: impossible length %d at offset %d", ErrCorrupt, length, end)
			}
			return end, n, index, nil
		}
		if headerSize+length > rem {
			return end, n, index, nil // cut short by the end of the file
		}
		if int64(cap(payload)) < length {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if _, err := io.ReadFull(br, payload); err != nil {
			return 0, 0, nil, fmt.Errorf("journal: %w", err)
		}
		if crc32.Checksum(payload, castagnoli) != sum {
			if err := torn(r, end, size); err != nil {
				return 0, 0, nil, fmt.Errorf("%w: checksum mismatch in entry %d at offset %d", ErrCorrupt, n, end)
			}
			return end, n, index, nil
		}
		if visit != nil {
			if err := visit(n, payload); err != nil {
				return 0, 0, nil, err
			}
		}
		if n%indexEvery == 0 {
			index = append(index, end)
		}
		end += headerSize + length
		n++
	}
	return end, n, index, nil
}

// torn returns nil if the bytes of r from off to size are all zero (a
// zero-filled extension left by a crash), and ErrCorrupt otherwise.
func torn(r io.ReaderAt, off, size int64) error {
	buf := make([]byte, 64<<10)
	for off < size {
		k, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, c := range buf[:k] {
			if c != 0 {
				return ErrCorrupt
			}
		}
		off += int64(k)
		if err != nil && off < size {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: syncing %s: %w", dir, err)
	}
	return nil
}

// Append adds entry to the journal and returns its sequence number once it
// is on stable storage. Entries are at most 16 MiB and not empty. If ctx is
// done first, Append returns ctx.Err(); the entry may still be written.
// Append does not retain entry.
func (j *Journal) Append(ctx context.Context, entry []byte) (uint64, error) {
	switch {
	case len(entry) > maxEntry:
		return 0, ErrTooLarge
	case len(entry) == 0:
		return 0, errEmpty
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := j.failure(); err != nil {
		return 0, err
	}
	// Build the frame here, in the caller's goroutine, so checksums are
	// computed in parallel and the writer only copies. Frames and
	// requests are recycled: the writer returns a frame once it has
	// copied it into its batch, and a request comes back here once its
	// answer was taken (never when ctx ended first: the writer still
	// answers it).
	frame := j.frames.get(headerSize + len(entry))
	binary.LittleEndian.PutUint32(frame.b[0:], uint32(len(entry)))
	binary.LittleEndian.PutUint32(frame.b[4:], crc32.Checksum(entry, castagnoli))
	copy(frame.b[headerSize:], entry)
	req, _ := j.requests.Get().(*request)
	if req == nil {
		req = &request{res: make(chan result, 1)}
	}
	req.frame = frame

	j.sendMu.RLock()
	if j.closed {
		j.sendMu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case j.reqs <- req:
	case <-ctx.Done():
		j.sendMu.RUnlock()
		return 0, ctx.Err()
	}
	j.sendMu.RUnlock()

	select {
	case r := <-req.res:
		j.requests.Put(req)
		return r.seq, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (j *Journal) failure() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// write is the writer goroutine: it runs until reqs is closed, committing
// one batch per write call and fsync.
func (j *Journal) write() {
	defer close(j.done)
	var (
		batch   []*request
		buf     []byte
		pending *request // taken from reqs but did not fit the last batch
	)
	for {
		batch, buf = batch[:0], buf[:0]
		if pending != nil {
			batch, buf = append(batch, pending), append(buf, pending.frame.b...)
			pending = nil
		} else {
			r, ok := <-j.reqs
			if !ok {
				return
			}
			batch, buf = append(batch, r), append(buf, r.frame.b...)
		}
		// A small batch yields the processor (at most twice) before it
		// is written: the requests that are running rather than waiting
		// for a CPU then join this fsync instead of paying for the next.
		// Nothing waits on a timer, so a lone Append is still written at
		// once. At concurrency 32 on two CPUs this took audited reads
		// from 46–49 % to 50–51 % of unaudited ones (docs/PERFORMANCE.md).
		yields := 0
	fill:
		for len(batch) < batchFrames {
			select {
			case r, ok := <-j.reqs:
				if !ok {
					break fill
				}
				if len(buf)+len(r.frame.b) > batchBytes {
					pending = r
					break fill
				}
				batch, buf = append(batch, r), append(buf, r.frame.b...)
			default:
				if yields < 2 && len(batch) < 16 {
					yields++
					runtime.Gosched()
					continue
				}
				break fill
			}
		}
		j.commit(batch, buf)
		if cap(buf) > 2*batchBytes {
			buf = nil // do not keep a buffer grown by a huge entry
		}
		clear(batch[:cap(batch)])
	}
}

// commit writes and fsyncs one batch and answers its waiters.
func (j *Journal) commit(batch []*request, buf []byte) {
	// buf holds a copy of every frame: they go back to the pool, their
	// lengths kept for the offsets below.
	sizes := j.sizes[:0]
	for _, r := range batch {
		sizes = append(sizes, int64(len(r.frame.b)))
		j.frames.put(r.frame)
		r.frame = nil
	}
	j.sizes = sizes
	j.mu.Lock()
	off, seq, failed := j.durOff, j.durN, j.failed
	j.mu.Unlock()
	if failed != nil {
		for _, r := range batch {
			r.res <- result{err: failed}
		}
		return
	}
	_, err := j.f.WriteAt(buf, off)
	if err == nil {
		err = j.disk.sync()
	}
	j.mu.Lock()
	if err != nil {
		// Fail closed: nothing of this batch is acknowledged, and no later
		// batch may be, since a failed fsync can lose pages silently.
		j.failed = fmt.Errorf("journal: write failed, refusing appends until reopened: %w", err)
		failed = j.failed
	} else {
		for i, n := range sizes {
			if (seq+uint64(i))%indexEvery == 0 {
				j.index = append(j.index, off)
			}
			off += n
		}
		j.durOff, j.durN = off, seq+uint64(len(batch))
		j.commits.Add(1)
	}
	j.mu.Unlock()
	for i, r := range batch {
		if failed != nil {
			r.res <- result{err: failed}
		} else {
			r.res <- result{seq: seq + uint64(i)}
		}
	}
}

// Commits returns how many group commits (one write and one fsync each)
// the journal has made durable since it was opened.
func (j *Journal) Commits() uint64 { return j.commits.Load() }

// ReadBytes returns how many bytes of the file Read, Scan and ScanFrames
// have read since the journal was opened: against the journal's size, how
// much its readers read twice.
func (j *Journal) ReadBytes() uint64 { return j.readBytes.Load() }

// Len returns the number of durable entries.
func (j *Journal) Len() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durN
}

// Read calls fn for each durable entry with sequence number from or later,
// in order, stopping at the entries durable when Read was called. It stops
// at the first error from fn and returns it. The entry passed to fn is fn's
// to keep. Read may run concurrently with Append; fn must not call Close.
func (j *Journal) Read(from uint64, fn func(seq uint64, entry []byte) error) error {
	return j.read(from, func(seq uint64, _ int64, entry []byte) error { return fn(seq, entry) }, true)
}

// ScanFrames is Scan that also passes each entry's offset in the file,
// where ReadFrame finds it again: for a reader that keeps where the
// entries are rather than copies of them (the audit trail's index). As
// with Scan, entry is valid only while fn runs.
func (j *Journal) ScanFrames(from uint64, fn func(seq uint64, off int64, entry []byte) error) error {
	return j.read(from, fn, false)
}

// File is the path of the journal file in dir, for ReadFrame.
func File(dir string) string { return filepath.Join(dir, fileName) }

// ReadFrame reads the entry whose frame begins at off in a journal file,
// checking its length and checksum. An offset that is not where a
// frame begins is found out by the checksum (or an impossible length),
// as ErrCorrupt, short of a 1 in 2³² chance.
func ReadFrame(r io.ReaderAt, off int64) ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := r.ReadAt(hdr[:], off); err != nil {
		return nil, frameErr(err, off)
	}
	length := binary.LittleEndian.Uint32(hdr[0:])
	if length == 0 || length > maxEntry {
		return nil, fmt.Errorf("%w: impossible length %d at offset %d", ErrCorrupt, length, off)
	}
	entry := make([]byte, length)
	if _, err := r.ReadAt(entry, off+headerSize); err != nil {
		return nil, frameErr(err, off)
	}
	if crc32.Checksum(entry, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch at offset %d", ErrCorrupt, off)
	}
	return entry, nil
}

func frameErr(err error, off int64) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: no frame at offset %d", ErrCorrupt, off)
	}
	return fmt.Errorf("journal: %w", err)
}

// Scan is Read for callers that look at each entry only while fn runs
// (the sequencer takes 72 bytes of each): the entry passed to fn is valid
// only until fn returns, and its buffer is reused for the next one, so
// a scan allocates nothing per entry. Checksums are verified as by Read.
func (j *Journal) Scan(from uint64, fn func(seq uint64, entry []byte) error) error {
	return j.read(from, func(seq uint64, _ int64, entry []byte) error { return fn(seq, entry) }, false)
}

// read is Read (keep: every entry in its own buffer) or Scan.
// readers are buffered readers of read kept between calls: the sequencer
// and the indexer each read every few hundred milliseconds, and a fresh
// 256 kB buffer each time was most of what they allocated. A few are kept
// for good (a sync.Pool empties at every collection, which under load is
// several times a second).
var readers = make(chan *bufio.Reader, 4)

// readBuffer is the size of read's buffered readers.
const readBuffer = 256 << 10

// parkSlots is how many stopped reads the journal keeps (see parked).
const parkSlots = 4

// parked is a read that stopped (its fn returned an error, or it reached
// the durable end) with its buffered reader at the frame of entry seq,
// which begins at off. The next read from seq takes it and goes on where
// it stopped: the indexer and the sequencer read the journal in batches,
// each batch from where the last one ended. Before, each read began
// again at the sparse index's entry at or before from (indexEvery
// entries apart), reading and throwing away half of that on average, and
// read a whole buffer ahead that the batch did not use: under the read
// load (bench/audit.sh), 6.5 times the journal's bytes, against twice
// (the sequencer and the indexer once each) now. A read from elsewhere still
// starts at the parked position closest below from, if nearer than the
// index's. Positions stay valid while the journal is open: its durable
// prefix only grows.
type parked struct {
	seq  uint64
	off  int64
	br   *bufio.Reader // nil: the slot is free
	src  *closeGuardReader
	used uint64 // when it was parked (Journal.parkClock)
}

func (j *Journal) read(from uint64, fn func(seq uint64, off int64, entry []byte) error, keep bool) error {
	j.mu.Lock()
	if j.rClosed {
		j.mu.Unlock()
		return ErrClosed
	}
	end, n := j.durOff, j.durN
	if from >= n {
		j.mu.Unlock()
		return nil
	}
	var p parked
	for i := range j.parked {
		if j.parked[i].br != nil && j.parked[i].seq == from {
			p, j.parked[i] = j.parked[i], parked{}
			break
		}
	}
	if p.br == nil {
		k := from / indexEvery
		p.off, p.seq = j.index[k], k*indexEvery
		for _, q := range j.parked {
			if q.br != nil && q.seq <= from && q.seq > p.seq {
				p.off, p.seq = q.off, q.seq
			}
		}
	}
	j.mu.Unlock()

	br, src, off, seq := p.br, p.src, p.off, p.seq
	if br != nil {
		// The parked reader's buffer holds bytes of the durable prefix
		// from off on; more are now durable.
		src.end = end
	} else {
		src = &closeGuardReader{j: j, off: off, end: end}
		select {
		case br = <-readers:
			br.Reset(src)
		default:
			br = bufio.NewReaderSize(src, readBuffer)
		}
	}
	// parkable: the read ends at the frame of entry seq, at off, with br
	// holding it (or at the durable end), so the next read from seq can
	// go on with br.
	parkable := false
	defer func() {
		if parkable {
			j.park(parked{seq: seq, off: off, br: br, src: src})
			return
		}
		release(br)
	}()
	var scratch []byte
	for ; seq < n; seq++ {
		hdr, err := br.Peek(headerSize)
		if err != nil {
			return readErr(err)
		}
		length := binary.LittleEndian.Uint32(hdr[0:])
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if length == 0 || length > maxEntry {
			return fmt.Errorf("%w: impossible length %d in entry %d", ErrCorrupt, length, seq)
		}
		size := headerSize + int(length)
		if seq < from {
			if _, err := br.Discard(size); err != nil {
				return readErr(err)
			}
			off += int64(size)
			continue
		}
		// A frame that fits the buffer is read in place, and left there
		// until fn has taken it, so that a read stopped at it can be
		// parked before it; a larger one is copied out.
		var entry []byte
		inPlace := size <= br.Size()
		if inPlace {
			b, err := br.Peek(size)
			if err != nil {
				return readErr(err)
			}
			entry = b[headerSize:]
			if keep {
				entry = bytes.Clone(entry)
			}
		} else {
			if _, err := br.Discard(headerSize); err != nil {
				return readErr(err)
			}
			if keep {
				entry = make([]byte, length)
			} else {
				if uint32(cap(scratch)) < length {
					scratch = make([]byte, length)
				}
				entry = scratch[:length]
			}
			if _, err := io.ReadFull(br, entry); err != nil {
				return readErr(err)
			}
		}
		if crc32.Checksum(entry, castagnoli) != sum {
			return fmt.Errorf("%w: checksum mismatch in entry %d", ErrCorrupt, seq)
		}
		if err := fn(seq, off, entry); err != nil {
			parkable = inPlace
			return err
		}
		if inPlace {
			if _, err := br.Discard(size); err != nil {
				return readErr(err)
			}
		}
		off += int64(size)
	}
	parkable = true
	return nil
}

// park keeps a stopped read for the next read from its position, in a
// free slot or else in place of the one parked longest ago.
func (j *Journal) park(p parked) {
	j.mu.Lock()
	if j.rClosed {
		j.mu.Unlock()
		release(p.br)
		return
	}
	j.parkClock++
	p.used = j.parkClock
	slot := 0
	for i, q := range j.parked {
		if q.br == nil {
			slot = i
			break
		}
		if q.used < j.parked[slot].used {
			slot = i
		}
	}
	old := j.parked[slot]
	j.parked[slot] = p
	j.mu.Unlock()
	if old.br != nil {
		release(old.br)
	}
}

// release returns a reader to readers (or drops it, if they are full).
func release(br *bufio.Reader) {
	br.Reset(nil)
	select {
	case readers <- br:
	default:
	}
}

func readErr(err error) error {
	if errors.Is(err, ErrClosed) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: durable prefix shrank underneath", ErrCorrupt)
	}
	return fmt.Errorf("journal: %w", err)
}

// closeGuardReader reads the durable prefix [off, end) through the read
// handle, refusing once the journal is closed.
type closeGuardReader struct {
	j        *Journal
	off, end int64
}

func (r *closeGuardReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.end-r.off)]
	r.j.mu.Lock()
	closed := r.j.rClosed
	r.j.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	k, err := r.j.rf.ReadAt(p, r.off)
	r.off += int64(k)
	r.j.readBytes.Add(uint64(k))
	if err == io.EOF && k > 0 {
		err = nil
	}
	if err != nil && errors.Is(err, os.ErrClosed) {
		err = ErrClosed
	}
	return k, err
}

// Close stops accepting appends, waits for those already queued to be
// committed, and closes the file. Reads in progress fail with ErrClosed.
func (j *Journal) Close() error {
	j.sendMu.Lock()
	if j.closed {
		j.sendMu.Unlock()
		return ErrClosed
	}
	j.closed = true
	close(j.reqs)
	j.sendMu.Unlock()
	<-j.done

	j.mu.Lock()
	j.rClosed = true
	stopped := j.parked
	j.parked = [parkSlots]parked{}
	j.mu.Unlock()
	for _, p := range stopped {
		if p.br != nil {
			release(p.br)
		}
	}
	return errors.Join(j.disk.close(), j.f.Close(), j.rf.Close())
}

// SyncMode says how the journal makes its writes durable: SyncHelper
// (an fsync helper process, the default on Linux) or SyncInProcess.
func (j *Journal) SyncMode() string { return j.disk.mode() }
