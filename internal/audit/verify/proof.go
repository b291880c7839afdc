package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/audit/tlog"
)

// Proof is the evidence that one audit event is in the log: everything
// anyone needs to recompute its leaf (the canonical event and its nonce)
// and to check the leaf against a checkpoint signed by the log key.
type Proof struct {
	EventID    string
	Seq        uint64   // journal sequence number
	Index      uint64   // log index of the event's leaf
	Nonce      [32]byte // the commitment's nonce
	Event      []byte   // the canonical event JSON, exactly as committed
	Checkpoint []byte   // the signed checkpoint the proof is against
	Hashes     [][]byte // RFC 6962 §2.1.1 audit path
}

// tlogProofHeader is the first line of a c2sp.org/tlog-proof.
const tlogProofHeader = "c2sp.org/tlog-proof@v1"

// Prove finds event eventID in the trail's journal, its recorded log
// index, and the inclusion proof of its leaf against the log's current
// checkpoint, and checks the proof before returning it. ErrEventNotFound:
// no such event; ErrPending: not yet sequenced, or not yet covered by the
// checkpoint (retry in a second); ErrBadProof: the log does not hold the
// event's leaf at its recorded index (run Verify).
func Prove(ctx context.Context, t Trail, eventID string) (*Proof, error) {
	v, err := note.NewVerifier(t.VKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerifierKey, err)
	}
	p := &Proof{EventID: eventID}
	errFound := errors.New("found")
	_, err = journal.Scan(t.JournalDir, func(seq uint64, raw []byte) error {
		e, err := audit.DecodeJournalEntry(raw)
		if err != nil || e.ID != eventID {
			return nil
		}
		p.Seq, p.Nonce, p.Event = seq, e.Nonce, bytes.Clone(e.Canonical)
		return errFound
	})
	switch {
	case err == nil:
		return nil, ErrEventNotFound
	case !errors.Is(err, errFound):
		return nil, fmt.Errorf("verify: reading the journal: %w", err)
	}
	idx, err := leafIndexes(ctx, t.Records)
	if err != nil {
		return nil, err
	}
	if p.Seq >= uint64(len(idx)) {
		return nil, fmt.Errorf("%w: not yet sequenced", ErrPending)
	}
	p.Index = idx[p.Seq]
	if p.Checkpoint, err = t.Log.ReadCheckpoint(ctx); err != nil {
		return nil, fmt.Errorf("verify: reading the checkpoint: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(p.Checkpoint, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrBadProof, err)
	}
	if p.Hashes, err = InclusionProof(ctx, t.Log, cp.Size, p.Index); err != nil {
		return nil, err
	}
	if err := tlog.VerifyInclusion(t.VKey, p.Checkpoint, p.Leaf(), p.Index, p.Hashes); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	return p, nil
}

// Leaf is the audit leaf the proof is for, recomputed from the event and
// the nonce (SHA-256 over audit.LeafDomain, nonce, event).
func (p *Proof) Leaf() []byte { return leafOf(p.Nonce, p.Event) }

// leafOf is the audit leaf of event under nonce, as audit.Commit computes
// it (audit.Open is the check; the tests hold the two together).
func leafOf(nonce [32]byte, event []byte) []byte {
	h := sha256.New()
	h.Write([]byte(audit.LeafDomain))
	h.Write(nonce[:])
	h.Write(event)
	return h.Sum(nil)
}

// MarshalText is the proof in the c2sp.org/tlog-proof@v1 text format:
// the header line, "extra" with the base64 nonce (the data needed, with
// the event, to recompute the logged leaf), "index", one base64 audit
// path hash per line, an empty line, and the checkpoint verbatim.
func (p *Proof) MarshalText() ([]byte, error) {
	return (&TlogProof{Extra: p.Nonce[:], Index: p.Index, Hashes: p.Hashes, Checkpoint: p.Checkpoint}).MarshalText()
}

// TlogProof is a parsed c2sp.org/tlog-proof@v1.
type TlogProof struct {
	Extra      []byte // nil when absent
	Index      uint64
	Hashes     [][]byte
	Checkpoint []byte
}

// MarshalText encodes tp in the c2sp.org/tlog-proof@v1 text format.
func (tp *TlogProof) MarshalText() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(tlogProofHeader + "\n")
	if tp.Extra != nil {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(tp.Extra) + "\n")
	}
	b.WriteString("index " + strconv.FormatUint(tp.Index, 10) + "\n")
	for _, h := range tp.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(tp.Checkpoint)
	return b.Bytes(), nil
}

// ParseTlogProof parses the c2sp.org/tlog-proof@v1 text format. It checks
// the syntax only; VerifyProof checks the contents.
func ParseTlogProof(text []byte) (*TlogProof, error) {
	head, checkpoint, ok := bytes.Cut(text, []byte("\n\n"))
	if !ok || len(checkpoint) == 0 {
		return nil, fmt.Errorf("%w: no checkpoint after an empty line", ErrMalformed)
	}
	tp := &TlogProof{Checkpoint: checkpoint}
	sc := bufio.NewScanner(bytes.NewReader(head))
	line := 0
	sawIndex := false
	for sc.Scan() {
		s := sc.Text()
		line++
		switch {
		case line == 1:
			if s != tlogProofHeader {
				return nil, fmt.Errorf("%w: first line is not %s", ErrMalformed, tlogProofHeader)
			}
		case line == 2 && strings.HasPrefix(s, "extra "):
			e, err := base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(s, "extra "))
			if err != nil {
				return nil, fmt.Errorf("%w: extra: %v", ErrMalformed, err)
			}
			tp.Extra = e
		case !sawIndex:
			num, ok := strings.CutPrefix(s, "index ")
			if !ok || num == "" || (len(num) > 1 && num[0] == '0') {
				return nil, fmt.Errorf("%w: line %d is not an index line", ErrMalformed, line)
			}
			i, err := strconv.ParseUint(num, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: index: %v", ErrMalformed, err)
			}
			tp.Index, sawIndex = i, true
		default:
			h, err := base64.StdEncoding.Strict().DecodeString(s)
			if err != nil || len(h) != 32 {
				return nil, fmt.Errorf("%w: line %d is not a base64 SHA-256 hash", ErrMalformed, line)
			}
			tp.Hashes = append(tp.Hashes, h)
		}
	}
	if !sawIndex {
		return nil, fmt.Errorf("%w: no index line", ErrMalformed)
	}
	return tp, nil
}

// VerifyProof checks a tlog-proof made by Prove: event and the nonce in
// its extra line recompute the leaf, and the leaf is at the proof's index
// in the tree of the checkpoint, signed by vkey.
func VerifyProof(vkey string, text, event []byte) error {
	tp, err := ParseTlogProof(text)
	if err != nil {
		return err
	}
	if len(tp.Extra) != 32 {
		return fmt.Errorf("%w: extra is not a 32-byte nonce", ErrMalformed)
	}
	var nonce [32]byte
	copy(nonce[:], tp.Extra)
	if err := tlog.VerifyInclusion(vkey, tp.Checkpoint, leafOf(nonce, event), tp.Index, tp.Hashes); err != nil {
		return fmt.Errorf("%w: %w", ErrBadProof, err)
	}
	return nil
}
