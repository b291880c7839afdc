package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardenfhir/warden/internal/audit/tlog"
)

// End to end: Warden's audit log, given a policy that requires this
// witness, publishes only checkpoints the witness cosigned.
func TestAuditLogPublishesCosignedCheckpoints(t *testing.T) {
	skey, vkey, err := tlog.NewKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logVerifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := ParseLogList([]byte("# Warden audit log\n" + vkey + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k, err := LoadOrCreateKey(filepath.Join(dir, "witness"), "w1.partner.example")
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(t.Context(), filepath.Join(dir, "witness", StateFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := New(Options{Signer: k.Signer, Logs: logs, State: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(w, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()

	policy := fmt.Sprintf("%s\nquorum w1.partner.example\n", k.PolicyLine(srv.URL))
	l, err := tlog.Open(t.Context(), tlog.Options{
		Dir: filepath.Join(dir, "log"), Origin: testOrigin, Signer: logSigner,
		BatchMaxAge: 10 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond,
		Witnesses: []byte(policy),
	})
	if err != nil {
		t.Fatalf("open log with witness policy: %v", err)
	}
	defer l.Close(context.Background())

	const leaves = 40
	for i := range leaves {
		leaf := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		if _, err := l.Append(t.Context(), leaf[:]); err != nil {
			t.Fatal(err)
		}
	}
	cosigV, err := fnote.NewVerifierForCosignatureV1(k.CosignatureVKey)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, err := l.Checkpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		cp, _, n, err := flog.ParseCheckpoint(raw, testOrigin, logVerifier, cosigV)
		if err != nil {
			t.Fatalf("published checkpoint: %v", err)
		}
		var cosigned bool
		for _, s := range n.Sigs {
			cosigned = cosigned || (s.Name == k.Name() && s.Hash == cosigV.KeyHash())
		}
		if !cosigned {
			t.Fatalf("published checkpoint of size %d has no cosignature by the witness:\n%s", cp.Size, raw)
		}
		if cp.Size == leaves {
			latest, _, err := st.Latest(t.Context(), testOrigin)
			if err != nil || latest.Size < cp.Size {
				t.Fatalf("witness state %d, %v behind the published size %d", latest.Size, err, cp.Size)
			}
			if latest.Size == cp.Size && !bytes.Equal(latest.Root, cp.Hash) {
				t.Fatal("witness recorded another root for the published size")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("published size stuck at %d of %d", cp.Size, leaves)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
