package verify_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/wardenfhir/warden/internal/audit/verify"
)

// FuzzParseTlogProof: whatever ParseTlogProof accepts re-encodes to a
// text it parses to the same proof (parse → encode → parse is stable),
// and it never panics on hostile input.
func FuzzParseTlogProof(f *testing.F) {
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\nwarden.test/audit\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 warden.test/audit AAAA\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra AAEC\nindex 12\ngSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n\nx\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		tp, err := verify.ParseTlogProof(text)
		if err != nil {
			return
		}
		again, err := tp.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		tp2, err := verify.ParseTlogProof(again)
		if err != nil {
			t.Fatalf("re-encoded proof does not parse: %v\n%q", err, again)
		}
		if !reflect.DeepEqual(tp, tp2) {
			t.Fatalf("parse → encode → parse changed the proof:\n%+v\n%+v", tp, tp2)
		}
		for _, h := range tp.Hashes {
			if len(h) != 32 {
				t.Fatalf("accepted a %d-byte hash", len(h))
			}
		}
		if !bytes.HasSuffix(text, tp.Checkpoint) {
			t.Fatal("checkpoint is not the input's tail verbatim")
		}
	})
}
