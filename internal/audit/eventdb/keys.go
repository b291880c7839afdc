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
//	           a pos             (empty): every event
//	           P patient 0 pos   (empty): the event is in that Patient's compartment
//	           p param 0 kind …  (empty): a search index entry, ending in pos
//	           T pos             → lo, hi: the event's date (for _sort=date)
//	         and, after every bucket, 0xffffffff m name: the journal
//	         cursor and the next ordinal
//
// A pos is 16 bytes, the event's lastUpdated in Unix microseconds (sign
// flipped, big-endian) and its ordinal, the order in which this database
// stored it: key order is the trail's order in time. The index's bucket
// (4 bytes, big-endian) is the ordinal divided by bucketSize: entries of
// one bucket are written together, and a search reads each bucket's.
//
// Index entries, by kind (text values pass through sqlstore.IndexKey, so
// they never hold a 0 byte, which separates them):
//
//	s norm 0 exact 0 pos      string
//	t code 0 system 0 pos     token; also a Reference's identifier
//	d display 0 pos           a token's display text, for :text
//	r id 0 type 0 pos         a reference to a resource Type/id
//	u url 0 pos               an absolute reference, or a uri
//	D lo hi pos               a date range [lo, hi), Unix microseconds
const (
	prefixAll       = 'a'
	prefixPatient   = 'P'
	prefixPosting   = 'p'
	prefixDate      = 'T'
	kindString      = 's'
	kindToken       = 't'
	kindDisplay     = 'd'
	kindRef         = 'r'
	kindURL         = 'u'
	kindDate        = 'D'
	posLen          = 16
	metaCursor      = "cursor"
	metaNextOrdinal = "ordinal"
	// bucketBits sets bucketSize, 16,384 events: about as many index
	// bytes as a few of Pebble's memory tables, so that a bucket is
	// merged a few times at most before it is complete; a search seeks
	// once per bucket and value (600 buckets for ten million events).
	bucketBits = 14
	bucketSize = 1 << bucketBits
	metaBucket = 0xffffffff
)

// pos is an event's position: its sort key and identity in every index.
type pos [posLen]byte

func makePos(lastUpdated int64, ordinal uint64) pos {
	var p pos
	binary.BigEndian.PutUint64(p[:8], uint64(lastUpdated)^(1<<63))
	binary.BigEndian.PutUint64(p[8:], ordinal)
	return p
}

// ordinal is the ordinal of the event at p.
func (p pos) ordinal() uint64 { return binary.BigEndian.Uint64(p[8:]) }

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
func (p pos) micros() int64 { return int64(binary.BigEndian.Uint64(p[:8]) ^ (1 << 63)) }

func (p pos) less(q pos) bool { return string(p[:]) < string(q[:]) }

var errCorrupt = errors.New("eventdb: malformed key or value")

// posOf reads the pos at the end of key k.
func posOf(k []byte) (pos, error) {
	var p pos
	if len(k) < posLen {
		return p, errCorrupt
	}
	copy(p[:], k[len(k)-posLen:])
	return p, nil
}

func metaKey(name string) []byte { return inBucket(metaBucket, append([]byte{'m'}, name...)) }

// allKey is the index entry every event has (without its bucket).
func allKey(p pos) []byte { return append([]byte{prefixAll}, p[:]...) }

// dateKey is the index entry holding an event's date (without its bucket).
func dateKey(p pos) []byte { return append([]byte{prefixDate}, p[:]...) }

// sortDate returns what an event sorts by under _sort=date (FHIR R4
// §3.1.1.5.1, as the FHIR store sorts): the lowest lo of its date
// entries ascending, the highest hi descending; ok is false without one.
func sortDate(entries []searchparam.Entry) (lo, hi int64, ok bool) {
	for i := range entries {
		e := &entries[i]
		if e.Param != "date" || e.Type != searchparam.Date {
			continue
		}
		if !ok || e.Lo < lo {
			lo = e.Lo
		}
		if !ok || e.Hi > hi {
			hi = e.Hi
		}
		ok = true
	}
	return lo, hi, ok
}

func patientPrefix(id string) []byte {
	k := append([]byte{prefixPatient}, sqlstore.IndexKey(id)...)
	return append(k, 0)
}

// postingPrefix begins the entries of one parameter and kind, followed by
// the text fields given, each ended by a 0 byte.
func postingPrefix(param string, kind byte, fields ...string) []byte {
	k := make([]byte, 0, 2+len(param)+1+32)
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

// postings appends to keys the index keys of the entries of one event at
// p. Entries of types the trail does not use (numbers, quantities,
// composites) and references with nothing to match are skipped, as the
// SQL store skips what it cannot index.
func postings(keys [][]byte, entries []searchparam.Entry, p pos) [][]byte {
	add := func(k []byte) { keys = append(keys, append(k, p[:]...)) }
	for i := range entries {
		e := &entries[i]
		if e.Param == "_id" || e.Param == "_lastUpdated" {
			continue
		}
		switch e.Type {
		case searchparam.String:
			add(postingPrefix(e.Param, kindString, e.Text, e.Exact))
		case searchparam.Token:
			add(postingPrefix(e.Param, kindToken, e.Code, e.System))
			if e.Text != "" {
				add(postingPrefix(e.Param, kindDisplay, e.Text))
			}
		case searchparam.Reference:
			// An absolute URL is kept as a URL only, as the SQL store
			// keeps it: it never matches as a local Type/id.
			switch {
			case e.URL != "":
				add(postingPrefix(e.Param, kindURL, e.URL))
			case e.RefID != "":
				add(postingPrefix(e.Param, kindRef, e.RefID, e.RefType))
			}
			if e.Code != "" {
				add(postingPrefix(e.Param, kindToken, e.Code, e.System))
			}
		case searchparam.URI:
			add(postingPrefix(e.Param, kindURL, e.Exact))
		case searchparam.Date:
			k := postingPrefix(e.Param, kindDate)
			k = dateBytes(k, e.Lo)
			k = dateBytes(k, e.Hi)
			add(k)
		}
	}
	return keys
}

// prefixEnd returns the smallest key above every key beginning with p,
// or nil when there is none.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
