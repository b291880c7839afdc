package fhirapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/importer"
	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
	"github.com/wardenfhir/warden/internal/store/storetest"
)

// sharedSynthea is the shared Synthea data from this package.
const sharedSynthea = "../../../shared/data/synthea"

// sharedSets are the folders the at-rest test imports: all of them (98
// patients), or with -short or under the race detector the two sources
// with support bundles (28 patients: the HIV programme and NIH-NEI).
func sharedSets(t *testing.T) []string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(sharedSynthea, "*"))
	var out []string
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			if (testing.Short() || raceEnabled) && strings.Contains(d, "smart-on-fhir") {
				continue
			}
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Skipf("shared data not found at %s", sharedSynthea)
	}
	return out
}

// secretsOf lists the string values of the sealed resources in the
// source bundles that appear in no unsealed resource (what must not be
// readable at rest), and counts the sealed resources by category.
func secretsOf(t *testing.T, l *labels.Labeller, sealed map[string]bool, dirs []string) ([]string, map[string]int) {
	t.Helper()
	inSealed, inClear := map[string]bool{}, map[string]bool{}
	counts := map[string]int{}
	for _, dir := range dirs {
		files, err := importer.Files([]string{dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Entry []struct {
					FullURL  string          `json:"fullUrl"`
					Resource json.RawMessage `json:"resource"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			for _, e := range doc.Entry {
				// Resource ids are not sealed (they name the row); an
				// identifier equal to one is therefore in clear too.
				inClear[strings.TrimPrefix(e.FullURL, "urn:uuid:")] = true
				res, err := l.Label(e.Resource)
				if err != nil {
					continue
				}
				var cats []string
				for _, c := range res.Security {
					if c.System == labels.SensitivitySystem && sealed[c.Code] {
						cats = append(cats, c.Code)
					}
				}
				var m map[string]any
				if json.Unmarshal(e.Resource, &m) != nil {
					continue
				}
				delete(m, "resourceType")
				delete(m, "id")
				delete(m, "meta")
				into := inClear
				if len(cats) > 0 {
					into = inSealed
					for _, c := range cats {
						counts[c]++
					}
				}
				leafStrings(m, into)
			}
		}
	}
	// The raw data is searched for substrings: a value inside some
	// unsealed value ("therapy" in "physiotherapy") proves nothing.
	clear := make([]string, 0, len(inClear))
	for s := range inClear {
		clear = append(clear, s)
	}
	var out []string
	for s := range inSealed {
		if !slices.ContainsFunc(clear, func(c string) bool { return strings.Contains(c, s) }) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, counts
}

// leafStrings adds the string leaves of v worth looking for: at least 6
// characters, not references (rewritten on import) and not bare dates.
func leafStrings(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "reference" || k == "fullUrl" {
				continue
			}
			leafStrings(c, into)
		}
	case []any:
		for _, c := range x {
			leafStrings(c, into)
		}
	case string:
		if len(x) >= 6 && !strings.HasPrefix(x, "urn:uuid:") && !strings.HasPrefix(x, "http") && !(len(x) >= 10 && x[4] == '-' && x[7] == '-') {
			into[x] = true
		}
	}
}

// TestSealedAtRestShared imports the shared Synthea patients with
// labelling and sealing on, then reads the raw database — the SQLite
// file, the PostgreSQL tables — and finds none of the values of the
// sealed resources that appear nowhere unsealed.
func TestSealedAtRestShared(t *testing.T) {
	dirs := sharedSets(t)
	l, err := labels.New()
	if err != nil {
		t.Fatal(err)
	}
	pol := &sealing.Policy{Categories: map[string]sealing.Category{}}
	sealed := map[string]bool{}
	for _, c := range sealing.DefaultCategories() {
		pol.Categories[c] = sealing.Category{}
		sealed[c] = true
	}
	secrets, counts := secretsOf(t, l, sealed, dirs)
	if counts["HIV"] < 100 || len(secrets) < 50 {
		t.Fatalf("the shared data should hold sealed HIV resources and many values: %v, %d values", counts, len(secrets))
	}
	t.Logf("sealed resources by category %v; %d distinct values to look for", counts, len(secrets))

	importAll := func(t *testing.T, st *sqlstore.Store, dir string) *fhirapi.API {
		api, err := fhirapi.New(st, fhirapi.Options{BaseURL: "https://w.example/fhir", CursorKey: bytes.Repeat([]byte{7}, 32),
			Unauthenticated: true, Labeller: l, Sealing: pol, Keys: testKeys(t, st, dir), MaxBundleEntries: 100000})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := importer.Import(fhirapi.Trusted(context.Background()), api, dirs, importer.Options{Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Failed) > 0 {
			t.Fatalf("import failures: %v", rep.Failed)
		}
		return api
	}
	check := func(t *testing.T, raw []byte, unsealedProbe string) {
		if !bytes.Contains(raw, []byte(unsealedProbe)) {
			t.Fatalf("an unsealed value (%q) is not in the raw data: the scan looks in the wrong place", unsealedProbe)
		}
		var found []string
		for _, s := range secrets {
			if containsValue(raw, s) {
				found = append(found, s)
			}
		}
		if len(found) > 0 {
			i := bytes.Index(raw, []byte(found[0]))
			t.Errorf("%d of %d sealed values are in clear at rest, e.g. %q; the first in %q", len(found), len(secrets), found[:min(5, len(found))],
				raw[max(0, i-300):min(len(raw), i+100)])
		}
	}
	// A value only unsealed resources have: the display of a common
	// vital sign.
	const probe = "Body Height"

	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		st, err := sqlite.Open(context.Background(), filepath.Join(dir, "w.db"), sqlite.Options{Synchronous: "normal"})
		if err != nil {
			t.Fatal(err)
		}
		api := importAll(t, st, dir)
		// Cleared reads still work.
		if r, err := api.SearchTrusted(fhirapi.Trusted(context.Background()), "Observation", map[string][]string{"_security": {"HIV"}, "_count": {"5"}}); err != nil || len(r) == 0 || !bytes.Contains(r[0].JSON, []byte(`"code"`)) {
			t.Fatalf("trusted search of sealed data: %d, %v", len(r), err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		var raw []byte
		files, _ := filepath.Glob(filepath.Join(dir, "w.db*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b...)
		}
		check(t, raw, probe)
	})
	t.Run("postgres", func(t *testing.T) {
		url := storetest.PostgresURL(t)
		st, err := postgres.Open(context.Background(), url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		importAll(t, st, t.TempDir())
		raw := pgRaw(t, url)
		check(t, raw, probe)
	})
}

// containsValue reports whether raw holds s; a value of digits only
// (a code: "749762") counts only where it does not run on into more
// digits or hex (timestamps, binary dumps).
func containsValue(raw []byte, s string) bool {
	digits := strings.Trim(s, "0123456789") == ""
	for off := 0; ; {
		i := bytes.Index(raw[off:], []byte(s))
		if i < 0 {
			return false
		}
		i += off
		if !digits {
			return true
		}
		hexByte := func(j int) bool {
			if j < 0 || j >= len(raw) {
				return false
			}
			c := raw[j]
			return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		}
		if !hexByte(i-1) && !hexByte(i+len(s)) {
			return true
		}
		off = i + 1
	}
}

// pgRaw reads every table of the store's schema as bytes: binary columns
// as they are, every row also as text.
func pgRaw(t *testing.T, url string) []byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var raw bytes.Buffer
	rows, err := conn.Query(ctx, `SELECT json FROM resources WHERE json IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		raw.Write(b)
	}
	rows.Close()
	tables, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		tables.Scan(&n)
		names = append(names, n)
	}
	tables.Close()
	if len(names) < 5 {
		t.Fatalf("only tables %v", names)
	}
	for _, n := range names {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{n}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			raw.WriteString(n + ":" + s + "\n")
		}
		rows.Close()
	}
	return raw.Bytes()
}
