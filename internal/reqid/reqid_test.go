package reqid_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/reqid"
)

// Ids are 96 bits of hex, unique, and sort by the millisecond they were
// made in (a later one never sorts first).
func TestNew(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		id := reqid.New()
		b, err := hex.DecodeString(id)
		if err != nil || len(b) != 12 {
			t.Fatalf("id %q: %d bytes, %v", id, len(b), err)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		if i > 0 && id[:12] < prev[:12] {
			t.Fatalf("id %q made after %q sorts before it", id, prev)
		}
		prev = id
	}
	// Within one millisecond, the random half still differs.
	a, b := reqid.New(), reqid.New()
	if a[12:] == b[12:] {
		t.Fatalf("two ids share their random bits: %s %s", a, b)
	}
}

func TestStamp(t *testing.T) {
	var b [6]byte
	at := time.Date(2026, 11, 29, 4, 30, 0, 123_000_000, time.UTC)
	reqid.Stamp(b[:], at)
	if got, want := hex.EncodeToString(b[:]), "01a2259129bb"; got != want {
		t.Fatalf("Stamp(%v) = %s, want %s (%x ms)", at, got, want, at.UnixMilli())
	}
	var later [6]byte
	reqid.Stamp(later[:], at.Add(time.Millisecond))
	if string(later[:]) <= string(b[:]) {
		t.Fatal("a later time does not sort later")
	}
}

func TestFrom(t *testing.T) {
	if got := reqid.From(context.Background()); got != "-" {
		t.Fatalf("From(empty) = %q", got)
	}
	if got := reqid.From(reqid.With(context.Background(), "abc")); got != "abc" {
		t.Fatalf("From(With(abc)) = %q", got)
	}
}
