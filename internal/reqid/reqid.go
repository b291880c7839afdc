// Package reqid carries the id of a request through its context: the
// server assigns it, logs and error OperationOutcomes quote it, so a
// client's "error id" finds the one log line that explains it.
package reqid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

type key struct{}

// New returns a fresh request id: 96 bits in hex, the time in
// milliseconds (Stamp) and 48 random bits, which no other request of the
// same millisecond shares in practice and nobody can guess.
func New() string {
	var b [12]byte
	rand.Read(b[6:])
	Stamp(b[:], time.Now())
	return hex.EncodeToString(b[:])
}

// Stamp writes t as Unix milliseconds, big-endian, into b[:6], as UUIDv7
// does (RFC 9562 §5.7): ids made later sort later, so a database index of
// them (the audit trail keeps an index of request ids and of event ids)
// grows at its end instead of at random pages, which keeps the pages
// being written few and in cache however large the index gets.
func Stamp(b []byte, t time.Time) {
	ms := uint64(t.UnixMilli())
	_ = b[5]
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the request id of ctx, or "-" when it has none.
func From(ctx context.Context) string {
	if id, ok := ctx.Value(key{}).(string); ok {
		return id
	}
	return "-"
}
