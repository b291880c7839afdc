package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"crypto/rand"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	sumdbtlog "golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "audit.hospital.example/log"

// memTree is an in-memory RFC 6962 tree (x/mod/sumdb/tlog hashes are the
// RFC 6962 ones), used to build honest and forked checkpoints and proofs.
type memTree struct {
	hashes []sumdbtlog.Hash
	n      int64
}

func (t *memTree) ReadHashes(idx []int64) ([]sumdbtlog.Hash, error) {
	out := make([]sumdbtlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = t.hashes[x]
	}
	return out, nil
}

// grow appends leaves tagged tag until the tree has n leaves.
func (t *memTree) grow(tb testing.TB, tag string, n int64) *memTree {
	tb.Helper()
	for t.n < n {
		leaf := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(tag), uint64(t.n)))
		hs, err := sumdbtlog.StoredHashes(t.n, leaf[:], t)
		if err != nil {
			tb.Fatal(err)
		}
		t.hashes = append(t.hashes, hs...)
		t.n++
	}
	return t
}

func (t *memTree) root(tb testing.TB, n int64) []byte {
	tb.Helper()
	h, err := sumdbtlog.TreeHash(n, t)
	if err != nil {
		tb.Fatal(err)
	}
	return h[:]
}

// proof is the consistency proof from size old to size n (RFC 6962 §2.1.2).
func (t *memTree) proof(tb testing.TB, old, n int64) [][]byte {
	tb.Helper()
	if old == 0 || old == n {
		return nil
	}
	p, err := sumdbtlog.ProveTree(n, old, t)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = bytes.Clone(h[:])
	}
	return out
}

type fixture struct {
	dir    string
	key    Key
	state  *State
	w      *Witness
	h      http.Handler
	logBuf *bytes.Buffer
	signer note.Signer // the log's key
	tree   *memTree    // the log's honest tree
}

func newKeyPair(tb testing.TB, name string) (note.Signer, note.Verifier) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, v
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	s, v := newKeyPair(tb, testOrigin)
	return newFixtureFor(tb, s, v)
}

// fixedLogKey is the log key of the fuzz seeds: generated from a constant,
// so the seeds' signatures verify in every run.
func fixedLogKey(tb testing.TB) (note.Signer, note.Verifier) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{42}, 32)), testOrigin)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, v
}

func newFixtureFor(tb testing.TB, s note.Signer, v note.Verifier) *fixture {
	tb.Helper()
	f := &fixture{dir: filepath.Join(tb.TempDir(), "witness"), signer: s, tree: new(memTree)}
	f.open(tb, []note.Verifier{v})
	return f
}

// open (re)opens the witness from f.dir.
func (f *fixture) open(tb testing.TB, logs []note.Verifier) {
	tb.Helper()
	k, err := LoadOrCreateKey(f.dir, "witness.partner.example")
	if err != nil {
		tb.Fatal(err)
	}
	st, err := OpenState(tb.Context(), filepath.Join(f.dir, StateFile))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	w, err := New(Options{Signer: k.Signer, Logs: logs, State: st})
	if err != nil {
		tb.Fatal(err)
	}
	f.key, f.state, f.w = k, st, w
	f.logBuf = new(bytes.Buffer)
	f.h = NewHandler(w, slog.New(slog.NewTextHandler(f.logBuf, nil)))
}

// checkpoint signs a checkpoint for origin, size and root with s.
func checkpoint(tb testing.TB, s note.Signer, origin string, size int64, root []byte) []byte {
	tb.Helper()
	body := flog.Checkpoint{Origin: origin, Size: uint64(size), Hash: root}.Marshal()
	n, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// honest returns the request advancing the honest tree from old to n.
func (f *fixture) honest(tb testing.TB, old, n int64) []byte {
	tb.Helper()
	f.tree.grow(tb, "honest", n)
	return Request{
		OldSize:    uint64(old),
		Proof:      f.tree.proof(tb, old, n),
		Checkpoint: checkpoint(tb, f.signer, testOrigin, n, f.tree.root(tb, n)),
	}.Marshal()
}

func (f *fixture) post(tb testing.TB, body []byte) *httptest.ResponseRecorder {
	tb.Helper()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/add-checkpoint", bytes.NewReader(body)))
	return rec
}

func (f *fixture) latest(tb testing.TB) Record {
	tb.Helper()
	r, _, err := f.state.Latest(tb.Context(), testOrigin)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func mustStatus(tb testing.TB, rec *httptest.ResponseRecorder, want int) {
	tb.Helper()
	if rec.Code != want {
		b, _ := io.ReadAll(rec.Body)
		tb.Fatalf("status %d, want %d; body %q", rec.Code, want, b)
	}
}

func (f *fixture) evidence(tb testing.TB) []Evidence {
	tb.Helper()
	e, err := f.state.Evidence(tb.Context(), testOrigin)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}
