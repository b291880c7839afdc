package importer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/importer"
)

// fakeProcessor records the Bundles it is given and answers each with a
// response Bundle: one "201 Created" entry per request entry, unless the
// Bundle's id is in fail (an error) or statuses (those entry statuses).
// Like the real one, it refuses a body that is not JSON.
type fakeProcessor struct {
	fail     map[string]error
	statuses map[string][]string

	mu    sync.Mutex
	calls []call
}

type call struct {
	id      string // the Bundle's id, naming the test file it came from
	entries []json.RawMessage
	body    []byte
	opts    fhirapi.BundleOptions
}

var errRefused = errors.New("fake: bundle refused")

func (p *fakeProcessor) ProcessBundle(ctx context.Context, body []byte, opts fhirapi.BundleOptions) ([]byte, error) {
	var b struct {
		ID    string            `json:"id"`
		Entry []json.RawMessage `json:"entry"`
	}
	err := json.Unmarshal(body, &b)
	p.mu.Lock()
	p.calls = append(p.calls, call{id: b.ID, entries: b.Entry, body: slices.Clone(body), opts: opts})
	p.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("fake: parsing bundle: %w", err)
	}
	if err := p.fail[b.ID]; err != nil {
		return nil, err
	}
	statuses := p.statuses[b.ID]
	if statuses == nil {
		for range b.Entry {
			statuses = append(statuses, "201 Created")
		}
	}
	type response struct {
		Status  string          `json:"status"`
		Outcome json.RawMessage `json:"outcome,omitempty"`
	}
	var entries []map[string]response
	for _, s := range statuses {
		r := response{Status: s}
		if !strings.HasPrefix(s, "2") {
			r.Outcome = json.RawMessage(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"fake refusal","expression":["Patient.birthDate"]}]}`)
		}
		entries = append(entries, map[string]response{"response": r})
	}
	return json.Marshal(map[string]any{"resourceType": "Bundle", "type": "batch-response", "entry": entries})
}

func (p *fakeProcessor) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls {
		out = append(out, c.id)
	}
	return out
}

// bundle is a transaction Bundle with id and n Patient entries.
func bundle(id string, n int) string {
	var entries []string
	for i := range n {
		entries = append(entries, fmt.Sprintf(`{"fullUrl":"urn:uuid:%s-%d","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`, id, i))
	}
	return `{"resourceType":"Bundle","id":"` + id + `","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
}

func write(t *testing.T, dir, rel, content string) string {
	t.Helper()
	name := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, rel := range []string{
		"patients/zed.json",
		"patients/amy.ndjson",
		"patients/README.md",
		"patients/notes.txt",
		"patients/backup.json.bak",
		"patients/Upper.JSON",
		"support/practitioners.json",
		"support/organizations.ndjson",
		"support/LICENSE",
		"b.json",
		"more/support/locations.json",
		"supporting/not-support.json",
	} {
		write(t, dir, rel, "{}")
	}
	if err := os.MkdirAll(filepath.Join(dir, "dir.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }

	got, err := importer.Files([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// support files first, in lexical order
		p("more/support/locations.json"),
		p("support/organizations.ndjson"),
		p("support/practitioners.json"),
		// then the rest, in lexical order
		p("b.json"),
		p("patients/Upper.JSON"),
		p("patients/amy.ndjson"),
		p("patients/zed.json"),
		p("supporting/not-support.json"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("Files =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	t.Run("several paths, files and directories", func(t *testing.T) {
		got, err := importer.Files([]string{p("patients/zed.json"), p("support"), p("b.json"), p("patients/notes.txt")})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{p("support/organizations.ndjson"), p("support/practitioners.json"), p("b.json"), p("patients/zed.json")}
		if !slices.Equal(got, want) {
			t.Errorf("Files = %v, want %v", got, want)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		_, err := importer.Files([]string{dir, filepath.Join(dir, "nope")})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("nothing to load", func(t *testing.T) {
		got, err := importer.Files([]string{p("patients/README.md")})
		if err != nil || len(got) != 0 {
			t.Errorf("Files = %v, %v; want none", got, err)
		}
	})
}

func TestImportSupportFirst(t *testing.T) {
	dir := t.TempDir()
	// Written in an order unlike the load order.
	write(t, dir, "p/c.json", bundle("c", 2))
	write(t, dir, "support/s2.json", bundle("s2", 1))
	write(t, dir, "a.json", bundle("a", 3))
	write(t, dir, "support/s1.json", bundle("s1", 1))
	write(t, dir, "p/b.json", bundle("b", 1))
	write(t, dir, "support/s3.json", bundle("s3", 2))

	fp := &fakeProcessor{}
	rep, err := importer.Import(t.Context(), fp, []string{dir}, importer.Options{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ids := fp.ids()
	if len(ids) != 6 {
		t.Fatalf("processed %v, want 6 bundles", ids)
	}
	if got := ids[:3]; !slices.Equal(got, []string{"s1", "s2", "s3"}) {
		t.Errorf("first bundles = %v, want the support files in order s1 s2 s3", got)
	}
	rest := slices.Sorted(slices.Values(ids[3:]))
	if !slices.Equal(rest, []string{"a", "b", "c"}) {
		t.Errorf("other bundles = %v, want a b c", ids[3:])
	}
	for _, c := range fp.calls {
		if !c.opts.StableIDs {
			t.Errorf("bundle %s processed without StableIDs", c.id)
		}
	}
	if rep.Files != 6 || rep.Resources != 10 || len(rep.Failed) != 0 {
		t.Errorf("report = %d files, %d resources, failed %v; want 6, 10, none", rep.Files, rep.Resources, rep.Failed)
	}
}

func TestImportFailures(t *testing.T) {
	dir := t.TempDir()
	good := []string{
		write(t, dir, "support/org.json", bundle("org", 2)),
		write(t, dir, "good1.json", bundle("good1", 3)),
		write(t, dir, "good2.ndjson", `{"resourceType":"Patient","id":"p1"}`+"\n"),
	}
	refused := write(t, dir, "refused.json", bundle("refused", 1))
	supportRefused := write(t, dir, "support/zz-refused.json", bundle("support-refused", 1))
	entryFailed := write(t, dir, "entry.json", bundle("entry", 3))
	notJSON := write(t, dir, "broken.json", `{"resourceType":"Bundle",`)
	empty := write(t, dir, "empty.ndjson", "")

	fp := &fakeProcessor{
		fail: map[string]error{"refused": errRefused, "support-refused": errRefused},
		statuses: map[string][]string{
			"entry": {"201 Created", "400 Bad Request", "201 Created"},
		},
	}
	rep, err := importer.Import(t.Context(), fp, []string{dir}, importer.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}

	failed := map[string]error{}
	for _, f := range rep.Failed {
		failed[f.Path] = f.Err
	}
	if len(failed) != 5 {
		t.Errorf("failed = %v, want 5 files", rep.Failed)
	}
	if !slices.IsSortedFunc(rep.Failed, func(a, b importer.FileError) int { return strings.Compare(a.Path, b.Path) }) {
		t.Error("Report.Failed is not sorted by path")
	}
	for _, path := range []string{refused, supportRefused} {
		if !errors.Is(failed[path], errRefused) {
			t.Errorf("%s: error = %v, want the processor's error", filepath.Base(path), failed[path])
		}
	}
	if err := failed[entryFailed]; err == nil || !strings.Contains(err.Error(), "entry 1") || !strings.Contains(err.Error(), "400") {
		t.Errorf("entry.json: error = %v, want it to name entry 1 and its status", err)
	} else if !strings.Contains(err.Error(), "fake refusal") {
		t.Errorf("entry.json: error = %v, want the outcome's diagnostics", err)
	}
	var syntax *json.SyntaxError
	if err := failed[notJSON]; !errors.As(err, &syntax) {
		t.Errorf("broken.json: error = %v, want a JSON syntax error", err)
	}
	if failed[empty] == nil {
		t.Error("empty.ndjson did not fail")
	}
	for _, path := range good {
		if err, bad := failed[path]; bad {
			t.Errorf("%s failed: %v", filepath.Base(path), err)
		}
	}
	if rep.Files != len(good) || rep.Resources != 2+3+1 {
		t.Errorf("report = %d files, %d resources; want %d files, 6 resources", rep.Files, rep.Resources, len(good))
	}
	// A failing support file does not stop the others.
	if ids := fp.ids(); !slices.Contains(ids, "good1") || !slices.Contains(ids, "org") {
		t.Errorf("processed %v; want every file tried", ids)
	}
}

func TestBundleEntryStatus(t *testing.T) {
	// The ways a failed entry could slip through first.
	for _, tc := range []struct {
		name     string
		statuses []string
		index    int
	}{
		{"client error", []string{"400 Bad Request"}, 0},
		{"not found after successes", []string{"200 OK", "201 Created", "404 Not Found"}, 2},
		{"server error", []string{"201 Created", "500 Internal Server Error", "201 Created"}, 1},
		{"precondition failed", []string{"412 Precondition Failed"}, 0},
		{"redirect", []string{"200", "304 Not Modified"}, 1},
		{"no status", []string{"201 Created", ""}, 1},
		{"bare words", []string{"Created"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProcessor{statuses: map[string][]string{"x": tc.statuses}}
			n, err := importer.Bundle(t.Context(), fp, []byte(bundle("x", len(tc.statuses))))
			want := fmt.Sprintf("entry %d:", tc.index)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %v, want one starting %q", err, want)
			}
			if n != len(tc.statuses) {
				t.Errorf("n = %d, want %d", n, len(tc.statuses))
			}
		})
	}
	t.Run("all 2xx", func(t *testing.T) {
		fp := &fakeProcessor{statuses: map[string][]string{"x": {"200 OK", "201 Created", "204"}}}
		n, err := importer.Bundle(t.Context(), fp, []byte(bundle("x", 3)))
		if err != nil || n != 3 {
			t.Errorf("Bundle = %d, %v; want 3, nil", n, err)
		}
		if len(fp.calls) != 1 || !fp.calls[0].opts.StableIDs {
			t.Errorf("calls = %+v, want one with StableIDs", fp.calls)
		}
	})
}

// ndjsonEntry is one entry of a batch Bundle made from NDJSON.
type ndjsonEntry struct {
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
}

func decodeEntries(t *testing.T, c call) []ndjsonEntry {
	t.Helper()
	var b struct {
		ResourceType string        `json:"resourceType"`
		Type         string        `json:"type"`
		Entry        []ndjsonEntry `json:"entry"`
	}
	if err := json.Unmarshal(c.body, &b); err != nil {
		t.Fatalf("NDJSON bundle is not JSON: %v", err)
	}
	if b.ResourceType != "Bundle" || b.Type != "batch" {
		t.Errorf("NDJSON bundle is a %s of type %q, want a batch Bundle", b.ResourceType, b.Type)
	}
	return b.Entry
}

func TestNDJSON(t *testing.T) {
	lines := []string{
		`{"resourceType":"Patient","id":"p1","name":[{"family":"Smith"}]}`,
		``,
		`   `,
		`{"resourceType":"Observation","status":"final"}`,
		`  {"resourceType":"Patient","id":"p2"}  `,
	}
	fp := &fakeProcessor{}
	n, err := importer.NDJSON(t.Context(), fp, strings.NewReader(strings.Join(lines, "\n")))
	if err != nil || n != 3 {
		t.Fatalf("NDJSON = %d, %v; want 3, nil", n, err)
	}
	if len(fp.calls) != 1 {
		t.Fatalf("%d calls, want 1", len(fp.calls))
	}
	entries := decodeEntries(t, fp.calls[0])
	want := []struct{ method, url, resource string }{
		{"PUT", "Patient/p1", lines[0]},
		{"POST", "Observation", lines[3]},
		{"PUT", "Patient/p2", strings.TrimSpace(lines[4])},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	for i, w := range want {
		e := entries[i]
		if e.Request.Method != w.method || e.Request.URL != w.url {
			t.Errorf("entry %d request = %s %s, want %s %s", i, e.Request.Method, e.Request.URL, w.method, w.url)
		}
		var got bytes.Buffer
		if err := json.Compact(&got, e.Resource); err != nil || got.String() != w.resource {
			t.Errorf("entry %d resource = %s, want %s", i, e.Resource, w.resource)
		}
	}
	if !fp.calls[0].opts.StableIDs {
		t.Error("NDJSON batch processed without StableIDs")
	}
}

func TestNDJSONBatches(t *testing.T) {
	var sb strings.Builder
	for i := range 1200 {
		if i%2 == 0 {
			fmt.Fprintf(&sb, `{"resourceType":"Patient","id":"p%d"}`+"\n", i)
		} else {
			fmt.Fprintf(&sb, `{"resourceType":"Observation","status":"final","valueInteger":%d}`+"\n", i)
		}
	}
	dir := t.TempDir()
	path := write(t, dir, "big.ndjson", sb.String())

	fp := &fakeProcessor{}
	rep, err := importer.Import(t.Context(), fp, []string{path}, importer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fp.calls) != 3 {
		t.Fatalf("%d calls, want 3", len(fp.calls))
	}
	seen := 0
	for i, size := range []int{500, 500, 200} {
		entries := decodeEntries(t, fp.calls[i])
		if len(entries) != size {
			t.Errorf("batch %d has %d entries, want %d", i, len(entries), size)
		}
		for _, e := range entries {
			line := seen
			seen++
			wantMethod, wantURL := "POST", "Observation"
			if line%2 == 0 {
				wantMethod, wantURL = "PUT", fmt.Sprintf("Patient/p%d", line)
			}
			if e.Request.Method != wantMethod || e.Request.URL != wantURL {
				t.Fatalf("line %d: request %s %s, want %s %s", line+1, e.Request.Method, e.Request.URL, wantMethod, wantURL)
			}
		}
	}
	if rep.Files != 1 || rep.Resources != 1200 || len(rep.Failed) != 0 {
		t.Errorf("report = %d files, %d resources, failed %v; want 1, 1200, none", rep.Files, rep.Resources, rep.Failed)
	}
}

func TestNDJSONBadLines(t *testing.T) {
	good := `{"resourceType":"Patient","id":"ok"}`
	// The ways a line that is not a resource could pass first.
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"not JSON", `this is not json`},
		{"truncated object", `{"resourceType":"Patient",`},
		{"no resourceType", `{"id":"x"}`},
		{"empty resourceType", `{"resourceType":"","id":"x"}`},
		{"array", `[{"resourceType":"Patient"}]`},
		{"null", `null`},
		{"string", `"Patient"`},
		{"resourceType not a string", `{"resourceType":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fakeProcessor{}
			input := strings.Join([]string{good, tc.bad, good, good}, "\n")
			n, err := importer.NDJSON(t.Context(), fp, strings.NewReader(input))
			if err == nil || !strings.Contains(err.Error(), "line 2") {
				t.Errorf("error = %v, want one naming line 2", err)
			}
			if n != 3 {
				t.Errorf("n = %d, want the 3 good lines still sent", n)
			}
			if len(fp.calls) != 1 || len(decodeEntries(t, fp.calls[0])) != 3 {
				t.Errorf("calls = %d, want one batch of the 3 good lines", len(fp.calls))
			}
		})
	}

	t.Run("in a file", func(t *testing.T) {
		dir := t.TempDir()
		bad := write(t, dir, "bad.ndjson", good+"\n{oops\n"+good+"\n")
		write(t, dir, "ok.ndjson", good+"\n")
		fp := &fakeProcessor{}
		rep, err := importer.Import(t.Context(), fp, []string{dir}, importer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Failed) != 1 || rep.Failed[0].Path != bad {
			t.Fatalf("failed = %v, want only %s", rep.Failed, bad)
		}
		if !strings.Contains(rep.Failed[0].Err.Error(), "line 2") {
			t.Errorf("error = %v, want it to name line 2", rep.Failed[0].Err)
		}
		entries := 0
		for _, c := range fp.calls {
			entries += len(c.entries)
		}
		if entries != 3 || rep.Files != 1 || rep.Resources != 1 {
			t.Errorf("%d entries sent, report %d files %d resources; want 3 sent (2 of bad.ndjson, 1 of ok.ndjson), 1 file, 1 resource", entries, rep.Files, rep.Resources)
		}
	})
}

