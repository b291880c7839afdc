package fieldcrypt

import (
	"context"
	"errors"
)

// Seal encrypts one element value of a patient's resource in a
// sensitivity category (AES-256-GCM under the patient's data key for
// that category, made on first use), binding it to ad as associated
// data (RFC 5116 §2.1: authenticated, not encrypted). The result
// starts with a Header naming category, ad.Tenant, patient and key id;
// the header and every field of ad are authenticated, so Open needs the
// same category, patient and ad.
//
// A shredded category or patient is ErrShredded: erased data takes no
// new data.
func (k *Keys) Seal(ctx context.Context, category, patient string, ad AD, plaintext []byte) ([]byte, error) {
	if err := checkScope(category, ad.Tenant); err != nil {
		return nil, err
	}
	if !patientPattern.MatchString(patient) {
		return nil, ErrBadName
	}
	cat, err := k.category(ctx, category, ad.Tenant, true)
	if err != nil {
		return nil, err
	}
	p, err := k.patient(ctx, cat, category, ad.Tenant, patient, true)
	if err != nil {
		return nil, err
	}
	return seal(p, Header{Category: category, Tenant: ad.Tenant, Patient: patient, KeyID: p.rec.Primary}, ad, plaintext)
}

func seal(p *patientState, h Header, ad AD, plaintext []byte) ([]byte, error) {
	var buf [160]byte
	hdr := h.append(buf[:0])
	adb := appendAD(make([]byte, 0, 64+len(hdr)+len(ad.Tenant)+len(ad.Type)+len(ad.ID)+len(ad.Path)), hdr, ad)
	ct, err := p.aead.Encrypt(plaintext, adb)
	if err != nil {
		return nil, errSeal
	}
	out := make([]byte, 0, len(hdr)+len(ct))
	out = append(out, hdr...)
	return append(out, ct...), nil
}

// Open decrypts a value Seal made for the same category, patient and ad.
// Every forged, tampered, truncated or swapped ciphertext is ErrOpen;
// data whose keys were shredded is ErrShredded; a stored keyset the KEK
// cannot unwrap is ErrKeyUnwrap.
func (k *Keys) Open(ctx context.Context, category, patient string, ad AD, sealed []byte) ([]byte, error) {
	h, n, err := ParseHeader(sealed)
	if err != nil || h.Category != category || h.Patient != patient || h.Tenant != ad.Tenant {
		return nil, ErrOpen
	}
	cat, err := k.category(ctx, category, ad.Tenant, false)
	if err != nil {
		return nil, openError(err)
	}
	p, err := k.patient(ctx, cat, category, ad.Tenant, patient, false)
	if err != nil {
		return nil, openError(err)
	}
	if !p.has(h.KeyID) {
		// Another process may have rotated this patient's keyset since
		// it was cached: read it again once.
		k.cache.dropPatient(patientKey(category, ad.Tenant, patient))
		if p, err = k.patient(ctx, cat, category, ad.Tenant, patient, false); err != nil {
			return nil, openError(err)
		}
	}
	var buf [256]byte
	adb := appendAD(buf[:0], sealed[:n], ad)
	plain, err := p.aead.Decrypt(sealed[n:], adb)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// openError keeps the errors Open may tell apart (shredded, unwrap,
// the store being down) and makes every other one ErrOpen.
func openError(err error) error {
	switch {
	case errors.Is(err, ErrShredded), errors.Is(err, ErrKeyUnwrap):
		return err
	case errors.Is(err, errNoKeys), errors.Is(err, errSeal):
		return ErrOpen
	default:
		return err // a records failure, already wrapped without detail
	}
}

// Reseal re-encrypts a sealed value under its patient's current primary
// data key when it was sealed under an older one (after Rotate), keeping
// the same ad. It reports whether it changed anything; a value already
// under the primary key is returned as is. The value is opened first,
// so a forged one fails as in Open.
func (k *Keys) Reseal(ctx context.Context, sealed []byte, ad AD) ([]byte, bool, error) {
	h, _, err := ParseHeader(sealed)
	if err != nil {
		return nil, false, ErrOpen
	}
	plain, err := k.Open(ctx, h.Category, h.Patient, ad, sealed)
	if err != nil {
		return nil, false, err
	}
	cat, err := k.category(ctx, h.Category, h.Tenant, false)
	if err != nil {
		return nil, false, openError(err)
	}
	p, err := k.patient(ctx, cat, h.Category, h.Tenant, h.Patient, true)
	if err != nil {
		return nil, false, err
	}
	if p.rec.Primary == h.KeyID {
		return sealed, false, nil
	}
	out, err := seal(p, Header{Category: h.Category, Tenant: h.Tenant, Patient: h.Patient, KeyID: p.rec.Primary}, ad, plain)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// Ready reports whether Seal for category and patient can run without
// writing key records: the category's keysets and the patient's data
// keyset exist, and the patient's is current after the last rotation.
// A caller inside a store transaction (whose store may have a single
// writer) checks it first and, when it is false, calls Prepare outside
// the transaction. A shredded scope is ready: Seal then says
// ErrShredded.
func (k *Keys) Ready(ctx context.Context, category, tenant, patient string) (bool, error) {
	if err := checkScope(category, tenant); err != nil {
		return false, err
	}
	if !patientPattern.MatchString(patient) {
		return false, ErrBadName
	}
	cat, err := k.category(ctx, category, tenant, false)
	switch {
	case errors.Is(err, errNoKeys):
		return false, nil
	case errors.Is(err, ErrShredded):
		return true, nil
	case err != nil:
		return false, err
	}
	p, err := k.patient(ctx, cat, category, tenant, patient, false)
	switch {
	case errors.Is(err, errNoKeys):
		return false, nil
	case errors.Is(err, ErrShredded):
		return true, nil
	case err != nil:
		return false, err
	}
	return p.rec.Epoch >= cat.rec.Epoch, nil
}

// Prepare writes the key records Seal for category and patient needs
// (see Ready).
func (k *Keys) Prepare(ctx context.Context, category, tenant, patient string) error {
	if err := checkScope(category, tenant); err != nil {
		return err
	}
	if !patientPattern.MatchString(patient) {
		return ErrBadName
	}
	cat, err := k.category(ctx, category, tenant, true)
	if err != nil {
		return err
	}
	_, err = k.patient(ctx, cat, category, tenant, patient, true)
	return err
}

// HasCategory reports whether a category's keysets exist and are not
// shredded: whether anything can have been sealed or indexed under it.
// It never writes (unlike BlindIndex, which makes the keysets on first
// use), so it is safe inside a store transaction.
func (k *Keys) HasCategory(ctx context.Context, category, tenant string) (bool, error) {
	if err := checkScope(category, tenant); err != nil {
		return false, err
	}
	_, err := k.category(ctx, category, tenant, false)
	switch {
	case errors.Is(err, errNoKeys), errors.Is(err, ErrShredded):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// EnsureCategory makes a category's keysets if there are none (outside
// any store transaction: it may write records). A shredded category is
// left as it is.
func (k *Keys) EnsureCategory(ctx context.Context, category, tenant string) error {
	if err := checkScope(category, tenant); err != nil {
		return err
	}
	_, err := k.category(ctx, category, tenant, true)
	if errors.Is(err, ErrShredded) {
		return nil
	}
	return err
}
