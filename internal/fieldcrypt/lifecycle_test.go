package fieldcrypt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func mustSeal(t testing.TB, k *Keys, category, patient string, ad AD, plain string) []byte {
	t.Helper()
	c, err := k.Seal(context.Background(), category, patient, ad, []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustOpen(t testing.TB, k *Keys, category, patient string, ad AD, c []byte, want string) {
	t.Helper()
	p, err := k.Open(context.Background(), category, patient, ad, c)
	if err != nil || string(p) != want {
		t.Fatalf("Open = %q, %v; want %q", p, err, want)
	}
}

func keyID(t testing.TB, c []byte) uint32 {
	t.Helper()
	h, _, err := ParseHeader(c)
	if err != nil {
		t.Fatal(err)
	}
	return h.KeyID
}

func TestRotateAndReseal(t *testing.T) {
	ctx := context.Background()
	k, recs, kek := newTestKeys(t)
	old := mustSeal(t, k, "HIV", "p1", obsAD, "old")
	idx1, err := k.BlindIndexCode(ctx, "HIV", "", "http://snomed.info/sct", "86406008")
	if err != nil {
		t.Fatal(err)
	}
	newCat, err := k.Rotate(ctx, "HIV", "")
	if err != nil {
		t.Fatal(err)
	}
	newC := mustSeal(t, k, "HIV", "p1", obsAD, "new")
	if keyID(t, newC) == keyID(t, old) {
		t.Fatal("a seal after Rotate uses the old data key")
	}
	mustOpen(t, k, "HIV", "p1", obsAD, old, "old")
	mustOpen(t, k, "HIV", "p1", obsAD, newC, "new")

	// Another process (fresh Keys on the same records) opens both.
	k2, err := New(recs, kek, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustOpen(t, k2, "HIV", "p1", obsAD, old, "old")
	mustOpen(t, k2, "HIV", "p1", obsAD, newC, "new")

	// Blind indexes do not change with data-key rotation.
	if idx2, _ := k.BlindIndexCode(ctx, "HIV", "", "http://snomed.info/sct", "86406008"); idx2 != idx1 {
		t.Error("blind index changed after Rotate")
	}

	// Reseal moves the old value to the primary key, leaves the new one.
	moved, changed, err := k.Reseal(ctx, old, obsAD)
	if err != nil || !changed {
		t.Fatalf("Reseal(old) = %v, %v", changed, err)
	}
	if keyID(t, moved) != keyID(t, newC) {
		t.Error("Reseal did not use the primary key")
	}
	mustOpen(t, k, "HIV", "p1", obsAD, moved, "old")
	same, changed, err := k.Reseal(ctx, newC, obsAD)
	if err != nil || changed || string(same) != string(newC) {
		t.Fatalf("Reseal(new) = changed %v, %v", changed, err)
	}
	// Reseal refuses what Open refuses.
	other := obsAD
	other.ID = "999"
	if _, _, err := k.Reseal(ctx, old, other); !errors.Is(err, ErrOpen) {
		t.Errorf("Reseal with the wrong AD = %v, want ErrOpen", err)
	}

	// A patient with no write since the rotation: Reseal rotates its keyset.
	p2old := mustSeal(t, k, "HIV", "p2", obsAD, "p2")
	if _, err := k.Rotate(ctx, "HIV", ""); err != nil {
		t.Fatal(err)
	}
	// k2 has the category cached from before this rotation: until its
	// coherence reload calls Invalidate it keeps the previous primary
	// (still a valid key), then it moves.
	if _, changed, err := k2.Reseal(ctx, p2old, obsAD); err != nil || changed {
		t.Fatalf("Reseal with a stale cache = %v, %v; want unchanged", changed, err)
	}
	k2.Invalidate()
	p2new, changed, err := k2.Reseal(ctx, p2old, obsAD)
	if err != nil || !changed || keyID(t, p2new) == keyID(t, p2old) {
		t.Fatalf("Reseal after another process rotated = %v, %v", changed, err)
	}
	mustOpen(t, k, "HIV", "p2", obsAD, p2new, "p2")

	st, err := k.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Category != "HIV" || st[0].Rotations != 2 || len(st[0].Keys) != 3 {
		t.Fatalf("Status = %+v", st)
	}
	if !st[0].Keys[2].Primary || st[0].Keys[0].Primary || st[0].Keys[1].ID != newCat || st[0].IndexKeyID == 0 {
		t.Errorf("Status keys = %+v", st[0].Keys)
	}
}

// sliceSource serves items in batches; it can fail once at a batch.
type sliceSource struct {
	items   []Sealed
	batch   int
	failAt  int // Next fails when asked for the batch starting at this index (once); -1 never
	calls   []string
	written map[string][]byte
}

func (s *sliceSource) Next(_ context.Context, after string) ([]Sealed, string, error) {
	s.calls = append(s.calls, after)
	start := 0
	if after != "" {
		n, err := strconv.Atoi(after)
		if err != nil {
			return nil, "", err
		}
		start = n + 1
	}
	if start == s.failAt {
		s.failAt = -1
		return nil, "", errInjected
	}
	end := min(start+s.batch, len(s.items))
	out := make([]Sealed, 0, end-start)
	for _, it := range s.items[start:end] {
		if c, ok := s.written[it.Ref]; ok {
			it.Ciphertext = c
		}
		out = append(out, it)
	}
	if end >= len(s.items) {
		return out, "", nil
	}
	return out, strconv.Itoa(end - 1), nil
}

func TestRunResealResumesAfterCrash(t *testing.T) {
	ctx := context.Background()
	k, recs, kek := newTestKeys(t)
	src := &sliceSource{batch: 3, failAt: 6, written: map[string][]byte{}}
	for i := range 10 {
		ad := obsAD
		ad.ID = strconv.Itoa(i)
		src.items = append(src.items, Sealed{Ref: ad.ID, AD: ad, Ciphertext: mustSeal(t, k, "HIV", fmt.Sprintf("p%d", i%3), ad, "v"+ad.ID)})
	}
	// One forged item, one of a shredded patient.
	src.items = append(src.items, Sealed{Ref: "forged", AD: obsAD, Ciphertext: []byte{1, 3, 'H', 'I', 'V', 0, 2, 'p', '0', 0, 0, 0, 1, 9}})
	shredAD := obsAD
	shredAD.ID = "s"
	src.items = append(src.items, Sealed{Ref: "s", AD: shredAD, Ciphertext: mustSeal(t, k, "HIV", "gone", shredAD, "x")})
	if _, err := k.ShredPatient(ctx, "HIV", "", "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Rotate(ctx, "HIV", ""); err != nil {
		t.Fatal(err)
	}
	write := func(_ context.Context, it Sealed, c []byte) error {
		src.written[it.Ref] = c
		return nil
	}
	job := ResealJob{Name: "rotate-HIV", Source: src, Write: write, Total: int64(len(src.items))}
	p, err := k.RunReseal(ctx, job)
	if !errors.Is(err, errInjected) {
		t.Fatalf("first run = %+v, %v; want the injected failure", p, err)
	}
	if p.Done != 6 || p.Finished {
		t.Fatalf("progress at the crash = %+v", p)
	}
	// A new process resumes from the saved cursor, not from the start.
	k2, err := New(recs, kek, Options{})
	if err != nil {
		t.Fatal(err)
	}
	src.calls = nil
	var batches int
	job.OnBatch = func(Progress) { batches++ }
	p, err = k2.RunReseal(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if src.calls[0] != "5" {
		t.Errorf("resumed run started after %q, want after 5", src.calls[0])
	}
	if !p.Finished || p.Done != 12 || p.Total != 12 || p.Resealed != 10 || p.Failed != 1 || p.Shredded != 1 || batches != 2 {
		t.Errorf("final progress = %+v (batches %d)", p, batches)
	}
	sc := p.Scopes["/HIV"]
	if sc == nil || sc.Scanned != 12 || sc.OnOldKey != 10 || sc.Resealed != 10 {
		t.Errorf("scope counts = %+v", sc)
	}
	// Everything readable is on the primary key now and opens.
	for _, it := range src.items[:10] {
		c := src.written[it.Ref]
		if c == nil {
			t.Fatalf("item %s not resealed", it.Ref)
		}
		h, _, _ := ParseHeader(c)
		mustOpen(t, k2, "HIV", h.Patient, it.AD, c, "v"+it.Ref)
		if _, changed, err := k2.Reseal(ctx, c, it.AD); err != nil || changed {
			t.Errorf("item %s not on the primary key: %v %v", it.Ref, changed, err)
		}
	}
	st, err := k2.Status(ctx)
	if err != nil || len(st) != 1 || st[0].Resealed != 10 || len(st[0].Jobs) != 1 || !st[0].Jobs[0].Finished {
		t.Errorf("Status = %+v, %v", st, err)
	}
}

func TestRunResealWriteFailureStops(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeys(t)
	src := &sliceSource{batch: 2, failAt: -1, written: map[string][]byte{}}
	for i := range 4 {
		ad := obsAD
		ad.ID = strconv.Itoa(i)
		src.items = append(src.items, Sealed{Ref: ad.ID, AD: ad, Ciphertext: mustSeal(t, k, "HIV", "p1", ad, "v")})
	}
	if _, err := k.Rotate(ctx, "HIV", ""); err != nil {
		t.Fatal(err)
	}
	n := 0
	job := ResealJob{Name: "j", Source: src, Write: func(_ context.Context, it Sealed, c []byte) error {
		if n++; n == 3 {
			return errInjected
		}
		src.written[it.Ref] = c
		return nil
	}}
	if _, err := k.RunReseal(ctx, job); !errors.Is(err, errInjected) {
		t.Fatalf("RunReseal = %v, want the write failure", err)
	}
	p, err := k.RunReseal(ctx, job)
	if err != nil || !p.Finished || p.Done != 4 || len(src.written) != 4 {
		t.Fatalf("resumed: %+v, %v, written %d", p, err, len(src.written))
	}
	if _, err := k.RunReseal(ctx, ResealJob{Name: "j"}); err == nil {
		t.Error("a job without source and writer was accepted")
	}
}

func TestShredPatient(t *testing.T) {
	ctx := context.Background()
	k, recs, kek := newTestKeys(t)
	c1 := mustSeal(t, k, "HIV", "p1", obsAD, "p1 data")
	c2 := mustSeal(t, k, "HIV", "p2", obsAD, "p2 data")
	c1psy := mustSeal(t, k, "PSY", "p1", obsAD, "p1 psy")
	if _, err := k.Rotate(ctx, "HIV", ""); err != nil {
		t.Fatal(err)
	}
	c1b := mustSeal(t, k, "HIV", "p1", obsAD, "p1 newer")
	// Another process has p1's keys cached.
	other, err := New(recs, kek, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustOpen(t, other, "HIV", "p1", obsAD, c1, "p1 data")

	rep, err := k.ShredPatient(ctx, "HIV", "", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Category != "HIV" || rep.Patient != "p1" || rep.PatientKeysets != 1 || len(rep.DataKeyIDs) != 2 ||
		rep.DataKeyIDs[0] != keyID(t, c1) || rep.DataKeyIDs[1] != keyID(t, c1b) || rep.At.IsZero() {
		t.Errorf("report = %+v", rep)
	}
	for _, c := range [][]byte{c1, c1b} {
		if p, err := k.Open(ctx, "HIV", "p1", obsAD, c); !errors.Is(err, ErrShredded) || p != nil {
			t.Errorf("Open after shred = %q, %v; want ErrShredded", p, err)
		}
	}
	if _, err := k.Seal(ctx, "HIV", "p1", obsAD, []byte("more")); !errors.Is(err, ErrShredded) {
		t.Errorf("Seal after shred = %v; want ErrShredded", err)
	}
	if _, _, err := k.Reseal(ctx, c1, obsAD); !errors.Is(err, ErrShredded) {
		t.Errorf("Reseal after shred = %v; want ErrShredded", err)
	}
	// The key is gone from the records: not even the KEK holder reads it.
	if _, err := recs.GetRecord(ctx, kindPatient, "/HIV/p1"); err == nil {
		t.Error("the patient keyset is still stored")
	}
	// The other process stops after Invalidate (the coherence reload).
	other.Invalidate()
	if _, err := other.Open(ctx, "HIV", "p1", obsAD, c1); !errors.Is(err, ErrShredded) {
		t.Errorf("other process after Invalidate: %v; want ErrShredded", err)
	}
	// Other patients, and p1 in other categories, are untouched.
	mustOpen(t, k, "HIV", "p2", obsAD, c2, "p2 data")
	mustOpen(t, k, "PSY", "p1", obsAD, c1psy, "p1 psy")
	mustOpen(t, other, "HIV", "p2", obsAD, c2, "p2 data")
	// Shredding twice is harmless.
	if rep, err := k.ShredPatient(ctx, "HIV", "", "p1"); err != nil || rep.PatientKeysets != 0 {
		t.Errorf("second shred = %+v, %v", rep, err)
	}
}

func TestShredCategory(t *testing.T) {
	ctx := context.Background()
	k, recs, kek := newTestKeys(t)
	var hiv [][]byte
	for i := range 3 {
		hiv = append(hiv, mustSeal(t, k, "HIV", fmt.Sprintf("p%d", i), obsAD, "hiv"))
	}
	tenantAD := obsAD
	tenantAD.Tenant = "clinic-b"
	otherTenant := mustSeal(t, k, "HIV", "p0", tenantAD, "clinic b")
	psy := mustSeal(t, k, "PSY", "p0", obsAD, "psy")
	rep, err := k.ShredCategory(ctx, "HIV", "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.PatientKeysets != 3 || len(rep.DataKeyIDs) != 1 || rep.IndexKeyID == 0 || rep.Patient != "" {
		t.Errorf("report = %+v", rep)
	}
	k2, err := New(recs, kek, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kk := range []*Keys{k, k2} {
		for i, c := range hiv {
			if _, err := kk.Open(ctx, "HIV", fmt.Sprintf("p%d", i), obsAD, c); !errors.Is(err, ErrShredded) {
				t.Errorf("Open after category shred = %v; want ErrShredded", err)
			}
		}
		if _, err := kk.Seal(ctx, "HIV", "p9", obsAD, []byte("x")); !errors.Is(err, ErrShredded) {
			t.Errorf("Seal after category shred = %v", err)
		}
		if _, err := kk.BlindIndex(ctx, "HIV", "", "x"); !errors.Is(err, ErrShredded) {
			t.Errorf("BlindIndex after category shred = %v", err)
		}
		mustOpen(t, kk, "HIV", "p0", tenantAD, otherTenant, "clinic b")
		mustOpen(t, kk, "PSY", "p0", obsAD, psy, "psy")
	}
	st, err := k.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sawShredded bool
	for _, s := range st {
		if s.Category == "HIV" && s.Tenant == "" {
			sawShredded = s.Shredded && !s.ShreddedAt.IsZero() && len(s.Keys) == 0
		}
	}
	if !sawShredded || len(st) != 3 {
		t.Errorf("Status = %+v", st)
	}
}

// TestConcurrentSealOpenRotate seals and opens from several goroutines
// (and two processes) while categories rotate: no operation may fail.
func TestConcurrentSealOpenRotate(t *testing.T) {
	ctx := context.Background()
	k, recs, kek := newTestKeys(t)
	k2, err := New(recs, kek, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var failures atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		kk := k
		if w%2 == 1 {
			kk = k2
		}
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				patient := fmt.Sprintf("p%d", i%5)
				ad := obsAD
				ad.ID = fmt.Sprintf("%d-%d", w, i)
				plain := []byte("value " + ad.ID)
				c, err := kk.Seal(ctx, "HIV", patient, ad, plain)
				if err != nil {
					t.Errorf("Seal: %v", err)
					failures.Add(1)
					continue
				}
				// Open in the other process too.
				for _, o := range []*Keys{k, k2} {
					if p, err := o.Open(ctx, "HIV", patient, ad, c); err != nil || string(p) != string(plain) {
						t.Errorf("Open: %q, %v", p, err)
						failures.Add(1)
					}
				}
			}
		})
	}
	for range 6 {
		if _, err := k.Rotate(ctx, "HIV", ""); err != nil {
			t.Error(err)
		}
		if _, err := k2.Rotate(ctx, "HIV", ""); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d operations failed during rotation", failures.Load())
	}
	st, err := k.Status(ctx)
	if err != nil || len(st) != 1 || st[0].Rotations != 12 || len(st[0].Keys) != 13 {
		t.Errorf("Status after 12 rotations = %+v, %v", st, err)
	}
}

func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	recs := newMemRecords()
	kek := KeyringKEK{Keyring: testKeyring(t)}
	k, err := New(recs, kek, Options{CacheSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	var cs [][]byte
	for i := range 20 {
		cs = append(cs, mustSeal(t, k, "HIV", fmt.Sprintf("p%d", i), obsAD, "v"))
		if n := k.cache.len(); n > 4 {
			t.Fatalf("cache holds %d keysets, bound 4", n)
		}
	}
	for i, c := range cs {
		mustOpen(t, k, "HIV", fmt.Sprintf("p%d", i), obsAD, c, "v")
	}
	// A records failure while loading is reported, not cached as absence.
	k.Invalidate()
	recs.fail = func(op, kind, key string) error { return errInjected }
	if _, err := k.Open(ctx, "HIV", "p0", obsAD, cs[0]); !errors.Is(err, errInjected) {
		t.Errorf("Open with the store down = %v", err)
	}
	recs.fail = nil
	mustOpen(t, k, "HIV", "p0", obsAD, cs[0], "v")
}

// TestShredUnderLoad shreds patients while others' values are sealed and
// opened: no operation on a patient that is not shredded may fail.
func TestShredUnderLoad(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeys(t)
	var failures atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				patient := fmt.Sprintf("keep%d", (w+i)%4)
				ad := obsAD
				ad.ID = fmt.Sprintf("%d-%d", w, i)
				c, err := k.Seal(ctx, "SDV", patient, ad, []byte("v"))
				if err == nil {
					_, err = k.Open(ctx, "SDV", patient, ad, c)
				}
				if err != nil {
					t.Errorf("%s: %v", patient, err)
					failures.Add(1)
				}
			}
		})
	}
	for i := range 20 {
		gone := fmt.Sprintf("gone%d", i)
		c := mustSeal(t, k, "SDV", gone, obsAD, "x")
		if _, err := k.ShredPatient(ctx, "SDV", "", gone); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Open(ctx, "SDV", gone, obsAD, c); !errors.Is(err, ErrShredded) {
			t.Errorf("shredded %s: %v", gone, err)
		}
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d operations failed while shredding others", failures.Load())
	}
}

// TestRotateRacingLoad: a request that read the keysets before a
// rotation and caches them after it must not bring the old primary keys
// back, else new values go on being sealed under them and a re-seal job
// finds nothing to move.
func TestRotateRacingLoad(t *testing.T) {
	ctx := context.Background()
	k, _, _ := newTestKeys(t)
	old := mustSeal(t, k, "HIV", "p1", obsAD, "old")
	catKey, patKey := scopeKey("HIV", ""), patientKey("HIV", "", "p1")
	staleCat, gen, ok := k.cache.category(catKey)
	stalePat, _, okp := k.cache.patient(patKey)
	if !ok || !okp || staleCat == nil || stalePat == nil {
		t.Fatal("the keysets are not cached after a seal")
	}
	if _, err := k.Rotate(ctx, "HIV", ""); err != nil {
		t.Fatal(err)
	}
	newC := mustSeal(t, k, "HIV", "p1", obsAD, "new")
	if keyID(t, newC) == keyID(t, old) {
		t.Fatal("a seal after Rotate uses the old data key")
	}
	// The racing load finishes now, in the same cache generation.
	k.cache.putCategory(catKey, staleCat, gen)
	k.cache.putPatient(patKey, stalePat, gen)
	if c := mustSeal(t, k, "HIV", "p1", obsAD, "later"); keyID(t, c) != keyID(t, newC) {
		t.Error("a racing load put the keysets from before the rotation back: new values are sealed under the old key")
	}
	if _, changed, err := k.Reseal(ctx, old, obsAD); err != nil || !changed {
		t.Errorf("Reseal of a value from before the rotation: changed %v, %v", changed, err)
	}
}
