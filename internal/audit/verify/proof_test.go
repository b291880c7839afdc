package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/tlog"
	"github.com/wardenfhir/warden/internal/audit/verify"
	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
)

// TestProve: a proof made by Prove is checked with transparency-dev's
// own code — formats/log for the signed checkpoint, merkle/proof for the
// RFC 6962 audit path — from nothing but its text, the event and the
// log's verifier key.
func TestProve(t *testing.T) {
	ctx := context.Background()
	tr := cleanTrail(t)
	vt := trailOf(tr, "")
	for _, k := range []int{0, 17, events - 1} {
		p, err := verify.Prove(ctx, vt, tr.IDs[k])
		if err != nil {
			t.Fatal(err)
		}
		text, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(text, []byte("c2sp.org/tlog-proof@v1\nextra ")) {
			t.Fatalf("not a tlog-proof:\n%s", text)
		}
		if err := verify.VerifyProof(tr.VKey, text, p.Event); err != nil {
			t.Fatalf("event %d: %v", k, err)
		}

		// Independently, with transparency-dev's code.
		tp, err := verify.ParseTlogProof(text)
		if err != nil {
			t.Fatal(err)
		}
		v, err := note.NewVerifier(tr.VKey)
		if err != nil {
			t.Fatal(err)
		}
		cp, _, _, err := log.ParseCheckpoint(tp.Checkpoint, verifytest.Origin, v)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		h.Write([]byte(audit.LeafDomain))
		h.Write(tp.Extra)
		h.Write(p.Event)
		leaf := h.Sum(nil)
		var nonce [32]byte
		copy(nonce[:], tp.Extra)
		if !audit.Open(leaf, nonce, p.Event) || !bytes.Equal(leaf, p.Leaf()) {
			t.Fatal("the leaf recomputed from the proof is not the event's commitment")
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, tp.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(leaf), tp.Hashes, cp.Hash); err != nil {
			t.Fatalf("merkle/proof rejects event %d: %v", k, err)
		}
		if tp.Index != p.Index {
			t.Fatalf("index %d in the text, %d in the proof", tp.Index, p.Index)
		}
	}
}

// TestProveRejects: a proof does not verify for another event, another
// key, a changed index or hash; Prove refuses unknown and unsequenced
// events and a log that lost the event's leaf.
func TestProveRejects(t *testing.T) {
	ctx := context.Background()
	tr := cleanTrail(t)
	vt := trailOf(tr, "")
	p, err := verify.Prove(ctx, vt, tr.IDs[5])
	if err != nil {
		t.Fatal(err)
	}
	text, _ := p.MarshalText()
	_, otherKey, _ := tlog.NewKey(verifytest.Origin)
	otherEvent := bytes.Replace(p.Event, []byte(`"read"`), []byte(`"vread"`), 1)
	moved := bytes.Replace(text, []byte("index 5\n"), []byte("index 6\n"), 1)
	if bytes.Equal(moved, text) {
		moved = bytes.Replace(text, []byte("\nindex "), []byte("\nindex 1"), 1)
	}
	hashEdited := bytes.Clone(text)
	hashEdited[bytes.Index(text, []byte("\n\n"))-5] ^= 1
	cases := []struct {
		name  string
		vkey  string
		text  []byte
		event []byte
		want  error
	}{
		{"other event", tr.VKey, text, otherEvent, verify.ErrBadProof},
		{"other key", otherKey, text, p.Event, verify.ErrBadProof},
		{"moved index", tr.VKey, moved, p.Event, verify.ErrBadProof},
		{"edited hash", tr.VKey, hashEdited, p.Event, nil},
		{"no checkpoint", tr.VKey, text[:bytes.Index(text, []byte("\n\n"))], p.Event, verify.ErrMalformed},
		{"wrong header", tr.VKey, append([]byte("x"), text...), p.Event, verify.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := verify.VerifyProof(c.vkey, c.text, c.event)
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
	if _, err := verify.Prove(ctx, vt, "no-such-event"); !errors.Is(err, verify.ErrEventNotFound) {
		t.Fatalf("unknown event: %v", err)
	}
	// Rewind the checkpoint: the last events are not covered by it.
	tr.Append(t, 3)
	if _, err := verify.Prove(ctx, vt, tr.IDs[events+2]); err != nil {
		t.Fatal(err)
	}
	old := text[bytes.Index(text, []byte("\n\n"))+2:]
	if err := os.WriteFile(filepath.Join(tr.LogDir(), "checkpoint"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Prove(ctx, vt, tr.IDs[events+2]); !errors.Is(err, verify.ErrPending) {
		t.Fatalf("event past the checkpoint: %v, want ErrPending", err)
	}
}
