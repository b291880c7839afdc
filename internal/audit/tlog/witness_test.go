package tlog

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
)

// With a witness policy, a checkpoint the witnesses do not cosign is never
// published: a witness that refuses keeps a fresh log from opening.
func TestWitnessPolicyFailsClosed(t *testing.T) {
	s, _, _ := testKeys(t)
	_, witnessVKey, err := NewKey("witness.partner.example")
	if err != nil {
		t.Fatal(err)
	}
	cosigKey, err := fnote.VKeyToCosignatureV1(witnessVKey)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "refused", http.StatusForbidden)
	}))
	defer refusing.Close()

	dir := t.TempDir()
	o := testOptions(dir, s)
	o.Witnesses = fmt.Appendf(nil, "witness w1 %s %s\nquorum w1\n", cosigKey, refusing.URL)
	l, err := Open(t.Context(), o)
	if err == nil {
		_ = l.Close(t.Context())
		t.Fatal("log opened although its witness refused to cosign")
	}
	if calls.Load() == 0 {
		t.Fatal("witness was never asked to cosign")
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint")); !os.IsNotExist(err) {
		t.Fatalf("a checkpoint was published without the witness: %v", err)
	}
}
