// Package verify owns the verification of Warden's audit trail by an
// auditor: Verify checks a data directory's journal, leaf-index records
// and transparency log against each other and against the log's signed
// checkpoint; Prove makes a c2sp.org/tlog-proof that one event is in the
// log; Monitor follows a remote log checkpoint by checkpoint.
//
// It works offline and beside a running server: it must never write to
// the server's files — the journal is read with journal.Scan (never
// opened for writing, never truncated), the log through read-only tile
// fetchers, the store only listed — and it writes nothing but its own
// state directory of accepted checkpoints. Findings name journal sequence
// numbers, log indexes and event ids, never event contents, which may be
// PHI.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/journal"
)

// Errors that stop verification before it can judge the trail (findings
// are not errors: they are in the Report). Compare with errors.Is.
var (
	ErrVerifierKey   = errors.New("verify: malformed log verifier key")
	ErrPolicy        = errors.New("verify: malformed witness policy")
	ErrRecords       = errors.New("verify: leaf index records are unreadable")
	ErrState         = errors.New("verify: state directory is damaged")
	ErrEventNotFound = errors.New("verify: no such event in the journal")
	ErrPending       = errors.New("verify: event not yet covered by the log's checkpoint")
	ErrBadProof      = errors.New("verify: proof does not verify")
	ErrMalformed     = errors.New("verify: malformed tlog-proof")
	ErrAlarm         = errors.New("verify: monitor alarm")
)

// Kind names what a Finding found.
type Kind int

// Kinds of finding: about the checkpoint first, then about events.
const (
	KindSignature Kind = iota + 1 // checkpoint not signed by the log key (or malformed)
	KindWitness                   // the witness policy's quorum did not cosign the checkpoint
	KindTree                      // the log's leaves do not hash to the checkpoint's root (or are missing)
	KindRewind                    // the checkpoint is smaller than one accepted before
	KindFork                      // the log is not consistent with a checkpoint accepted before under the same key
	KindEdited                    // an event's commitment does not open: its bytes changed
	KindReordered                 // an event's leaf is in the log, but not at the index recorded for it
	KindInserted                  // a sequenced journal entry whose leaf the log never had
	KindDeleted                   // a log leaf no journal entry commits to: its event is gone
	KindMalformed                 // a journal entry that does not decode
)

