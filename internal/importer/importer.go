// Package importer loads FHIR data files into Warden: transaction and
// batch Bundles (.json) and NDJSON files of resources (.ndjson). Files in
// a directory named "support" load first (Synthea's shared Organization,
// Location and Practitioner bundles, which patient bundles reference
// conditionally). Loading is idempotent: a Bundle's urn:uuid entries keep
// their uuid as id, so a second run changes nothing. A bad file is
// reported and skipped; the others still load.
package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenfhir/warden/internal/fhirapi"
)

// Processor runs Bundles; *fhirapi.API is one.
type Processor interface {
	ProcessBundle(ctx context.Context, body []byte, opts fhirapi.BundleOptions) ([]byte, error)
}

// Options configure an import.
type Options struct {
	Workers  int       // files processed at once; GOMAXPROCS when 0
	Progress io.Writer // progress line target (a terminal), or nil
}

// FileError is the failure of one file.
type FileError struct {
	Path string
	Err  error
}

// Report summarises an import.
type Report struct {
	Files     int // files loaded without error
	Resources int // entries processed in the files that loaded
	Failed    []FileError
	Elapsed   time.Duration
}

// Files expands paths (files or directories, walked recursively) into the
// .json and .ndjson files to load, support files first, each group in
// lexical order.
func Files(paths []string) ([]string, error) {
	var support, rest []string
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			ext := strings.ToLower(filepath.Ext(path))
			if ext != ".json" && ext != ".ndjson" {
				return nil
			}
			if filepath.Base(filepath.Dir(path)) == "support" {
				support = append(support, path)
			} else {
				rest = append(rest, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(support)
	sort.Strings(rest)
	return append(support, rest...), nil
}

// Import loads every file of paths through p.
func Import(ctx context.Context, p Processor, paths []string, opts Options) (*Report, error) {
	files, err := Files(paths)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rep := &Report{}
	// Support files first, one at a time, so patient files can resolve
	// their conditional references.
	var nSupport int
	for nSupport < len(files) && filepath.Base(filepath.Dir(files[nSupport])) == "support" {
		nSupport++
	}
	var done, resources atomic.Int64
	var mu sync.Mutex
	progress := func() {
		if opts.Progress == nil {
			return
		}
		n := done.Load()
		width := 30
		filled := int(n) * width / max(len(files), 1)
		rate := float64(resources.Load()) / max(time.Since(start).Seconds(), 1e-3)
		mu.Lock()
		fmt.Fprintf(opts.Progress, "\r[%s%s] %d/%d files, %d resources, %.0f/s ", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), n, len(files), resources.Load(), rate)
		mu.Unlock()
	}
	one := func(path string) {
		n, err := File(ctx, p, path)
		mu.Lock()
		if err != nil {
			rep.Failed = append(rep.Failed, FileError{Path: path, Err: err})
		} else {
			rep.Files++
			rep.Resources += n
		}
		mu.Unlock()
		resources.Add(int64(n))
		done.Add(1)
		progress()
	}
	for _, f := range files[:nSupport] {
		if ctx.Err() != nil {
			break
		}
		one(f)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				one(f)
			}
		}()
	}
	for _, f := range files[nSupport:] {
		if ctx.Err() != nil {
			break
		}
		work <- f
	}
	close(work)
	wg.Wait()
	if opts.Progress != nil {
		fmt.Fprintln(opts.Progress)
	}
	sort.Slice(rep.Failed, func(i, j int) bool { return rep.Failed[i].Path < rep.Failed[j].Path })
	rep.Elapsed = time.Since(start)
	return rep, ctx.Err()
}

// File loads one file and returns the number of entries processed.
func File(ctx context.Context, p Processor, path string) (int, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if strings.EqualFold(filepath.Ext(path), ".ndjson") {
		return NDJSON(ctx, p, bytes.NewReader(body))
	}
	return Bundle(ctx, p, body)
}

// Bundle loads one batch or transaction Bundle. For a batch, the first
// failed entry fails the file (after the other entries ran).
func Bundle(ctx context.Context, p Processor, body []byte) (int, error) {
	resp, err := p.ProcessBundle(fhirapi.Trusted(ctx), body, fhirapi.BundleOptions{StableIDs: true})
	if err != nil {
		return 0, err
	}
	return checkResponse(resp)
}

// checkResponse counts the entries of a response Bundle and reports the
// first failed one.
func checkResponse(resp []byte) (int, error) {
	var rb struct {
		Entry []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(resp, &rb); err != nil {
		return 0, err
	}
	for i, e := range rb.Entry {
		if !strings.HasPrefix(e.Response.Status, "2") {
			return len(rb.Entry), fmt.Errorf("entry %d: %s %s", i, e.Response.Status, diagnostics(e.Response.Outcome))
		}
	}
	return len(rb.Entry), nil
}

func diagnostics(oo json.RawMessage) string {
	var o struct {
		Issue []struct {
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(oo, &o) != nil || len(o.Issue) == 0 {
		return ""
	}
	return o.Issue[0].Diagnostics + " " + strings.Join(o.Issue[0].Expression, ",")
}

// ndjsonBatch is how many NDJSON lines go into one batch.
const ndjsonBatch = 500

// NDJSON loads a stream of resources, one JSON object per line, in
// batches: resources with an id are PUT (idempotent), others POSTed.
func NDJSON(ctx context.Context, p Processor, r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var entries []json.RawMessage
	total, line, sent := 0, 0, 0
	var firstErr error
	flush := func() {
		if len(entries) == 0 {
			return
		}
		b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "batch", "entry": entries})
		entries = entries[:0]
		n, err := Bundle(ctx, p, b)
		total += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(text, &head); err != nil || head.ResourceType == "" {
			if firstErr == nil {
				firstErr = fmt.Errorf("line %d: not a JSON resource", line)
			}
			continue
		}
		req := map[string]string{"method": "POST", "url": head.ResourceType}
		if head.ID != "" {
			req = map[string]string{"method": "PUT", "url": head.ResourceType + "/" + head.ID}
		}
		e, _ := json.Marshal(map[string]any{"resource": json.RawMessage(append([]byte(nil), text...)), "request": req})
		entries = append(entries, e)
		sent++
		if len(entries) == ndjsonBatch {
			flush()
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return total, err
	}
	if firstErr != nil {
		return total, firstErr
	}
	if sent == 0 { // nothing but blank lines
		return 0, errors.New("empty file")
	}
	return total, nil
}
