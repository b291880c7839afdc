package fieldcrypt

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// KeyInfo describes one category key (never the key itself).
type KeyInfo struct {
	ID      uint32
	Primary bool
	Created time.Time
}

// KeyStatus is what `warden keys status` shows for one category and
// tenant.
type KeyStatus struct {
	Category, Tenant string
	Shredded         bool
	ShreddedAt       time.Time
	Rotations        uint32    // how many times the category was rotated
	Keys             []KeyInfo // category keys, oldest first
	IndexKeyID       uint32
	// Scanned, OnOldKey and Resealed add up what re-encryption jobs saw
	// in this scope (see ScopeCount); OnOldKey-Resealed values were still
	// on old keys when last scanned.
	Scanned, OnOldKey, Resealed int64
	// Jobs are the re-encryption jobs that touched the scope.
	Jobs []Progress
}

// Status reads the key records (without unwrapping anything: it needs
// no KEK) and the re-encryption jobs' progress, one entry per category
// and tenant, sorted by tenant then category.
func (k *Keys) Status(ctx context.Context) ([]KeyStatus, error) {
	byScope := map[string]*KeyStatus{}
	cats, err := k.records.ListRecords(ctx, kindCategory)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: reading records: %w", err)
	}
	for _, r := range cats {
		var cr categoryRecord
		if err := json.Unmarshal(r.Value, &cr); err != nil {
			return nil, fmt.Errorf("fieldcrypt: category record %q: %w", r.Key, ErrKeyUnwrap)
		}
		tenant, category, _ := strings.Cut(r.Key, "/")
		st := &KeyStatus{Category: category, Tenant: tenant, Rotations: cr.Epoch, IndexKeyID: cr.IndexKeyID}
		for _, m := range cr.Keys {
			st.Keys = append(st.Keys, KeyInfo{ID: m.ID, Primary: m.ID == cr.Primary, Created: m.Created})
		}
		byScope[r.Key] = st
	}
	tombs, err := k.records.ListRecords(ctx, kindShredded)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: reading records: %w", err)
	}
	for _, r := range tombs {
		if strings.Count(r.Key, "/") != 1 {
			continue // a patient's tombstone
		}
		var rep ShredReport
		_ = json.Unmarshal(r.Value, &rep)
		tenant, category, _ := strings.Cut(r.Key, "/")
		byScope[r.Key] = &KeyStatus{Category: category, Tenant: tenant, Shredded: true, ShreddedAt: rep.At}
	}
	jobs, err := k.records.ListRecords(ctx, kindJob)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: reading records: %w", err)
	}
	for _, r := range jobs {
		var p Progress
		if json.Unmarshal(r.Value, &p) != nil {
			continue
		}
		for scope, c := range p.Scopes {
			st := byScope[scope]
			if st == nil {
				continue
			}
			st.Scanned += c.Scanned
			st.OnOldKey += c.OnOldKey
			st.Resealed += c.Resealed
			st.Jobs = append(st.Jobs, p)
		}
	}
	out := make([]KeyStatus, 0, len(byScope))
	for _, st := range byScope {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b KeyStatus) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Category, b.Category))
	})
	return out, nil
}
