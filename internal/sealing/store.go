package sealing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/wardenfhir/warden/internal/fhir/rawjson"
	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/store"
)

// Store is a store.Store that seals labelled resources on write and
// opens them on read as far as the context's Clearance reaches.
type Store struct {
	inner store.Store
	keys  keys
	p     Policy
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = sealedTx{}
)

// New wraps inner so that resources labelled with a category of p are
// sealed with k.
func New(inner store.Store, k *fieldcrypt.Keys, p Policy) *Store {
	return &Store{inner: inner, keys: k, p: p}
}

// EnsureKeys makes the keysets of every category of the policy that has
// none yet, so that searches never wait on (or, inside a transaction,
// deadlock on) making them. Call it once at start.
func (s *Store) EnsureKeys(ctx context.Context) error {
	k, ok := s.keys.(*fieldcrypt.Keys)
	if !ok {
		return nil
	}
	for _, c := range s.p.sorted() {
		if err := k.EnsureCategory(ctx, c, s.p.Tenant); err != nil {
			return keyError(err)
		}
	}
	return nil
}

// Inner is the wrapped store, for Warden's own maintenance (the
// re-encryption job writes ciphertext back through it).
func (s *Store) Inner() store.Store { return s.inner }

// Read implements store.Store.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	r, err := s.inner.Read(ctx, typ, id)
	if err != nil {
		return r, err
	}
	return r, s.view(ctx, r)
}

// VRead implements store.Store.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	r, err := s.inner.VRead(ctx, typ, id, version)
	if err != nil {
		return r, err
	}
	return r, s.view(ctx, r)
}

// History implements store.Store.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) (*store.HistoryPage, error) {
	page, err := s.inner.History(ctx, q)
	if err != nil {
		return page, err
	}
	for i := range page.Versions {
		if err := s.view(ctx, &page.Versions[i]); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// Search implements store.Store: token values are looked for in clear
// and, for each category the caller is cleared for, as blind indexes.
func (s *Store) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	return s.search(ctx, s.inner.Search, q, page)
}

