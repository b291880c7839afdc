package fieldcrypt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/prf/hmacprf"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/wardenfhir/warden/internal/store"
)

// Associated-data domains of the wrapped keysets: a keyset wrapped for
// one (tenant, category[, patient]) does not unwrap as another's.
const (
	categoryKeysetDomain = "warden/fieldcrypt/category-keyset/v1"
	indexKeysetDomain    = "warden/fieldcrypt/index-keyset/v1"
	patientKeysetDomain  = "warden/fieldcrypt/patient-keyset/v1"
)

// keyMeta describes one key of a keyset for status, without the key.
type keyMeta struct {
	ID      uint32    `json:"id"`
	Created time.Time `json:"created"`
}

// categoryRecord is the value of a kindCategory record. The metadata
// (ids, times, epoch) is for status and is not secret; the keysets are
// Tink EncryptedKeyset protos wrapped by the KEK.
type categoryRecord struct {
	V          int       `json:"v"`
	Epoch      uint32    `json:"epoch"` // rotations so far
	Primary    uint32    `json:"primary"`
	Keys       []keyMeta `json:"keys"`
	IndexKeyID uint32    `json:"indexKeyId"`
	Keyset     []byte    `json:"keyset"`
	Index      []byte    `json:"index"`
}

// patientRecord is the value of a kindPatient record; Keyset is wrapped
// by the category keyset.
type patientRecord struct {
	V       int       `json:"v"`
	Epoch   uint32    `json:"epoch"` // the category epoch its primary key was made in
	Primary uint32    `json:"primary"`
	Keys    []keyMeta `json:"keys"`
	Keyset  []byte    `json:"keyset"`
}

// errNoKeys means no keyset exists yet where one was needed to open.
var errNoKeys = errors.New("fieldcrypt: no keyset")

type categoryState struct {
	raw    []byte // the record value, for compare-and-swap
	rec    categoryRecord
	handle *keyset.Handle
	aead   tink.AEAD
	index  *prf.Set
}

type patientState struct {
	raw    []byte
	rec    patientRecord
	handle *keyset.Handle
	aead   tink.AEAD
}

func (p *patientState) has(id uint32) bool {
	return slices.ContainsFunc(p.rec.Keys, func(m keyMeta) bool { return m.ID == id })
}

// wrapKeyset encrypts h with a (Tink keyset encryption) binding ad.
func wrapKeyset(h *keyset.Handle, a tink.AEAD, ad []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), a, ad); err != nil {
		return nil, errSeal
	}
	return buf.Bytes(), nil
}

// unwrapAEADKeyset decrypts a wrapped keyset and checks that it holds
// only AES-256-GCM keys.
func unwrapAEADKeyset(wrapped []byte, a tink.AEAD, ad []byte) (*keyset.Handle, tink.AEAD, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), a, ad)
	if err != nil {
		return nil, nil, ErrKeyUnwrap
	}
	return checkAEADKeyset(h)
}

// checkAEADKeyset checks that h holds only AES-256-GCM keys and returns
// its AEAD.
func checkAEADKeyset(h *keyset.Handle) (*keyset.Handle, tink.AEAD, error) {
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, nil, ErrKeyUnwrap
		}
		k, ok := e.Key().(*aesgcm.Key)
		if !ok {
			return nil, nil, ErrKeyUnwrap
		}
		if p, ok := k.Parameters().(*aesgcm.Parameters); !ok || p.KeySizeInBytes() != 32 {
			return nil, nil, ErrKeyUnwrap
		}
	}
	prim, err := aead.New(h)
	if err != nil {
		return nil, nil, ErrKeyUnwrap
	}
	return h, prim, nil
}

// unwrapIndexKeyset decrypts a wrapped index keyset and checks that it
// holds only HMAC-SHA256 PRF keys of 32 bytes.
func unwrapIndexKeyset(wrapped []byte, a tink.AEAD, ad []byte) (*prf.Set, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), a, ad)
	if err != nil {
		return nil, ErrKeyUnwrap
	}
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, ErrKeyUnwrap
		}
		k, ok := e.Key().(*hmacprf.Key)
		if !ok {
			return nil, ErrKeyUnwrap
		}
		if p, ok := k.Parameters().(*hmacprf.Parameters); !ok || p.KeySizeInBytes() != 32 || p.HashType() != hmacprf.SHA256 {
			return nil, ErrKeyUnwrap
		}
	}
	s, err := prf.NewPRFSet(h)
	if err != nil {
		return nil, ErrKeyUnwrap
	}
	return s, nil
}

func primaryID(h *keyset.Handle) uint32 {
	e, err := h.Primary()
	if err != nil {
		return 0
	}
	return e.KeyID()
}

// shredded reports whether a tombstone exists for key.
func (k *Keys) shredded(ctx context.Context, key string) (bool, error) {
	_, err := k.records.GetRecord(ctx, kindShredded, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("fieldcrypt: reading records: %w", err)
	}
	return true, nil
}