var kindNames = map[Kind]string{
	KindSignature: "bad checkpoint signature", KindWitness: "witness quorum not met", KindTree: "tree mismatch",
	KindRewind: "log rewound", KindFork: "log forked", KindEdited: "edited event", KindReordered: "reordered",
	KindInserted: "inserted event", KindDeleted: "deleted event", KindMalformed: "malformed entry",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Finding is one fault, named by kind and by where it is: a journal
// sequence number, a log index, or both.
type Finding struct {
	Kind     Kind
	Seq      uint64 // journal sequence number, when HasSeq
	HasSeq   bool
	Index    uint64 // log index, when HasIndex
	HasIndex bool
	EventID  string // when the entry decoded
	Detail   string // never event contents
}

func (f Finding) String() string {
	s := f.Kind.String()
	if f.HasSeq {
		s += fmt.Sprintf(" seq=%d", f.Seq)
	}
	if f.HasIndex {
		s += fmt.Sprintf(" index=%d", f.Index)
	}
	if f.EventID != "" {
		s += " event=" + f.EventID
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// Report is the outcome of Verify: what was checked, and every finding.
type Report struct {
	Origin     string // the checkpoint's origin
	Size       uint64 // the checkpoint's tree size: log leaves checked
	Entries    uint64 // journal entries read
	Sequenced  uint64 // journal entries with a recorded log index
	InPlace    uint64 // entries whose commitment opens and whose leaf is at its recorded index
	Pending    uint64 // entries not yet covered by the checkpoint (not judged)
	Duplicates uint64 // earlier copies of a recorded leaf (a batch sequenced twice after a crash)
	Compared   int    // checkpoints accepted before that this one was checked against
	Findings   []Finding
}

// OK reports whether verification found nothing.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

// Trail is what Verify and Prove read: a server's audit trail.
type Trail struct {
	JournalDir string    // DATA_DIR/audit/journal
	Log        LogReader // DirLog(DATA_DIR/audit/log), or HTTPLog
	VKey       string    // the log's verifier key (DATA_DIR/audit/log.vkey)
	Records    Records   // the store holding the leaf-index records
	// Policy is an optional C2SP witness policy (the tlog-policy text
	// the server is configured with): the checkpoint must carry a quorum
	// of its witnesses' cosignatures.
	Policy []byte
	// StateDir keeps the checkpoints accepted so far (default in the CLI:
	// DATA_DIR/audit/verified); "" compares with none and stores none.
	StateDir string
}

// Verify checks the whole trail:
//
//   - the checkpoint is signed by VKey with VKey's name as origin
//     (c2sp.org/tlog-checkpoint) and, given a policy, cosigned by a quorum
//     (c2sp.org/tlog-cosignature);
//   - the RFC 6962 §2.1 tree over the log's leaves has the checkpoint's
//     root;
//   - the tree is consistent with every checkpoint accepted before: none
//     is larger (rewind) and each one's root is the root of the current
//     leaves at its size (otherwise the same key signed a fork);
//   - every journal entry's commitment opens to its event (edited), every
//     sequenced entry's leaf is at its recorded index (reordered) or at
//     least in the log (inserted otherwise), and every log leaf belongs
//     to some entry (deleted event); an earlier copy of a recorded leaf
//     is a duplicate from a crash, not a finding.
//
// Entries the checkpoint does not cover yet are counted as pending. A
// journal entry appended at the very end with no recorded index cannot be
// told apart from one still pending. With no finding on the checkpoint,
// Verify stores it in StateDir. The error is for a trail that could not be
// read; faults are findings.
func Verify(ctx context.Context, t Trail) (*Report, error) {
	v, err := note.NewVerifier(t.VKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerifierKey, err)
	}
	var group *tessera.WitnessGroup
	if t.Policy != nil {
		g, err := tessera.NewWitnessGroupFromPolicy(t.Policy)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
		}
		group = &g
	}
	state := checkpointState{t.StateDir}
	seen, err := state.load(v)
	if err != nil {
		return nil, err
	}
	rep := &Report{}
	raw, err := t.Log.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: reading the checkpoint: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
	if err != nil {
		rep.Findings = append(rep.Findings, Finding{Kind: KindSignature, Detail: err.Error()})
		return rep, nil
	}
	rep.Origin, rep.Size = cp.Origin, cp.Size
	if group != nil && !group.Satisfied(raw) {
		rep.Findings = append(rep.Findings, Finding{Kind: KindWitness, Detail: fmt.Sprintf("checkpoint of size %d", cp.Size)})
	}

	lv, err := readLog(ctx, t.Log, cp, seen)
	if err != nil {
		return nil, err
	}
	checkpointOK := true
	if lv.missing != nil {
		rep.Findings = append(rep.Findings, Finding{Kind: KindTree, Detail: lv.missing.Error()})
		checkpointOK = false
	} else if !bytes.Equal(lv.root, cp.Hash) {
		rep.Findings = append(rep.Findings, Finding{Kind: KindTree, Detail: fmt.Sprintf("root of the %d leaves differs from the checkpoint's", cp.Size)})
		checkpointOK = false
	}
	for _, s := range seen {
		rep.Compared++
		switch root, ok := lv.roots[s.cp.Size]; {
		case s.cp.Size > cp.Size:
			rep.Findings = append(rep.Findings, Finding{Kind: KindRewind, Detail: fmt.Sprintf("size %d after size %d was accepted", cp.Size, s.cp.Size)})
			checkpointOK = false
		case ok && !bytes.Equal(root, s.cp.Hash):
			rep.Findings = append(rep.Findings, Finding{Kind: KindFork, Detail: fmt.Sprintf("the tree at size %d differs from the checkpoint accepted at that size", s.cp.Size)})
			checkpointOK = false
		}
	}

	idx, err := leafIndexes(ctx, t.Records)
	if err != nil {
		return nil, err
	}
	if err := checkEvents(t.JournalDir, lv.leaves, idx, rep); err != nil {
		return nil, err
	}
	if checkpointOK && !hasCheckpointFinding(rep) {
		if err := state.add(cp.Size, raw); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func hasCheckpointFinding(r *Report) bool {
	for _, f := range r.Findings {
		if f.Kind <= KindFork {
			return true
		}
	}
	return false
}

// logView is what one pass over the log's leaves yields.
type logView struct {
	leaves  [][audit.LeafSize]byte // leaf i, zero for a leaf of another length
	root    []byte
	roots   map[uint64][]byte // the root at each accepted checkpoint's size up to the current one
	missing error             // set if leaves ran out before the checkpoint's size
}

// readLog reads leaves 0 … cp.Size-1 once, computing the RFC 6962 root
// of the whole tree and of each prefix an accepted checkpoint covers.
func readLog(ctx context.Context, lr LogReader, cp *log.Checkpoint, seen []seenCheckpoint) (*logView, error) {
	lv := &logView{leaves: make([][audit.LeafSize]byte, 0, cp.Size), roots: map[uint64][]byte{}}
	want := map[uint64]bool{}
	for _, s := range seen {
		if s.cp.Size <= cp.Size {
			want[s.cp.Size] = true
		}
	}
	if want[0] {
		lv.roots[0] = rfc6962.DefaultHasher.EmptyRoot()
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	tree := rf.NewEmptyRange(0)
	err := eachLeaf(ctx, lr, cp.Size, func(i uint64, leaf []byte) error {
		var l [audit.LeafSize]byte
		copy(l[:], leaf)
		if len(leaf) != audit.LeafSize {
			l = [audit.LeafSize]byte{}
		}
		lv.leaves = append(lv.leaves, l)
		if err := tree.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			return err
		}
		if want[i+1] {
			r, err := tree.GetRootHash(nil)
			if err != nil {
				return err
			}
			lv.roots[i+1] = r
		}
		return nil
	})
	if errors.Is(err, errLeafMissing) {
		lv.missing = err
		return lv, nil
	}
	if err != nil {
		return nil, err
	}
	lv.root = rfc6962.DefaultHasher.EmptyRoot()
	if cp.Size > 0 {
		if lv.root, err = tree.GetRootHash(nil); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	return lv, nil
}

// unresolved is a journal entry whose leaf is not at its recorded index.
type unresolved struct {
	seq      uint64
	id       string
	leaf     [audit.LeafSize]byte
	recorded uint64
	hasIndex bool // recorded is set
	edited   bool // its commitment did not open (already a finding)
}

// checkEvents checks every journal entry against the log's leaves and the
// recorded indexes, and every leaf against the entries (see Verify).
func checkEvents(journalDir string, leaves [][audit.LeafSize]byte, idx []uint64, rep *Report) error {
	size := uint64(len(leaves))
	claimed := make([]bool, size)
	seqAt := make(map[uint64]uint64, len(idx)) // recorded index → journal seq
	for s, i := range idx {
		seqAt[i] = uint64(s)
	}
	rep.Sequenced = uint64(len(idx))
	var open []unresolved
	n, err := journal.Scan(journalDir, func(seq uint64, raw []byte) error {
		e, err := audit.DecodeJournalEntry(raw)
		recorded, hasIndex := uint64(0), seq < uint64(len(idx))
		if hasIndex {
			recorded = idx[seq]
		}
		if err != nil {
			f := Finding{Kind: KindMalformed, Seq: seq, HasSeq: true, Index: recorded, HasIndex: hasIndex}
			rep.Findings = append(rep.Findings, f)
			if hasIndex && recorded < size {
				claimed[recorded] = true
			}
			return nil
		}
		u := unresolved{seq: seq, id: e.ID, recorded: recorded, hasIndex: hasIndex}
		copy(u.leaf[:], e.Leaf)
		if !audit.Open(e.Leaf, e.Nonce, e.Canonical) {
			u.edited = true
			rep.Findings = append(rep.Findings, Finding{Kind: KindEdited, Seq: seq, HasSeq: true, Index: recorded, HasIndex: hasIndex, EventID: e.ID,
				Detail: "the event's bytes do not open its commitment"})
		}
		if hasIndex && recorded < size && leaves[recorded] == u.leaf {
			claimed[recorded] = true
			if !u.edited {
				rep.InPlace++
			}
			return nil
		}
		open = append(open, u)
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		n, err = 0, nil // no journal: every log leaf is an event gone
	}
	if err != nil {
		// A damaged frame (journal.ErrCorrupt) before the tail stops the
		// scan: the entries after it cannot be read, so no finding about
		// them would be sound.
		return fmt.Errorf("verify: reading the journal: %w", err)
	}
	rep.Entries = n

	// The leaves no entry claimed at its recorded index, by value. Honest
	// trails have few: duplicates, and entries sequenced but not yet
	// recorded.
	free := map[[audit.LeafSize]byte][]uint64{}
	for i := range size {
		if !claimed[i] {
			free[leaves[i]] = append(free[leaves[i]], i)
		}
	}
	type move struct {
		seq, recorded, actual uint64
		id                    string
	}
	var moves []move
	for _, u := range open {
		at := free[u.leaf]
		if len(at) > 0 {
			a := at[len(at)-1] // the latest copy counts
			free[u.leaf] = at[:len(at)-1]
			claimed[a] = true
			if u.hasIndex && u.recorded != a {
				moves = append(moves, move{seq: u.seq, recorded: u.recorded, actual: a, id: u.id})
			}
			continue
		}
		switch {
		case u.hasIndex && u.recorded < size && !u.edited:
			rep.Findings = append(rep.Findings, Finding{Kind: KindInserted, Seq: u.seq, HasSeq: true, Index: u.recorded, HasIndex: true, EventID: u.id,
				Detail: "the log never had this entry's leaf"})
		case u.hasIndex && u.recorded < size:
			// Edited, leaf included: already a finding.
		default:
			rep.Pending++
		}
	}

	// Leaves still free: an earlier copy of a claimed leaf is a duplicate;
	// anything else is a deleted event.
	var gone []uint64
	for i := range size {
		if !claimed[i] {
			gone = append(gone, i)
		}
	}
	if len(gone) > 0 {
		lastClaimed := map[[audit.LeafSize]byte]uint64{}
		for _, i := range gone {
			lastClaimed[leaves[i]] = 0
		}
		for i := range size {
			if _, ok := lastClaimed[leaves[i]]; ok && claimed[i] {
				lastClaimed[leaves[i]] = i + 1
			}
		}
		for _, i := range gone {
			if lastClaimed[leaves[i]] > i+1 {
				rep.Duplicates++
				continue
			}
			f := Finding{Kind: KindDeleted, Index: i, HasIndex: true, Detail: "no journal entry commits to this leaf"}
			f.Seq, f.HasSeq = seqAt[i]
			rep.Findings = append(rep.Findings, f)
		}
	}

	// Entries at the wrong index: a run of consecutive entries displaced
	// by the same amount is one finding, and a run that starts where an
	// entry was deleted or inserted is the consequence of that finding.
	explains := map[uint64]int{} // first seq of a run a finding explains → that finding
	for k, f := range rep.Findings {
		switch {
		case f.Kind == KindDeleted && f.HasSeq:
			explains[f.Seq] = k
		case f.Kind == KindInserted:
			explains[f.Seq+1] = k
		}
	}
	for start := 0; start < len(moves); {
		end := start + 1
		// shift is how far the entry sits from the seq its leaf was
		// recorded for; a leaf recorded for no seq is a run of its own.
		shift := func(m move) (int64, bool) {
			s, ok := seqAt[m.actual]
			return int64(s) - int64(m.seq), ok
		}
		first, known := shift(moves[start])
		for known && end < len(moves) && moves[end].seq == moves[end-1].seq+1 {
			if d, ok := shift(moves[end]); !ok || d != first {
				break
			}
			end++
		}
		m := moves[start]
		if k, ok := explains[m.seq]; ok && known {
			rep.Findings[k].Detail += fmt.Sprintf("; the %d journal entries from seq %d on are shifted by %d", end-start, m.seq, -first)
		} else {
			detail := fmt.Sprintf("recorded at index %d, found at index %d", m.recorded, m.actual)
			if end-start > 1 {
				detail = fmt.Sprintf("%d consecutive entries are %d places from their recorded indexes", end-start, -first)
			}
			rep.Findings = append(rep.Findings, Finding{Kind: KindReordered, Seq: m.seq, HasSeq: true, Index: m.recorded, HasIndex: true, EventID: m.id, Detail: detail})
		}
		start = end
	}
	slices.SortStableFunc(rep.Findings, func(a, b Finding) int {
		if a.Kind <= KindFork || b.Kind <= KindFork {
			return int(a.Kind) - int(b.Kind)
		}
		return cmpUint(a.Seq, b.Seq)
	})
	return nil
}
