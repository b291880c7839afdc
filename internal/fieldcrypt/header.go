package fieldcrypt

import (
	"encoding/binary"
	"errors"
)

// headerVersion is the first byte of every sealed value.
const headerVersion = 1

// Header is the clear, authenticated prefix of a sealed value: which
// category, tenant and patient keyset sealed it and with which key. It
// lets rotation and status find data on old keys without opening it;
// the whole header is part of the associated data, so changing any byte
// of it makes Open fail.
//
// Layout: version (1 byte, 1) | len(category) (1 byte) | category |
// len(tenant) (1 byte) | tenant | len(patient) (1 byte) | patient |
// key id (4 bytes, big-endian) | Tink ciphertext (5-byte prefix, 12-byte
// nonce, ciphertext, 16-byte tag).
type Header struct {
	Category string
	Tenant   string
	Patient  string
	KeyID    uint32 // the patient data key that sealed the value
}

var errHeader = errors.New("fieldcrypt: malformed header")

func (h Header) append(b []byte) []byte {
	b = append(b, headerVersion)
	b = append(b, byte(len(h.Category)))
	b = append(b, h.Category...)
	b = append(b, byte(len(h.Tenant)))
	b = append(b, h.Tenant...)
	b = append(b, byte(len(h.Patient)))
	b = append(b, h.Patient...)
	return binary.BigEndian.AppendUint32(b, h.KeyID)
}

// ParseHeader reads the header of a sealed value and returns it with the
// length of the header in bytes. It checks the form only: a header that
// parses may still belong to a forged ciphertext.
func ParseHeader(sealed []byte) (Header, int, error) {
	var h Header
	if len(sealed) < 1 || sealed[0] != headerVersion {
		return h, 0, errHeader
	}
	i := 1
	field := func() (string, bool) {
		if i >= len(sealed) {
			return "", false
		}
		n := int(sealed[i])
		i++
		if len(sealed)-i < n {
			return "", false
		}
		s := string(sealed[i : i+n])
		i += n
		return s, true
	}
	var ok bool
	if h.Category, ok = field(); !ok {
		return Header{}, 0, errHeader
	}
	if h.Tenant, ok = field(); !ok {
		return Header{}, 0, errHeader
	}
	if h.Patient, ok = field(); !ok {
		return Header{}, 0, errHeader
	}
	if len(sealed)-i < 4 {
		return Header{}, 0, errHeader
	}
	h.KeyID = binary.BigEndian.Uint32(sealed[i:])
	i += 4
	if !categoryPattern.MatchString(h.Category) || !tenantPattern.MatchString(h.Tenant) || !patientPattern.MatchString(h.Patient) {
		return Header{}, 0, errHeader
	}
	return h, i, nil
}
