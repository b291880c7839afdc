package searchparam

import (
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests in this file run extraction over real resources: the Synthea
// patient bundles and the FHIR R4 specification examples kept beside the
// repository (read-only, see their SOURCE.md), and check what it finds
// against facts computed from the raw JSON by other means. They skip when
// the data is absent.

// sharedData is the data directory beside the repository: this package
// is internal/fhir/searchparam, three levels below the repository root.
var sharedData = filepath.Join("..", "..", "..", "..", "shared", "data")

func dataDir(tb testing.TB, parts ...string) string {
	tb.Helper()
	dir := filepath.Join(append([]string{sharedData}, parts...)...)
	if _, err := os.Stat(dir); err != nil {
		tb.Skipf("test data not available: %v", err)
	}
	return dir
}

func decodeFile(tb testing.TB, file string) map[string]any {
	tb.Helper()
	f, err := os.Open(file)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	d := json.NewDecoder(f)
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	return m
}

// bundleResources returns the resources of a Bundle's entries.
func bundleResources(b map[string]any) []map[string]any {
	var out []map[string]any
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		if r, ok := em["resource"].(map[string]any); ok {
			out = append(out, r)
		}
	}
	return out
}

// resolveURNs does what a transaction does to the references between its
// entries (FHIR R4 Bundle, "Resolving references in Bundles"):
// every "urn:uuid:…" reference to an entry's fullUrl becomes Type/id.
func resolveURNs(b map[string]any) {
	local := map[string]string{}
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		full, _ := em["fullUrl"].(string)
		r, _ := em["resource"].(map[string]any)
		typ, _ := r["resourceType"].(string)
		id, _ := r["id"].(string)
		if strings.HasPrefix(full, "urn:uuid:") && typ != "" && id != "" {
			local[full] = typ + "/" + id
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["reference"].(string); ok {
				if to, ok := local[s]; ok {
					v["reference"] = to
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(b)
}

func syntheaFiles(tb testing.TB) []string {
	tb.Helper()
	dir := dataDir(tb, "synthea")
	var files []string
	for _, pattern := range []string{"*/*.json", "*/support/*.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		tb.Skip("no Synthea bundles")
	}
	sort.Strings(files)
	return files
}

func syntheaBundle(tb testing.TB, name string) map[string]any {
	tb.Helper()
	b := decodeFile(tb, filepath.Join(dataDir(tb, "synthea"), name))
	resolveURNs(b)
	return b
}

func firstOfType(tb testing.TB, bundle map[string]any, typ string) map[string]any {
	tb.Helper()
	for _, r := range bundleResources(bundle) {
		if r["resourceType"] == typ {
			return r
		}
	}
	tb.Fatalf("no %s in the bundle", typ)
	return nil
}

// checkInvariants checks what holds for the entries of any resource:
// every entry belongs to a supported parameter of the type and has its
// type, dates are non-empty ranges, numbers contain their value, no
// parameter repeats an entry, and contained references are not indexed.
func checkInvariants(t *testing.T, reg *Registry, where, typ string, entries []Entry) {
	t.Helper()
	params := map[string]*Param{}
	for _, p := range reg.Params(typ) {
		params[p.Code] = p
	}
	for i := range entries {
		e := &entries[i]
		p := params[e.Param]
		if p == nil || p.Type != e.Type {
			t.Errorf("%s: entry %+v is not of a supported %s parameter", where, *e, typ)
			continue
		}
		checkEntry(t, where, e)
		for c := range e.Components {
			checkEntry(t, where, &e.Components[c])
		}
		if p.Type == Composite && len(e.Components) != len(p.Components) {
			t.Errorf("%s: %s has %d components, want %d", where, e.Param, len(e.Components), len(p.Components))
		}
		for j := range i {
			if equalEntries(e, &entries[j]) {
				t.Errorf("%s: duplicate entry %+v", where, *e)
			}
		}
	}
}

func checkEntry(t *testing.T, where string, e *Entry) {
	t.Helper()
	switch e.Type {
	case Date:
		if !(e.Lo < e.Hi) {
			t.Errorf("%s: %s: empty date range [%d, %d)", where, e.Param, e.Lo, e.Hi)
		}
	case Number, Quantity:
		if !(e.NumLo <= e.Num && e.Num < e.NumHi) && !(e.NumLo <= e.Num && e.Num <= e.NumHi) {
			t.Errorf("%s: %s: %v not in [%v, %v)", where, e.Param, e.Num, e.NumLo, e.NumHi)
		}
	case Reference:
		if strings.HasPrefix(e.URL, "#") {
			t.Errorf("%s: %s: contained reference indexed: %+v", where, e.Param, *e)
		}
	}
}

// tokens returns "system|code" of the entries of param that have either.
func tokens(entries []Entry, param string) []string {
	var out []string
	for _, e := range of(entries, param) {
		if e.System != "" || e.Code != "" {
			out = append(out, e.System+"|"+e.Code)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// codings returns "system|code" of every coding of a CodeableConcept.
func codings(cc any) []string {
	m, _ := cc.(map[string]any)
	list, _ := m["coding"].([]any)
	var out []string
	for _, c := range list {
		cm, _ := c.(map[string]any)
		s, _ := cm["system"].(string)
		code, _ := cm["code"].(string)
		out = append(out, s+"|"+code)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// rfc3339Micros parses a dateTime with seconds and zone independently of
// DateRange.
func rfc3339Micros(t *testing.T, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return tm.UnixMicro()
}

func refsTo(entries []Entry, param string) []string {
	var out []string
	for _, e := range of(entries, param) {
		out = append(out, e.RefType+"/"+e.RefID)
	}
	return out
}

// TestSynthea extracts every resource of every Synthea bundle (references
// between entries resolved as a transaction would) and checks concrete
// facts against the raw JSON.
func TestSynthea(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 80 MB of bundles")
	}
	reg := registry(t)
	stats := map[string]int{}
	for _, file := range syntheaFiles(t) {
		b := decodeFile(t, file)
		resolveURNs(b)
		name := filepath.Base(file)
		var patientID string
		for _, r := range bundleResources(b) {
			if r["resourceType"] == "Patient" {
				patientID, _ = r["id"].(string)
			}
		}
		if !strings.Contains(file, "support") && patientID == "" {
			t.Errorf("%s: no Patient", name)
		}
		for _, res := range bundleResources(b) {
			typ, _ := res["resourceType"].(string)
			id, _ := res["id"].(string)
			where := fmt.Sprintf("%s %s/%s", name, typ, id)
			entries := reg.Extract(typ, res)
			stats["resources"]++
			stats["entries"] += len(entries)
			checkInvariants(t, reg, where, typ, entries)
			checkResourceParams(t, where, res, entries)
			checkSyntheaResource(t, reg, where, typ, res, entries, patientID, stats)
		}
	}
	t.Logf("%d resources, %d entries; %v", stats["resources"], stats["entries"], stats)
	if stats["Observation"] < 8000 || stats["Patient"] < 98 || stats["in compartment"] < 20000 {
		t.Errorf("checked fewer resources than the corpus holds: %v", stats)
	}
}

// checkResourceParams checks the parameters every resource has.
func checkResourceParams(t *testing.T, where string, res map[string]any, entries []Entry) {
	t.Helper()
	id, _ := res["id"].(string)
	if got := tokens(entries, "_id"); id != "" && !slices.Equal(got, []string{"|" + id}) {
		t.Errorf("%s: _id %v", where, got)
	}
	meta, _ := res["meta"].(map[string]any)
	var tags []string
	list, _ := meta["tag"].([]any)
	for _, tag := range list {
		tm, _ := tag.(map[string]any)
		s, _ := tm["system"].(string)
		c, _ := tm["code"].(string)
		tags = append(tags, s+"|"+c)
	}
	sort.Strings(tags)
	if got := tokens(entries, "_tag"); !slices.Equal(got, slices.Compact(tags)) {
		t.Errorf("%s: _tag %v, want %v", where, got, tags)
	}
	var profiles []string
	plist, _ := meta["profile"].([]any)
	for _, p := range plist {
		s, _ := p.(string)
		profiles = append(profiles, s)
	}
	var got []string
	for _, e := range of(entries, "_profile") {
		got = append(got, e.Exact)
	}
	sort.Strings(got)
	sort.Strings(profiles)
	if profiles = slices.Compact(profiles); !slices.Equal(got, profiles) {
		t.Errorf("%s: _profile %v, want %v", where, got, profiles)
	}
}

func checkSyntheaResource(t *testing.T, reg *Registry, where, typ string, res map[string]any, entries []Entry, patientID string, stats map[string]int) {
	t.Helper()
	stats[typ]++
	patientRef := "Patient/" + patientID

	// Compartment: a resource whose subject or patient is the bundle's
	// Patient is in that Patient's compartment and no other.
	if len(reg.PatientCompartmentParams(typ)) > 0 {
		comp := reg.PatientCompartment(typ, entries)
		direct := false
		for _, key := range []string{"subject", "patient"} {
			if m, ok := res[key].(map[string]any); ok && m["reference"] == patientRef {
				direct = true
			}
		}
		switch {
		case direct && !slices.Equal(comp, []string{patientID}):
			t.Errorf("%s: compartment %v, want [%s]", where, comp, patientID)
		case len(comp) > 1 || (len(comp) == 1 && comp[0] != patientID):
			t.Errorf("%s: compartment %v, want at most [%s]", where, comp, patientID)
		}
		if len(comp) > 0 {
			stats["in compartment"]++
		}
	}

	switch typ {
	case "Observation":
		if got, want := tokens(entries, "code"), codings(res["code"]); !slices.Equal(got, want) {
			t.Errorf("%s: code %v, want %v", where, got, want)
		}
		if got := refsTo(entries, "subject"); !slices.Equal(got, []string{patientRef}) {
			t.Errorf("%s: subject %v, want %s", where, got, patientRef)
		}
		if got := refsTo(entries, "patient"); !slices.Equal(got, []string{patientRef}) {
			t.Errorf("%s: patient %v, want %s", where, got, patientRef)
		}
		if s, ok := res["effectiveDateTime"].(string); ok {
			at := rfc3339Micros(t, s)
			dates := of(entries, "date")
			if len(dates) != 1 || !(dates[0].Lo <= at && at < dates[0].Hi) || dates[0].Hi-dates[0].Lo != 1e6 {
				t.Errorf("%s: date %+v does not cover the second %s", where, dates, s)
			}
		}
		if q, ok := res["valueQuantity"].(map[string]any); ok {
			stats["valueQuantity"]++
			want, _ := strconv.ParseFloat(string(q["value"].(json.Number)), 64)
			system, _ := q["system"].(string)
			code, _ := q["code"].(string)
			vq := of(entries, "value-quantity")
			if len(vq) != 1 || vq[0].Num != want || vq[0].System != system || vq[0].Code != code {
				t.Errorf("%s: value-quantity %+v, want %v %v|%v", where, vq, want, q["system"], q["code"])
			}
		}
		// One component-code-value-quantity entry per coding of each
		// component that has a valueQuantity, paired with that value.
		wantPairs := 0
		comps, _ := res["component"].([]any)
		for _, c := range comps {
			cm, _ := c.(map[string]any)
			if _, ok := cm["valueQuantity"]; ok {
				wantPairs += len(codings(cm["code"]))
				stats["components"]++
			}
		}
		if got := len(of(entries, "component-code-value-quantity")); got != wantPairs {
			t.Errorf("%s: %d component-code-value-quantity entries, want %d", where, got, wantPairs)
		}
	case "Patient":
		names, _ := res["name"].([]any)
		var family []string
		for _, n := range of(entries, "family") {
			family = append(family, n.Exact)
		}
		for _, n := range names {
			nm, _ := n.(map[string]any)
			f, _ := nm["family"].(string)
			if !slices.Contains(family, f) {
				t.Errorf("%s: family %v lacks %q", where, family, f)
			}
			wantText := strings.ToLower(f)
			if isASCII(f) && !slices.ContainsFunc(of(entries, "name"), func(e Entry) bool { return e.Text == wantText }) {
				t.Errorf("%s: name has no entry %q", where, wantText)
			}
		}
		if bd, ok := res["birthDate"].(string); ok {
			day, err := time.Parse(time.DateOnly, bd)
			if err != nil {
				t.Fatal(err)
			}
			got := of(entries, "birthdate")
			if len(got) != 1 || got[0].Lo != day.UnixMicro() || got[0].Hi != day.AddDate(0, 0, 1).UnixMicro() {
				t.Errorf("%s: birthdate %+v for %s", where, got, bd)
			}
		}
		if g, _ := res["gender"].(string); !slices.Equal(tokens(entries, "gender"), []string{"|" + g}) {
			t.Errorf("%s: gender %v, want %s", where, tokens(entries, "gender"), g)
		}
		_, dead := res["deceasedDateTime"]
		if got := tokens(entries, "deceased"); !slices.Equal(got, []string{"|" + strconv.FormatBool(dead)}) {
			t.Errorf("%s: deceased %v, deceasedDateTime present: %v", where, got, dead)
		}
	case "Encounter":
		p, _ := res["period"].(map[string]any)
		start, _ := p["start"].(string)
		end, _ := p["end"].(string)
		got := of(entries, "date")
		if len(got) != 1 || got[0].Lo != rfc3339Micros(t, start) || got[0].Hi != rfc3339Micros(t, end)+1e6 {
			t.Errorf("%s: date %+v for period %s–%s", where, got, start, end)
		}
		if got := refsTo(entries, "patient"); !slices.Equal(got, []string{patientRef}) {
			t.Errorf("%s: patient %v", where, got)
		}
		// Conditional references (fhir-data-pipes, NIH-NEI) stay as written.
		parts, _ := res["participant"].([]any)
		for _, pt := range parts {
			pm, _ := pt.(map[string]any)
			ind, _ := pm["individual"].(map[string]any)
			if r, _ := ind["reference"].(string); strings.Contains(r, "?") {
				stats["conditional"]++
				if !slices.ContainsFunc(of(entries, "participant"), func(e Entry) bool { return e.URL == r && e.RefID == "" }) {
					t.Errorf("%s: participant lacks conditional reference %s", where, r)
				}
			}
		}
	case "PractitionerRole":
		// The support bundles link PractitionerRole by identifier only.
		pr, _ := res["practitioner"].(map[string]any)
		ident, _ := pr["identifier"].(map[string]any)
		got := of(entries, "practitioner")
		if len(got) != 1 || got[0].RefID != "" || got[0].System != ident["system"] || got[0].Code != ident["value"] {
			t.Errorf("%s: practitioner %+v for identifier %v", where, got, ident)
		}
	case "Immunization", "Condition", "Procedure", "MedicationRequest", "DiagnosticReport", "CarePlan", "AllergyIntolerance", "ImagingStudy", "DocumentReference", "Claim", "ExplanationOfBenefit":
		if got := refsTo(entries, "patient"); !slices.Equal(got, []string{patientRef}) {
			t.Errorf("%s: patient %v, want %s", where, got, patientRef)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestSyntheaUnresolved: before a transaction resolves them, references
// between entries are urn:uuid URLs, which name no type: they are kept as
// URLs, match no resolve() is Patient, and put nothing in a compartment.
func TestSyntheaUnresolved(t *testing.T) {
	reg := registry(t)
	b := decodeFile(t, syntheaFiles(t)[0])
	obs := firstOfType(t, b, "Observation")
	subject := obs["subject"].(map[string]any)["reference"].(string)
	entries := reg.Extract("Observation", obs)
	if got := of(entries, "subject"); len(got) != 1 || got[0].URL != subject || got[0].RefType != "" {
		t.Errorf("subject %+v, want URL %s", got, subject)
	}
	if got := of(entries, "patient"); len(got) != 0 {
		t.Errorf("patient %+v, want none", got)
	}
	if got := reg.PatientCompartment("Observation", entries); len(got) != 0 {
		t.Errorf("compartment %v, want none", got)
	}
}

// Independent readings of literal references, for the examples test.
var (
	relativeRef = regexp.MustCompile(`^([A-Z][A-Za-z0-9]*)/([A-Za-z0-9.-]{1,64})(/_history/[A-Za-z0-9.-]{1,64})?$`)
	absoluteRef = regexp.MustCompile(`^(https?://[^/?#]+(?:/[^?#]*)?/([A-Z][A-Za-z0-9]*)/([A-Za-z0-9.-]{1,64}))(/_history/[A-Za-z0-9.-]{1,64})?$`)
)

func expectReference(code string, v any) (Entry, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return Entry{}, false
	}
	e := Entry{Param: code, Type: Reference}
	if s, _ := m["reference"].(string); s != "" && !strings.HasPrefix(s, "#") {
		if g := relativeRef.FindStringSubmatch(s); g != nil {
			e.RefType, e.RefID = g[1], g[2]
		} else if g := absoluteRef.FindStringSubmatch(s); g != nil {
			e.RefType, e.RefID, e.URL = g[2], g[3], g[1]
		} else {
			e.URL = s
		}
	}
	if id, ok := m["identifier"].(map[string]any); ok {
		e.System, _ = id["system"].(string)
		e.Code, _ = id["value"].(string)
	}
	return e, e.RefID != "" || e.URL != "" || e.System != "" || e.Code != ""
}

// expectDate reads a date, dateTime or instant with time.Parse, the
// range's start at least.
func expectDate(s string) (int64, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly, "2006-01", "2006"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm.UnixMicro(), true
		}
	}
	return 0, false
}

func values(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}

// specExamples yields each file of the FHIR R4 examples (skipping the
// test when they are absent) with its resources: the file's own, and those
// of the Bundles among them, Bundles of Bundles too.
func specExamples(t *testing.T) iter.Seq2[string, []map[string]any] {
	dir := dataDir(t, "fhir-r4", "examples")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Skipf("no examples: %v", err)
	}
	return func(yield func(string, []map[string]any) bool) {
		for _, file := range files {
			if strings.HasSuffix(file, "-package.json") {
				continue
			}
			all := []map[string]any{decodeFile(t, file)}
			for i := 0; i < len(all); i++ {
				if all[i]["resourceType"] == "Bundle" {
					all = append(all, bundleResources(all[i])...)
				}
			}
			if !yield(file, all) {
				return
			}
		}
	}
}

// TestSpecExamples extracts every resource of the FHIR R4 examples (and
// of the Bundles among them) and, for every parameter whose expression is
// a plain top-level element, compares the entries with the element's
// values read directly from the JSON.
func TestSpecExamples(t *testing.T) {
	reg := registry(t)
	model := typeModelR4(t)
	plain := regexp.MustCompile(`^([A-Za-z]+)\.([a-zA-Z]+)$`)
	checks := map[Type]int{}
	resources := 0
	for file, all := range specExamples(t) {
		for _, res := range all {
			typ, _ := res["resourceType"].(string)
			where := fmt.Sprintf("%s %s/%v", filepath.Base(file), typ, res["id"])
			entries := reg.Extract(typ, res)
			resources++
			checkInvariants(t, reg, where, typ, entries)
			checkResourceParams(t, where, res, entries)
			for _, p := range reg.Params(typ) {
				g := plain.FindStringSubmatch(p.Expression)
				if g == nil || g[1] != typ {
					continue
				}
				el := model.lookup(typ).elements[g[2]]
				if el == nil || el.choice {
					continue
				}
				checkPlain(t, where, p, el.types[0], values(res[g[2]]), of(entries, p.Code), checks)
			}
		}
	}
	t.Logf("%d resources; plain-element checks by type: %v", resources, checks)
	if resources < 900 || checks[Reference] < 500 || checks[Token] < 1000 || checks[Date] < 200 || checks[String] < 200 {
		t.Errorf("fewer checks than expected: %d resources, %v", resources, checks)
	}
}

// checkPlain compares the entries of p with the values of its element, of
// type et, for the value types whose indexing can be stated simply.
func checkPlain(t *testing.T, where string, p *Param, et *fhirType, vals []any, got []Entry, checks map[Type]int) {
	t.Helper()
	var want []Entry
	switch {
	case p.Type == Reference && et.name == "Reference":
		for _, v := range vals {
			if e, ok := expectReference(p.Code, v); ok && !slices.ContainsFunc(want, func(w Entry) bool { return equalEntries(&w, &e) }) {
				want = append(want, e)
			}
		}
	case p.Type == Token && et.name == "Identifier":
		for _, v := range vals {
			m, _ := v.(map[string]any)
			e := Entry{Param: p.Code, Type: Token}
			e.System, _ = m["system"].(string)
			e.Code, _ = m["value"].(string)
			if ty, ok := m["type"].(map[string]any); ok {
				s, _ := ty["text"].(string)
				e.Text = NormalizeString(s)
			}
			if (e.System != "" || e.Code != "" || e.Text != "") && !slices.ContainsFunc(want, func(w Entry) bool { return equalEntries(&w, &e) }) {
				want = append(want, e)
			}
		}
	case p.Type == Token && (et.name == "code" || et.name == "boolean"):
		for _, v := range vals {
			e := Entry{Param: p.Code, Type: Token, Code: fmt.Sprint(v)}
			if !slices.ContainsFunc(want, func(w Entry) bool { return w.Code == e.Code }) {
				want = append(want, e)
			}
		}
	case p.Type == String && (et.name == "string" || et.name == "markdown"):
		for _, v := range vals {
			s, _ := v.(string)
			if !slices.ContainsFunc(want, func(w Entry) bool { return w.Exact == s }) {
				want = append(want, Entry{Param: p.Code, Type: String, Exact: s, Text: NormalizeString(s)})
			}
		}
	case p.Type == Date && (et.name == "dateTime" || et.name == "date" || et.name == "instant"):
		if len(vals) != len(got) {
			t.Errorf("%s: %s: %d entries for %d values", where, p.Code, len(got), len(vals))
			return
		}
		for i, v := range vals {
			s, _ := v.(string)
			lo, ok := expectDate(s)
			if !ok || got[i].Lo != lo {
				t.Errorf("%s: %s: %q gave [%d, %d), want it to start at %d", where, p.Code, s, got[i].Lo, got[i].Hi, lo)
			}
		}
		checks[p.Type] += len(vals)
		return
	default:
		return
	}
	checks[p.Type] += len(vals)
	if len(want) == 0 {
		want = nil
	}
	if !equalEntryLists(got, want) {
		t.Errorf("%s: %s:\n got %+v\nwant %+v", where, p.Code, got, want)
	}
}

func equalEntryLists(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equalEntries(&a[i], &b[i]) {
			return false
		}
	}
	return true
}

// TestShapeKeepsEveryEntry: for every resource of the FHIR R4 examples
// (and of the Bundles among them), the resource cut down to its type's
// Shape gives the same entries as the whole resource.
func TestShapeKeepsEveryEntry(t *testing.T) {
	reg := registry(t)
	resources, cut := 0, 0
	for file, all := range specExamples(t) {
		for _, res := range all {
			typ, _ := res["resourceType"].(string)
			s := reg.Shape(typ)
			pruned := s.Cut(res).(map[string]any)
			want, got := reg.Extract(typ, res), reg.Extract(typ, pruned)
			if !slices.EqualFunc(want, got, func(a, b Entry) bool { return equalEntries(&a, &b) }) {
				t.Errorf("%s %s/%v: cut to its shape, %d entries, want %d:\n got %+v\nwant %+v", filepath.Base(file), typ, res["id"], len(got), len(want), got, want)
			}
			resources++
			if !reflect.DeepEqual(pruned, res) {
				cut++
			}
		}
	}
	t.Logf("%d resources, %d of them cut", resources, cut)
	if resources < 900 || cut < 400 {
		t.Errorf("%d resources, %d cut: fewer than expected", resources, cut)
	}
}

// TestExtractAppend: ExtractAppend into one buffer shared by every
// resource of the spec examples gives, for each, what Extract gives, and
// leaves the entries before it as they were.
func TestExtractAppend(t *testing.T) {
	reg := registry(t)
	var buf []Entry
	type span struct {
		start, end int
		want       []Entry
	}
	var spans []span
	for _, rs := range specExamples(t) {
		for _, r := range rs {
			typ, _ := r["resourceType"].(string)
			want := reg.Extract(typ, r)
			start := len(buf)
			buf = reg.ExtractAppend(buf, typ, r)
			spans = append(spans, span{start, len(buf), want})
		}
	}
	if len(spans) < 100 || len(buf) == 0 {
		t.Fatalf("%d resources, %d entries: the examples were not read", len(spans), len(buf))
	}
	for i, s := range spans {
		if got := buf[s.start:s.end]; !reflect.DeepEqual(got, s.want) && (len(got) > 0 || len(s.want) > 0) {
			t.Fatalf("resource %d: ExtractAppend gave %d entries, Extract %d, or different ones", i, len(got), len(s.want))
		}
	}
}
