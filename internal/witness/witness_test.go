package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Every way to get a checkpoint cosigned that the witness must refuse,
// each checked for its status code and for leaving the witness's state
// where it was (size 8 of the honest tree).
func TestAddCheckpointRefusals(t *testing.T) {
	f := newFixture(t)
	mustStatus(t, f.post(t, f.honest(t, 0, 8)), http.StatusOK)
	before := f.latest(t)
	if before.Size != 8 {
		t.Fatalf("latest size %d after cosigning 8", before.Size)
	}
	f.tree.grow(t, "honest", 20)
	fork := new(memTree).grow(t, "fork", 20) // same log key, another history
	otherSigner, _ := newKeyPair(t, testOrigin)
	strangerSigner, _ := newKeyPair(t, "stranger.example/log")
	cp := func(s note.Signer, tree *memTree, n int64) []byte {
		return checkpoint(t, s, testOrigin, n, tree.root(t, n))
	}
	req := func(old int64, proof [][]byte, checkpoint []byte) []byte {
		return Request{OldSize: uint64(old), Proof: proof, Checkpoint: checkpoint}.Marshal()
	}
	honestProof := f.tree.proof(t, 8, 20)
	randomHash := sha256.Sum256([]byte("not a tree node"))
	tampered := bytes.Replace(cp(f.signer, f.tree, 20), []byte("\n20\n"), []byte("\n21\n"), 1)
	badSig := flipSignatureBit(t, cp(f.signer, f.tree, 20))

	cases := []struct {
		name   string
		body   []byte
		status int
		size   string // the text/x.tlog.size body expected with a 409, if any
		kept   bool   // signed by the log, so kept as evidence
	}{
		{"fork at the same size", req(8, nil, cp(f.signer, fork, 8)), http.StatusConflict, "", true},
		{"fork at a larger size with the fork's proof", req(8, fork.proof(t, 8, 20), cp(f.signer, fork, 20)), http.StatusUnprocessableEntity, "", true},
		{"fork at a larger size with the honest proof", req(8, honestProof, cp(f.signer, fork, 20)), http.StatusUnprocessableEntity, "", true},
		{"rollback from zero", req(0, nil, cp(f.signer, f.tree, 5)), http.StatusConflict, "8\n", false},
		{"rollback from the cosigned size", req(8, nil, cp(f.signer, f.tree, 5)), http.StatusBadRequest, "", false},
		{"stale old size", req(4, f.tree.proof(t, 4, 20), cp(f.signer, f.tree, 20)), http.StatusConflict, "8\n", false},
		{"old size ahead of the witness", req(12, f.tree.proof(t, 12, 20), cp(f.signer, f.tree, 20)), http.StatusConflict, "8\n", false},
		{"unknown origin", req(0, nil, checkpoint(t, strangerSigner, "stranger.example/log", 3, fork.root(t, 3))), http.StatusNotFound, "", false},
		{"signed by another key of the same name", req(8, honestProof, cp(otherSigner, f.tree, 20)), http.StatusForbidden, "", false},
		{"checkpoint text tampered after signing", req(8, honestProof, tampered), http.StatusForbidden, "", false},
		{"signature bytes tampered", req(8, honestProof, badSig), http.StatusForbidden, "", false},
		{"no proof", req(8, nil, cp(f.signer, f.tree, 20)), http.StatusUnprocessableEntity, "", true},
		{"short proof", req(8, honestProof[:len(honestProof)-1], cp(f.signer, f.tree, 20)), http.StatusUnprocessableEntity, "", true},
		{"extra proof line", req(8, append(append([][]byte{}, honestProof...), randomHash[:]), cp(f.signer, f.tree, 20)), http.StatusUnprocessableEntity, "", true},
		{"wrong proof hash", req(8, append([][]byte{randomHash[:]}, honestProof[1:]...), cp(f.signer, f.tree, 20)), http.StatusUnprocessableEntity, "", true},
		{"proof at equal sizes", req(8, [][]byte{randomHash[:]}, cp(f.signer, f.tree, 8)), http.StatusUnprocessableEntity, "", true},
		{"empty body", nil, http.StatusBadRequest, "", false},
		{"no old line", []byte("\n" + string(cp(f.signer, f.tree, 20))), http.StatusBadRequest, "", false},
		{"negative old size", []byte("old -1\n\n" + string(cp(f.signer, f.tree, 20))), http.StatusBadRequest, "", false},
		{"old size with leading zero", []byte("old 08\n\n" + string(cp(f.signer, f.tree, 20))), http.StatusBadRequest, "", false},
		{"old size overflows", []byte("old 18446744073709551616\n\n" + string(cp(f.signer, f.tree, 20))), http.StatusBadRequest, "", false},
		{"no blank line", []byte("old 8\n"), http.StatusBadRequest, "", false},
		{"proof line not base64", []byte("old 8\n!!!!\n\n" + string(cp(f.signer, f.tree, 20))), http.StatusBadRequest, "", false},
		{"proof line of 31 bytes", []byte("old 8\n" + base64.StdEncoding.EncodeToString(randomHash[:31]) + "\n\n" + string(cp(f.signer, f.tree, 20))), http.StatusBadRequest, "", false},
		{"64 proof lines", req(8, bytes64(randomHash[:], 64), cp(f.signer, f.tree, 20)), http.StatusBadRequest, "", false},
		{"no checkpoint", []byte("old 8\n\n"), http.StatusBadRequest, "", false},
		{"checkpoint without signatures", req(8, honestProof, []byte(testOrigin+"\n20\n"+base64.StdEncoding.EncodeToString(f.tree.root(t, 20))+"\n")), http.StatusBadRequest, "", false},
		{"body over the limit", append(req(8, honestProof, cp(f.signer, f.tree, 20)), bytes.Repeat([]byte("x"), MaxRequestBody)...), http.StatusRequestEntityTooLarge, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kept := f.evidence(t)
			rec := f.post(t, c.body)
			mustStatus(t, rec, c.status)
			if got := f.evidence(t); c.kept != (len(got) == len(kept)+1) || len(got) > len(kept)+1 {
				t.Fatalf("evidence went from %d to %d records; kept=%v", len(kept), len(got), c.kept)
			} else if c.kept && !bytes.Equal(got[len(got)-1].Request, c.body) {
				t.Fatalf("evidence holds %q, not the request", got[len(got)-1].Request)
			}
			if c.status == http.StatusConflict {
				ct := rec.Header().Get("Content-Type")
				if c.size != "" && (ct != "text/x.tlog.size" || rec.Body.String() != c.size) {
					t.Fatalf("409 with %q %q, want text/x.tlog.size %q", ct, rec.Body.String(), c.size)
				}
				if c.size == "" && ct == "text/x.tlog.size" {
					t.Fatal("a root mismatch must not be answered with a size to retry from")
				}
			}
			if after := f.latest(t); after.Size != before.Size || !bytes.Equal(after.Root, before.Root) || !bytes.Equal(after.Checkpoint, before.Checkpoint) {
				t.Fatalf("state moved to size %d", after.Size)
			}
		})
	}

	t.Run("GET add-checkpoint", func(t *testing.T) {
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/add-checkpoint", nil))
		mustStatus(t, rec, http.StatusMethodNotAllowed)
	})
	// The log lines carry origin, sizes and reason, never the checkpoint.
	logs := f.logBuf.String()
	if !strings.Contains(logs, "origin="+testOrigin) || !strings.Contains(logs, "reason=") || !strings.Contains(logs, "status=422") {
		t.Fatalf("refusals not logged with origin, status and reason:\n%s", logs)
	}
	if strings.Contains(logs, base64.StdEncoding.EncodeToString(f.tree.root(t, 20))) {
		t.Fatal("log lines contain checkpoint content")
	}
}

