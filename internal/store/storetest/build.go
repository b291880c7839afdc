package storetest

import (
	"fmt"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
)

// This file builds index entries, search parameters and query values by
// hand, with the normalisation functions of package searchparam, so the
// suite depends on neither extraction nor query parsing.

// Entries.

func strE(code, v string) searchparam.Entry {
	return searchparam.Entry{Param: code, Type: searchparam.String, Text: searchparam.NormalizeString(v), Exact: v}
}

func tokE(code, system, value string) searchparam.Entry {
	return searchparam.Entry{Param: code, Type: searchparam.Token, System: system, Code: value}
}

func tokTextE(code, system, value, display string) searchparam.Entry {
	e := tokE(code, system, value)
	e.Text = searchparam.NormalizeString(display)
	return e
}

func refE(code, typ, id string) searchparam.Entry {
	return searchparam.Entry{Param: code, Type: searchparam.Reference, RefType: typ, RefID: id}
}

func refAbsE(code, url, typ, id string) searchparam.Entry {
	return searchparam.Entry{Param: code, Type: searchparam.Reference, RefType: typ, RefID: id, URL: url}
}

func refURLE(code, url string) searchparam.Entry {
	return searchparam.Entry{Param: code, Type: searchparam.Reference, URL: url}
}

func refIdentE(code, system, value string) searchparam.Entry {
	return searchparam.Entry{Param: code, Type: searchparam.Reference, System: system, Code: value}
}

func dateE(code, s string) searchparam.Entry {
	lo, hi := dateRange(s)
	return searchparam.Entry{Param: code, Type: searchparam.Date, Lo: lo, Hi: hi}
}

// periodE is a Period from start to end (either "" for open).
func periodE(code, start, end string) searchparam.Entry {
	lo, hi := searchparam.DateMin, searchparam.DateMax
	if start != "" {
		lo, _ = dateRange(start)
	}
	if end != "" {
		_, hi = dateRange(end)
	}
	return searchparam.Entry{Param: code, Type: searchparam.Date, Lo: lo, Hi: hi}
}

func numE(code, s string) searchparam.Entry {
	v, lo, hi := numberRange(s)
	return searchparam.Entry{Param: code, Type: searchparam.Number, Num: v, NumLo: lo, NumHi: hi}
}

func qtyE(code, s, system, unitCode, unitText string) searchparam.Entry {
	v, lo, hi := numberRange(s)
	return searchparam.Entry{Param: code, Type: searchparam.Quantity, Num: v, NumLo: lo, NumHi: hi,
		System: system, Code: unitCode, Text: searchparam.NormalizeString(unitText)}
}

func uriE(code, v string) searchparam.Entry {
	return searchparam.Entry{Param: code, Type: searchparam.URI, Exact: v}
}

func compE(code string, parts ...searchparam.Entry) searchparam.Entry {
	for i := range parts {
		parts[i].Param = ""
	}
	return searchparam.Entry{Param: code, Type: searchparam.Composite, Components: parts}
}

func dateRange(s string) (int64, int64) {
	lo, hi, err := searchparam.DateRange(s)
	if err != nil {
		panic(err)
	}
	return lo, hi
}

func numberRange(s string) (float64, float64, float64) {
	v, lo, hi, err := searchparam.NumberRange(s)
	if err != nil {
		panic(err)
	}
	return v, lo, hi
}

// Parameters.

func param(base, code string, t searchparam.Type, targets ...string) *searchparam.Param {
	return &searchparam.Param{Code: code, Type: t, Base: base, Targets: targets}
}

func compositeParam(base, code string, types ...searchparam.Type) *searchparam.Param {
	p := param(base, code, searchparam.Composite)
	for i, t := range types {
		p.Components = append(p.Components, searchparam.Component{Code: fmt.Sprintf("c%d", i), Type: t})
	}
	return p
}

