package witness

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseRequest: the add-checkpoint parser never panics, refuses with
// ErrMalformed, and anything it accepts re-encodes to the same bytes.
// Seeds: testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nexample.com/log\n1\nAAAA\n\n— example.com/log AAAA\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if got := r.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("re-encoded %q, parsed from %q", got, body)
		}
		if len(r.Proof) > MaxProofLines || len(r.Checkpoint) == 0 {
			t.Fatalf("accepted %d proof lines and a %d-byte checkpoint", len(r.Proof), len(r.Checkpoint))
		}
		for _, h := range r.Proof {
			if len(h) != hashSize {
				t.Fatalf("accepted a %d-byte proof hash", len(h))
			}
		}
	})
}

func TestParseRequest(t *testing.T) {
	h := bytes.Repeat([]byte{0xab}, 32)
	good := Request{OldSize: 12, Proof: [][]byte{h, h}, Checkpoint: []byte("o\n13\nroot\n\n— o sig\n")}
	r, err := ParseRequest(good.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if r.OldSize != 12 || len(r.Proof) != 2 || !bytes.Equal(r.Proof[1], h) || !bytes.Equal(r.Checkpoint, good.Checkpoint) {
		t.Fatalf("parsed %+v", r)
	}
	for _, bad := range []string{
		"", "old 1", "old \n\nx", "old 1 \n\nx", "Old 1\n\nx", "old 0x1\n\nx", "old +1\n\nx",
		"old 1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s\n\nx",  // unpadded
		"old 1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6t=\n\nx", // non-canonical padding bits
		"old 1\n\n",
	} {
		if _, err := ParseRequest([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRequest(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}
