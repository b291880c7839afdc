package fieldcrypt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/wardenfhir/warden/internal/store"
)

// Rotate adds a fresh AES-256-GCM key to a category's keyset and makes
// it primary, without downtime: old keys stay, so everything sealed
// before still opens. Each patient's data keyset gets a new primary key
// the next time something is sealed for that patient (or Reseal moves
// one of its values), so new writes use new keys; run a ResealJob (RunReseal) to move
// old data. The blind-index key does not change. The record is updated
// with compare-and-swap, so concurrent rotations in several processes
// each add one key. It returns the new category key id.
func (k *Keys) Rotate(ctx context.Context, category, tenant string) (uint32, error) {
	if err := checkScope(category, tenant); err != nil {
		return 0, err
	}
	key := scopeKey(category, tenant)
	for range 5 {
		k.cache.dropCategory(key)
		gen := k.cache.generation()
		cat, err := k.loadCategory(ctx, category, tenant, true)
		if err != nil {
			return 0, err
		}
		m := keyset.NewManagerFromHandle(cat.handle)
		id, err := m.Add(aead.AES256GCMKeyTemplate())
		if err != nil {
			return 0, errSeal
		}
		if err := m.SetPrimary(id); err != nil {
			return 0, errSeal
		}
		h, err := m.Handle()
		if err != nil {
			return 0, errSeal
		}
		w, err := wrapKeyset(h, kekAEAD{k.kek}, labels(categoryKeysetDomain, tenant, category))
		if err != nil {
			return 0, fmt.Errorf("fieldcrypt: wrapping a rotated category keyset: %w", err)
		}
		rec := cat.rec
		rec.Epoch++
		rec.Primary = id
		rec.Keys = append(slices.Clone(rec.Keys), keyMeta{ID: id, Created: k.now().UTC()})
		rec.Keyset = w
		v, err := json.Marshal(rec)
		if err != nil {
			return 0, errSeal
		}
		err = k.records.SwapRecord(ctx, store.Record{Kind: kindCategory, Key: key, Value: v}, cat.raw)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			return 0, ErrShredded
		}
		if err != nil {
			return 0, fmt.Errorf("fieldcrypt: writing records: %w", err)
		}
		if nst, err := k.parseCategory(v, category, tenant); err == nil {
			k.cache.putCategory(key, nst, gen)
		}
		return id, nil
	}
	return 0, fmt.Errorf("fieldcrypt: rotating a category keyset: %w", store.ErrConflict)
}