func (s *Store) search(ctx context.Context,
	find func(context.Context, *search.Query, store.PageRequest) (*store.SearchResult, error),
	q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	nq, err := s.rewrite(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := find(ctx, nq, page)
	if err != nil {
		return res, err
	}
	for _, list := range [][]store.Resource{res.Matches, res.Included} {
		for i := range list {
			if err := s.view(ctx, &list[i]); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// maxAttempts bounds how many times Tx runs fn when its writes need key
// records made first.
const maxAttempts = 4

// errNeedKeys aborts a transaction whose writes need key records that
// cannot be written inside it.
var errNeedKeys = errors.New("sealing: the transaction needs new keys first")

// keyNeed names the keysets a sealed write waits for.
type keyNeed struct{ cat, patient string }

// Tx implements store.Store. A write that needs key records not yet
// made (the first sealed resource of a patient in a category, or the
// first after a rotation) cannot make them inside the transaction — a
// single-writer store would wait for itself — so the transaction is
// rolled back, the keys are made, and fn runs again from the start: fn
// must be safe to run more than once (as the API's handlers are: they
// keep nothing from an attempt that did not commit).
func (s *Store) Tx(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		var need []keyNeed
		err := s.inner.Tx(ctx, func(tx store.Tx) error {
			err := fn(sealedTx{tx: tx, s: s, need: &need})
			if len(need) > 0 {
				return errNeedKeys
			}
			return err
		})
		if len(need) == 0 {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("%w: sealing keys kept changing during the write", store.ErrUnavailable)
		}
		for _, n := range need {
			if err := s.keys.Prepare(ctx, n.cat, s.p.Tenant, n.patient); err != nil {
				return keyError(err)
			}
		}
	}
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error { return s.inner.Ping(ctx) }

// Close implements store.Store.
func (s *Store) Close() error { return s.inner.Close() }

type sealedTx struct {
	tx   store.Tx
	s    *Store
	need *[]keyNeed // keys to make before running the transaction again
}

func (t sealedTx) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	r, err := t.tx.Read(ctx, typ, id)
	if err != nil {
		return r, err
	}
	return r, t.s.view(ctx, r)
}

func (t sealedTx) Search(ctx context.Context, q *search.Query, page store.PageRequest) (*store.SearchResult, error) {
	return t.s.search(ctx, t.tx.Search, q, page)
}

func (t sealedTx) Lock(ctx context.Context, key string) error { return t.tx.Lock(ctx, key) }

// Put seals w when its labels say so. When the keys it needs are not
// made yet, it notes them and writes nothing: the transaction will be
// rolled back and run again (see Store.Tx), so what fn does meanwhile
// does not matter.
func (t sealedTx) Put(ctx context.Context, w store.Write) error {
	cats, err := t.s.sealedCategories(w)
	if err != nil {
		return err
	}
	missing, err := t.s.missingKeys(ctx, w, cats)
	if err != nil {
		return err
	}
	for _, m := range missing {
		if !slices.Contains(*t.need, m) {
			*t.need = append(*t.need, m)
		}
	}
	if len(*t.need) > 0 {
		// Every later write is only checked for the keys it needs, so
		// that one run of fn finds them all.
		return nil
	}
	if w, err = t.s.sealAs(ctx, w, cats); err != nil {
		return err
	}
	return t.tx.Put(ctx, w)
}

// missingKeys lists the keysets sealing w under cats would have to
// write first.
func (s *Store) missingKeys(ctx context.Context, w store.Write, cats []string) ([]keyNeed, error) {
	patient := patientOf(w)
	var out []keyNeed
	for _, c := range cats {
		ok, err := s.keys.Ready(ctx, c, s.p.Tenant, patient)
		if err != nil {
			return nil, keyError(err)
		}
		if !ok {
			out = append(out, keyNeed{cat: c, patient: patient})
		}
	}
	return out, nil
}

// sealedCategories are the sealed categories w's labels name (none for
// a deletion), after refusing a write that carries the sealed member.
func (s *Store) sealedCategories(w store.Write) ([]string, error) {
	r := w.Resource
	if r.Deleted || len(r.JSON) == 0 {
		return nil, nil
	}
	if bytes.Contains(r.JSON, sealedKey) {
		// Anywhere, not only at the top: reads look for the marker.
		return nil, ErrForged
	}
	if len(s.p.Categories) == 0 {
		return nil, nil
	}
	return s.categories(metaOf(r.JSON)), nil
}

// patientOf is the patient whose data keys seal w: the first of its
// compartments, or noPatient.
func patientOf(w store.Write) string {
	if len(w.Patients) == 0 {
		return noPatient
	}
	return slices.Min(w.Patients)
}

// metaOf returns the raw meta member of a resource (nil if none or not
// an object): found by a scan on the write path (every write asks), with
// encoding/json deciding what the scan cannot follow.
func metaOf(js []byte) []byte {
	if meta, ok := rawjson.TopMember(js, "meta"); ok {
		return meta
	}
	var doc struct {
		Meta json.RawMessage `json:"meta"`
	}
	if json.Unmarshal(js, &doc) != nil {
		return nil
	}
	return doc.Meta
}

// sealedMarker precedes the sealed member, always the last of the
// stored form; its value holds only names and base64, so the marker
// cannot occur inside it.
var (
	sealedMarker = []byte(`,"` + member + `":`)
	sealedKey    = []byte(`"` + member + `"`)
)

// Unsealed reports whether a stored form carries no sealed content, by
// the sealed member's name anywhere in it (writes that carry it are
// refused, so only sealed forms do). It is what a cache below this layer
// may keep (sqlstore.Store.CacheReads): sealed content is re-encrypted in
// place by the reseal job and stays out of such memory.
func Unsealed(stored []byte) bool { return !bytes.Contains(stored, sealedKey) }

// sealedAt is the offset of the sealed member's marker in a stored form,
// or -1 for a resource that is not sealed. Most are not: the forward
// search (vectorised) answers for them at a fraction of the cost of the
// backward one (Rabin-Karp, byte by byte), which only a sealed form pays.
func sealedAt(stored []byte) int {
	if !bytes.Contains(stored, sealedMarker) {
		return -1
	}
	return bytes.LastIndex(stored, sealedMarker)
}

// box is the sealed member of the stored form.
type box struct {
	V    int      `json:"v"`
	Cats []string `json:"c"`  // the layers, innermost first
	Pat  string   `json:"p"`  // the patient whose data keys sealed it
	CT   []byte   `json:"ct"` // the layered ciphertext
}

// adPath is the element path bound into the associated data of the
// sealed content.
const adPath = "#sealed"

// noPatient names the data keys of sealed resources in no patient's
// compartment.
const noPatient = "-"

// sealAs returns w with its resource sealed under cats (its sealed
// categories) and its search entries blinded; with no cats, w as it is.
func (s *Store) sealAs(ctx context.Context, w store.Write, cats []string) (store.Write, error) {
	if len(cats) == 0 {
		return w, nil
	}
	r := w.Resource
	ms, err := members(r.JSON)
	if err != nil {
		return w, err
	}
	whole, elems := false, map[string]bool{}
	for _, c := range cats {
		e := s.p.Categories[c].Elements
		if e == nil {
			whole = true
		}
		for _, name := range e {
			elems[name] = true
		}
	}
	var kept, sealed []rawMember
	for _, m := range ms {
		switch {
		case m.key == "resourceType" || m.key == "id" || m.key == "meta":
			kept = append(kept, m)
		case whole || elems[m.key]:
			sealed = append(sealed, m)
		default:
			kept = append(kept, m)
		}
	}
	if len(sealed) == 0 {
		return w, nil
	}
	patient := patientOf(w)
	ad := fieldcrypt.AD{Tenant: s.p.Tenant, Type: r.Type, ID: r.ID, Version: r.Version, Path: adPath}
	ct := object(sealed)
	for _, c := range cats {
		if ct, err = s.keys.Seal(ctx, c, patient, ad, ct); err != nil {
			return w, keyError(err)
		}
	}
	b, err := json.Marshal(box{V: 1, Cats: cats, Pat: patient, CT: ct})
	if err != nil {
		return w, err
	}
	out := object(kept)
	out = append(append(append(out[:len(out)-1], sealedMarker...), b...), '}')
	w.Resource.JSON = out
	if w.Entries, err = s.blind(ctx, cats[0], w.Entries); err != nil {
		return w, err
	}
	return w, nil
}

// categories are the sealed categories meta.security names, sorted.
func (s *Store) categories(metaRaw []byte) []string {
	if len(metaRaw) == 0 || len(s.p.Categories) == 0 {
		return nil
	}
	// Most resources carry no sensitivity label: without an escape, a
	// coding of the sensitivity system has the system's bytes as they
	// are, so their absence answers without decoding (every write asks).
	if !bytes.Contains(metaRaw, sensitivitySystemBytes) && bytes.IndexByte(metaRaw, '\\') < 0 {
		return nil
	}
	var meta struct {
		Security []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"security"`
	}
	if json.Unmarshal(metaRaw, &meta) != nil {
		return nil
	}
	var cats []string
	for _, c := range meta.Security {
		if _, ok := s.p.Categories[c.Code]; ok && c.System == sensitivitySystem {
			cats = append(cats, c.Code)
		}
	}
	slices.Sort(cats)
	return slices.Compact(cats)
}

// view opens r in place as far as ctx's clearance reaches: the opened
// resource, or the redacted form with Withheld set.
func (s *Store) view(ctx context.Context, r *store.Resource) error {
	if r == nil || r.Deleted || len(r.JSON) == 0 {
		return nil
	}
	i := sealedAt(r.JSON)
	if i < 0 {
		return nil
	}
	buf := ctBuffers.Get().(*[]byte)
	defer ctBuffers.Put(buf)
	b, err := parseBox(r.JSON[i+len(sealedMarker):len(r.JSON)-1], *buf)
	if err != nil {
		return err
	}
	if cap(b.CT) > cap(*buf) && cap(b.CT) <= maxPooledCT {
		*buf = b.CT[:0]
	}
	kept := r.JSON[:i:i]
	cl := ClearanceFrom(ctx)
	var withheld []string
	for _, c := range b.Cats {
		if !cl.Covers(c) {
			withheld = append(withheld, c)
		}
	}
	if len(withheld) > 0 {
		return s.redact(r, kept, b.Cats, withheld)
	}
	ad := fieldcrypt.AD{Tenant: s.p.Tenant, Type: r.Type, ID: r.ID, Version: r.Version, Path: adPath}
	plain := b.CT
	for j := len(b.Cats) - 1; j >= 0; j-- {
		var err error
		plain, err = s.keys.Open(ctx, b.Cats[j], b.Pat, ad, plain)
		switch {
		case errors.Is(err, fieldcrypt.ErrShredded):
			// Erased on purpose: nobody gets it back.
			return s.redact(r, kept, b.Cats, b.Cats)
		case err != nil:
			return keyError(err)
		}
	}
	if len(plain) < 2 || plain[0] != '{' || plain[len(plain)-1] != '}' {
		return ErrDamaged
	}
	out := make([]byte, 0, len(kept)+len(plain)+1)
	out = append(out, kept...)
	if len(plain) > 2 {
		out = append(append(out, ','), plain[1:]...)
	} else {
		out = append(out, '}')
	}
	r.JSON = out
	return nil
}

// redact replaces r's JSON by its redacted form: the members kept in
// clear with meta reduced to versionId, lastUpdated and the security
// labels less the sealed categories, plus REDACTED.
func (s *Store) redact(r *store.Resource, kept []byte, cats, withheld []string) error {
	ms, err := members(append(slices.Clip(kept), '}'))
	if err != nil {
		return ErrDamaged
	}
	for i, m := range ms {
		if m.key != "meta" {
			continue
		}
		var meta struct {
			VersionID   string           `json:"versionId,omitempty"`
			LastUpdated string           `json:"lastUpdated,omitempty"`
			Security    []map[string]any `json:"security,omitempty"`
		}
		if json.Unmarshal(m.raw, &meta) != nil {
			return ErrDamaged
		}
		meta.Security = slices.DeleteFunc(meta.Security, func(c map[string]any) bool {
			sys, _ := c["system"].(string)
			code, _ := c["code"].(string)
			return (sys == sensitivitySystem && slices.Contains(cats, code)) || (sys == RedactedSystem && code == RedactedCode)
		})
		meta.Security = append(meta.Security, map[string]any{"system": RedactedSystem, "code": RedactedCode, "display": "redacted"})
		raw, err := json.Marshal(meta)
		if err != nil {
			return ErrDamaged
		}
		ms[i].raw = raw
	}
	r.JSON = object(ms)
	r.Withheld = withheld
	return nil
}

// keyError turns a fieldcrypt failure into what the API answers: a key
// service or store that cannot be reached is store.ErrUnavailable (503,
// retry), anything else that does not open is ErrDamaged.
func keyError(err error) error {
	switch {
	case errors.Is(err, fieldcrypt.ErrShredded):
		return err
	case errors.Is(err, fieldcrypt.ErrOpen):
		return ErrDamaged
	case errors.Is(err, fieldcrypt.ErrKeyUnwrap):
		return fmt.Errorf("%w: a sealed category's keys cannot be unwrapped", store.ErrUnavailable)
	default:
		return fmt.Errorf("%w: sealing keys: %v", store.ErrUnavailable, err)
	}
}

// The code systems of the blind index entries of a category: a coding's
// system and code, its code under any system, its system alone.
func blindExact(cat string) string  { return "urn:warden:sealed:" + cat }
func blindAny(cat string) string    { return "urn:warden:sealed:" + cat + ":code" }
func blindSystem(cat string) string { return "urn:warden:sealed:" + cat + ":system" }

// clearParams are the search parameters of a sealed resource indexed in
// clear: its meta (labels included) and id.
func clearParam(code string) bool {
	switch code {
	case "_id", "_lastUpdated", "_tag", "_profile", "_security", "_source":
		return true
	}
	return false
}

// blind returns the search entries of a sealed resource: meta, references
// and dates as they are; token values as blind indexes under cat; every
// other kind (strings, numbers, quantities, uris, composites) dropped,
// since they would hold the sealed values in clear.
func (s *Store) blind(ctx context.Context, cat string, es []searchparam.Entry) ([]searchparam.Entry, error) {
	out := make([]searchparam.Entry, 0, len(es)*2)
	for _, e := range es {
		switch {
		case clearParam(e.Param), e.Type == searchparam.Reference, e.Type == searchparam.Date:
			out = append(out, e)
		case e.Type == searchparam.Token:
			if e.Code != "" {
				exact, err := s.keys.BlindIndexCode(ctx, cat, s.p.Tenant, e.System, e.Code)
				if err != nil {
					return nil, keyError(err)
				}
				anySys, err := s.keys.BlindIndexCode(ctx, cat, s.p.Tenant, "", e.Code)
				if err != nil {
					return nil, keyError(err)
				}
				out = append(out,
					searchparam.Entry{Param: e.Param, Type: searchparam.Token, System: blindExact(cat), Code: exact},
					searchparam.Entry{Param: e.Param, Type: searchparam.Token, System: blindAny(cat), Code: anySys})
			}
			if e.System != "" {
				sys, err := s.keys.BlindIndexCode(ctx, cat, s.p.Tenant, e.System, "")
				if err != nil {
					return nil, keyError(err)
				}
				out = append(out, searchparam.Entry{Param: e.Param, Type: searchparam.Token, System: blindSystem(cat), Code: sys})
			}
		}
	}
	return out, nil
}

// rewrite returns q with each plain or :not token value also looked for
// as the blind index of every category the caller is cleared for.
func (s *Store) rewrite(ctx context.Context, q *search.Query) (*search.Query, error) {
	if len(q.Clauses) == 0 {
		return q, nil
	}
	cl := ClearanceFrom(ctx)
	var cats []string
	for _, c := range s.p.sorted() {
		if !cl.Covers(c) {
			continue
		}
		// A category without keys has nothing sealed under it (and its
		// keys must not be made here, inside a transaction perhaps).
		ok, err := s.keys.HasCategory(ctx, c, s.p.Tenant)
		if err != nil {
			return nil, keyError(err)
		}
		if ok {
			cats = append(cats, c)
		}
	}
	if len(cats) == 0 {
		return q, nil
	}
	nq := *q
	nq.Clauses = make([]search.Clause, len(q.Clauses))
	for i, c := range q.Clauses {
		var err error
		if nq.Clauses[i], err = s.rewriteClause(ctx, cats, c); err != nil {
			return nil, err
		}
	}
	return &nq, nil
}

func (s *Store) rewriteClause(ctx context.Context, cats []string, c search.Clause) (search.Clause, error) {
	if c.Chain != nil {
		inner, err := s.rewriteClause(ctx, cats, *c.Chain)
		if err != nil {
			return c, err
		}
		c.Chain = &inner
	}
	if c.Has != nil {
		h := *c.Has
		inner, err := s.rewriteClause(ctx, cats, h.Clause)
		if err != nil {
			return c, err
		}
		h.Clause = inner
		c.Has = &h
	}
	if c.Param == nil || c.Param.Type != searchparam.Token || clearParam(c.Param.Code) ||
		(c.Modifier != search.ModNone && c.Modifier != search.ModNot) {
		return c, nil
	}
	vals := slices.Clip(c.Values)
	for _, v := range c.Values {
		if v.Missing {
			continue
		}
		for _, cat := range cats {
			alt := search.Value{Prefix: v.Prefix}
			var err error
			switch {
			case v.AnyCode:
				alt.System = blindSystem(cat)
				alt.Code, err = s.keys.BlindIndexCode(ctx, cat, s.p.Tenant, v.System, "")
			case v.AnySystem:
				alt.System = blindAny(cat)
				alt.Code, err = s.keys.BlindIndexCode(ctx, cat, s.p.Tenant, "", v.Code)
			default:
				alt.System = blindExact(cat)
				alt.Code, err = s.keys.BlindIndexCode(ctx, cat, s.p.Tenant, v.System, v.Code)
			}
			if err != nil {
				return c, keyError(err)
			}
			vals = append(vals, alt)
		}
	}
	c.Values = vals
	return c, nil
}

// CiphertextOf returns the sealed member of a stored form, for the
// re-encryption job and the at-rest tests; ok is false for a resource
// that is not sealed.
func CiphertextOf(stored []byte) (cats []string, patient string, ct []byte, ok bool) {
	i := sealedAt(stored)
	if i < 0 {
		return nil, "", nil, false
	}
	var b box
	if json.Unmarshal(stored[i+len(sealedMarker):len(stored)-1], &b) != nil || b.V != 1 {
		return nil, "", nil, false
	}
	return b.Cats, b.Pat, b.CT, true
}

// ctBuffers hold decoded ciphertexts while they are opened (Open does
// not keep its input), so that a read does not allocate one each time.
var ctBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledCT bounds the buffers kept in ctBuffers.
const maxPooledCT = 1 << 20

// parseBox reads the sealed member as Seal writes it
// ({"v":1,"c":[…],"p":"…","ct":"…"}) without encoding/json, whose
// validation pass and reflection cost more than the decryption; any
// other shape goes through encoding/json.
func parseBox(raw, buf []byte) (box, error) {
	var b box
	rest, ok := bytes.CutPrefix(raw, []byte(`{"v":1,"c":[`))
	if ok {
		var cats []byte
		cats, rest, ok = bytes.Cut(rest, []byte(`],"p":"`))
		// Names separated by commas, each quoted: a comma with no name
		// after it ("a",]) is not JSON, so not this path's to accept.
		for more := ok; more; {
			var c []byte
			c, cats, more = bytes.Cut(cats, []byte(","))
			name, found := bytes.CutPrefix(c, []byte(`"`))
			name, found2 := bytes.CutSuffix(name, []byte(`"`))
			if !found || !found2 || !plainName(name) {
				ok = false
				break
			}
			b.Cats = append(b.Cats, string(name))
		}
	}
	if ok {
		var pat []byte
		pat, rest, ok = bytes.Cut(rest, []byte(`","ct":"`))
		b.Pat = string(pat)
		ok = ok && plainName(pat)
	}
	if ok {
		var ct []byte
		ct, ok = bytes.CutSuffix(rest, []byte(`"}`))
		// The base64 decoder skips line breaks, which a JSON string
		// cannot hold unescaped: such bytes go to encoding/json, which
		// refuses them.
		ok = ok && !bytes.ContainsAny(ct, "\r\n")
		if ok {
			if n := base64.StdEncoding.DecodedLen(len(ct)); cap(buf) >= n {
				b.CT = buf[:n]
			} else {
				b.CT = make([]byte, n)
			}
			n, err := base64.StdEncoding.Decode(b.CT, ct)
			b.CT, ok = b.CT[:n], err == nil
		}
	}
	if ok {
		b.V = 1
	} else {
		b = box{}
		if err := json.Unmarshal(raw, &b); err != nil {
			return box{}, ErrDamaged
		}
	}
	if b.V != 1 || len(b.Cats) == 0 {
		return box{}, ErrDamaged
	}
	return b, nil
}

// plainName reports whether b is made of the characters category and
// patient names may hold (letters, digits, ".", "_", "-"): read as they
// are, with no JSON escapes to decode.
func plainName(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
