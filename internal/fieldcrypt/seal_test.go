package fieldcrypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var obsAD = AD{Type: "Observation", ID: "123", Version: 2, Path: "valueCodeableConcept"}

const plainHIV = `{"coding":[{"system":"http://snomed.info/sct","code":"86406008","display":"Human immunodeficiency virus infection"}]}`

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeys(t)
	for _, plain := range [][]byte{nil, {}, []byte("x"), []byte(plainHIV), bytes.Repeat([]byte("note "), 10000)} {
		c, err := k.Seal(ctx, "HIV", "p1", obsAD, plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) >= 8 && bytes.Contains(c, plain[:8]) {
			t.Fatal("sealed value contains the plaintext")
		}
		h, n, err := ParseHeader(c)
		if err != nil || h.Category != "HIV" || h.Tenant != "" || h.Patient != "p1" || h.KeyID == 0 || n >= len(c) {
			t.Fatalf("header = %+v, %d, %v", h, n, err)
		}
		got, err := k.Open(ctx, "HIV", "p1", obsAD, c)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open = %.40q, %v", got, err)
		}
	}
	a, _ := k.Seal(ctx, "HIV", "p1", obsAD, []byte("same"))
	b, _ := k.Seal(ctx, "HIV", "p1", obsAD, []byte("same"))
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are equal (nonce reuse)")
	}
}

// TestOpenRefuses lists the ways to get a sealed value opened where it
// does not belong; each must fail with ErrOpen and no detail.
func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeys(t)
	seal := func(category, patient string, ad AD, plain string) []byte {
		t.Helper()
		c, err := k.Seal(ctx, category, patient, ad, []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := seal("HIV", "p1", obsAD, plainHIV)
	// Other sealed values to swap in.
	otherPatient := seal("HIV", "p2", obsAD, "p2's status")
	otherRecordAD := obsAD
	otherRecordAD.ID = "456"
	otherRecord := seal("HIV", "p1", otherRecordAD, "another record")
	otherCategory := seal("PSY", "p1", obsAD, "psychiatric note")
	tenantAD := obsAD
	tenantAD.Tenant = "clinic-b"
	otherTenant := seal("HIV", "p1", tenantAD, "other tenant")

	with := func(f func(*AD)) AD { a := obsAD; f(&a); return a }
	flip := func(b []byte, i int) []byte { d := bytes.Clone(b); d[i] ^= 0x01; return d }
	_, hlen, err := ParseHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		name, category, patient string
		ad                      AD
		c                       []byte
	}
	cases := []tc{
		{"AD: other resource type", "HIV", "p1", with(func(a *AD) { a.Type = "Condition" }), c},
		{"AD: other resource id", "HIV", "p1", with(func(a *AD) { a.ID = "124" }), c},
		{"AD: other version", "HIV", "p1", with(func(a *AD) { a.Version = 3 }), c},
		{"AD: other element path", "HIV", "p1", with(func(a *AD) { a.Path = "note" }), c},
		{"AD: other tenant", "HIV", "p1", with(func(a *AD) { a.Tenant = "clinic-b" }), c},
		{"AD: fields shifted (id/path boundary)", "HIV", "p1", AD{Type: "Observation", ID: "123valueCodeable", Version: 2, Path: "Concept"}, c},
		{"other category asked", "PSY", "p1", obsAD, c},
		{"other patient asked", "HIV", "p2", obsAD, c},
		{"another patient's ciphertext", "HIV", "p1", obsAD, otherPatient},
		{"another record's ciphertext", "HIV", "p1", obsAD, otherRecord},
		{"another category's ciphertext", "HIV", "p1", obsAD, otherCategory},
		{"another tenant's ciphertext", "HIV", "p1", obsAD, otherTenant},
		{"truncated by one", "HIV", "p1", obsAD, c[:len(c)-1]},
		{"header only", "HIV", "p1", obsAD, c[:hlen]},
		{"header and Tink prefix only", "HIV", "p1", obsAD, c[:hlen+5]},
		{"truncated header", "HIV", "p1", obsAD, c[:3]},
		{"empty", "HIV", "p1", obsAD, nil},
		{"extended", "HIV", "p1", obsAD, append(bytes.Clone(c), 0)},
		{"header version changed", "HIV", "p1", obsAD, flip(c, 0)},
		{"header key id changed", "HIV", "p1", obsAD, flip(c, hlen-1)},
	}
	// Every single-bit change anywhere, header or body.
	for i := range c {
		cases = append(cases, tc{fmt.Sprintf("bit flip at byte %d", i), "HIV", "p1", obsAD, flip(c, i)})
	}
	// The header rewritten to name patient p2 / tenant clinic-b, asked as such.
	h, _, _ := ParseHeader(c)
	h2 := h
	h2.Patient = "p2"
	cases = append(cases, tc{"header relabelled to another patient", "HIV", "p2", obsAD, append(h2.append(nil), c[hlen:]...)})
	h3 := h
	h3.Tenant = "clinic-b"
	cases = append(cases, tc{"header relabelled to another tenant", "HIV", "p1", tenantAD, append(h3.append(nil), c[hlen:]...)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := k.Open(ctx, tc.category, tc.patient, tc.ad, tc.c)
			if !errors.Is(err, ErrOpen) || p != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrOpen", p, err)
			}
			if err.Error() != ErrOpen.Error() {
				t.Errorf("error carries detail: %q", err)
			}
		})
	}
	t.Run("another deployment's keys", func(t *testing.T) {
		other, _, _ := newTestKeys(t)
		if _, err := other.Seal(ctx, "HIV", "p1", obsAD, []byte("make keys")); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Open(ctx, "HIV", "p1", obsAD, c); !errors.Is(err, ErrOpen) {
			t.Fatalf("another deployment opened it: %v", err)
		}
	})
	t.Run("success", func(t *testing.T) {
		if p, err := k.Open(ctx, "HIV", "p1", obsAD, c); err != nil || string(p) != plainHIV {
			t.Fatalf("Open = %q, %v", p, err)
		}
	})
}

