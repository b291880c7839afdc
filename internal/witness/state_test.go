package witness

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// The compare-and-swap underneath the race: a swap from a state that has
// since moved changes nothing.
func TestStateSwapIsCompareAndSwap(t *testing.T) {
	st, err := OpenState(t.Context(), filepath.Join(t.TempDir(), StateFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	a := Record{Size: 8, Root: bytes.Repeat([]byte{1}, 32), Checkpoint: []byte("a")}
	b := Record{Size: 9, Root: bytes.Repeat([]byte{2}, 32), Checkpoint: []byte("b")}
	c := Record{Size: 10, Root: bytes.Repeat([]byte{3}, 32), Checkpoint: []byte("c")}
	huge := Record{Size: 1<<64 - 1, Root: bytes.Repeat([]byte{4}, 32), Checkpoint: []byte("huge")}

	if err := st.Swap(ctx, "o", nil, a); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		prev *Record
		next Record
	}{
		{"insert when a record exists", nil, b},
		{"swap from a size that is not the latest", &b, c},
		{"swap from the latest size with another root", &Record{Size: 8, Root: b.Root}, c},
	}
	for _, s := range steps {
		if err := st.Swap(ctx, "o", s.prev, s.next); !errors.Is(err, errStateMoved) {
			t.Fatalf("%s: %v, want errStateMoved", s.name, err)
		}
		if got, _, _ := st.Latest(ctx, "o"); got.Size != 8 || !bytes.Equal(got.Checkpoint, a.Checkpoint) {
			t.Fatalf("%s: state moved to %d", s.name, got.Size)
		}
	}
	if err := st.Swap(ctx, "o", &a, b); err != nil {
		t.Fatal(err)
	}
	if err := st.Swap(ctx, "o", &a, c); !errors.Is(err, errStateMoved) {
		t.Fatalf("second swap from the same old record: %v", err)
	}
	if err := st.Swap(ctx, "o", &b, huge); err != nil {
		t.Fatal(err)
	}
	got, found, err := st.Latest(ctx, "o")
	if err != nil || !found || got.Size != huge.Size || !bytes.Equal(got.Root, huge.Root) {
		t.Fatalf("Latest = %+v, %v, %v; want size 2^64-1", got, found, err)
	}
	if _, found, _ := st.Latest(ctx, "other"); found {
		t.Fatal("a record for a log never cosigned")
	}
}

// Evidence is kept per log, oldest dropped beyond MaxEvidencePerLog.
func TestStateEvidenceIsBounded(t *testing.T) {
	st, err := OpenState(t.Context(), filepath.Join(t.TempDir(), StateFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range MaxEvidencePerLog + 5 {
		if err := st.AddEvidence(t.Context(), "o", Evidence{Received: time.Unix(int64(i), 0), Reason: "r", Request: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddEvidence(t.Context(), "other", Evidence{Reason: "r", Request: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	e, err := st.Evidence(t.Context(), "o")
	if err != nil {
		t.Fatal(err)
	}
	if len(e) != MaxEvidencePerLog || e[0].Request[0] != 5 || e[len(e)-1].Request[0] != MaxEvidencePerLog+4 || !e[0].Received.Equal(time.Unix(5, 0)) {
		t.Fatalf("kept %d records, first %v", len(e), e[0].Request)
	}
	if other, _ := st.Evidence(t.Context(), "other"); len(other) != 1 {
		t.Fatalf("another log's evidence: %d records", len(other))
	}
}
