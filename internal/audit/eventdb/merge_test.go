package eventdb

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// concat merges as pebble.DefaultMerger does, whatever the order the
// operands come in.
func TestConcatLikeDefault(t *testing.T) {
	ops := []string{"c", "dd", "", "eee", "a", "bb"}
	// Start from the middle operand, then newer and older ones as a
	// compaction or a read hands them over.
	merge := func(m *pebble.Merger) string {
		vm, err := m.Merge(nil, []byte(ops[3]))
		if err != nil {
			t.Fatal(err)
		}
		vm.MergeNewer([]byte(ops[4]))
		vm.MergeOlder([]byte(ops[2]))
		vm.MergeOlder([]byte(ops[1]))
		vm.MergeNewer([]byte(ops[5]))
		vm.MergeOlder([]byte(ops[0]))
		out, _, err := vm.Finish(true)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if got, want := merge(concat), merge(pebble.DefaultMerger); got != want || got != "cddeeeabb" {
		t.Errorf("concat %q, pebble's %q, want cddeeeabb", got, want)
	}
	if concat.Name != pebble.DefaultMerger.Name {
		t.Errorf("name %q: stores made with Pebble's merger would not open", concat.Name)
	}
	// The operands' bytes are the caller's: reusing them changes nothing.
	buf := []byte("xy")
	vm, _ := concat.Merge(nil, buf)
	old := []byte("ab")
	vm.MergeOlder(old)
	buf[0], old[0] = '!', '!'
	if out, _, _ := vm.Finish(true); string(out) != "abxy" {
		t.Errorf("after the caller reused its buffers: %q", out)
	}
}