func TestBadNames(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeys(t)
	for _, tc := range []struct{ category, tenant, patient string }{
		{"", "", "p1"},
		{"HIV/x", "", "p1"},
		{"HIV", "a/b", "p1"},
		{"HIV", "", ""},
		{"HIV", "", "p/1"},
		{"HIV", "", strings.Repeat("p", 65)},
		{strings.Repeat("C", 33), "", "p1"},
	} {
		ad := obsAD
		ad.Tenant = tc.tenant
		if _, err := k.Seal(ctx, tc.category, tc.patient, ad, []byte("x")); !errors.Is(err, ErrBadName) {
			t.Errorf("Seal(%q, %q, %q) = %v, want ErrBadName", tc.category, tc.tenant, tc.patient, err)
		}
	}
}

// TestKEKFailures: a key-encryption key that cannot unwrap, or a
// tampered wrapped keyset, fails closed with ErrKeyUnwrap and no
// plaintext or key material in the error.
func TestKEKFailures(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*memRecords, KEK, []byte) {
		k, recs, kek := newTestKeys(t)
		c, err := k.Seal(ctx, "HIV", "p1", obsAD, []byte(plainHIV))
		if err != nil {
			t.Fatal(err)
		}
		return recs, kek, c
	}
	cases := []struct {
		name   string
		mangle func(t *testing.T, recs *memRecords) KEK
	}{
		{"another master keyring", func(t *testing.T, recs *memRecords) KEK {
			return KeyringKEK{Keyring: testKeyring(t)}
		}},
		{"tampered wrapped category keyset", func(t *testing.T, recs *memRecords) KEK {
			recs.edit(t, kindCategory, "/HIV", func(v []byte) []byte { return flipInJSONField(t, v, "keyset") })
			return nil
		}},
		{"tampered wrapped index keyset", func(t *testing.T, recs *memRecords) KEK {
			recs.edit(t, kindCategory, "/HIV", func(v []byte) []byte { return flipInJSONField(t, v, "index") })
			return nil
		}},
		{"tampered wrapped patient keyset", func(t *testing.T, recs *memRecords) KEK {
			recs.edit(t, kindPatient, "/HIV/p1", func(v []byte) []byte { return flipInJSONField(t, v, "keyset") })
			return nil
		}},
		{"patient keyset moved to another patient", func(t *testing.T, recs *memRecords) KEK {
			r, _ := recs.GetRecord(ctx, kindPatient, "/HIV/p1")
			r.Key = "/HIV/p9"
			_ = recs.PutRecord(ctx, *r)
			return nil
		}},
		{"category record not JSON", func(t *testing.T, recs *memRecords) KEK {
			recs.edit(t, kindCategory, "/HIV", func([]byte) []byte { return []byte("garbage") })
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, kek, c := setup(t)
			if other := tc.mangle(t, recs); other != nil {
				kek = other
			}
			// A fresh Keys (a restarted process) reads the records.
			k2, err := New(recs, kek, Options{})
			if err != nil {
				t.Fatal(err)
			}
			patient := "p1"
			if tc.name == "patient keyset moved to another patient" {
				patient = "p9"
				hdr, n, _ := ParseHeader(c)
				hdr.Patient = "p9"
				c = append(hdr.append(nil), c[n:]...)
			}
			p, err := k2.Open(ctx, "HIV", patient, obsAD, c)
			if !errors.Is(err, ErrKeyUnwrap) || p != nil {
				t.Fatalf("Open = %q, %v; want ErrKeyUnwrap", p, err)
			}
			if strings.Contains(err.Error(), "86406008") {
				t.Errorf("error leaks plaintext: %v", err)
			}
			if _, err := k2.Seal(ctx, "HIV", patient, obsAD, []byte("new")); !errors.Is(err, ErrKeyUnwrap) {
				t.Errorf("Seal = %v; want ErrKeyUnwrap", err)
			}
		})
	}
}

func flipInJSONField(t *testing.T, v []byte, field string) []byte {
	t.Helper()
	i := bytes.Index(v, []byte(`"`+field+`":"`))
	if i < 0 {
		t.Fatalf("no field %s", field)
	}
	j := i + len(field) + 4 + 40 // inside the base64 value
	// Change one base64 character to another valid one.
	if v[j] == 'A' {
		v[j] = 'B'
	} else {
		v[j] = 'A'
	}
	return v
}
