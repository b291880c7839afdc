package tlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Errors returned by a Log. Callers test with errors.Is.
var (
	ErrClosed      = errors.New("tlog: log is closed")
	ErrOutOfRange  = errors.New("tlog: index or size beyond the integrated tree")
	ErrBadOptions  = errors.New("tlog: invalid options")
	ErrEmptyLeaf   = errors.New("tlog: empty leaf")
	ErrLeafTooLong = errors.New("tlog: leaf longer than 65535 bytes") // c2sp.org/tlog-tiles entry bundle limit
)

// Defaults for zero Options fields.
const (
	DefaultBatchMaxSize       = 256
	DefaultBatchMaxAge        = 50 * time.Millisecond
	DefaultCheckpointInterval = time.Second
	minCheckpointInterval     = 100 * time.Millisecond // the POSIX driver's floor
	maxLeafSize               = 1<<16 - 1
)

// Options configure [Open].
//
// Batching: Tessera writes a batch when it holds BatchMaxSize leaves or its
// first leaf is BatchMaxAge old. Every Append waits for its batch, so a
// batch never holds more leaves than there are concurrent appenders: keep
// BatchMaxSize near the expected number of in-flight requests, or every
// batch waits the full BatchMaxAge. Measured on 2 shared cores
// (BenchmarkAppend): 64 appenders with batch 256 / 50 ms ~1,100 leaves/s,
// p50 59 ms; with batch 64, 3,000–20,000/s (load-dependent), p50 4–6 ms;
// 256 appenders with batch 256, 31,000–42,000/s, p50 6.5 ms.
type Options struct {
	Dir                string        // DATA_DIR/audit/log (POSIX driver storage)
	Origin             string        // the C2SP checkpoint origin line; must equal Signer.Name()
	Signer             note.Signer   // Ed25519 signed-note signer, see NewKey
	BatchMaxSize       int           // default 256
	BatchMaxAge        time.Duration // default 50ms
	CheckpointInterval time.Duration // default 1s, at least 100ms
	// Witnesses is an optional C2SP tlog-policy (c2sp.org/tlog-witness
	// policy file); nil means no witnessing. With a policy, a checkpoint is
	// published only once the policy's witnesses have cosigned it (fail
	// closed): appends go on, but Open of a new log and Close wait on them.
	Witnesses []byte
}

// Log is an open audit transparency log. It is safe for concurrent use.
type Log struct {
	appender *tessera.Appender
	shutdown func(context.Context) error
	reader   tessera.LogReader
	cancel   context.CancelFunc

	mu     sync.RWMutex // guards closed against Append racing Close
	closed bool
}

