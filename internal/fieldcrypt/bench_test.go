package fieldcrypt

import (
	"bytes"
	"context"
	"testing"
)

// element200 is a 200-byte element value, the size of a typical coded
// value with display text.
var element200 = bytes.Repeat([]byte("0123456789"), 20)

// BenchmarkSeal seals a 200-byte element with warm caches (the
// patient's keyset already unwrapped).
func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	k, _, _ := newTestKeys(b)
	mustSeal(b, k, "HIV", "p1", obsAD, "warm")
	b.SetBytes(int64(len(element200)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal(ctx, "HIV", "p1", obsAD, element200); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen opens a 200-byte element with warm caches.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	k, _, _ := newTestKeys(b)
	c, err := k.Seal(ctx, "HIV", "p1", obsAD, element200)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(element200)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(ctx, "HIV", "p1", obsAD, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenCold opens with an empty cache each time: a records read
// and two keyset unwraps (category under the KEK, patient under the
// category key) before the element.
func BenchmarkOpenCold(b *testing.B) {
	ctx := context.Background()
	k, _, _ := newTestKeys(b)
	c, err := k.Seal(ctx, "HIV", "p1", obsAD, element200)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		k.Invalidate()
		if _, err := k.Open(ctx, "HIV", "p1", obsAD, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	ctx := context.Background()
	k, _, _ := newTestKeys(b)
	if _, err := k.BlindIndexCode(ctx, "HIV", "", "http://snomed.info/sct", "86406008"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.BlindIndexCode(ctx, "HIV", "", "http://snomed.info/sct", "86406008"); err != nil {
			b.Fatal(err)
		}
	}
}
