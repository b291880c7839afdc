// Package eventdb is the audit trail's searchable copy in a log-structured
// key-value store (Pebble) of its own, rather than as AuditEvent resources
// with their index rows in the FHIR store: an event is a handful of keys
// written to a memory table and a write-ahead log, where the SQL store
// pays for a few dozen B-tree inserts (see docs/AUDIT.md, "What it
// costs").
//
// It holds what internal/audit/index prepares from the journal — each
// event's stored JSON, its FHIR search index entries and its Patient
// compartment — and answers AuditEvent reads and searches with the
// semantics of the FHIR store (internal/store/sqlstore), which a
// differential test holds it to. It is a copy: the journal is the durable
// record, so writes are not synced; a crash loses at most what the
// indexer re-reads from the journal from the cursor stored with them.
package eventdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/store"
)

// ErrUnsupported is a query this index cannot answer (chained or reverse
// chained parameters, includes, sorting on other than date or
// _lastUpdated, a resource type other than AuditEvent).
var ErrUnsupported = errors.New("eventdb: not supported on the audit trail")

// DB is an open searchable copy.
type DB struct {
	// db is the index (search entries, compartments, the cursor), ids
	// maps event ids to positions, bodies holds the stored events (see
	// the key space in keys.go).
	db     *pebble.DB
	ids    *pebble.DB
	bodies *pebble.DB
	now    func() time.Time

	mu      sync.Mutex // Put: one writer, which assigns ordinals
	ordinal uint64     // the next event's ordinal
	// listOf and lists are put's scratch, kept from one batch to the
	// next so that indexing allocates for new keys only: a key's place
	// in lists, and the positions of each key's events.
	listOf map[string]int
	lists  [][]byte

	// journal is the audit journal's file, read by offset for the events
	// stored as where the journal holds them (UseJournal); nil if none.
	journal *os.File

	// open is held (read) by every operation and taken by Close, so that
	// the store is never closed under one (Pebble panics then).
	open   sync.RWMutex
	closed bool
}

// ErrClosed is an operation on a closed DB (shutting down): the API
// answers 503 to it, as to any failure of the stores' files.
var ErrClosed = fmt.Errorf("%w: eventdb: closed", store.ErrUnavailable)

// fault is a failure of Pebble (a full disk, an I/O error): the request
// gets 503 and may be retried; nothing is lost, since the journal keeps
// every event.
func fault(err error) error { return fmt.Errorf("%w: eventdb: %w", store.ErrUnavailable, err) }

// hold enters an operation; release with d.open.RUnlock.
func (d *DB) hold() error {
	d.open.RLock()
	if d.closed {
		d.open.RUnlock()
		return ErrClosed
	}
	return nil
}

// cacheBytes is the block cache the stores share; indexMemTable is the
// size of the index's memory table.
const (
	cacheBytes    = 16 << 20
	indexMemTable = 8 << 20
)

// options are the stores' Pebble options: Bloom filters, so that a read
// by id reads one file's blocks; Pebble's informational messages kept
// out of the log.
func options(cache *pebble.Cache, memTable uint64) *pebble.Options {
	o := &pebble.Options{Logger: quietLogger{}, Cache: cache, MemTableSize: memTable, Merger: concat}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

// Open opens (or creates) the copy in dir.
func Open(dir string) (*DB, error) {
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	var stores []*pebble.DB
	fail := func(err error) (*DB, error) {
		for _, s := range stores {
			s.Close()
		}
		return nil, fault(err)
	}
	for _, st := range []struct {
		name     string
		memTable uint64
	}{
		// A bucket's index entries (~6 MB for reads' events) fit one
		// memory table, so that a bucket is written out about once, not
		// merged with its earlier parts again and again.
		{"index", indexMemTable},
		{"ids", 4 << 20},
		{"events", 4 << 20},
	} {
		s, err := pebble.Open(filepath.Join(dir, st.name), options(cache, st.memTable))
		if err != nil {
			return fail(err)
		}
		stores = append(stores, s)
	}
	d := &DB{db: stores[0], ids: stores[1], bodies: stores[2], now: time.Now}
	n, err := getUint64(d.db, metaKey(metaNextOrdinal))
	if err != nil {
		return fail(err)
	}
	d.ordinal = n
	return d, nil
}

// getUint64 reads a big-endian number (0 when the key is absent).
func getUint64(r pebble.Reader, key []byte) (uint64, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, errCorrupt
	}
	return binary.BigEndian.Uint64(v), nil
}