// category returns the unwrapped keysets of (category, tenant), reading
// them from the records and, when create is set and there are none,
// creating them. It returns ErrShredded for a shredded scope and
// errNoKeys when there is nothing and create is not set.
func (k *Keys) category(ctx context.Context, category, tenant string, create bool) (*categoryState, error) {
	key := scopeKey(category, tenant)
	st, gen, ok := k.cache.category(key)
	if ok {
		if st == nil {
			return nil, ErrShredded
		}
		return st, nil
	}
	st, err := k.loadCategory(ctx, category, tenant, create)
	if errors.Is(err, ErrShredded) {
		k.cache.putCategory(key, nil, gen)
	}
	if err != nil {
		return nil, err
	}
	k.cache.putCategory(key, st, gen)
	return st, nil
}

func (k *Keys) loadCategory(ctx context.Context, category, tenant string, create bool) (*categoryState, error) {
	key := scopeKey(category, tenant)
	if gone, err := k.shredded(ctx, key); err != nil {
		return nil, err
	} else if gone {
		return nil, ErrShredded
	}
	for range 3 {
		r, err := k.records.GetRecord(ctx, kindCategory, key)
		if err == nil {
			return k.parseCategory(r.Value, category, tenant)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("fieldcrypt: reading records: %w", err)
		}
		if !create {
			return nil, errNoKeys
		}
		v, err := k.newCategoryRecord(category, tenant)
		if err != nil {
			return nil, err
		}
		err = k.records.InsertRecord(ctx, store.Record{Kind: kindCategory, Key: key, Value: v})
		if err == nil {
			return k.parseCategory(v, category, tenant)
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("fieldcrypt: writing records: %w", err)
		}
		// Another process created it first: read theirs.
	}
	return nil, fmt.Errorf("fieldcrypt: creating the keysets of a category: %w", store.ErrConflict)
}

func (k *Keys) newCategoryRecord(category, tenant string) ([]byte, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, errSeal
	}
	ih, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, errSeal
	}
	kek := kekAEAD{k.kek}
	ws, err := wrapKeyset(h, kek, labels(categoryKeysetDomain, tenant, category))
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: wrapping a new category keyset: %w", err)
	}
	wi, err := wrapKeyset(ih, kek, labels(indexKeysetDomain, tenant, category))
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: wrapping a new index keyset: %w", err)
	}
	now := k.now().UTC()
	rec := categoryRecord{V: 1, Primary: primaryID(h), Keys: []keyMeta{{ID: primaryID(h), Created: now}},
		IndexKeyID: primaryID(ih), Keyset: ws, Index: wi}
	return json.Marshal(rec)
}

func (k *Keys) parseCategory(v []byte, category, tenant string) (*categoryState, error) {
	st := &categoryState{raw: v}
	if err := json.Unmarshal(v, &st.rec); err != nil || st.rec.V != 1 {
		return nil, ErrKeyUnwrap
	}
	kek := kekAEAD{k.kek}
	var err error
	st.handle, st.aead, err = unwrapAEADKeyset(st.rec.Keyset, kek, labels(categoryKeysetDomain, tenant, category))
	if err != nil {
		return nil, err
	}
	if st.index, err = unwrapIndexKeyset(st.rec.Index, kek, labels(indexKeysetDomain, tenant, category)); err != nil {
		return nil, err
	}
	return st, nil
}

// patient returns the data keyset of a patient in a category. With
// forSeal it creates a missing keyset and gives a keyset made before the
// category's last rotation a new primary key; without, a missing keyset
// is errNoKeys.
func (k *Keys) patient(ctx context.Context, cat *categoryState, category, tenant, patient string, forSeal bool) (*patientState, error) {
	key := patientKey(category, tenant, patient)
	st, gen, ok := k.cache.patient(key)
	if ok && st == nil {
		return nil, ErrShredded
	}
	if !ok {
		var err error
		st, cat, err = k.loadPatientFresh(ctx, cat, category, tenant, patient, forSeal)
		if errors.Is(err, ErrShredded) {
			k.cache.putPatient(key, nil, gen)
		}
		if err != nil {
			return nil, err
		}
		k.cache.putPatient(key, st, gen)
	}
	if forSeal && st.rec.Epoch < cat.rec.Epoch {
		return k.upgradePatient(ctx, cat, category, tenant, patient)
	}
	return st, nil
}

