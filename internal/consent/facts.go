package consent

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/rawjson"
)

// MaxFactReferences bounds how many references FactsOf collects.
const MaxFactReferences = 1024

// Elements FactsOf reads. R4 resources name their main code, date and
// author differently; these are the common names across the clinical
// resources of the Patient compartment.
var (
	// codeElements hold CodeableConcepts (or arrays of them) whose codings
	// are the resource's codes for Consent.provision.code ("if this code
	// is found in an instance, then the rule applies").
	codeElements = []string{"code", "vaccineCode", "medicationCodeableConcept", "type", "category"}
	// dateElements are tried in order for the clinically relevant date
	// (Consent.provision.dataPeriod); a Period counts by its start.
	dateElements = []string{
		"effectiveDateTime", "effectiveInstant", "effectivePeriod",
		"onsetDateTime", "onsetPeriod", "performedDateTime", "performedPeriod",
		"occurrenceDateTime", "occurrencePeriod", "authoredOn", "recordedDate",
		"issued", "date", "period", "created", "recorded",
	}
	// authorElements hold a Reference, an array of them, or an array of
	// objects with an actor Reference (Procedure.performer).
	authorElements = []string{"author", "recorder", "asserter", "requester", "performer"}
)

// FactsOf reads from a resource's JSON the facts Decide matches
// provisions against (R4 consent.html: securityLabel against
// meta.security, class against the type and meta.profile, code against
// the codes of codeElements, dataPeriod against the first date of
// dateElements, data against the resource's references and authors).
// ReferencedBy cannot be read from the resource itself: callers that know
// which resources refer to it add them. typ and id name the resource as
// stored (they are not taken from raw).
//
// It runs for every disclosed resource of a patient whose consents could
// withhold something, so it decodes only the elements it reads and finds
// the references with one scan of the bytes.
func FactsOf(typ, id string, raw []byte) (Resource, error) {
	r := Resource{Type: typ, ID: id, Ref: typ + "/" + id}
	if factsFast(&r, raw) {
		return r, nil
	}
	var top factsJSON
	if json.Unmarshal(raw, &top) != nil {
		return Resource{}, invalid(typ, "not a JSON resource")
	}
	r.Security = appendCodings(nil, top.Meta.Security)
	r.Profiles = top.Meta.Profile
	for _, el := range [...]json.RawMessage{top.Code, top.VaccineCode, top.MedicationCodeableConcept, top.Type, top.Category} {
		r.Codes = appendConcepts(r.Codes, el)
	}
	for _, el := range [...]json.RawMessage{
		top.EffectiveDateTime, top.EffectiveInstant, top.EffectivePeriod,
		top.OnsetDateTime, top.OnsetPeriod, top.PerformedDateTime, top.PerformedPeriod,
		top.OccurrenceDateTime, top.OccurrencePeriod, top.AuthoredOn, top.RecordedDate,
		top.Issued, top.Date, top.Period, top.Created, top.Recorded,
	} {
		if t, ok := dateOf(el); ok {
			r.Date = t
			break
		}
	}
	for _, el := range [...]json.RawMessage{top.Author, top.Recorder, top.Asserter, top.Requester, top.Performer} {
		r.Authors = appendAuthors(r.Authors, el)
	}
	if refs := scanReferences(raw, nil); len(refs) > 0 {
		slices.Sort(refs)
		r.References = slices.Compact(refs)
	}
	return r, nil
}

// FactsFor is FactsOf reading only the facts need asks for (Policy.Needs):
// a policy that constrains only labels and profiles reads meta alone,
// which a scan finds without decoding the rest of the resource.
func FactsFor(typ, id string, raw []byte, need Needs) (Resource, error) {
	if need&^(NeedSecurity|NeedProfiles) != 0 {
		return FactsOf(typ, id, raw)
	}
	r := Resource{Type: typ, ID: id, Ref: typ + "/" + id}
	if need == 0 {
		return r, nil
	}
	meta, ok := rawjson.TopMember(raw, "meta")
	if !ok {
		return FactsOf(typ, id, raw) // not a plain JSON object: the full reader decides
	}
	if meta == nil {
		return r, nil
	}
	var m struct {
		Security json.RawMessage `json:"security"`
		Profile  json.RawMessage `json:"profile"`
	}
	if json.Unmarshal(meta, &m) != nil {
		return FactsOf(typ, id, raw)
	}
	r.Security = appendCodings(nil, m.Security)
	if len(m.Profile) > 0 && m.Profile[0] == '[' {
		var profiles []any
		json.Unmarshal(m.Profile, &profiles)
		for _, p := range profiles {
			if s, ok := p.(string); ok {
				r.Profiles = append(r.Profiles, s)
			}
		}
	}
	return r, nil
}