// Close closes the database, after the operations in progress; later ones
// fail with ErrClosed.
func (d *DB) Close() error {
	d.open.Lock()
	defer d.open.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	err := errors.Join(d.db.Close(), d.ids.Close(), d.bodies.Close())
	if d.journal != nil {
		err = errors.Join(err, d.journal.Close())
	}
	return err
}

// UseJournal has d keep, for each event PutJournaled stores, where the
// audit journal's file at path holds it rather than a copy; reads take
// the event from there (journal.ReadFrame, which checks its checksum) and
// check that it is the one the index names. Without it, d keeps copies
// (Put). Call it once, after Open and before any other use.
func (d *DB) UseJournal(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fault(err)
	}
	d.journal = f
	return nil
}

// DiskBytes is the disk space the copy's stores use (0 once closed).
func (d *DB) DiskBytes() uint64 {
	if d.hold() != nil {
		return 0
	}
	defer d.open.RUnlock()
	return d.db.Metrics().DiskSpaceUsage() + d.ids.Metrics().DiskSpaceUsage() + d.bodies.Metrics().DiskSpaceUsage()
}

// StoresCanonical marks DB as an index.CanonicalSink: Put stores the
// journal's canonical events, and reads edit them.
func (d *DB) StoresCanonical() {}

var _ index.JournaledSink = (*DB)(nil)

// Cursor returns the journal cursor stored by the last Put (0 before any).
func (d *DB) Cursor(ctx context.Context) (uint64, error) {
	if err := d.hold(); err != nil {
		return 0, err
	}
	defer d.open.RUnlock()
	n, err := getUint64(d.db, metaKey(metaCursor))
	if err != nil {
		return 0, fault(err)
	}
	return n, nil
}

// Put stores the AuditEvents ws and the journal cursor next in one
// atomic batch. An id already stored is left as it is (indexing is at
// least once). Each write must be version 1 of an AuditEvent, its JSON
// the journal's canonical event: a read serves it as index.Searchable
// makes it (with meta, without query strings).
//
// Events stored before that edit moved to reading hold its result, which
// the edit leaves as it is.
func (d *DB) Put(ctx context.Context, ws []store.Write, next uint64) error {
	return d.put(ctx, ws, nil, next)
}

// PutJournaled is Put keeping, for each event ws[i], frames[i] (where
// the journal's file holds its entry: index.JournaledSink) instead of a
// copy of the event, once UseJournal has given the file; Put until then.
func (d *DB) PutJournaled(ctx context.Context, ws []store.Write, frames []int64, next uint64) error {
	if len(frames) != len(ws) {
		return fmt.Errorf("eventdb: %d events, %d journal frames", len(ws), len(frames))
	}
	if d.journal == nil {
		frames = nil
	}
	return d.put(ctx, ws, frames, next)
}

