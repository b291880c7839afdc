package eventdb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// journalTrail journals tr's events as the audit pipeline does (each
// entry the event's head and canonical event) in a new journal in dir.
// It returns the journal.
func journalTrail(t testing.TB, dir string, tr *auditTrail) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	for i, r := range tr.records {
		built, err := audit.Build(r, diffBase)
		if err != nil {
			t.Fatal(err)
		}
		built["id"] = tr.ids[i]
		canonical, err := audit.Canonical(built)
		if err != nil {
			t.Fatal(err)
		}
		e := audit.JournalEntry{ID: tr.ids[i], Leaf: make([]byte, audit.LeafSize), Time: r.Time, Patients: r.Patients, Canonical: canonical}
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

// indexJournaled indexes j into a new eventdb that keeps where the
// journal (in jdir) holds each event, as the server does.
func indexJournaled(t testing.TB, j *journal.Journal, jdir, dir string) *eventdb.DB {
	t.Helper()
	d, err := eventdb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.UseJournal(journal.File(jdir)); err != nil {
		t.Fatal(err)
	}
	x, err := index.NewSink(j, d, index.Options{Base: diffBase, Batch: putBatch})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// An index that keeps where the journal holds each event, built from a
// real journal by the indexer, answers as the FHIR store does: every
// event read back byte for byte, every named search and its pages. It
// holds a fraction of what an index with copies holds.
func TestJournaledIndexAnswersAlike(t *testing.T) {
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	tr := seedTrail(t, *diffSeed, *diffEvents, false)
	fhir, copies := loadTrail(t, tr)
	jdir := t.TempDir()
	j := journalTrail(t, jdir, tr)
	d := indexJournaled(t, j, jdir, t.TempDir())
	fx := &diffFixture{reg: reg, tr: tr, tv: collectValues(t, tr), fhir: fhir, d: d, strict: *diffSeed == 1 && *diffEvents == trailLen, queries: 40}
	t.Run("read", func(t *testing.T) { testDiffRead(t, fx) })
	t.Run("named", func(t *testing.T) { testDiffNamed(t, fx) })
	t.Run("random", func(t *testing.T) { testDiffRandom(t, fx) })
	if got, with := d.DiskBytes(), copies.DiskBytes(); got*2 > with {
		t.Errorf("the journaled index takes %d bytes, the one with copies %d: want under half", got, with)
	}
}

// The index never serves an event other than the one journaled: an entry
// damaged in the journal is refused (the checksum), and an index opened
// without its journal says so rather than serve nothing silently.
func TestJournaledIndexRefusesDamage(t *testing.T) {
	ctx := context.Background()
	tr := seedTrail(t, 3, 40, false)
	jdir := t.TempDir()
	j := journalTrail(t, jdir, tr)
	idir := t.TempDir()
	d := indexJournaled(t, j, jdir, idir)
	victim := tr.ids[17]
	want, err := d.Read(ctx, "AuditEvent", victim)
	if err != nil {
		t.Fatal(err)
	}
	// Damage one byte of the victim's event in the journal file.
	path := journal.File(jdir)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := strings.Index(string(raw), `"id":"`+victim+`"`)
	if at < 0 {
		t.Fatal("the victim is not in the journal")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'X'}, int64(at+7)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, err := d.Read(ctx, "AuditEvent", victim); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read of a damaged event: %v; want an error (served %d bytes, %d before)", err, len(got.JSON), len(want.JSON))
	}
	if _, err := d.Read(ctx, "AuditEvent", tr.ids[18]); err != nil {
		t.Errorf("an undamaged neighbour: %v", err)
	}
	res, err := d.Search(ctx, parse(t, "_id="+victim), store.PageRequest{})
	if err == nil {
		t.Errorf("search for the damaged event served %d events", len(res.Matches))
	}

	// Reopened without its journal.
	j.Close()
	d.Close()
	d2 := open(t, idir)
	if _, err := d2.Read(ctx, "AuditEvent", tr.ids[3]); err == nil || errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "journal") {
		t.Errorf("read without the journal: %v; want an error naming the journal", err)
	}
	// A journal of another trail in its place: same file, other events.
	other := seedTrail(t, 4, 40, false)
	odir := t.TempDir()
	journalTrail(t, odir, other).Close()
	d2.Close()
	d3 := open(t, idir)
	if err := d3.UseJournal(filepath.Join(odir, filepath.Base(journal.File(odir)))); err != nil {
		t.Fatal(err)
	}
	for _, id := range tr.ids[:10] {
		if r, err := d3.Read(ctx, "AuditEvent", id); err == nil {
			t.Errorf("%s read from another trail's journal: %s", id, r.JSON)
		}
	}
}

// An index written before it kept journal offsets (copies of its events)
// goes on with offsets after the upgrade, and serves both alike.
func TestJournaledIndexAfterCopies(t *testing.T) {
	reg, err := searchparam.R4()
	if err != nil {
		t.Fatal(err)
	}
	tr := seedTrail(t, 5, 150, false)
	fhir, _ := loadTrail(t, tr)
	jdir, idir := t.TempDir(), t.TempDir()
	j := journalTrail(t, jdir, tr)
	// The first 70 events as the last version stored them: copies,
	// with the cursor after them.
	old := open(t, idir)
	if err := old.Put(context.Background(), tr.writes[:70], 70); err != nil {
		t.Fatal(err)
	}
	old.Close()
	d := indexJournaled(t, j, jdir, idir)
	if c, err := d.Cursor(context.Background()); err != nil || c != uint64(len(tr.writes)) {
		t.Fatalf("cursor %d, %v; want %d", c, err, len(tr.writes))
	}
	fx := &diffFixture{reg: reg, tr: tr, tv: collectValues(t, tr), fhir: fhir, d: d, queries: 20}
	t.Run("read", func(t *testing.T) { testDiffRead(t, fx) })
	t.Run("random", func(t *testing.T) { testDiffRandom(t, fx) })
}
