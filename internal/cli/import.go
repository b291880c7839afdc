package cli

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/importer"
	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

func importCommand() *command {
	var configFile, storeURL, dataDir string
	var workers int
	return &command{
		name:    "import",
		summary: "load FHIR Bundles and NDJSON files",
		usage:   "[--config FILE] [--store URL] [--data DIR] PATH...",
		help: `Loads transaction and batch Bundles (*.json) and NDJSON resource files
(*.ndjson) from files or directories (walked recursively) into the store.
Files in directories named "support" load first (for Synthea's shared
practitioners and organisations). Re-running an import changes nothing.
A bad file is reported with its error and skipped; the others still load;
the exit status is 1 if any file failed.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML)")
			fs.StringVar(&storeURL, "store", "", "store `URL` (sqlite:PATH or postgres://…); overrides the configuration")
			fs.StringVar(&dataDir, "data", "", "data `DIR`; overrides the configuration")
			fs.IntVar(&workers, "workers", 0, "files loaded in parallel (default: number of CPUs)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("%w: no files or directories given", errUsage)
			}
			cfg, err := config.Load(configFile, e.environ)
			if err != nil {
				return err
			}
			if storeURL != "" {
				cfg.Store.URL = storeURL
			}
			if dataDir != "" {
				cfg.DataDir = dataDir
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			// SQLite: commit without a flush each, and flush the files
			// once at the end, before success is reported (SyncFiles).
			sqlitePath := sqliteFile(cfg)
			if sqlitePath != "" {
				cfg.Store.SQLiteSynchronous = "normal"
			}
			// An import is a batch job: the garbage collector runs less
			// often (GOGC 400 rather than 100: ~5 % faster on the
			// Synthea set, peak RSS 250 → 345 MB), within a soft limit of
			// 1 GiB; GOGC and GOMEMLIMIT in the environment win.
			if os.Getenv("GOGC") == "" {
				defer debug.SetGCPercent(debug.SetGCPercent(400))
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 30))
			}
			start := time.Now()
			st, err := openStore(e.ctx, cfg)
			if err != nil {
				return fmt.Errorf("opening store: %w", err)
			}
			closed := false
			defer func() {
				if !closed {
					st.Close()
				}
			}()
			key, err := secretFile(cfg.DataDir, "cursor.key", 32)
			if err != nil {
				return err
			}
			labeller, err := labels.New()
			if err != nil {
				return err
			}
			apiOpts := fhirapi.Options{BaseURL: "https://import.invalid/fhir", CursorKey: key, MaxBodyBytes: 256 << 20,
				MaxBundleEntries: 100000, MaxJSONDepth: cfg.FHIR.MaxJSONDepth, Labeller: labeller,
				// Synthea's support files are batches of conditional
				// creates: 64 at a time, not the server's 16, commit in
				// groups four times larger. Six alternated pairs of
				// runs of the shared set: 4,993–5,193 resources/s
				// against 4,476–4,946 (docs/PERFORMANCE.md). The patients'
				// transactions hold the writer longer than such a group.
				BatchParallel: 64}
			// Imported sensitive data is sealed like the server's writes.
			if err := withSealing(cfg, st, &apiOpts); err != nil {
				return err
			}
			api, err := fhirapi.New(st, apiOpts)
			if err != nil {
				return err
			}
			opts := importer.Options{Workers: workers}
			if isTerminal(e.stderr) {
				opts.Progress = e.stderr
			}
			rep, err := importer.Import(e.ctx, api, args, opts)
			closed = true
			if cerr := st.Close(); cerr != nil && err == nil {
				err = cerr
			}
			if sqlitePath != "" && err == nil {
				if serr := sqlite.SyncFiles(sqlitePath); serr != nil {
					err = fmt.Errorf("flushing the database to disk: %w", serr)
				}
			}
			if rep != nil {
				rep.Elapsed = time.Since(start) // opening, loading, closing and flushing
				for _, f := range rep.Failed {
					fmt.Fprintf(e.stderr, "FAILED %s: %v\n", f.Path, f.Err)
				}
				fmt.Fprintf(e.stdout, "imported %d files, %d resources in %.1fs (%.0f resources/s); %d files failed\n",
					rep.Files, rep.Resources, rep.Elapsed.Seconds(), float64(rep.Resources)/max(rep.Elapsed.Seconds(), 1e-3), len(rep.Failed))
			}
			if err != nil {
				return err
			}
			if len(rep.Failed) > 0 {
				return fmt.Errorf("%d files failed", len(rep.Failed))
			}
			return nil
		},
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
