package sqlstore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/wardenfhir/warden/internal/store"
)

// cursor is a position in an ordered list of rows, for keyset paging:
// the sort key values and pk of a row, and which side of it the page
// lies. It travels as base64url JSON; the API seals it against tampering,
// but it is still checked here as untrusted input.
type cursor struct {
	Kind string            `json:"t"`           // cursorSearch, cursorInstance or cursorHistory
	Keys []json.RawMessage `json:"k,omitempty"` // search sort keys (JSON null for a resource without a value)
	PK   int64             `json:"p,omitempty"` // the row's pk (search, type and system history)
	Back bool              `json:"b,omitempty"` // the page lies before the row (a "previous" link)
	Time int64             `json:"l,omitempty"` // last_updated of the row (type and system history)
	Ver  int64             `json:"n,omitempty"` // version of the row (instance history)
}

// Cursor kinds.
const (
	cursorSearch   = "s"
	cursorInstance = "i"
	cursorHistory  = "h"
)

// maxCursorBytes bounds the cursors accepted.
const maxCursorBytes = 8192

func (c *cursor) encode() string {
	b, err := json.Marshal(c)
	if err != nil {
		// Marshal fails only on unsupported values; keys are produced
		// by json.Marshal themselves.
		panic(fmt.Sprintf("sqlstore: encoding cursor: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor of the given kind.
func decodeCursor(s, kind string) (*cursor, error) {
	if len(s) > maxCursorBytes {
		return nil, fmt.Errorf("%w: too long", store.ErrBadCursor)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", store.ErrBadCursor)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return nil, fmt.Errorf("%w: malformed", store.ErrBadCursor)
	}
	if c.Kind != kind {
		return nil, fmt.Errorf("%w: from another kind of listing", store.ErrBadCursor)
	}
	return &c, nil
}
