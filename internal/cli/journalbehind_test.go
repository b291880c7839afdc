package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/audit/journal"
)

// An index whose cursor is past the end of its journal (an older copy of
// the journal restored under it) is refused at start, with what to do;
// an index at or behind the journal's end is not.
func TestIndexWithinJournal(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := range 3 {
		if _, err := j.Append(ctx, fmt.Appendf(nil, "entry %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := eventdb.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	x, err := index.NewSink(j, d, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cursor uint64
		behind bool
	}{{0, false}, {3, false}, {4, true}, {90, true}} {
		// An empty Put stores the cursor alone.
		if err := d.Put(ctx, nil, c.cursor); err != nil {
			t.Fatal(err)
		}
		err := indexWithinJournal(ctx, x, j)
		if got := errors.Is(err, audit.ErrJournalBehind); got != c.behind {
			t.Fatalf("cursor %d over a journal of 3: %v", c.cursor, err)
		}
		if c.behind && !strings.Contains(err.Error(), fmt.Sprintf("holds 3 entries, and %d were indexed", c.cursor)) || c.behind && !strings.Contains(err.Error(), "restore DATA_DIR/audit/journal") {
			t.Errorf("cursor %d: %v", c.cursor, err)
		}
	}
}
