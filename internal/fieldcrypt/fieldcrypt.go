// Package fieldcrypt owns the field-level encryption of sensitive FHIR
// elements: the key hierarchy (a key-encryption key, per category and
// tenant a category keyset and a blind-index keyset, per patient a data
// keyset), sealing and opening of element values bound to where they
// belong, keyed blind indexes for searching sealed codes, rotation with
// a resumable re-encryption job, crypto-shredding and key status.
//
// Every primitive is Tink's (AES-256-GCM AEAD, HMAC-SHA256 PRF, Tink
// keyset encryption); this package only decides which key seals what and
// how the associated data is encoded. Keysets live in store.Records,
// each wrapped by the key above it (see docs/ENCRYPTION.md for the
// hierarchy and the reasons behind it).
//
// It never speaks HTTP, never logs, and never puts key material,
// plaintext or the reason a ciphertext failed to open in an error: every
// forged, swapped or tampered ciphertext is ErrOpen, data whose keys were
// destroyed is ErrShredded, and a key-encryption key that refuses to
// unwrap is ErrKeyUnwrap. It does not decide who may use a key: callers
// (the policy decision) do that before they call Open.
package fieldcrypt

import (
	"errors"
	"regexp"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// Errors returned by fieldcrypt; test with errors.Is. None carries detail.
var (
	// ErrOpen is returned for every ciphertext that does not open under
	// the given category, patient and associated data: tampering,
	// truncation, a ciphertext swapped from another record, element,
	// version, category, tenant or patient, or a key that is not there.
	ErrOpen = errors.New("fieldcrypt: cannot open sealed value")
	// ErrShredded is returned when the keys that sealed the data (a
	// patient's data keyset, or a whole category's keysets) were
	// destroyed on purpose: the data is erased, not damaged. Seal returns
	// it too: a shredded scope takes no new data.
	ErrShredded = errors.New("fieldcrypt: key material was destroyed (crypto-shredded)")
	// ErrKeyUnwrap is returned when a wrapped keyset in the records
	// cannot be unwrapped: the key-encryption key refused it (wrong
	// passphrase, another master key, tampered record) or it is not a
	// keyset of the expected kind.
	ErrKeyUnwrap = errors.New("fieldcrypt: cannot unwrap a stored keyset")
	// ErrBadName is returned for a category, tenant or patient id that is
	// not of the allowed form.
	ErrBadName = errors.New("fieldcrypt: invalid category, tenant or patient id")

	errSeal = errors.New("fieldcrypt: seal failed")
)

// Record kinds in store.Records. Keys are "tenant/category" for scopes
// and "tenant/category/patient" for patients: none of the three names may
// contain "/", so the keys are unambiguous.
const (
	kindCategory = "fieldcrypt.category" // category and index keysets, wrapped by the KEK
	kindPatient  = "fieldcrypt.patient"  // patient data keysets, wrapped by the category keyset; Group "tenant/category"
	kindShredded = "fieldcrypt.shredded" // tombstones: "tenant/category" or "tenant/category/patient"
	kindJob      = "fieldcrypt.job"      // re-encryption job progress, by job name
)

var (
	categoryPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	tenantPattern   = regexp.MustCompile(`^[A-Za-z0-9._-]{0,64}$`)
	patientPattern  = regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`) // a FHIR id (R4 §2.1.0.1 id type)
)

// Options configure Keys.
type Options struct {
	// CacheSize bounds how many unwrapped keysets (category and patient)
	// stay in memory; 0 means 10,000.
	CacheSize int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Keys seals and opens sensitive elements under the key hierarchy kept in
// records, with kek wrapping the top of it. It is safe for concurrent
// use, also with Rotate, Reseal and the shredding methods.
type Keys struct {
	records store.Records
	kek     KEK
	now     func() time.Time
	cache   *keyCache
}

// New returns Keys over records (where keysets live) with kek wrapping
// the category and index keysets. Nothing is read until first use.
func New(records store.Records, kek KEK, opts Options) (*Keys, error) {
	if records == nil || kek == nil {
		return nil, errors.New("fieldcrypt: New needs records and a key-encryption key")
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Keys{records: records, kek: kek, now: opts.Now, cache: newKeyCache(opts.CacheSize)}, nil
}

// Invalidate drops every unwrapped keyset from memory, so that the next
// use reads the records again. Call it when another process may have
// rotated or shredded keys (the coherence reload); shredding in this
// process evicts at once.
func (k *Keys) Invalidate() { k.cache.clear() }

func checkScope(category, tenant string) error {
	if !categoryPattern.MatchString(category) || !tenantPattern.MatchString(tenant) {
		return ErrBadName
	}
	return nil
}

func scopeKey(category, tenant string) string { return tenant + "/" + category }

func patientKey(category, tenant, patient string) string {
	return tenant + "/" + category + "/" + patient
}
