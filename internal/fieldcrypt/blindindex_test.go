package fieldcrypt

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestBlindIndex(t *testing.T) {
	ctx := context.Background()
	k, recs, kek := newTestKeys(t)
	sct := "http://snomed.info/sct"
	idx := func(kk *Keys, category, tenant, system, code string) string {
		t.Helper()
		s, err := kk.BlindIndexCode(ctx, category, tenant, system, code)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := idx(k, "HIV", "", sct, "86406008")
	if !strings.HasPrefix(base, "bi1.") || len(base) != 4+22 || strings.Contains(base, "86406008") {
		t.Fatalf("index %q", base)
	}
	// Equal inputs (after trimming) give equal indexes, also in another
	// process with the same records.
	k2, _ := New(recs, kek, Options{})
	for _, got := range []string{idx(k, "HIV", "", sct, "86406008"), idx(k, "HIV", "", " "+sct+" ", "86406008\t"), idx(k2, "HIV", "", sct, "86406008")} {
		if got != base {
			t.Errorf("index %q, want %q", got, base)
		}
	}
	// Everything else differs.
	for name, got := range map[string]string{
		"other code":               idx(k, "HIV", "", sct, "86406009"),
		"other system":             idx(k, "HIV", "", "http://loinc.org", "86406008"),
		"no system":                idx(k, "HIV", "", "", "86406008"),
		"other category":           idx(k, "PSY", "", sct, "86406008"),
		"other tenant":             idx(k, "HIV", "clinic-b", sct, "86406008"),
		"boundary moved into code": idx(k, "HIV", "", sct+"|86406008", ""),
		"code case":                idx(k, "HIV", "", "a", "B"),
		"code case 2":              idx(k, "HIV", "", "a", "b"),
	} {
		if got == base {
			t.Errorf("%s: same index as the base value", name)
		}
	}
	if idx(k, "HIV", "", "a", "B") == idx(k, "HIV", "", "a", "b") {
		t.Error("codes differing in case share an index")
	}
	if v, _ := k.BlindIndex(ctx, "HIV", "", sct+"|86406008"); v == base {
		t.Error("a plain value collides with a coded one")
	}
	// Another deployment (other index key) gives other indexes.
	k3, _, _ := newTestKeys(t)
	if idx(k3, "HIV", "", sct, "86406008") == base {
		t.Error("index does not depend on the key")
	}
	if _, err := k.BlindIndex(ctx, "HIV", "a/b", "x"); !errors.Is(err, ErrBadName) {
		t.Errorf("bad tenant: %v", err)
	}
}
