package audit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenfhir/warden/internal/reqid"
	"github.com/wardenfhir/warden/internal/store"
)

// Journal is the local, group-committed, append-only journal that is the
// durability point of a JournaledPipeline (internal/audit/journal).
type Journal interface {
	// Append returns once entry is on stable storage, with its sequence
	// number (0, 1, 2, … in journal order).
	// Append MUST NOT retain entry after it returns (the caller recycles
	// its buffer).
	Append(ctx context.Context, entry []byte) (uint64, error)
	// Scan is Read with the entry valid only while fn runs.
	Scan(from uint64, fn func(seq uint64, entry []byte) error) error
	JournalReader
}

// JournalReader is the journal as its readers see it: the sequencer, the
// indexer, the exporter (a *journal.Journal, or a *journal.Follower beside
// a running server).
type JournalReader interface {
	// Read calls fn for the durable entries from seq on, in order.
	Read(from uint64, fn func(seq uint64, entry []byte) error) error
	// Len is the number of durable entries.
	Len() uint64
}

// JournalEntry is one event as the journal keeps it: everything needed
// to sequence its commitment later and to prove it to an auditor.
//
// Its encoding is binary, so that neither the request path nor the
// sequencer pays for JSON: leaf (32 bytes) ‖ nonce (32) ‖ time (Unix ns,
// 8, big endian) ‖ id (1-byte length, bytes) ‖ patient count (2) and each
// patient (1-byte length, bytes) ‖ the canonical event (the rest). The
// sequencer needs only the first 32 bytes.
type JournalEntry struct {
	ID        string
	Leaf      []byte
	Nonce     [32]byte
	Patients  []string
	Time      time.Time
	Canonical []byte
}

// ErrBadEntry is a journal entry that does not decode.
var ErrBadEntry = errors.New("audit: malformed journal entry")

// Encode is the binary form of e (see JournalEntry).
func (e JournalEntry) Encode() ([]byte, error) {
	if len(e.Leaf) != LeafSize {
		return nil, ErrBadEntry
	}
	n := 32 + 32 + 8 + 1 + len(e.ID) + 2 + len(e.Canonical)
	for _, p := range e.Patients {
		n += 1 + len(p)
	}
	b, err := appendEntryHead(make([]byte, 0, n), e.Leaf, e.Nonce, e.Time, e.ID, e.Patients)
	if err != nil {
		return nil, err
	}
	return append(b, e.Canonical...), nil
}

// appendEntryHead appends to dst everything of a JournalEntry before its
// canonical event: leaf ‖ nonce ‖ time ‖ id ‖ patients. A nil leaf
// leaves 32 zero bytes in its place, for the caller to fill once the
// canonical event that follows is known.
func appendEntryHead(dst, leaf []byte, nonce [32]byte, at time.Time, id string, patients []string) ([]byte, error) {
	if leaf != nil && len(leaf) != LeafSize || len(id) > 255 || len(patients) > 65535 {
		return dst, ErrBadEntry
	}
	for _, p := range patients {
		if len(p) > 255 {
			return dst, ErrBadEntry
		}
	}
	if leaf == nil {
		dst = append(dst, make([]byte, LeafSize)...)
	} else {
		dst = append(dst, leaf...)
	}
	dst = append(dst, nonce[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at.UnixNano()))
	dst = append(dst, byte(len(id)))
	dst = append(dst, id...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(patients)))
	for _, p := range patients {
		dst = append(dst, byte(len(p)))
		dst = append(dst, p...)
	}
	return dst, nil
}

// DecodeJournalEntry reads the binary form of a JournalEntry.
func DecodeJournalEntry(b []byte) (JournalEntry, error) {
	var e JournalEntry
	if len(b) < 32+32+8+1+2 {
		return e, ErrBadEntry
	}
	e.Leaf = b[:32]
	copy(e.Nonce[:], b[32:64])
	e.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[64:72]))).UTC()
	rest := b[72:]
	short := func(n int) bool { return len(rest) < n }
	if short(1) || short(1+int(rest[0])) {
		return e, ErrBadEntry
	}
	e.ID, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	if short(2) {
		return e, ErrBadEntry
	}
	count := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	for range count {
		if short(1) || short(1+int(rest[0])) {
			return e, ErrBadEntry
		}
		e.Patients, rest = append(e.Patients, string(rest[1:1+int(rest[0])])), rest[1+int(rest[0]):]
	}
	e.Canonical = rest
	return e, nil
}