// flipSignatureBit flips one bit of the signature (after the key hash) on
// the note's last signature line, keeping the line well-formed.
func flipSignatureBit(t *testing.T, signed []byte) []byte {
	t.Helper()
	body := strings.TrimSuffix(string(signed), "\n")
	i := strings.LastIndex(body, " ")
	sig, err := base64.StdEncoding.DecodeString(body[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	return []byte(body[:i+1] + base64.StdEncoding.EncodeToString(sig) + "\n")
}

func bytes64(h []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = h
	}
	return out
}

// The success path: first contact, a re-cosign at the same size, an
// extension with a proof; each response is a cosignature/v1 signature
// that verifies over the checkpoint.
func TestAddCheckpointCosigns(t *testing.T) {
	f := newFixture(t)
	cosigV, err := fnote.NewVerifierForCosignatureV1(f.key.CosignatureVKey)
	if err != nil {
		t.Fatal(err)
	}
	logV := mustVerifier(t, f)
	for _, step := range []struct{ old, n int64 }{{0, 0}, {0, 8}, {8, 8}, {8, 9}, {9, 1000}} {
		body := f.honest(t, step.old, step.n)
		rec := f.post(t, body)
		mustStatus(t, rec, http.StatusOK)
		r, _ := ParseRequest(body)
		n, err := note.Open(append(bytes.Clone(r.Checkpoint), rec.Body.Bytes()...), note.VerifierList(logV, cosigV))
		if err != nil {
			t.Fatalf("%d→%d: cosigned note does not open: %v", step.old, step.n, err)
		}
		var cosigned bool
		for _, s := range n.Sigs {
			if s.Name == f.key.Name() && s.Hash == cosigV.KeyHash() {
				if _, err := fnote.CoSigV1Timestamp(s); err != nil {
					t.Fatalf("cosignature has no timestamp: %v", err)
				}
				cosigned = true
			}
		}
		if !cosigned {
			t.Fatalf("%d→%d: no cosignature by %s in %q", step.old, step.n, f.key.Name(), rec.Body.String())
		}
		if got := f.latest(t).Size; got != uint64(step.n) {
			t.Fatalf("latest size %d, want %d", got, step.n)
		}
	}
}

func mustVerifier(t *testing.T, f *fixture) note.Verifier {
	t.Helper()
	for _, v := range f.w.logs {
		return v
	}
	t.Fatal("no log")
	return nil
}

// A witness reopened from its directory keeps its key and what it
// cosigned: it still refuses a fork of it.
func TestRestartStillRefusesFork(t *testing.T) {
	f := newFixture(t)
	mustStatus(t, f.post(t, f.honest(t, 0, 8)), http.StatusOK)
	vkey := f.key.CosignatureVKey
	logs := []note.Verifier{mustVerifier(t, f)}
	if err := f.state.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t, logs)
	if f.key.CosignatureVKey != vkey {
		t.Fatal("witness key changed across a restart")
	}
	fork := new(memTree).grow(t, "fork", 20)
	mustStatus(t, f.post(t, Request{OldSize: 8, Checkpoint: checkpoint(t, f.signer, testOrigin, 8, fork.root(t, 8))}.Marshal()), http.StatusConflict)
	mustStatus(t, f.post(t, Request{OldSize: 8, Proof: fork.proof(t, 8, 20), Checkpoint: checkpoint(t, f.signer, testOrigin, 20, fork.root(t, 20))}.Marshal()), http.StatusUnprocessableEntity)
	mustStatus(t, f.post(t, f.honest(t, 0, 20)), http.StatusConflict)
	mustStatus(t, f.post(t, f.honest(t, 8, 20)), http.StatusOK)
}

