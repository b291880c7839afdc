package eventdb

import (
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// concat is Pebble's concatenating merger (the same name and the same
// values) without its quadratic cost: pebble.DefaultMerger takes an older
// operand by copying everything merged so far behind it, and a key
// shared by most events (outcome 0, the backend client) has an operand
// per batch, hundreds of them in a flush (0.5 GB copied in a 40,000-event
// catch-up).
var concat = &pebble.Merger{
	Name: "pebble.concatenate",
	Merge: func(_, value []byte) (pebble.ValueMerger, error) {
		return &concatMerger{buf: slices.Clone(value)}, nil
	},
}

// concatMerger collects the older operands apart and joins them once.
type concatMerger struct {
	older [][]byte // operands older than buf's, the newest first
	buf   []byte   // the first operand and the newer ones, in order
}

func (m *concatMerger) MergeNewer(v []byte) error {
	m.buf = append(m.buf, v...)
	return nil
}

func (m *concatMerger) MergeOlder(v []byte) error {
	m.older = append(m.older, slices.Clone(v))
	return nil
}

func (m *concatMerger) Finish(bool) ([]byte, io.Closer, error) {
	if len(m.older) == 0 {
		return m.buf, nil, nil
	}
	n := len(m.buf)
	for _, o := range m.older {
		n += len(o)
	}
	out := make([]byte, 0, n)
	for i := len(m.older) - 1; i >= 0; i-- {
		out = append(out, m.older[i]...)
	}
	return append(out, m.buf...), nil, nil
}