// Open opens (creating on first use) the log stored in o.Dir and starts
// Tessera's sequencer and checkpoint publisher. The returned Log must be
// closed with Close. ctx bounds only the opening; background work runs until
// Close.
func Open(ctx context.Context, o Options) (*Log, error) {
	if err := o.withDefaults(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	driver, err := posix.New(ctx, posix.Config{Path: o.Dir})
	if err != nil {
		return nil, fmt.Errorf("tlog: posix driver: %w", err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(o.Signer).
		WithBatching(uint(o.BatchMaxSize), o.BatchMaxAge).
		WithCheckpointInterval(o.CheckpointInterval)
	if o.Witnesses != nil {
		group, err := tessera.NewWitnessGroupFromPolicy(o.Witnesses)
		if err != nil {
			return nil, fmt.Errorf("%w: witness policy: %v", ErrBadOptions, err)
		}
		// Fail closed: a checkpoint the policy does not cosign is not
		// published. Appends are unaffected (publication is off the
		// request path).
		opts = opts.WithWitnesses(group, &tessera.WitnessOptions{})
	}
	// Background tasks live until Close, not until the caller's ctx ends.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	appender, shutdown, reader, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tlog: open %s: %w", o.Dir, err)
	}
	return &Log{appender: appender, shutdown: shutdown, reader: reader, cancel: cancel}, nil
}

func (o *Options) withDefaults() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: Dir is empty", ErrBadOptions)
	case o.Signer == nil:
		return fmt.Errorf("%w: Signer is nil", ErrBadOptions)
	case o.Origin == "":
		return fmt.Errorf("%w: Origin is empty", ErrBadOptions)
	case o.Signer.Name() != o.Origin:
		// Tessera writes the signer's name as the origin line
		// (c2sp.org/tlog-checkpoint); a mismatch would make every
		// checkpoint fail verification against the configured origin.
		return fmt.Errorf("%w: signer name %q is not the origin %q", ErrBadOptions, o.Signer.Name(), o.Origin)
	case o.BatchMaxSize < 0, o.BatchMaxAge < 0, o.CheckpointInterval < 0:
		return fmt.Errorf("%w: negative batch or interval", ErrBadOptions)
	}
	if o.BatchMaxSize == 0 {
		o.BatchMaxSize = DefaultBatchMaxSize
	}
	if o.BatchMaxAge == 0 {
		o.BatchMaxAge = DefaultBatchMaxAge
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.CheckpointInterval < minCheckpointInterval {
		return fmt.Errorf("%w: CheckpointInterval %v below the POSIX minimum %v", ErrBadOptions, o.CheckpointInterval, minCheckpointInterval)
	}
	return nil
}

// Append adds leaf to the log and returns its index once the leaf is durably
// sequenced and integrated (see the package doc, "Durability point"). If ctx
// ends first Append returns ctx's error; the leaf may or may not have been
// sequenced, so the caller retries with the same (unique) leaf.
func (l *Log) Append(ctx context.Context, leaf []byte) (uint64, error) {
	switch {
	case len(leaf) == 0:
		return 0, ErrEmptyLeaf
	case len(leaf) > maxLeafSize:
		return 0, ErrLeafTooLong
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, ErrClosed
	}
	future := l.appender.Add(ctx, tessera.NewEntry(leaf))
	l.mu.RUnlock()

	type result struct {
		idx tessera.Index
		err error
	}
	done := make(chan result, 1)
	go func() {
		idx, err := future()
		done <- result{idx, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return 0, fmt.Errorf("tlog: append: %w", r.err)
		}
		return r.idx.Index, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// AppendBatch adds leaves to the log, in order, and returns their indexes
// once every one of them is durably sequenced and integrated (the
// durability point of Append). It hands all leaves to Tessera at once and
// waits for their futures on one goroutine, where Append per leaf would
// cost a goroutine and a channel each; Tessera still batches them by
// Options.BatchMaxSize. If ctx ends first AppendBatch returns ctx's error
// and any of the leaves may or may not have been sequenced: the caller
// retries them all. An invalid leaf fails the whole call before any is
// added.
func (l *Log) AppendBatch(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	for _, leaf := range leaves {
		switch {
		case len(leaf) == 0:
			return nil, ErrEmptyLeaf
		case len(leaf) > maxLeafSize:
			return nil, ErrLeafTooLong
		}
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	futures := make([]tessera.IndexFuture, len(leaves))
	for i, leaf := range leaves {
		futures[i] = l.appender.Add(ctx, tessera.NewEntry(leaf))
	}
	l.mu.RUnlock()

	indexes := make([]uint64, len(leaves))
	done := make(chan error, 1)
	go func() {
		var errs []error
		for i, f := range futures {
			idx, err := f()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			indexes[i] = idx.Index
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("tlog: append: %w", err)
		}
		return indexes, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Checkpoint returns the latest published signed checkpoint
// (c2sp.org/tlog-checkpoint signed-note text). It may lag the integrated tree
// by up to one checkpoint interval.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("tlog: read checkpoint: %w", err)
	}
	return cp, nil
}

// InclusionProof returns the audit path for the leaf at index in the tree of
// the given size (RFC 6962 §2.1.1), built from the stored hash tiles. size
// must be a size the tree has had: the size of any checkpoint the log
// published. (Tiles are written per batch, so a size inside a batch has no
// partial tile and yields an error.)
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: index %d not below size %d", ErrOutOfRange, index, size)
	}
	pb, err := l.proofBuilder(ctx, size)
	if err != nil {
		return nil, err
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("tlog: inclusion proof: %w", err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of size older is a prefix
// of the tree of size newer (RFC 6962 §2.1.2). newer must be a checkpoint
// size, as for InclusionProof; older may be any size up to newer.
func (l *Log) ConsistencyProof(ctx context.Context, older, newer uint64) ([][]byte, error) {
	if older > newer {
		return nil, fmt.Errorf("%w: older size %d above newer size %d", ErrOutOfRange, older, newer)
	}
	pb, err := l.proofBuilder(ctx, newer)
	if err != nil {
		return nil, err
	}
	p, err := pb.ConsistencyProof(ctx, older, newer)
	if err != nil {
		return nil, fmt.Errorf("tlog: consistency proof: %w", err)
	}
	return p, nil
}

func (l *Log) proofBuilder(ctx context.Context, size uint64) (*client.ProofBuilder, error) {
	integrated, err := l.integratedSize(ctx)
	if err != nil {
		return nil, err
	}
	if size > integrated {
		return nil, fmt.Errorf("%w: size %d above integrated size %d", ErrOutOfRange, size, integrated)
	}
	pb, err := client.NewProofBuilder(ctx, size, l.reader.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("tlog: proof builder: %w", err)
	}
	return pb, nil
}

// Leaf reads the leaf at index back from its entry bundle
// (c2sp.org/tlog-tiles).
func (l *Log) Leaf(ctx context.Context, index uint64) ([]byte, error) {
	size, err := l.integratedSize(ctx)
	if err != nil {
		return nil, err
	}
	if index >= size {
		return nil, fmt.Errorf("%w: index %d not below integrated size %d", ErrOutOfRange, index, size)
	}
	bundle, err := client.GetEntryBundle(ctx, l.reader.ReadEntryBundle, index/layout.EntryBundleWidth, size)
	if err != nil {
		return nil, fmt.Errorf("tlog: read leaf %d: %w", index, err)
	}
	i := index % layout.EntryBundleWidth
	if i >= uint64(len(bundle.Entries)) {
		return nil, fmt.Errorf("tlog: entry bundle for leaf %d holds only %d entries", index, len(bundle.Entries))
	}
	return bundle.Entries[i], nil
}

// Leaves returns a leaf source for Verify over the first size leaves: it
// reads each entry bundle once and serves the 256 leaves in it from memory,
// so a sequential scan costs one file read per bundle instead of per leaf.
// An index at or beyond size yields ErrOutOfRange. The source is not safe
// for concurrent use.
func (l *Log) Leaves(ctx context.Context, size uint64) (func(i uint64) ([]byte, error), error) {
	integrated, err := l.integratedSize(ctx)
	if err != nil {
		return nil, err
	}
	if size > integrated {
		return nil, fmt.Errorf("%w: size %d above integrated size %d", ErrOutOfRange, size, integrated)
	}
	var (
		cached  [][]byte
		cacheAt = ^uint64(0)
	)
	return func(i uint64) ([]byte, error) {
		if i >= size {
			return nil, fmt.Errorf("%w: index %d not below size %d", ErrOutOfRange, i, size)
		}
		if b := i / layout.EntryBundleWidth; b != cacheAt {
			bundle, err := client.GetEntryBundle(ctx, l.reader.ReadEntryBundle, b, size)
			if err != nil {
				return nil, fmt.Errorf("tlog: read leaf %d: %w", i, err)
			}
			cached, cacheAt = bundle.Entries, b
		}
		j := i % layout.EntryBundleWidth
		if j >= uint64(len(cached)) {
			return nil, fmt.Errorf("tlog: entry bundle for leaf %d holds only %d entries", i, len(cached))
		}
		return cached[j], nil
	}, nil
}

// Size returns the integrated (durable, not necessarily yet checkpointed)
// tree size.
func (l *Log) Size(ctx context.Context) (uint64, error) { return l.integratedSize(ctx) }

func (l *Log) integratedSize(ctx context.Context) (uint64, error) {
	if l.isClosed() {
		return 0, ErrClosed
	}
	n, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("tlog: integrated size: %w", err)
	}
	return n, nil
}

func (l *Log) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// Close stops accepting appends, waits (bounded by ctx) until a published
// checkpoint covers every index Append returned, and stops the background
// tasks. Close is idempotent.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := l.shutdown(ctx)
	l.cancel()
	if err != nil {
		return fmt.Errorf("tlog: close: %w", err)
	}
	return nil
}