// Requests racing from the same old size: exactly one advances the log,
// the others get 409 with the size it advanced to. Several rounds, each
// from the size the last one reached.
func TestConcurrentAddCheckpoint(t *testing.T) {
	f := newFixture(t)
	mustStatus(t, f.post(t, f.honest(t, 0, 8)), http.StatusOK)
	const racers, rounds = 16, 5
	old := int64(8)
	for round := range rounds {
		bodies := make([][]byte, racers)
		for i := range bodies {
			bodies[i] = f.honest(t, old, old+1+int64(i)) // each racer a different, honest size
		}
		var wg sync.WaitGroup
		codes := make([]int, racers)
		sizes := make([]string, racers)
		for i := range racers {
			wg.Go(func() {
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/add-checkpoint", bytes.NewReader(bodies[i])))
				codes[i], sizes[i] = rec.Code, rec.Body.String()
			})
		}
		wg.Wait()
		winner := -1
		for i, c := range codes {
			switch c {
			case http.StatusOK:
				if winner >= 0 {
					t.Fatalf("round %d: racers %d and %d both advanced from size %d", round, winner, i, old)
				}
				winner = i
			case http.StatusConflict:
			default:
				t.Fatalf("round %d: racer %d: status %d", round, i, c)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer advanced", round)
		}
		newSize := old + 1 + int64(winner)
		for i, c := range codes {
			if c == http.StatusConflict && sizes[i] != fmt.Sprintf("%d\n", newSize) {
				t.Fatalf("round %d: racer %d: 409 with size %q, want %d", round, i, sizes[i], newSize)
			}
		}
		if got := f.latest(t).Size; got != uint64(newSize) {
			t.Fatalf("round %d: latest size %d, want the winner's %d", round, got, newSize)
		}
		old = newSize
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	f := newFixture(t)
	v := mustVerifier(t, f)
	for name, o := range map[string]Options{
		"no signer":     {Logs: []note.Verifier{v}, State: f.state},
		"no state":      {Signer: f.key.Signer, Logs: []note.Verifier{v}},
		"duplicate log": {Signer: f.key.Signer, Logs: []note.Verifier{v, v}, State: f.state},
	} {
		if _, err := New(o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%s: %v, want ErrBadOptions", name, err)
		}
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	mustStatus(t, rec, http.StatusOK)
	if rec.Body.String() != "ok\n" {
		t.Fatalf("healthz body %q", rec.Body.String())
	}
}

// FuzzAddCheckpoint: whatever the body, the witness never panics, a
// refusal never moves its state, and an accepted checkpoint never moves it
// backwards or to another root at the same size. Seeds (signed with
// fixedLogKey): testdata/fuzz/FuzzAddCheckpoint.
func FuzzAddCheckpoint(f *testing.F) {
	s, v := fixedLogKey(f)
	fx := newFixtureFor(f, s, v)
	mustStatus(f, fx.post(f, fx.honest(f, 0, 8)), http.StatusOK)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := fx.latest(t)
		rec := fx.post(t, body)
		after := fx.latest(t)
		if rec.Code != http.StatusOK {
			if after.Size != before.Size || !bytes.Equal(after.Root, before.Root) {
				t.Fatalf("status %d moved the state from %d to %d", rec.Code, before.Size, after.Size)
			}
			return
		}
		if after.Size < before.Size || (after.Size == before.Size && !bytes.Equal(after.Root, before.Root)) {
			t.Fatalf("accepted a move from %d to %d", before.Size, after.Size)
		}
		if !bytes.HasPrefix(rec.Body.Bytes(), []byte("— ")) {
			t.Fatalf("200 without a signature line: %q", rec.Body.Bytes())
		}
	})
}
