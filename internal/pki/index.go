package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// ErrBadIndex reports an index file that does not parse or is
// inconsistent (a duplicate serial, an unknown status).
var ErrBadIndex = errors.New("pki: the index file is damaged")

const (
	indexVersion = 1
	maxIndex     = 64 << 20
)

// Status is a certificate's state in the index.
type Status string

// Statuses. Expiry is not a status: compare NotAfter with the time.
const (
	StatusValid   Status = "valid"
	StatusRevoked Status = "revoked"
)

// Entry is one issued certificate in the index.
type Entry struct {
	Serial    string    `json:"serial"` // lowercase hexadecimal, no separators
	Kind      Kind      `json:"kind"`
	Name      string    `json:"name"`
	Subject   string    `json:"subject"`
	DNSNames  []string  `json:"dns,omitempty"`
	IPs       []string  `json:"ips,omitempty"`
	URIs      []string  `json:"uris,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Status    Status    `json:"status"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Reason    Reason    `json:"reason,omitzero"`
}

// index is the JSON document in IndexFile.
type index struct {
	Version int `json:"version"`
	// CRLNumber is the number of the last CRL signed (RFC 5280 §5.2.3);
	// 0 before the first.
	CRLNumber int64   `json:"crl_number"`
	Entries   []Entry `json:"certificates"`
}

func (ix *index) find(serial string) int {
	return slices.IndexFunc(ix.Entries, func(e Entry) bool { return e.Serial == serial })
}

// parseIndex decodes and checks an index document.
func parseIndex(b []byte) (*index, error) {
	var ix index
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIndex, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrBadIndex)
	}
	if ix.Version != indexVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadIndex, ix.Version)
	}
	if ix.CRLNumber < 0 {
		return nil, fmt.Errorf("%w: negative CRL number", ErrBadIndex)
	}
	seen := make(map[string]bool, len(ix.Entries))
	for _, e := range ix.Entries {
		if _, err := ParseSerial(e.Serial); err != nil || e.Serial != FormatSerial(mustSerial(e.Serial)) {
			return nil, fmt.Errorf("%w: bad serial", ErrBadIndex)
		}
		if seen[e.Serial] {
			return nil, fmt.Errorf("%w: duplicate serial %s", ErrBadIndex, e.Serial)
		}
		seen[e.Serial] = true
		switch {
		case e.Kind != Server && e.Kind != Client:
			return nil, fmt.Errorf("%w: serial %s: unknown kind", ErrBadIndex, e.Serial)
		case e.Status == StatusValid && (!e.RevokedAt.IsZero() || e.Reason != 0):
			return nil, fmt.Errorf("%w: serial %s: valid but has a revocation", ErrBadIndex, e.Serial)
		case e.Status == StatusRevoked && e.RevokedAt.IsZero():
			return nil, fmt.Errorf("%w: serial %s: revoked without a time", ErrBadIndex, e.Serial)
		case e.Status != StatusValid && e.Status != StatusRevoked:
			return nil, fmt.Errorf("%w: serial %s: unknown status", ErrBadIndex, e.Serial)
		case !e.Reason.allowed():
			return nil, fmt.Errorf("%w: serial %s: unknown reason", ErrBadIndex, e.Serial)
		}
	}
	return &ix, nil
}

func mustSerial(s string) *big.Int {
	n, _ := ParseSerial(s)
	return n
}

func readIndex(dir string) (*index, error) {
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s missing", ErrBadIndex, IndexFile)
		}
		return nil, fmt.Errorf("pki: reading the index: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIndex+1))
	if err != nil {
		return nil, fmt.Errorf("pki: reading the index: %w", err)
	}
	if len(b) > maxIndex {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadIndex, maxIndex)
	}
	return parseIndex(b)
}

func writeIndex(dir string, ix *index) error {
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return mtls.WriteFileAtomic(filepath.Join(dir, IndexFile), append(b, '\n'), 0o600)
}

// List returns every certificate the CA has issued, oldest first.
func (ca *CA) List() ([]Entry, error) {
	ix, err := readIndex(ca.dir)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(ix.Entries, func(a, b Entry) int { return a.NotBefore.Compare(b.NotBefore) })
	return ix.Entries, nil
}

// FormatSerial is serial as the index writes it: lowercase hexadecimal.
func FormatSerial(serial *big.Int) string { return serial.Text(16) }

// ErrBadSerial reports a serial number that does not parse.
var ErrBadSerial = errors.New("pki: not a certificate serial number (hexadecimal, colons allowed)")

// ParseSerial reads a serial number in hexadecimal, as openssl prints it
// (with or without colons, any case, an optional 0x prefix).
func ParseSerial(s string) (*big.Int, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	s = strings.ReplaceAll(s, ":", "")
	if s == "" || len(s) > 40 {
		return nil, ErrBadSerial
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return nil, ErrBadSerial
		}
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 {
		return nil, ErrBadSerial
	}
	return n, nil
}