// factsJSON is the part of a resource FactsOf reads: the elements of
// codeElements, dateElements and authorElements, and meta.
type factsJSON struct {
	Meta struct {
		Security json.RawMessage `json:"security"`
		Profile  []string        `json:"profile"`
	} `json:"meta"`
	Code                      json.RawMessage `json:"code"`
	VaccineCode               json.RawMessage `json:"vaccineCode"`
	MedicationCodeableConcept json.RawMessage `json:"medicationCodeableConcept"`
	Type                      json.RawMessage `json:"type"`
	Category                  json.RawMessage `json:"category"`

	EffectiveDateTime  json.RawMessage `json:"effectiveDateTime"`
	EffectiveInstant   json.RawMessage `json:"effectiveInstant"`
	EffectivePeriod    json.RawMessage `json:"effectivePeriod"`
	OnsetDateTime      json.RawMessage `json:"onsetDateTime"`
	OnsetPeriod        json.RawMessage `json:"onsetPeriod"`
	PerformedDateTime  json.RawMessage `json:"performedDateTime"`
	PerformedPeriod    json.RawMessage `json:"performedPeriod"`
	OccurrenceDateTime json.RawMessage `json:"occurrenceDateTime"`
	OccurrencePeriod   json.RawMessage `json:"occurrencePeriod"`
	AuthoredOn         json.RawMessage `json:"authoredOn"`
	RecordedDate       json.RawMessage `json:"recordedDate"`
	Issued             json.RawMessage `json:"issued"`
	Date               json.RawMessage `json:"date"`
	Period             json.RawMessage `json:"period"`
	Created            json.RawMessage `json:"created"`
	Recorded           json.RawMessage `json:"recorded"`

	Author    json.RawMessage `json:"author"`
	Recorder  json.RawMessage `json:"recorder"`
	Asserter  json.RawMessage `json:"asserter"`
	Requester json.RawMessage `json:"requester"`
	Performer json.RawMessage `json:"performer"`
}

// rawList is a JSON value as a list: its elements if an array, else
// itself (nil: none).
func rawList(v json.RawMessage) []json.RawMessage {
	if len(v) == 0 {
		return nil
	}
	if v[0] == '[' {
		var list []json.RawMessage
		json.Unmarshal(v, &list)
		return list
	}
	return []json.RawMessage{v}
}

type jsonCoding struct {
	System any `json:"system"`
	Code   any `json:"code"`
}

// appendCodings appends the Codings (with system and code) of a JSON
// array of Codings.
func appendCodings(out []Coding, v json.RawMessage) []Coding {
	if len(v) == 0 || v[0] != '[' {
		return out
	}
	var list []json.RawMessage
	json.Unmarshal(v, &list)
	for _, c := range list {
		var jc jsonCoding
		if len(c) == 0 || c[0] != '{' || json.Unmarshal(c, &jc) != nil {
			continue
		}
		sys, _ := jc.System.(string)
		code, _ := jc.Code.(string)
		if sys != "" && code != "" {
			out = append(out, Coding{sys, code})
		}
	}
	return out
}

// appendConcepts appends the codings of a CodeableConcept or an array of
// them.
func appendConcepts(out []Coding, v json.RawMessage) []Coding {
	for _, cc := range rawList(v) {
		var c struct {
			Coding json.RawMessage `json:"coding"`
		}
		if len(cc) > 0 && cc[0] == '{' && json.Unmarshal(cc, &c) == nil {
			out = appendCodings(out, c.Coding)
		}
	}
	return out
}

// dateOf reads a date, dateTime or instant, or a Period's start.
func dateOf(v json.RawMessage) (time.Time, bool) {
	if len(v) == 0 {
		return time.Time{}, false
	}
	var s string
	switch v[0] {
	case '"':
		if json.Unmarshal(v, &s) != nil {
			return time.Time{}, false
		}
	case '{':
		var p struct {
			Start any `json:"start"`
		}
		if json.Unmarshal(v, &p) != nil {
			return time.Time{}, false
		}
		s, _ = p.Start.(string)
	default:
		return time.Time{}, false
	}
	lo, _, ok := parseDateTime(s)
	return lo, ok
}

// appendAuthors appends the relative references of a Reference, an array
// of them, or an array of objects with an actor Reference
// (Procedure.performer).
func appendAuthors(out []string, v json.RawMessage) []string {
	for _, a := range rawList(v) {
		var m struct {
			Reference any `json:"reference"`
			Actor     struct {
				Reference any `json:"reference"`
			} `json:"actor"`
		}
		if len(a) == 0 || a[0] != '{' || json.Unmarshal(a, &m) != nil {
			continue
		}
		if ref, ok := m.Reference.(string); ok {
			out = appendRef(out, ref)
		}
		if ref, ok := m.Actor.Reference.(string); ok {
			out = appendRef(out, ref)
		}
	}
	return out
}

func appendRef(list []string, ref string) []string {
	if literalRefPattern.MatchString(ref) {
		return append(list, ref)
	}
	return list
}

