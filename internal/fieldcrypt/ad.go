package fieldcrypt

import (
	"encoding/binary"
	"strconv"
)

// AD says where a sealed value belongs: the tenant, the resource type, id
// and version, and the path of the element inside it. Seal binds the
// ciphertext to all of it (with the category and patient), so a
// ciphertext copied to another record, element, version, tenant,
// category or patient does not open.
type AD struct {
	Tenant  string // "" for the default tenant
	Type    string // resource type: "Observation"
	ID      string // resource id
	Version int64  // meta.versionId
	Path    string // element path: "valueCodeableConcept", "note[0].text"
}

// String is the human form, Type/id/_history/version#path, for logs and
// messages; the bytes Seal authenticates are the length-prefixed
// encoding, never this string.
func (a AD) String() string {
	return a.Type + "/" + a.ID + "/_history/" + strconv.FormatInt(a.Version, 10) + "#" + a.Path
}

// adDomain separates the associated data of sealed elements from every
// other use of the same bytes.
const adDomain = "warden/fieldcrypt/element/v1"

// appendAD appends the canonical associated data of an element: the
// domain, the header (which names category, tenant, patient and key),
// then each AD field length-prefixed, the version as 8 bytes. No two
// different inputs give the same bytes.
func appendAD(b []byte, header []byte, a AD) []byte {
	b = appendLP(b, adDomain)
	b = appendLPBytes(b, header)
	b = appendLP(b, a.Tenant)
	b = appendLP(b, a.Type)
	b = appendLP(b, a.ID)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Version))
	b = appendLP(b, a.Path)
	return b
}

// appendLP appends s with a 4-byte big-endian length prefix.
func appendLP(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendLPBytes(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// labels encodes a sequence of names unambiguously, for the associated
// data of wrapped keysets and the input of blind indexes.
func labels(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = appendLP(b, p)
	}
	return b
}