func (d *DB) put(ctx context.Context, ws []store.Write, frames []int64, next uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.hold(); err != nil {
		return err
	}
	defer d.open.RUnlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range ws {
		r := &ws[i].Resource
		if r.Type != "AuditEvent" || r.ID == "" || r.Version != 1 || r.Deleted {
			return fmt.Errorf("eventdb: not version 1 of an AuditEvent: %s/%s", r.Type, r.ID)
		}
	}
	b := d.db.NewBatch()
	defer b.Close()
	ib := d.ids.NewBatch()
	defer ib.Close()
	eb := d.bodies.NewBatch()
	defer eb.Close()
	ordinal := d.ordinal
	seen := make(map[string]bool, len(ws))
	if d.listOf == nil {
		d.listOf = make(map[string]int)
	}
	listOf, lists := d.listOf, d.lists[:0]
	clear(listOf)
	defer func() {
		// Lists grown by a large batch are not kept.
		kept := 0
		for _, l := range lists[:cap(lists)] {
			kept += cap(l)
		}
		if cap(lists) > 1<<14 || kept > 4<<20 {
			lists = nil
		}
		d.lists = lists[:0]
	}()
	var head [4]byte
	bounds := map[uint32]bound{}
	var err error
	for i := range ws {
		r := &ws[i].Resource
		// The same id twice in a batch is stored once. The indexer
		// writes its cursor with the index: after a crash it stores
		// the events after the cursor again, at the same positions
		// (their ordinals follow the index's), over what the crash
		// left in the other stores.
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		// An id the index holds is left as it is; one that only a crash
		// between the commits below left in the ids store is not held.
		switch v, closer, err := d.ids.Get([]byte(r.ID)); {
		case err == nil:
			held := len(v) == posLen && pos(v).ordinal() < d.ordinal
			closer.Close()
			if held {
				continue
			}
		case !errors.Is(err, pebble.ErrNotFound):
			return fault(err)
		}
		p := makePos(r.LastUpdated.UnixMicro(), ordinal)
		ordinal++
		bucket := p.bucket()
		set := func(b *pebble.Batch, k, v []byte) error { return b.Set(k, v, nil) }
		if err := set(ib, []byte(r.ID), p[:]); err != nil {
			return err
		}
		patients := compartments(ws[i].Patients)
		if frames != nil {
			// Where the journal holds the event.
			v := binary.AppendUvarint([]byte{journaled}, uint64(frames[i]))
			if err := eb.Set(p[:8], append(v, encodeEvent(r.ID, patients, nil)...), nil); err != nil {
				return err
			}
		} else {
			// The stored event is written straight into the batch.
			head := encodeEvent(r.ID, patients, nil)
			op := eb.SetDeferred(8, len(head)+len(r.JSON))
			copy(op.Key, p[:8])
			copy(op.Value[copy(op.Value, head):], r.JSON)
			if err := op.Finish(); err != nil {
				return err
			}
		}
		dates := allValue(ws[i].Entries)
		if err := set(b, inBucket(bucket, allKey(p)), dates); err != nil {
			return err
		}
		bd, ok := bounds[bucket]
		if !ok {
			if bd, err = d.bound(bucket); err != nil {
				return err
			}
		}
		bd.add(dates, p.micros())
		bounds[bucket] = bd
		add := func(k []byte) {
			if n, ok := listOf[string(k)]; ok {
				lists[n] = append(lists[n], p[:]...)
				return
			}
			listOf[string(k)] = len(lists)
			if len(lists) < cap(lists) {
				lists = lists[:len(lists)+1]
				lists[len(lists)-1] = append(lists[len(lists)-1][:0], p[:]...)
			} else {
				lists = append(lists, append(make([]byte, 0, 4*posLen), p[:]...))
			}
		}
		binary.BigEndian.PutUint32(head[:], bucket)
		for _, id := range patients {
			add(appendPatient(head[:], id))
		}
		postings(ws[i].Entries, head[:], add)
	}
	for bucket, bd := range bounds {
		if err := b.Set(inBucket(bucket, boundKey), bd.encode(), nil); err != nil {
			return err
		}
	}
	// One merge operand per key and batch (see keys.go).
	for k, n := range listOf {
		if err := b.Merge([]byte(k), lists[n], nil); err != nil {
			return err
		}
	}
	if err := b.Set(metaKey(metaNextOrdinal), binary.BigEndian.AppendUint64(nil, ordinal), nil); err != nil {
		return err
	}
	if err := b.Set(metaKey(metaCursor), binary.BigEndian.AppendUint64(nil, next), nil); err != nil {
		return err
	}
	// The events and ids go first, synced, and the index after them: an
	// event the index lists is there to read after any crash. Pebble
	// writes an unsynced commit to its log file from a goroutine of its
	// own, after the commit returns, so each store can lose a different
	// tail of unsynced commits to a kill -9; the index losing its tail
	// only makes the indexer read the journal again from its cursor (in
	// the same batch), over the events and ids already there, but events
	// or ids losing theirs under an index that kept its tail would leave
	// the index listing events it cannot read. The index is not synced:
	// the journal is the durable copy.
	for _, c := range []struct {
		batch *pebble.Batch
		opts  *pebble.WriteOptions
	}{{eb, pebble.Sync}, {ib, pebble.Sync}, {b, pebble.NoSync}} {
		if err := c.batch.Commit(c.opts); err != nil {
			return fault(err)
		}
	}
	d.ordinal = ordinal
	return nil
}

