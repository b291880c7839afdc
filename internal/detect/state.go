package detect

import (
	"math"
	"math/bits"
)

// decay is a count that halves every half-life: add(x) then value()
// gives Σ x·2^(-age/halfLife). Times are Unix nanoseconds; an event
// older than the last one (clocks are not monotonic across goroutines)
// is counted as if it came at the last time.
type decay struct {
	v  float64
	at int64
}

func (d *decay) value(now int64, halfLife float64) float64 {
	if d.v == 0 || now <= d.at {
		return d.v
	}
	return d.v * math.Exp2(-float64(now-d.at)/halfLife)
}

func (d *decay) add(now int64, x, halfLife float64) float64 {
	v := d.value(now, halfLife) + x
	if v < 1e-9 {
		v = 0
	}
	d.v = v
	if now > d.at {
		d.at = now
	}
	return v
}

// The distinct-patient window: slots ten-minute buckets, the sliding hour
// being the current bucket and the five before it.
const (
	slotNanos = int64(10 * 60 * 1e9)
	slots     = 6
)

// distinct estimates the number of distinct keys (keyed hashes of patient
// ids, never the ids) seen in the last hour with a linear-counting bitmap
// per ten-minute bucket: m bits estimate n ≈ m·ln(m/zeros) of the union.
// It is near exact while n is well under m and saturates at about
// m·ln(m).
type distinct struct {
	epoch [slots]int64
	words int
	bits  []uint64 // slots × words
}

func newDistinct(words int) *distinct {
	d := &distinct{words: words, bits: make([]uint64, slots*words)}
	for i := range d.epoch {
		d.epoch[i] = -1
	}
	return d
}

// add sets h's bit in the current bucket and says whether it was new
// there.
func (d *distinct) add(now int64, h uint64) bool {
	idx := now / slotNanos
	s := int(idx % slots)
	row := d.bits[s*d.words : (s+1)*d.words]
	if d.epoch[s] != idx {
		if d.epoch[s] > idx { // an event from before this bucket was reused: count it in the current one
			idx = d.epoch[s]
		} else {
			clear(row)
			d.epoch[s] = idx
		}
	}
	m := uint64(d.words * 64)
	b := h % m
	w, mask := b/64, uint64(1)<<(b%64)
	if row[w]&mask != 0 {
		return false
	}
	row[w] |= mask
	return true
}

// estimate is the number of distinct keys in the sliding hour.
func (d *distinct) estimate(now int64) float64 {
	idx := now / slotNanos
	zeros := 0
	for w := 0; w < d.words; w++ {
		var u uint64
		for s := 0; s < slots; s++ {
			if e := d.epoch[s]; e >= 0 && e > idx-slots {
				u |= d.bits[s*d.words+w]
			}
		}
		zeros += 64 - bits.OnesCount64(u)
	}
	m := float64(d.words * 64)
	if zeros == 0 {
		return m * math.Log(m)
	}
	return m * math.Log(m/float64(zeros))
}

// baseline learns the usual sliding-hour peak of a count from the peaks
// of the active hours (hours with no activity are not folded in, so
// nights do not drag a day worker's baseline to zero), skipping hours in
// which the subject was flagged: mean is their EWMA, high the highest of
// them, fading by the learning rate a tenth as fast (so the busiest hour
// of yesterday still counts today).
type baseline struct {
	hour    int64 // the clock hour being watched (Unix hours)
	peak    float64
	mean    float64
	high    float64
	hours   int32 // active hours learned
	flagged bool
}

// learned is the baseline a threshold is a multiple of.
func (b *baseline) learned() float64 { return max(b.mean, b.high) }

// observe folds the previous hour when now is in a new one and records
// cur as a candidate peak.
func (b *baseline) observe(now int64, cur, rate float64) {
	h := now / int64(3600*1e9)
	if h > b.hour {
		switch {
		case b.hour == 0 || b.peak == 0:
		case b.flagged:
			// Learned only slowly, so that an attack does not become the
			// baseline and real growth is still learned in the end.
			if b.hours > 0 {
				b.mean += rate / 10 * (b.peak - b.mean)
			}
		default:
			if b.hours == 0 {
				b.mean = b.peak
			} else {
				b.mean += rate * (b.peak - b.mean)
			}
			b.high = max(b.high*(1-rate/10), b.peak)
			b.hours++
		}
		b.hour, b.peak, b.flagged = h, 0, false
	}
	b.peak = max(b.peak, cur)
}

// warm reports whether v's warm-up is over.
func (b *baseline) warm(v *Velocity) bool { return int(b.hours) >= v.WarmupHours && b.hours > 0 }

// threshold is max(floor, multiplier × baseline), the baseline being
// expected until warmup active hours are learned.
func (b *baseline) threshold(v *Velocity, class string) float64 {
	base := v.Expected.of(class)
	if b.warm(v) {
		base = b.learned()
	}
	return max(v.Floor.of(class), v.Multiplier*base)
}

// probeRing remembers the last reads by id of one actor, to spot
// enumerated ids (same type, same prefix, numeric tails close together)
// and distinct ids answered 404.
type probeRing struct {
	e   [8]probeEntry
	pos int
}

type probeEntry struct {
	typ, pfx, id uint64 // keyed hashes
	patient      uint64 // keyed hash of the patient the read disclosed, 0 none
	tail         uint64
	hasTail      bool
	failed       bool
	used         bool
}

// splitTail splits a trailing run of decimal digits (at most 18) off id.
func splitTail(id string) (prefix string, tail uint64, ok bool) {
	i := len(id)
	for i > 0 && len(id)-i < 18 && id[i-1] >= '0' && id[i-1] <= '9' {
		i--
	}
	if i == len(id) {
		return id, 0, false
	}
	var n uint64
	for _, c := range id[i:] {
		n = n*10 + uint64(c-'0')
	}
	return id[:i], n, true
}

// observe records one read and returns how many probing points it adds:
// one when the id is new to the ring and was answered 404 (or 403), one
// when its id is a numeric neighbour (within gap) of a recent read of the
// same type and prefix that failed or disclosed another patient.
func (r *probeRing) observe(e probeEntry, gap uint64) float64 {
	points := 0.0
	seen, neighbour := false, false
	for i := range r.e {
		o := &r.e[i]
		if !o.used || o.typ != e.typ {
			continue
		}
		if o.id == e.id {
			seen = true
			continue
		}
		if gap > 0 && e.hasTail && o.hasTail && o.pfx == e.pfx && absDiff(o.tail, e.tail) <= gap &&
			(e.failed || o.failed || e.patient == 0 || o.patient == 0 || e.patient != o.patient) {
			neighbour = true
		}
	}
	if e.failed && !seen {
		points++
	}
	if neighbour {
		points++
	}
	if !seen {
		r.e[r.pos] = e
		r.pos = (r.pos + 1) % len(r.e)
	}
	return points
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