func TestNDJSONFailedBatch(t *testing.T) {
	fp := &fakeProcessor{fail: map[string]error{"": errRefused}}
	n, err := importer.NDJSON(t.Context(), fp, strings.NewReader(`{"resourceType":"Patient"}`+"\n"))
	if !errors.Is(err, errRefused) || n != 0 {
		t.Errorf("NDJSON = %d, %v; want 0 and the processor's error", n, err)
	}
}

func TestEmptyFiles(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"empty.ndjson", ""},
		{"blank-lines.ndjson", "\n\n   \n"},
		{"empty.json", ""},
		{"blank.json", "  \n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, t.TempDir(), tc.name, tc.content)
			fp := &fakeProcessor{}
			n, err := importer.File(t.Context(), fp, path)
			if err == nil {
				t.Errorf("File(%s) = %d, nil; want an error", tc.name, n)
			}
			if n != 0 {
				t.Errorf("File(%s) = %d resources, want 0", tc.name, n)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := importer.File(t.Context(), &fakeProcessor{}, filepath.Join(t.TempDir(), "gone.json"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestImportProgress(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "support/s.json", bundle("s", 1))
	write(t, dir, "a.json", bundle("a", 2))
	write(t, dir, "b.ndjson", `{"resourceType":"Patient"}`+"\n")

	var progress syncBuffer
	if _, err := importer.Import(t.Context(), &fakeProcessor{}, []string{dir}, importer.Options{Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	out := progress.String()
	for _, want := range []string{"\r[", "1/3 files", "3/3 files, 4 resources", "[" + strings.Repeat("#", 30) + "]"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("progress output does not end the line: %q", out)
	}

	t.Run("none without a writer", func(t *testing.T) {
		// Nothing to observe but the absence of a panic on a nil writer.
		rep, err := importer.Import(t.Context(), &fakeProcessor{}, []string{dir}, importer.Options{})
		if err != nil || rep.Files != 3 {
			t.Errorf("Import = %+v, %v", rep, err)
		}
	})
}

func TestImportCancelled(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "support/s.json", bundle("s", 1))
	write(t, dir, "a.json", bundle("a", 1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fp := &fakeProcessor{}
	rep, err := importer.Import(ctx, fp, []string{dir}, importer.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if len(fp.calls) != 0 || rep == nil || rep.Files != 0 {
		t.Errorf("cancelled import processed %v (report %+v)", fp.ids(), rep)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
