package identity

import "github.com/wardenfhir/warden/internal/store"

// NewDirectoryWithParams is NewDirectory with Argon2id parameters that may
// be below the production floor, so tests run fast.
func NewDirectoryWithParams(r store.Records, s Sealer, opts Options, p Argon2Params) *Directory {
	d := NewDirectory(r, s, opts)
	d.params = p
	return d
}

// OnHash sets a function called on every Argon2id derivation.
func (d *Directory) OnHash(f func()) { d.onHash = f }

// Params returns the parameters of new hashes.
func (d *Directory) Params() Argon2Params { return d.params }

// ParsePHC exposes the PHC parser: it returns the parameters, salt and key
// length of a hash.
func ParsePHC(s string) (Argon2Params, int, int, error) {
	h, err := parsePHC(s)
	return h.params, len(h.salt), len(h.key), err
}

// Kinds of the records this package writes, for tests that tamper with them.
const (
	KindUser      = kindUser
	KindTOTPStep  = kindTOTPStep
	KindUserFails = kindUserFails
)
