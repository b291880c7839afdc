package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/store"
)

func labelsCommand() *command {
	var configFile, store, dataDir string
	return &command{
		name:    "labels",
		summary: "explain a resource's security labels, or label stored data again",
		usage:   "explain Type/id|FILE|- | relabel [Type...]",
		help: `Warden labels every resource it stores with HL7 v3 security labels in
meta.security: a sensitivity code per category its codes fall in (HIV,
PSY, ETH, SEX, SDV, GDIS; value sets in internal/labels/valuesets) and a
confidentiality code (N, R or V); Encounters, Claims, reports and care
plans also inherit the labels of what they reference.

  warden labels explain Type/id    why the stored resource has its labels
  warden labels explain FILE|-     the labels a resource in a JSON file (or
                                   standard input) would get, and why
  warden labels relabel [Type...]  label every stored resource (of the given
                                   types) again, after the value sets changed;
                                   writes a new version of each one whose
                                   labels change. Labels are only ever added:
                                   one a value set no longer implies is kept
                                   (remove it by updating the resource).

Reads the store of the configuration (DATA_DIR or store.url); run relabel
while the server is stopped or beside it (it writes through the same store).`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML)")
			fs.StringVar(&store, "store", "", "store `URL`; overrides the configuration")
			fs.StringVar(&dataDir, "data", "", "data `DIR`; overrides the configuration")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			// Flags may also come after the subcommand and its arguments.
			var positional []string
			for len(args) > 0 {
				if err := fs.Parse(args); err != nil {
					return fmt.Errorf("%w: %v", errUsage, err)
				}
				if fs.NArg() == 0 {
					break
				}
				positional = append(positional, fs.Arg(0))
				args = fs.Args()[1:]
			}
			args = positional
			if len(args) == 0 {
				return fmt.Errorf("%w: expected explain or relabel", errUsage)
			}
			l, err := labels.New()
			if err != nil {
				return err
			}
			switch args[0] {
			case "explain":
				if len(args) != 2 {
					return fmt.Errorf("%w: explain takes one Type/id, FILE or -", errUsage)
				}
				return explainLabels(e, l, labelsStore{configFile, store, dataDir}, args[1])
			case "relabel":
				return relabel(e, l, labelsStore{configFile, store, dataDir}, args[1:])
			}
			return fmt.Errorf("%w: unknown subcommand %q (want explain or relabel)", errUsage, args[0])
		},
	}
}

// labelsStore is where the labels command finds the store.
type labelsStore struct{ configFile, storeURL, dataDir string }

// labelsAPI opens the configured store with the FHIR API over it (as
// Warden itself, labelling writes).
func labelsAPI(e *env, l *labels.Labeller, where labelsStore) (*fhirapi.API, func(), error) {
	cfg, err := config.Load(where.configFile, e.environ)
	if err != nil {
		return nil, nil, err
	}
	if where.storeURL != "" {
		cfg.Store.URL = where.storeURL
	}
	if where.dataDir != "" {
		cfg.DataDir = where.dataDir
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	st, err := openStore(e.ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("opening store: %w", err)
	}
	key, err := secretFile(cfg.DataDir, "cursor.key", 32)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	// Relabelled resources are sealed like any write; explain reads
	// sealed ones opened (Warden's own, trusted work).
	opts := fhirapi.Options{BaseURL: "https://labels.invalid/fhir", CursorKey: key, Labeller: l,
		MaxBodyBytes: 256 << 20, MaxJSONDepth: cfg.FHIR.MaxJSONDepth}
	if err := withSealing(cfg, st, &opts); err != nil {
		st.Close()
		return nil, nil, err
	}
	api, err := fhirapi.New(st, opts)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return api, func() { st.Close() }, nil
}

func explainLabels(e *env, l *labels.Labeller, where labelsStore, what string) error {
	var raw []byte
	var err error
	typ, id, isRef := strings.Cut(what, "/")
	switch {
	case what == "-":
		raw, err = io.ReadAll(io.LimitReader(e.stdin, 64<<20))
	case isRef && typ != "" && id != "" && !strings.ContainsAny(what, `.\`) && !fileExists(what):
		api, closeStore, err := labelsAPI(e, l, where)
		if err != nil {
			return err
		}
		defer closeStore()
		r, err := api.ReadTrusted(e.ctx, typ, id)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		raw = r.JSON
		var doc struct {
			Meta struct {
				Security []labels.Coding `json:"security"`
			} `json:"meta"`
		}
		json.Unmarshal(raw, &doc)
		fmt.Fprintf(e.stdout, "stored labels: %s\n", codesOf(doc.Meta.Security))
		prop, err := l.Propagate(raw, storedLabels(e.ctx, api))
		if err == nil {
			for _, w := range prop.Why {
				fmt.Fprintf(e.stdout, "  %s\n", w)
			}
		}
	default:
		raw, err = os.ReadFile(what)
	}
	if err != nil {
		return err
	}
	res, err := l.Label(raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "labels from its codes: %s\n", codesOf(res.Security))
	for _, w := range res.Why {
		fmt.Fprintf(e.stdout, "  %s\n", w)
	}
	if len(res.Why) == 0 {
		fmt.Fprintln(e.stdout, "  no code of a sensitive category (confidentiality N)")
	}
	return nil
}

// storedLabels looks up the labels of referenced resources in the store.
func storedLabels(ctx context.Context, api *fhirapi.API) func(string) []labels.Coding {
	return func(ref string) []labels.Coding {
		typ, id, ok := strings.Cut(ref, "/")
		if !ok {
			return nil
		}
		r, err := api.ReadTrusted(ctx, typ, id)
		if err != nil {
			return nil
		}
		var doc struct {
			Meta struct {
				Security []labels.Coding `json:"security"`
			} `json:"meta"`
		}
		json.Unmarshal(r.JSON, &doc)
		return doc.Meta.Security
	}
}

func codesOf(cs []labels.Coding) string {
	if len(cs) == 0 {
		return "(none)"
	}
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Code
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// relabel writes every stored resource (of types) again through the API,
// which labels it; unchanged content is not written (the API keeps the
// version when nothing changed).
func relabel(e *env, l *labels.Labeller, where labelsStore, types []string) error {
	api, closeStore, err := labelsAPI(e, l, where)
	if err != nil {
		return err
	}
	defer closeStore()
	if len(types) == 0 {
		types = api.ResourceTypes()
	}
	// Referenced resources first, so that what inherits sees their new
	// labels: everything but the inheriting types, then those.
	var first, last []string
	for _, t := range types {
		if l.Propagates(t) {
			last = append(last, t)
		} else {
			first = append(first, t)
		}
	}
	seen, changed := 0, 0
	for _, typ := range append(first, last...) {
		err := api.EachTrusted(e.ctx, typ, func(r store.Resource) error {
			seen++
			out, err := api.PutTrusted(e.ctx, typ, r.ID, withoutMetaVersion(r.JSON), r.Version)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", typ, r.ID, err)
			}
			if out.Version != r.Version {
				changed++
			}
			return nil
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "relabelled: %d resources read, %d with new labels (a new version each)\n", seen, changed)
	return nil
}

// withoutMetaVersion drops meta.versionId and meta.lastUpdated, which the
// store sets, keeping the rest of meta (labels, tags, profiles).
func withoutMetaVersion(raw []byte) []byte {
	var doc map[string]any
	if json.Unmarshal(raw, &doc) != nil {
		return raw
	}
	if meta, ok := doc["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return raw
	}
	return out
}