// Records kinds of a JournaledPipeline.
const (
	kindSequenced = "audit-sequenced" // key "next": the next journal entry to sequence
	kindLeafIndex = "audit-leaves"    // key IndexKey(first journal seq of a batch): the batch's leaf indexes
)

// JournaledPipeline is the Sink whose durability point is the local
// journal: Append returns once the event and its commitment are fsync'd
// there (one fsync for all requests in flight), so a response waits for
// one local write, not for the transparency log. Run, in the background,
// appends the commitments to the transparency log in large concurrent
// batches, in journal order, and records each entry's leaf index; the
// issue asks for every event to reach the log within 1 s.
//
// A crash after the log sequenced some leaves of a batch but before Run
// recorded their indexes makes Run append them again on restart: the log
// then holds a commitment twice; the recorded index is the later one, and
// verification accepts an earlier copy of a recorded leaf as a duplicate,
// never as an unknown leaf.
type JournaledPipeline struct {
	j     Journal
	log   Log
	marks store.Records
	base  string
	kick  chan struct{}
	// sequenced is the next journal entry to sequence, as Run last knew it.
	sequenced atomic.Uint64
	// logNext is the log index after the last leaf Run appended (0
	// until its first round): where the log's open bundle ends.
	logNext uint64

	observe func(lag time.Duration) // set by ObserveLag before Run

	entries bufferPool // Append's journal entries

	mu      sync.Mutex
	lastErr error // of Run's last round
}

// NewJournaledPipeline returns the pipeline; call Run to sequence.
func NewJournaledPipeline(j Journal, log Log, marks store.Records, base string) (*JournaledPipeline, error) {
	if j == nil || log == nil || marks == nil {
		return nil, errors.New("audit: journaled pipeline needs a journal, a log and a record store")
	}
	return &JournaledPipeline{j: j, log: log, marks: marks, base: base, kick: make(chan struct{}, 1)}, nil
}

// ErrJournalBehind is a journal that holds fewer entries than the trail
// has already used (sequenced into the log, or indexed): it was
// truncated, replaced or lost. Appending to it would journal events the
// sequencer never logs (it resumes at its recorded position), and the
// index would name entries it no longer holds; the trail refuses to
// start until the journal is restored.
var ErrJournalBehind = errors.New("audit: the journal is behind the trail")

// CheckJournal returns ErrJournalBehind when the journal holds fewer
// entries than have been sequenced into the log.
func (p *JournaledPipeline) CheckJournal(ctx context.Context) error {
	next, err := p.next(ctx)
	if err != nil {
		return err
	}
	if n := p.j.Len(); next > n {
		return fmt.Errorf("%w: it holds %d entries, and %d were sequenced into the log", ErrJournalBehind, n, next)
	}
	return nil
}

