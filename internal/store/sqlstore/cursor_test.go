package sqlstore

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/wardenfhir/warden/internal/store"
)

// FuzzCursor checks that decoding an untrusted cursor never panics, fails
// only with ErrBadCursor, and that what it accepts encodes back to a
// cursor that decodes the same.
func FuzzCursor(f *testing.F) {
	for _, c := range []cursor{
		{Kind: cursorSearch, PK: 42},
		{Kind: cursorSearch, PK: 7, Back: true, Keys: []json.RawMessage{json.RawMessage(`"chalmers"`), json.RawMessage(`null`), json.RawMessage(`1.5`)}},
		{Kind: cursorHistory, Time: 1711000000000000, PK: 3},
		{Kind: cursorInstance, Ver: 9},
	} {
		f.Add(c.encode(), c.Kind)
	}
	f.Add("!!!", cursorSearch)
	f.Fuzz(func(t *testing.T, s, kind string) {
		c, err := decodeCursor(s, kind)
		if err != nil {
			if !errors.Is(err, store.ErrBadCursor) {
				t.Fatalf("decodeCursor: %v, not ErrBadCursor", err)
			}
			return
		}
		again, err := decodeCursor(c.encode(), kind)
		if err != nil || !reflect.DeepEqual(normal(again), normal(c)) {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
	})
}

// normal compacts the JSON of a cursor's keys, which encoding rewrites.
func normal(c *cursor) *cursor {
	out := *c
	out.Keys = nil
	for _, k := range c.Keys {
		b, _ := json.Marshal(k)
		out.Keys = append(out.Keys, b)
	}
	return &out
}