var (
	pID          = param("Resource", "_id", searchparam.Token)
	pLastUpdated = param("Resource", "_lastUpdated", searchparam.Date)
	pTag         = param("Resource", "_tag", searchparam.Token)
	pProfile     = param("Resource", "_profile", searchparam.URI)

	pName       = param("Patient", "name", searchparam.String)
	pFamily     = param("Patient", "family", searchparam.String)
	pGender     = param("Patient", "gender", searchparam.Token)
	pIdentifier = param("Patient", "identifier", searchparam.Token)
	pBirthdate  = param("Patient", "birthdate", searchparam.Date)
	pActive     = param("Patient", "active", searchparam.Token)
	pGP         = param("Patient", "general-practitioner", searchparam.Reference, "Organization", "Practitioner", "PractitionerRole")
	pLink       = param("Patient", "link", searchparam.Reference, "Patient", "RelatedPerson")

	pPractName = param("Practitioner", "name", searchparam.String)
	pOrgName   = param("Organization", "name", searchparam.String)

	pCode      = param("Observation", "code", searchparam.Token)
	pStatus    = param("Observation", "status", searchparam.Token)
	pSubject   = param("Observation", "subject", searchparam.Reference, "Device", "Group", "Location", "Patient")
	pPatient   = param("Observation", "patient", searchparam.Reference, "Patient")
	pPerformer = param("Observation", "performer", searchparam.Reference, "Practitioner", "Organization", "Patient")
	pFocus     = param("Observation", "focus", searchparam.Reference)
	pDate      = param("Observation", "date", searchparam.Date)
	pValueQty  = param("Observation", "value-quantity", searchparam.Quantity)
	pCodeValue = compositeParam("Observation", "code-value-quantity", searchparam.Token, searchparam.Quantity)
	pCodeConc  = compositeParam("Observation", "code-value-concept", searchparam.Token, searchparam.Token)
	pCodeDate  = compositeParam("Observation", "code-value-date", searchparam.Token, searchparam.Date)
	pCodeStr   = compositeParam("Observation", "code-value-string", searchparam.Token, searchparam.String)

	pProbability = param("RiskAssessment", "probability", searchparam.Number)
	pRASubject   = param("RiskAssessment", "subject", searchparam.Reference, "Group", "Patient")
)

// Query values.

func vStr(s string) search.Value {
	return search.Value{Text: searchparam.NormalizeString(s), Exact: s}
}

func vCode(code string) search.Value { return search.Value{Code: code, AnySystem: true} }

func vSysCode(system, code string) search.Value { return search.Value{System: system, Code: code} }

func vSys(system string) search.Value { return search.Value{System: system, AnyCode: true} }

func vText(s string) search.Value { return search.Value{Text: searchparam.NormalizeString(s)} }

func vRef(typ, id string) search.Value { return search.Value{RefType: typ, RefID: id} }

func vURL(u string) search.Value { return search.Value{URL: u} }

func vMissing(m bool) search.Value { return search.Value{Missing: m} }

func vDate(p search.Prefix, s string) search.Value {
	lo, hi := dateRange(s)
	return search.Value{Prefix: p, Lo: lo, Hi: hi}
}

func vNum(p search.Prefix, s string) search.Value {
	v, lo, hi := numberRange(s)
	return search.Value{Prefix: p, Num: v, NumLo: lo, NumHi: hi}
}

func vQty(p search.Prefix, s, system, code string) search.Value {
	v := vNum(p, s)
	v.System, v.Code = system, code
	if system == "" && code != "" {
		v.Text = searchparam.NormalizeString(code)
	}
	return v
}

func vComp(parts ...search.Value) search.Value { return search.Value{Components: parts} }

// Clauses and queries.

func cl(p *searchparam.Param, values ...search.Value) search.Clause {
	return search.Clause{Param: p, Values: values}
}

func clMod(p *searchparam.Param, mod search.Modifier, values ...search.Value) search.Clause {
	return search.Clause{Param: p, Modifier: mod, Values: values}
}

func chain(p *searchparam.Param, target string, inner search.Clause) search.Clause {
	return search.Clause{Param: p, TargetType: target, Chain: &inner}
}

func has(typ string, ref *searchparam.Param, inner search.Clause) search.Clause {
	return search.Clause{Has: &search.Has{Type: typ, Ref: ref, Clause: inner}}
}

func query(typ string, clauses ...search.Clause) *search.Query {
	return &search.Query{Type: typ, Clauses: clauses, Count: 100}
}

// Resources.

// epoch is the LastUpdated of the first fixture version; later ones
// follow a minute apart.
var epoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// body is the JSON of a resource version.
func body(typ, id string, version int64, extra string) []byte {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}%s}`, typ, id, version, extra)
}

// write builds a Write of a resource version.
func write(typ, id string, version int64, at time.Time, entries []searchparam.Entry, patients ...string) store.Write {
	return store.Write{
		Resource: store.Resource{Type: typ, ID: id, Version: version, LastUpdated: at, JSON: body(typ, id, version, "")},
		Entries:  entries,
		Patients: patients,
	}
}

// deletion builds the Write of a deletion marker.
func deletion(typ, id string, version int64, at time.Time) store.Write {
	return store.Write{Resource: store.Resource{Type: typ, ID: id, Version: version, LastUpdated: at, Deleted: true}}
}

// ids returns "Type/id" of each resource.
func ids(rs []store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Type + "/" + r.ID
	}
	return out
}

// names prefixes bare ids with a type, for expectations.
func names(typ string, list ...string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		if strings.Contains(s, "/") {
			out[i] = s
		} else {
			out[i] = typ + "/" + s
		}
	}
	return out
}