// Append implements Sink. The Receipt carries the event id; its leaf
// index is known once Run has sequenced it (Index is 0 until then).
//
// The journal entry is written in one recycled buffer: its head with the
// leaf left blank, the canonical event after it, then the leaf (the
// commitment to that event under a fresh nonce) in its place. The
// journal copies the entry before Append returns, so the buffer goes
// back to the pool.
func (p *JournaledPipeline) Append(ctx context.Context, r Record) (Receipt, error) {
	if err := checkRecord(r); err != nil {
		return Receipt{}, err
	}
	patients, err := patientIDs(r.Patients)
	if err != nil {
		return Receipt{}, err
	}
	// One read of the system's randomness for the event id (128 bits:
	// the request's time, so that ids sort by time and the searchable
	// copy's index of them grows at its end, and 80 random bits) and the
	// commitment's nonce (256 bits).
	var random [16 + 32]byte
	if _, err := rand.Read(random[:]); err != nil {
		return Receipt{}, fmt.Errorf("audit: reading a nonce: %w", err)
	}
	reqid.Stamp(random[:], r.Time)
	id, nonce := hex.EncodeToString(random[:16]), [32]byte(random[16:])
	buf := p.entries.get()
	defer p.entries.put(buf)
	entry, err := appendEntryHead((*buf)[:0], nil, nonce, r.Time.UTC(), id, patients)
	if err != nil {
		return Receipt{}, err
	}
	head := len(entry)
	if entry, err = appendEvent(entry, r, p.base, id, patients); err != nil {
		return Receipt{}, err
	}
	*buf = entry
	putLeafHash(entry[:0], nonce, entry[head:])
	seq, err := p.j.Append(ctx, entry)
	if err != nil {
		return Receipt{}, fmt.Errorf("%w: journal: %w", ErrStore, err)
	}
	// Wake the sequencer only for a full batch: small log batches rewrite
	// partial tiles and cost far more per event than full ones, and the
	// interval alone keeps every event's wait for the log well under 1 s.
	if seq+1 >= p.sequenced.Load()+sequenceBatch {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return Receipt{EventID: id}, nil
}

// sequenceBatch bounds how many commitments Run appends at once.
const sequenceBatch = 1024

// Run sequences journal entries into the log until ctx ends: at once when
// Append kicks it, and every interval anyway. It returns ctx's error, or
// the first error that stops sequencing (the journal keeps the entries;
// a restart resumes).
func (p *JournaledPipeline) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := p.sequence(ctx); ctx.Err() == nil {
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.kick:
		case <-t.C:
		}
	}
}

// sequence appends every durable, not yet sequenced entry to the log.
func (p *JournaledPipeline) sequence(ctx context.Context) error {
	next, err := p.next(ctx)
	if err != nil {
		return err
	}
	p.sequenced.Store(next)
	for next < p.j.Len() {
		// How many to append is known before reading them: only those
		// are read, so that the next round's read goes on from where
		// this one stopped (the journal keeps a stopped read for that).
		pending := int(min(p.j.Len()-next, sequenceBatch))
		take := p.roundSize(pending)
		var batch []sequencing
		var seqs []uint64
		err := p.j.Scan(next, func(seq uint64, entry []byte) error {
			if len(batch) == take {
				return errStopRead
			}
			if len(entry) < 72 {
				return fmt.Errorf("audit: journal entry %d: %w", seq, ErrBadEntry)
			}
			// Only the leaf and the time: no need to decode the rest.
			batch = append(batch, sequencing{leaf: slices.Clone(entry[:32]), at: int64(binary.BigEndian.Uint64(entry[64:72]))})
			seqs = append(seqs, seq)
			return nil
		})
		if err != nil && !errors.Is(err, errStopRead) {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		if len(batch) != take {
			return fmt.Errorf("audit: journal gave %d entries from %d, want %d", len(batch), next, take)
		}
		leaves := make([][]byte, len(batch))
		for i := range batch {
			leaves[i] = batch[i].leaf
		}
		// The whole batch in one call: Tessera batches it as it comes,
		// without a goroutine per leaf.
		indexes, err := p.log.AppendBatch(ctx, leaves)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrLog, err)
		}
		if len(indexes) != len(batch) {
			return fmt.Errorf("%w: %d indexes for %d leaves", ErrLog, len(indexes), len(batch))
		}
		// One record per batch (not per event): the request path's
		// store sees one small write per few hundred events.
		recorded, _ := json.Marshal(leafBatch{First: seqs[0], Indexes: indexes})
		if err := p.marks.PutRecord(ctx, store.Record{Kind: kindLeafIndex, Key: IndexKey(seqs[0]), Value: recorded}); err != nil {
			return err
		}
		next = seqs[len(seqs)-1] + 1
		if err := p.marks.PutRecord(ctx, store.Record{Kind: kindSequenced, Key: "next", Value: strconv.AppendUint(nil, next, 10)}); err != nil {
			return err
		}
		p.sequenced.Store(next)
		p.logNext = indexes[len(indexes)-1] + 1
		if p.observe != nil {
			now := time.Now()
			for i := range batch {
				p.observe(now.Sub(time.Unix(0, batch[i].at)))
			}
		}
		// Less than a bundle left behind by whole-bundle rounds: it
		// waits for the next kick or tick (at most one interval), when
		// more may have come to fill a bundle.
		if take < pending && p.j.Len()-next < logBundle {
			return nil
		}
	}
	return nil
}