// bound reads the date bounds of a bucket as stored (none yet: zero).
func (d *DB) bound(bucket uint32) (bound, error) {
	v, closer, err := d.db.Get(inBucket(bucket, boundKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return bound{}, nil
	}
	if err != nil {
		return bound{}, fault(err)
	}
	defer closer.Close()
	bd, ok := decodeBound(v)
	if !ok {
		return bound{}, errCorrupt
	}
	return bd, nil
}

// Read returns the AuditEvent with id id (store.ErrNotFound if there is
// none, or typ is another type).
func (d *DB) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	if typ != "AuditEvent" {
		return nil, store.ErrNotFound
	}
	if err := d.hold(); err != nil {
		return nil, err
	}
	defer d.open.RUnlock()
	v, closer, err := d.ids.Get([]byte(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fault(err)
	}
	var p pos
	if len(v) != posLen {
		closer.Close()
		return nil, errCorrupt
	}
	copy(p[:], v)
	closer.Close()
	r, err := d.event(p)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// event reads the stored event at p.
func (d *DB) event(p pos) (store.Resource, error) {
	v, closer, err := d.bodies.Get(p[:8])
	if errors.Is(err, pebble.ErrNotFound) {
		return store.Resource{}, store.ErrNotFound
	}
	if err != nil {
		return store.Resource{}, fault(err)
	}
	defer closer.Close()
	var raw []byte
	var id string
	var patients []string
	if len(v) > 0 && v[0] == journaled {
		id, patients, raw, err = d.fromJournal(v[1:])
	} else {
		id, patients, raw, err = decodeEvent(v)
	}
	if err != nil {
		return store.Resource{}, err
	}
	at := time.UnixMicro(p.micros()).UTC()
	body, err := index.Searchable(raw, at)
	if err != nil {
		return store.Resource{}, fmt.Errorf("%w: event %s: %w", errCorrupt, id, err)
	}
	return store.Resource{
		Type:        "AuditEvent",
		ID:          id,
		Version:     1,
		LastUpdated: at,
		JSON:        body,
		Patients:    patients,
	}, nil
}

// journaled begins a stored event kept as where the journal holds it:
// the offset of its entry's frame (uvarint), then encodeEvent's head with
// no body. A copy begins with its id's length, never 0.
const journaled = 0

// fromJournal reads the event v (after its tag) names from the journal:
// the entry at its offset, which must be the event of the id stored.
func (d *DB) fromJournal(v []byte) (id string, patients []string, raw []byte, err error) {
	off, k := binary.Uvarint(v)
	if k <= 0 || off > math.MaxInt64 {
		return "", nil, nil, errCorrupt
	}
	if id, patients, _, err = decodeEvent(v[k:]); err != nil {
		return "", nil, nil, err
	}
	if d.journal == nil {
		return "", nil, nil, fmt.Errorf("%w: event %s is kept in the audit journal, which is not open", errCorrupt, id)
	}
	entry, err := journal.ReadFrame(d.journal, int64(off))
	if errors.Is(err, journal.ErrCorrupt) {
		return "", nil, nil, fmt.Errorf("%w: event %s: %w", errCorrupt, id, err)
	}
	if err != nil {
		return "", nil, nil, fault(err)
	}
	e, err := audit.DecodeJournalEntry(entry)
	if err != nil || e.ID != id {
		return "", nil, nil, fmt.Errorf("%w: the journal entry at %d is not event %s", errCorrupt, off, id)
	}
	return id, patients, e.Canonical, nil
}

// compartments returns the distinct non-empty ids of ids, sorted.
func compartments(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// encodeEvent is the stored form of an event: its id, its compartments
// and its JSON, the first two each length-prefixed (uvarint).
func encodeEvent(id string, patients []string, body []byte) []byte {
	n := 2*binary.MaxVarintLen32 + len(id) + len(body)
	for _, p := range patients {
		n += binary.MaxVarintLen32 + len(p)
	}
	v := make([]byte, 0, n)
	v = binary.AppendUvarint(v, uint64(len(id)))
	v = append(v, id...)
	v = binary.AppendUvarint(v, uint64(len(patients)))
	for _, p := range patients {
		v = binary.AppendUvarint(v, uint64(len(p)))
		v = append(v, p...)
	}
	return append(v, body...)
}

// decodeEvent reverses encodeEvent, copying out of v.
func decodeEvent(v []byte) (id string, patients []string, body []byte, err error) {
	str := func() (string, bool) {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return "", false
		}
		s := string(v[k : k+int(n)])
		v = v[k+int(n):]
		return s, true
	}
	var ok bool
	if id, ok = str(); !ok {
		return "", nil, nil, errCorrupt
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)) {
		return "", nil, nil, errCorrupt
	}
	v = v[k:]
	if n > 0 {
		patients = make([]string, n)
	}
	for i := range patients {
		if patients[i], ok = str(); !ok {
			return "", nil, nil, errCorrupt
		}
	}
	return id, patients, append([]byte(nil), v...), nil
}

// quietLogger keeps Pebble's informational messages out of the server's
// log; errors reach the caller as errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("eventdb: pebble: "+format, args...))
}
