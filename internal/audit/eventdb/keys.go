package eventdb

import (
	"encoding/binary"
	"errors"

	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

// The copy is three Pebble stores, each written so that its keys grow
// with time: an LSM tree then moves flushed files down its levels instead
// of merging them again and again with older ones, which is most of what
// an LSM tree costs per byte when keys land all over the key space.
//
//	events   ordinal → the stored event: id, compartments, JSON (encodeEvent)
//	ids      id → pos (event ids begin with their time, reqid.Stamp)
//	index    bucket, then one of:
//	           a pos             → the event's dates (allValue): every event
//	           P patient 0       → positions: the events in that Patient's compartment
//	           p param 0 kind …  → positions: a search index entry's events
//	           z                 → the bucket's date bounds (bound)
//	         and, after every bucket, 0xffffffff m name: the journal
//	         cursor and the next ordinal
//
// Positions are 16 bytes each; a list of them is written as one merge
// operand per batch and concatenated by Pebble's default merger, so that
// a value shared by many events (outcome 0, the backend client) is one
// key per batch, not one per event: an LSM tree's cost is mostly per key.
//
// A pos is 16 bytes: the event's ordinal, the order in which this
// database stored it (the FHIR store's order of a search without _sort),
// and its lastUpdated in Unix microseconds (sign flipped), both
// big-endian. The index's bucket
// (4 bytes, big-endian) is the ordinal divided by bucketSize: entries of
// one bucket are written together, and a search reads each bucket's.
//
// Index entries, by kind (text values pass through sqlstore.IndexKey, so
// they never hold a 0 byte, which separates them):
//
//	s norm 0 exact 0      string
//	t code 0 system 0     token; also a Reference's identifier
//	d display 0           a token's display text, for :text
//	r id 0 type 0         a reference to a resource Type/id
//	u url 0               an absolute reference, or a uri
//	D lo hi               a date range [lo, hi), Unix microseconds (not
//	                      AuditEvent's date, which is in the list of all)
const (
	prefixAll       = 'a'
	prefixPatient   = 'P'
	prefixPosting   = 'p'
	kindString      = 's'
	kindToken       = 't'
	kindDisplay     = 'd'
	kindRef         = 'r'
	kindURL         = 'u'
	kindDate        = 'D'
	posLen          = 16
	metaCursor      = "cursor"
	metaNextOrdinal = "ordinal"
	// bucketBits sets bucketSize, 16,384 events: about one memory table
	// of index entries (indexMemTable), so that a bucket is merged about
	// once before it is complete; a search seeks once per bucket and
	// value (600 buckets for ten million events).
	bucketBits = 14
	bucketSize = 1 << bucketBits
	metaBucket = 0xffffffff
)

// pos is an event's position: its sort key and identity in every index.
type pos [posLen]byte

func makePos(lastUpdated int64, ordinal uint64) pos {
	var p pos
	binary.BigEndian.PutUint64(p[:8], ordinal)
	binary.BigEndian.PutUint64(p[8:], uint64(lastUpdated)^(1<<63))
	return p
}

// ordinal is the ordinal of the event at p.
func (p pos) ordinal() uint64 { return binary.BigEndian.Uint64(p[:8]) }

// bucket is the index bucket of the event at p.
func (p pos) bucket() uint32 { return uint32(p.ordinal() >> bucketBits) }

// buckets is how many buckets hold events when ordinals below next are
// taken.
func buckets(next uint64) uint32 { return uint32((next + bucketSize - 1) >> bucketBits) }

// inBucket is key k of the index in bucket b.
func inBucket(b uint32, k []byte) []byte {
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(k)), b), k...)
}

// micros is the lastUpdated of the event at p.
func (p pos) micros() int64 { return int64(binary.BigEndian.Uint64(p[8:]) ^ (1 << 63)) }

func (p pos) less(q pos) bool { return string(p[:]) < string(q[:]) }

var errCorrupt = errors.New("eventdb: malformed key or value")

func metaKey(name string) []byte { return inBucket(metaBucket, append([]byte{'m'}, name...)) }

// allKey is the index entry every event has (without its bucket).
func allKey(p pos) []byte { return append([]byte{prefixAll}, p[:]...) }

func patientPrefix(id string) []byte { return appendPatient(nil, id) }

// appendPatient appends patientPrefix(id) to k.
func appendPatient(k []byte, id string) []byte {
	k = append(k, prefixPatient)
	k = append(k, sqlstore.IndexKey(id)...)
	return append(k, 0)
}

// postingPrefix begins the entries of one parameter and kind, followed by
// the text fields given, each ended by a 0 byte.
func postingPrefix(param string, kind byte, fields ...string) []byte {
	return appendPosting(make([]byte, 0, 2+len(param)+1+32), param, kind, fields...)
}

// appendPosting appends postingPrefix(param, kind, fields...) to k.
func appendPosting(k []byte, param string, kind byte, fields ...string) []byte {
	k = append(k, prefixPosting)
	k = append(k, param...)
	k = append(k, 0, kind)
	for _, f := range fields {
		k = append(k, sqlstore.IndexKey(f)...)
		k = append(k, 0)
	}
	return k
}

// dateBytes encodes a signed 64-bit value so that byte order is numeric
// order.
func dateBytes(k []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(k, uint64(v)^(1<<63))
}