// logBundle is the width of a transparency log entry bundle and tile
// (c2sp.org/tlog-tiles): the log writes a bundle and a tile file, each
// with an fsync and a directory sync, for every batch that touches them,
// so a batch that straddles a bundle boundary costs twice one that ends
// on it, and a partial bundle is written again by every later batch
// until it is full.
const logBundle = 256

// roundSize is how many of the read commitments pending (in journal
// order) to append in this round, so that log batches under load fill
// whole bundles: all of them while they do not reach the end of the
// open bundle (a partial batch, as at low load, where every event must
// still reach the log within an interval); else just enough to close
// the open bundle, on its own; else whole bundles. Until the first
// round has told the pipeline where the log ends, all of them.
func (p *JournaledPipeline) roundSize(pending int) int {
	if p.logNext == 0 {
		return pending
	}
	room := logBundle - int(p.logNext%logBundle)
	switch {
	case pending < room:
		return pending
	case room < logBundle:
		return room
	default:
		return pending / logBundle * logBundle
	}
}

var errStopRead = errors.New("audit: batch full")

// sequencing is what the sequencer needs of a journal entry.
type sequencing struct {
	leaf []byte
	at   int64 // Unix ns
}

func (p *JournaledPipeline) next(ctx context.Context) (uint64, error) {
	r, err := p.marks.GetRecord(ctx, kindSequenced, "next")
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(r.Value), 10, 64)
}

// Sequenced reports how many journal entries have reached the log.
func (p *JournaledPipeline) Sequenced(ctx context.Context) (uint64, error) { return p.next(ctx) }

// leafBatch is the leaf indexes of journal entries First, First+1, ….
type leafBatch struct {
	First   uint64   `json:"first"`
	Indexes []uint64 `json:"indexes"`
}

// LeafIndexes returns the log index of every sequenced journal entry, in
// journal order (for verification and proofs).
func (p *JournaledPipeline) LeafIndexes(ctx context.Context) ([]uint64, error) {
	return LeafIndexes(ctx, p.marks)
}

// RecordLister is the part of a store LeafIndexes reads.
type RecordLister interface {
	ListRecords(ctx context.Context, kind string) ([]store.Record, error)
}

// LeafIndexes reads the leaf indexes a JournaledPipeline recorded in r:
// the log index of journal entries 0, 1, …; a batch sequenced again after
// a crash replaces the indexes recorded before it. Offline verifiers read
// them this way, never writing.
func LeafIndexes(ctx context.Context, r RecordLister) ([]uint64, error) {
	list, err := r.ListRecords(ctx, kindLeafIndex)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, rec := range list {
		var b leafBatch
		if err := json.Unmarshal(rec.Value, &b); err != nil {
			return nil, fmt.Errorf("audit: leaf index record %s: %w", rec.Key, err)
		}
		if b.First < uint64(len(out)) {
			out = out[:b.First] // a batch sequenced again after a crash: the later indexes count
		}
		if b.First != uint64(len(out)) {
			return nil, fmt.Errorf("audit: leaf indexes missing before journal entry %d", b.First)
		}
		out = append(out, b.Indexes...)
	}
	return out, nil
}

// ObserveLag makes Run report, for every event it sequences, how long
// after its request the event reached the log (call before Run).
func (p *JournaledPipeline) ObserveLag(fn func(lag time.Duration)) { p.observe = fn }

// Err returns the error of Run's last round (nil if it succeeded): the
// log refused, or the leaf indexes could not be recorded. The journal
// keeps the entries meanwhile.
func (p *JournaledPipeline) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// IndexKey is the record key of journal entry i: zero-padded, so that
// listings come in journal order.
func IndexKey(i uint64) string { return fmt.Sprintf("%020d", i) }
