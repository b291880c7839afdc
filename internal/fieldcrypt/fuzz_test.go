package fieldcrypt

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzOpen feeds Open arbitrary sealed values, categories, patients and
// associated data, starting from real sealed values and the seeds in
// testdata/fuzz/FuzzOpen. Properties: it never panics; it opens only a
// value Seal made, with the exact category, patient and AD it was made
// with, to its plaintext; every other input fails with ErrOpen and no
// plaintext.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	k, _, _ := newTestKeys(f)
	type made struct {
		category, patient string
		ad                AD
		plain             []byte
	}
	seals := map[string]made{}
	for _, m := range []made{
		{"HIV", "p1", obsAD, []byte(plainHIV)},
		{"PSY", "p1", AD{Type: "Condition", ID: "c", Version: 1, Path: "code"}, []byte("depression")},
		{"HIV", "p2", AD{Tenant: "t1", Type: "Observation", ID: "123", Version: 2, Path: "valueCodeableConcept"}, nil},
	} {
		c, err := k.Seal(ctx, m.category, m.patient, m.ad, m.plain)
		if err != nil {
			f.Fatal(err)
		}
		seals[string(c)] = m
		f.Add(c, m.category, m.patient, m.ad.Tenant, m.ad.Type, m.ad.ID, m.ad.Version, m.ad.Path)
	}
	f.Fuzz(func(t *testing.T, c []byte, category, patient, tenant, typ, id string, version int64, path string) {
		ad := AD{Tenant: tenant, Type: typ, ID: id, Version: version, Path: path}
		p, err := k.Open(ctx, category, patient, ad, c)
		m, ok := seals[string(c)]
		if ok && m.category == category && m.patient == patient && m.ad == ad {
			if err != nil || !bytes.Equal(p, m.plain) {
				t.Fatalf("Open of a real sealed value = %q, %v", p, err)
			}
			return
		}
		if err == nil || p != nil {
			t.Fatalf("Open of a forged or mismatched value = %q, %v", p, err)
		}
		if !errors.Is(err, ErrOpen) {
			t.Fatalf("Open failed with %v, want ErrOpen", err)
		}
	})
}

// FuzzParseHeader: ParseHeader never panics, and a header it accepts
// encodes back to the exact bytes it read.
func FuzzParseHeader(f *testing.F) {
	f.Add(Header{Category: "HIV", Patient: "p1", KeyID: 42}.append(nil))
	f.Add(Header{Category: "SUD", Tenant: "clinic-b", Patient: "a.b-c", KeyID: 1 << 31}.append([]byte{}))
	f.Add([]byte{1, 3, 'H', 'I', 'V'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err != nil {
			if n != 0 || h != (Header{}) {
				t.Fatalf("failed parse returned %+v, %d", h, n)
			}
			return
		}
		if got := h.append(nil); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoded header %x, read %x", got, b[:n])
		}
	})
}
