package fieldcrypt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// ShredReport says what a shredding destroyed, for the audit log. It
// holds key ids and counts, never key material.
type ShredReport struct {
	Category string    `json:"category"`
	Tenant   string    `json:"tenant"`
	Patient  string    `json:"patient,omitempty"` // "" for a whole category
	At       time.Time `json:"at"`
	// DataKeyIDs are the ids of the patient data keys destroyed (for a
	// patient) or of the category keys destroyed (for a category).
	DataKeyIDs []uint32 `json:"dataKeyIds,omitempty"`
	// IndexKeyID is the blind-index key destroyed with a category (0 for
	// a patient: index keys are per category).
	IndexKeyID uint32 `json:"indexKeyId,omitempty"`
	// PatientKeysets is how many patient data keysets were deleted.
	PatientKeysets int `json:"patientKeysets"`
}

// ShredPatient crypto-shreds one patient's data in a category: it
// records a tombstone, then deletes the patient's data keyset (the only
// copy of those keys, wrapped by the category key) and evicts it from
// memory. Everything sealed for that patient in that category is then
// unreadable, and Open and Seal return ErrShredded. Other processes stop
// using a cached copy when Invalidate runs there. Database backups keep
// the wrapped keyset until they expire (docs/ENCRYPTION.md).
func (k *Keys) ShredPatient(ctx context.Context, category, tenant, patient string) (ShredReport, error) {
	if err := checkScope(category, tenant); err != nil {
		return ShredReport{}, err
	}
	if !patientPattern.MatchString(patient) {
		return ShredReport{}, ErrBadName
	}
	rep := ShredReport{Category: category, Tenant: tenant, Patient: patient, At: k.now().UTC()}
	key := patientKey(category, tenant, patient)
	r, err := k.records.GetRecord(ctx, kindPatient, key)
	switch {
	case err == nil:
		var pr patientRecord
		if json.Unmarshal(r.Value, &pr) == nil {
			for _, m := range pr.Keys {
				rep.DataKeyIDs = append(rep.DataKeyIDs, m.ID)
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return ShredReport{}, fmt.Errorf("fieldcrypt: reading records: %w", err)
	}
	if err := k.tombstone(ctx, key, rep); err != nil {
		return ShredReport{}, err
	}
	gone, err := k.records.DeleteRecord(ctx, kindPatient, key)
	if err != nil {
		return ShredReport{}, fmt.Errorf("fieldcrypt: deleting a patient keyset: %w", err)
	}
	if gone {
		rep.PatientKeysets = 1
	}
	k.cache.clear()
	return rep, nil
}

// ShredCategory crypto-shreds a whole category of a tenant: tombstone,
// then every patient data keyset of the category, then the category and
// blind-index keysets. Everything sealed in the category becomes
// unreadable (ErrShredded) and blind indexes can no longer be computed.
func (k *Keys) ShredCategory(ctx context.Context, category, tenant string) (ShredReport, error) {
	if err := checkScope(category, tenant); err != nil {
		return ShredReport{}, err
	}
	rep := ShredReport{Category: category, Tenant: tenant, At: k.now().UTC()}
	key := scopeKey(category, tenant)
	r, err := k.records.GetRecord(ctx, kindCategory, key)
	switch {
	case err == nil:
		var cr categoryRecord
		if json.Unmarshal(r.Value, &cr) == nil {
			for _, m := range cr.Keys {
				rep.DataKeyIDs = append(rep.DataKeyIDs, m.ID)
			}
			rep.IndexKeyID = cr.IndexKeyID
		}
	case !errors.Is(err, store.ErrNotFound):
		return ShredReport{}, fmt.Errorf("fieldcrypt: reading records: %w", err)
	}
	if err := k.tombstone(ctx, key, rep); err != nil {
		return ShredReport{}, err
	}
	n, err := k.records.DeleteGroup(ctx, kindPatient, key)
	if err != nil {
		return ShredReport{}, fmt.Errorf("fieldcrypt: deleting patient keysets: %w", err)
	}
	rep.PatientKeysets = n
	if _, err := k.records.DeleteRecord(ctx, kindCategory, key); err != nil {
		return ShredReport{}, fmt.Errorf("fieldcrypt: deleting a category keyset: %w", err)
	}
	k.cache.clear()
	return rep, nil
}

// tombstone records that key was shredded, before anything is deleted:
// a crash in between leaves the scope refused, never half-usable.
func (k *Keys) tombstone(ctx context.Context, key string, rep ShredReport) error {
	v, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if err := k.records.PutRecord(ctx, store.Record{Kind: kindShredded, Key: key, Value: v}); err != nil {
		return fmt.Errorf("fieldcrypt: writing a shredding tombstone: %w", err)
	}
	return nil
}