// scanReferences appends every relative "Type/id" value of a "reference"
// member anywhere in raw, JSON that already parsed (contained resources'
// "#id" references and absolute URLs are left out): one pass over the
// bytes that tells strings from structure, so a "reference" inside a
// string value is not taken for a member.
func scanReferences(raw []byte, out []string) []string {
	const key = `"reference"`
	i := 0
	for i < len(raw) {
		c := raw[i]
		if c != '"' {
			i++
			continue
		}
		// A string starts at i: find its end.
		end := rawjson.StringEnd(raw, i)
		if end < 0 {
			return out
		}
		isKey := end-i+1 == len(key) && string(raw[i:end+1]) == key
		j := rawjson.SkipSpace(raw, end+1)
		if !isKey || j >= len(raw) || raw[j] != ':' {
			i = end + 1
			continue
		}
		j = rawjson.SkipSpace(raw, j+1)
		if j < len(raw) && raw[j] == '"' {
			vend := rawjson.StringEnd(raw, j)
			if vend < 0 {
				return out
			}
			var s string
			if len(out) < MaxFactReferences && json.Unmarshal(raw[j:vend+1], &s) == nil {
				out = appendRef(out, s)
			}
			i = vend + 1
			continue
		}
		i = j
	}
	return out
}

// fastFacts is factsJSON with the shapes valid R4 resources have, decoded
// in one pass; a resource that does not fit it (a stored resource always
// does) is read by the lenient factsJSON.
type fastFacts struct {
	Meta struct {
		Security []fastCoding `json:"security"`
		Profile  []string     `json:"profile"`
	} `json:"meta"`
	Code                      *fastConcept    `json:"code"`
	VaccineCode               *fastConcept    `json:"vaccineCode"`
	MedicationCodeableConcept *fastConcept    `json:"medicationCodeableConcept"`
	Type                      json.RawMessage `json:"type"`     // a CodeableConcept or a list of them
	Category                  json.RawMessage `json:"category"` // likewise

	EffectiveDateTime  string      `json:"effectiveDateTime"`
	EffectiveInstant   string      `json:"effectiveInstant"`
	EffectivePeriod    *fastPeriod `json:"effectivePeriod"`
	OnsetDateTime      string      `json:"onsetDateTime"`
	OnsetPeriod        *fastPeriod `json:"onsetPeriod"`
	PerformedDateTime  string      `json:"performedDateTime"`
	PerformedPeriod    *fastPeriod `json:"performedPeriod"`
	OccurrenceDateTime string      `json:"occurrenceDateTime"`
	OccurrencePeriod   *fastPeriod `json:"occurrencePeriod"`
	AuthoredOn         string      `json:"authoredOn"`
	RecordedDate       string      `json:"recordedDate"`
	Issued             string      `json:"issued"`
	Date               string      `json:"date"`
	Period             *fastPeriod `json:"period"`
	Created            string      `json:"created"`
	Recorded           string      `json:"recorded"`

	Author    json.RawMessage `json:"author"`
	Recorder  *fastRef        `json:"recorder"`
	Asserter  *fastRef        `json:"asserter"`
	Requester *fastRef        `json:"requester"`
	Performer json.RawMessage `json:"performer"`
}

type fastCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type fastConcept struct {
	Coding []fastCoding `json:"coding"`
}

type fastPeriod struct {
	Start string `json:"start"`
}

type fastRef struct {
	Reference string `json:"reference"`
}

// factsFast fills r from raw when raw has the shapes of valid R4, and
// reports whether it did.
func factsFast(r *Resource, raw []byte) bool {
	var f fastFacts
	if json.Unmarshal(raw, &f) != nil {
		return false
	}
	codings := func(cs []fastCoding) {
		for _, c := range cs {
			if c.System != "" && c.Code != "" {
				r.Codes = append(r.Codes, Coding{c.System, c.Code})
			}
		}
	}
	for _, c := range f.Meta.Security {
		if c.System != "" && c.Code != "" {
			r.Security = append(r.Security, Coding{c.System, c.Code})
		}
	}
	r.Profiles = f.Meta.Profile
	for _, cc := range [...]*fastConcept{f.Code, f.VaccineCode, f.MedicationCodeableConcept} {
		if cc != nil {
			codings(cc.Coding)
		}
	}
	for _, el := range [...]json.RawMessage{f.Type, f.Category} {
		r.Codes = appendConcepts(r.Codes, el)
	}
	start := func(p *fastPeriod) string {
		if p == nil {
			return ""
		}
		return p.Start
	}
	for _, d := range [...]string{f.EffectiveDateTime, f.EffectiveInstant, start(f.EffectivePeriod),
		f.OnsetDateTime, start(f.OnsetPeriod), f.PerformedDateTime, start(f.PerformedPeriod),
		f.OccurrenceDateTime, start(f.OccurrencePeriod), f.AuthoredOn, f.RecordedDate,
		f.Issued, f.Date, start(f.Period), f.Created, f.Recorded} {
		if d == "" {
			continue
		}
		if lo, _, ok := parseDateTime(d); ok {
			r.Date = lo
			break
		}
	}
	r.Authors = appendAuthors(r.Authors, f.Author)
	for _, ref := range [...]*fastRef{f.Recorder, f.Asserter, f.Requester} {
		if ref != nil && ref.Reference != "" {
			r.Authors = appendRef(r.Authors, ref.Reference)
		}
	}
	r.Authors = appendAuthors(r.Authors, f.Performer)
	if refs := scanReferences(raw, nil); len(refs) > 0 {
		slices.Sort(refs)
		r.References = slices.Compact(refs)
	}
	return true
}
