package fieldcrypt

import (
	"context"
	"encoding/base64"
	"strings"
)

// indexDomain separates blind-index inputs from every other use of the
// index keys.
const indexDomain = "warden/fieldcrypt/blind-index/v1"

// blindIndexBytes is the length of a blind index: 128 bits, so that
// 2^48 distinct values collide with probability below 2^-32 (Tink's
// guidance for PRF output lengths).
const blindIndexBytes = 16

// BlindIndex returns the keyed blind index of value in a category and
// tenant: HMAC-SHA256 (RFC 2104; Tink's PRF set) under the category's index key, which
// is separate from its encryption keys, truncated to 128 bits,
// base64url without padding ("bi1." prefix). Equal inputs give equal
// indexes, so a search index can hold it instead of the value; without
// the index key it reveals nothing about the value beyond equality.
//
// The index key does not change when data keys rotate, so indexes stay
// valid across Rotate; changing the index key would mean re-indexing
// every sealed value, so there is no method for it.
func (k *Keys) BlindIndex(ctx context.Context, category, tenant, value string) (string, error) {
	return k.blindIndex(ctx, category, tenant, "value", value)
}

// BlindIndexCode is BlindIndex of a coded value, for token search
// (FHIR R4 §3.1.1.4.9: code=[system]|[code] and code=[code]). System and
// code are trimmed of surrounding white space and otherwise kept as they
// are (both are case-sensitive in FHIR); they are encoded with length
// prefixes, never joined with "|", so no two pairs collide. Index each
// coding twice, with its system and with system "", so that searches
// with and without a system both match.
func (k *Keys) BlindIndexCode(ctx context.Context, category, tenant, system, code string) (string, error) {
	return k.blindIndex(ctx, category, tenant, "code", strings.TrimSpace(system), strings.TrimSpace(code))
}

func (k *Keys) blindIndex(ctx context.Context, category, tenant string, parts ...string) (string, error) {
	if err := checkScope(category, tenant); err != nil {
		return "", err
	}
	cat, err := k.category(ctx, category, tenant, true)
	if err != nil {
		return "", err
	}
	in := labels(append([]string{indexDomain, tenant, category}, parts...)...)
	out, err := cat.index.ComputePrimaryPRF(in, blindIndexBytes)
	if err != nil {
		return "", errSeal
	}
	return "bi1." + base64.RawURLEncoding.EncodeToString(out), nil
}