// loadPatientFresh is loadPatient, except that when the patient keyset
// does not unwrap under a cached category keyset it reads the category
// again (a few times while it keeps changing): another process may have
// rotated the category and wrapped the patient keyset under the new key.
// It returns the category state it used.
func (k *Keys) loadPatientFresh(ctx context.Context, cat *categoryState, category, tenant, patient string, forSeal bool) (*patientState, *categoryState, error) {
	key := scopeKey(category, tenant)
	for range 5 {
		st, err := k.loadPatient(ctx, cat, category, tenant, patient, forSeal)
		if !errors.Is(err, ErrKeyUnwrap) {
			return st, cat, err
		}
		k.cache.dropCategory(key)
		gen := k.cache.generation()
		fresh, ferr := k.loadCategory(ctx, category, tenant, false)
		if ferr != nil {
			return nil, nil, ferr
		}
		k.cache.putCategory(key, fresh, gen)
		if bytes.Equal(fresh.raw, cat.raw) {
			return nil, nil, err // the same category keyset: the patient record is bad
		}
		cat = fresh // rotated meanwhile (perhaps again): try with the newer keyset
	}
	return nil, nil, ErrKeyUnwrap
}

func (k *Keys) loadPatient(ctx context.Context, cat *categoryState, category, tenant, patient string, forSeal bool) (*patientState, error) {
	key := patientKey(category, tenant, patient)
	if gone, err := k.shredded(ctx, key); err != nil {
		return nil, err
	} else if gone {
		return nil, ErrShredded
	}
	ad := labels(patientKeysetDomain, tenant, category, patient)
	for range 3 {
		r, err := k.records.GetRecord(ctx, kindPatient, key)
		if err == nil {
			return parsePatient(r.Value, cat, ad)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("fieldcrypt: reading records: %w", err)
		}
		if !forSeal {
			return nil, errNoKeys
		}
		h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
		if err != nil {
			return nil, errSeal
		}
		v, err := k.patientRecordValue(h, cat, ad, []keyMeta{{ID: primaryID(h), Created: k.now().UTC()}})
		if err != nil {
			return nil, err
		}
		err = k.records.InsertRecord(ctx, store.Record{Kind: kindPatient, Key: key, Group: scopeKey(category, tenant), Value: v})
		if err == nil {
			return parsePatient(v, cat, ad)
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("fieldcrypt: writing records: %w", err)
		}
	}
	return nil, fmt.Errorf("fieldcrypt: creating a patient keyset: %w", store.ErrConflict)
}

func (k *Keys) patientRecordValue(h *keyset.Handle, cat *categoryState, ad []byte, keys []keyMeta) ([]byte, error) {
	w, err := wrapKeyset(h, cat.aead, ad)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: wrapping a patient keyset: %w", err)
	}
	return json.Marshal(patientRecord{V: 1, Epoch: cat.rec.Epoch, Primary: primaryID(h), Keys: keys, Keyset: w})
}

func parsePatient(v []byte, cat *categoryState, ad []byte) (*patientState, error) {
	st := &patientState{raw: v}
	if err := json.Unmarshal(v, &st.rec); err != nil || st.rec.V != 1 {
		return nil, ErrKeyUnwrap
	}
	var err error
	if st.handle, st.aead, err = unwrapAEADKeyset(st.rec.Keyset, cat.aead, ad); err != nil {
		return nil, err
	}
	// The metadata is not authenticated; the keyset is. Trust the keyset.
	st.rec.Primary = primaryID(st.handle)
	return st, nil
}

// upgradePatient gives a patient keyset made before the category's last
// rotation a new primary key, wrapped under the category's new primary
// key, with compare-and-swap so that concurrent writers agree.
func (k *Keys) upgradePatient(ctx context.Context, cat *categoryState, category, tenant, patient string) (*patientState, error) {
	key := patientKey(category, tenant, patient)
	ad := labels(patientKeysetDomain, tenant, category, patient)
	for range 5 {
		k.cache.dropPatient(key)
		gen := k.cache.generation()
		st, fresh, err := k.loadPatientFresh(ctx, cat, category, tenant, patient, true)
		if err != nil {
			return nil, err
		}
		cat = fresh
		if st.rec.Epoch >= cat.rec.Epoch {
			k.cache.putPatient(key, st, gen)
			return st, nil
		}
		m := keyset.NewManagerFromHandle(st.handle)
		id, err := m.Add(aead.AES256GCMKeyTemplate())
		if err != nil {
			return nil, errSeal
		}
		if err := m.SetPrimary(id); err != nil {
			return nil, errSeal
		}
		h, err := m.Handle()
		if err != nil {
			return nil, errSeal
		}
		keys := append(slices.Clone(st.rec.Keys), keyMeta{ID: id, Created: k.now().UTC()})
		v, err := k.patientRecordValue(h, cat, ad, keys)
		if err != nil {
			return nil, err
		}
		err = k.records.SwapRecord(ctx, store.Record{Kind: kindPatient, Key: key, Group: scopeKey(category, tenant), Value: v}, st.raw)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			continue // changed or removed under us: read again
		}
		if err != nil {
			return nil, fmt.Errorf("fieldcrypt: writing records: %w", err)
		}
		nst, err := parsePatient(v, cat, ad)
		if err != nil {
			return nil, err
		}
		k.cache.putPatient(key, nst, gen)
		return nst, nil
	}
	return nil, fmt.Errorf("fieldcrypt: rotating a patient keyset: %w", store.ErrConflict)
}
