package sealing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/store"
)

// Replacer rewrites the stored JSON of one version in place when it
// still equals old (sqlstore.Store.ReplaceJSON).
type Replacer interface {
	ReplaceJSON(ctx context.Context, typ, id string, version int64, old, new []byte) error
}

// ResealJob returns the re-encryption job that moves every sealed
// version in the store (history included) to its categories' current
// keys after a rotation, for fieldcrypt.Keys.RunReseal: progress is
// saved after each batch, and a job run again with the same name resumes.
// Versions are rewritten in place (no new version, the index untouched)
// with a compare-and-swap, so a concurrent write is never lost: a
// version changed meanwhile is counted as failed and left for the next
// run.
//
// A version sealed under several categories (layers) is re-sealed as a
// whole by the source itself as it is listed, since its inner layers are
// not visible to the job; the job's counts cover single-category
// versions, which are nearly all of them.
func (s *Store) ResealJob(k *fieldcrypt.Keys, r Replacer, name string, onBatch func(fieldcrypt.Progress)) fieldcrypt.ResealJob {
	src := &resealSource{s: s, k: k, r: r}
	return fieldcrypt.ResealJob{Name: name, Source: src, Write: src.write, OnBatch: onBatch}
}

type resealSource struct {
	s *Store
	k *fieldcrypt.Keys
	r Replacer
}

// resealBatch is how many versions one Next reads.
const resealBatch = 200

// Next lists the sealed versions after the cursor, in the store's system
// history order (newest first; versions written after the job started
// are sealed under the new keys already).
func (src *resealSource) Next(ctx context.Context, after string) ([]fieldcrypt.Sealed, string, error) {
	page, err := src.s.inner.History(ctx, store.HistoryQuery{Count: resealBatch, After: after})
	if err != nil {
		return nil, "", err
	}
	var items []fieldcrypt.Sealed
	for _, v := range page.Versions {
		cats, patient, ct, ok := CiphertextOf(v.JSON)
		if !ok {
			continue
		}
		ad := fieldcrypt.AD{Tenant: src.s.p.Tenant, Type: v.Type, ID: v.ID, Version: v.Version, Path: adPath}
		if len(cats) > 1 {
			if err := src.resealLayers(ctx, v, cats, patient, ct, ad); err != nil {
				return nil, "", err
			}
			continue
		}
		items = append(items, fieldcrypt.Sealed{Ref: v.Type + "/" + v.ID + "/" + strconv.FormatInt(v.Version, 10), AD: ad, Ciphertext: ct})
	}
	return items, page.Next, nil
}

// write stores a re-sealed single-layer ciphertext in its version.
func (src *resealSource) write(ctx context.Context, it fieldcrypt.Sealed, resealed []byte) error {
	typ, rest, _ := strings.Cut(it.Ref, "/")
	id, ver, _ := strings.Cut(rest, "/")
	version, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return fmt.Errorf("sealing: bad job reference %q", it.Ref)
	}
	cur, err := src.s.inner.VRead(ctx, typ, id, version)
	if err != nil {
		return err
	}
	next, err := withCiphertext(cur.JSON, resealed)
	if err != nil {
		return err
	}
	return src.replace(ctx, cur, next)
}

// resealLayers opens every layer of a multi-category version and seals
// it again under the current keys when any layer is under an older one.
func (src *resealSource) resealLayers(ctx context.Context, v store.Resource, cats []string, patient string, ct []byte, ad fieldcrypt.AD) error {
	layers := make([][]byte, len(cats)) // layers[j]: the ciphertext under cats[j]
	layers[len(cats)-1] = ct
	for j := len(cats) - 1; j > 0; j-- {
		inner, err := src.k.Open(ctx, cats[j], patient, ad, layers[j])
		if err != nil {
			return skipUnopenable(err)
		}
		layers[j-1] = inner
	}
	// Inside out: a layer under an older key is sealed again under the
	// current one, and then every layer around it too.
	var cur []byte
	changed := false
	for j := range cats {
		if changed {
			out, err := src.k.Seal(ctx, cats[j], patient, ad, cur)
			if err != nil {
				return err
			}
			cur = out
			continue
		}
		out, moved, err := src.k.Reseal(ctx, layers[j], ad)
		if err != nil {
			return skipUnopenable(err)
		}
		cur, changed = out, moved
	}
	if !changed {
		return nil
	}
	next, err := withCiphertext(v.JSON, cur)
	if err != nil {
		return err
	}
	return src.replace(ctx, &v, next)
}

func (src *resealSource) replace(ctx context.Context, cur *store.Resource, next []byte) error {
	err := src.r.ReplaceJSON(ctx, cur.Type, cur.ID, cur.Version, cur.JSON, next)
	if errors.Is(err, store.ErrConflict) {
		return nil // changed meanwhile: written under the current keys, or left for the next run
	}
	return err
}

// skipUnopenable leaves data that cannot be opened (shredded, damaged)
// as it is; other failures stop the job.
func skipUnopenable(err error) error {
	if errors.Is(err, fieldcrypt.ErrShredded) || errors.Is(err, fieldcrypt.ErrOpen) {
		return nil
	}
	return err
}

// withCiphertext returns a stored form with its sealed member's
// ciphertext replaced.
func withCiphertext(stored, ct []byte) ([]byte, error) {
	i := sealedAt(stored)
	if i < 0 {
		return nil, ErrDamaged
	}
	var b box
	if err := json.Unmarshal(stored[i+len(sealedMarker):len(stored)-1], &b); err != nil {
		return nil, ErrDamaged
	}
	b.CT = ct
	nb, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, i+len(sealedMarker)+len(nb)+1)
	out = append(append(append(out, stored[:i]...), sealedMarker...), nb...)
	return append(out, '}'), nil
}