func dateOf(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// postings calls add with each index key of the entries of one event,
// after head (the bucket) and without the position. The key is built in a
// buffer reused for the next one: add must copy what it keeps. Entries of types the trail does not use
// (numbers, quantities, composites) and references with nothing to match
// are skipped, as the SQL store skips what it cannot index; the date
// parameter is kept with the event's entry in the list of all events
// (allValue), not here.
func postings(entries []searchparam.Entry, head []byte, add func(k []byte)) {
	buf := make([]byte, 0, 128)
	posting := func(param string, kind byte, fields ...string) {
		buf = appendPosting(append(buf[:0], head...), param, kind, fields...)
		add(buf)
	}
	for i := range entries {
		e := &entries[i]
		if e.Param == "_id" || e.Param == "_lastUpdated" {
			continue
		}
		switch e.Type {
		case searchparam.String:
			posting(e.Param, kindString, e.Text, e.Exact)
		case searchparam.Token:
			posting(e.Param, kindToken, e.Code, e.System)
			if e.Text != "" {
				posting(e.Param, kindDisplay, e.Text)
			}
		case searchparam.Reference:
			// An absolute URL is kept as a URL only, as the SQL store
			// keeps it: it never matches as a local Type/id.
			switch {
			case e.URL != "":
				posting(e.Param, kindURL, e.URL)
			case e.RefID != "":
				posting(e.Param, kindRef, e.RefID, e.RefType)
			}
			if e.Code != "" {
				posting(e.Param, kindToken, e.Code, e.System)
			}
		case searchparam.URI:
			posting(e.Param, kindURL, e.Exact)
		case searchparam.Date:
			if e.Param == dateParam {
				continue
			}
			buf = appendPosting(append(buf[:0], head...), e.Param, kindDate)
			buf = dateBytes(buf, e.Lo)
			buf = dateBytes(buf, e.Hi)
			add(buf)
		}
	}
}

// dateParam is AuditEvent's date (recorded), what _sort=date orders by.
const dateParam = "date"

// allValue is the value of an event's entry in the list of all events:
// the [lo, hi) ranges of its date, 16 bytes each.
func allValue(entries []searchparam.Entry) []byte {
	var v []byte
	for i := range entries {
		e := &entries[i]
		if e.Param == dateParam && e.Type == searchparam.Date {
			v = dateBytes(dateBytes(v, e.Lo), e.Hi)
		}
	}
	return v
}

// sortDate returns what an event with date ranges v (allValue) sorts by
// under _sort=date (FHIR R4 §3.1.1.5.1, as the FHIR store sorts): the
// lowest lo ascending, the highest hi descending; ok is false without a
// date.
func sortDate(v []byte) (lo, hi int64, ok bool) {
	for ; len(v) >= 16; v = v[16:] {
		l, h := dateOf(v[:8]), dateOf(v[8:16])
		if !ok || l < lo {
			lo = l
		}
		if !ok || h > hi {
			hi = h
		}
		ok = true
	}
	return lo, hi, ok
}

// boundKey is the key, in a bucket, of its date bounds.
var boundKey = []byte{'z'}

// bound is what a bucket's events sort by under _sort=date at the ends:
// the lowest lo and the highest hi of their dates, and whether any of
// them has no date; and the lowest and highest lastUpdated of its events,
// what history sorts by.
type bound struct {
	lo, hi  int64
	dated   bool // lo and hi are set
	undated bool

	luLo, luHi int64
	luSet      bool // luLo and luHi are set
	// luUnknown: the bucket was written before its lastUpdated bounds
	// were kept, so they cannot be (history then sorts every event).
	luUnknown bool
}

// add widens b by an event's dates (allValue) and lastUpdated (µs).
func (b *bound) add(dates []byte, lastUpdated int64) {
	lo, hi, ok := sortDate(dates)
	switch {
	case !ok:
		b.undated = true
	case !b.dated:
		b.lo, b.hi, b.dated = lo, hi, true
	default:
		b.lo, b.hi = min(b.lo, lo), max(b.hi, hi)
	}
	switch {
	case b.luUnknown:
	case !b.luSet:
		b.luLo, b.luHi, b.luSet = lastUpdated, lastUpdated, true
	default:
		b.luLo, b.luHi = min(b.luLo, lastUpdated), max(b.luHi, lastUpdated)
	}
}

// encode is 17 bytes (the date bounds and flags) as first written, and
// then the lastUpdated bounds, 16 bytes, unless they are unknown.
func (b bound) encode() []byte {
	v := dateBytes(dateBytes(make([]byte, 0, 33), b.lo), b.hi)
	var flags byte
	if b.dated {
		flags |= 1
	}
	if b.undated {
		flags |= 2
	}
	if b.luSet && !b.luUnknown {
		flags |= 4
		return dateBytes(dateBytes(append(v, flags), b.luLo), b.luHi)
	}
	return append(v, flags)
}

func decodeBound(v []byte) (bound, bool) {
	if len(v) != 17 && len(v) != 33 {
		return bound{}, false
	}
	b := bound{lo: dateOf(v[:8]), hi: dateOf(v[8:16]), dated: v[16]&1 != 0, undated: v[16]&2 != 0}
	switch {
	case len(v) == 33 && v[16]&4 != 0:
		b.luLo, b.luHi, b.luSet = dateOf(v[17:25]), dateOf(v[25:33]), true
	case len(v) == 17 && (b.dated || b.undated):
		b.luUnknown = true // events without their lastUpdated bounds
	default:
		return bound{}, false
	}
	return b, true
}
