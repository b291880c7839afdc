package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/demo"
	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/importer"
	"github.com/wardenfhir/warden/internal/store"
)

// demoInfo is DIR/demo.json: a machine-readable description of what the
// demo set up, for scripts and tests.
type demoInfo struct {
	FHIRBase string `json:"fhir_base"`
	// Issuer is the authorization server's issuer (the FHIR base); its
	// SMART configuration is at ISSUER/.well-known/smart-configuration.
	Issuer string `json:"issuer"`
	CAFile string `json:"ca_file,omitempty"`
	Health string `json:"health"`
	// Admin is the admin API (/admin/clients, /admin/launch); it takes
	// the token in AdminTokenFile as a Bearer token.
	Admin          string       `json:"admin,omitempty"`
	AdminTokenFile string       `json:"admin_token_file,omitempty"`
	Patients       []string     `json:"patients"`
	Clients        []demoClient `json:"clients"`
	Users          []demoUser   `json:"users"`
}

func demoCommand() *command {
	var addr, dataDir, storeURL string
	return &command{
		name:    "demo",
		summary: "serve a ready, seeded server for trying Warden",
		usage:   "[--addr HOST:PORT] [--data DIR] [--store URL]",
		help: `Starts Warden on https://127.0.0.1:8443 with 14 synthetic Synthea patients
loaded (on first start). Creates a development CA in DIR/pki and prints how
to trust it. Registers a public and a confidential SMART app and a backend
service (its private key in DIR/clients), and creates sign-ins (password
and TOTP) for a practitioner and three of the patients; DIR/demo.json
describes all of it. Every FHIR request needs an access token from the
SMART authorization server. Everything else is the secure default
configuration. Stop it with Ctrl-C.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "addr", "127.0.0.1:8443", "listen `HOST:PORT`")
			fs.StringVar(&dataDir, "data", "warden-demo", "data `DIR` (created if missing)")
			fs.StringVar(&storeURL, "store", "", "store `URL` (default: SQLite in the data directory)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unexpected arguments", errUsage)
			}
			cfg, err := config.Load("", e.environ)
			if err != nil {
				return err
			}
			cfg.Server.Addr, cfg.DataDir, cfg.Store.URL = addr, dataDir, storeURL
			// Client certificates from the demo's own CA are trusted
			// (its partner client authenticates with one).
			if cfg.Server.TLS.ClientCAFile == "" {
				if err := os.MkdirAll(dataDir, 0o700); err != nil {
					return err
				}
				ca, err := demoCA(dataDir)
				if err != nil {
					return fmt.Errorf("the demo CA: %w", err)
				}
				cfg.Server.TLS.ClientCAFile = filepath.Join(ca.Dir(), "ca.pem")
				cfg.Server.TLS.ClientCRLFiles = []string{filepath.Join(ca.Dir(), "crl.pem")}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(cfg, e.stderr)
			setServeProcs(cfg, log)
			in, err := build(e.ctx, cfg, log)
			if err != nil {
				return err
			}
			defer in.Close()
			ids, err := seedDemo(e, in)
			if err != nil {
				return err
			}
			da, err := seedAuth(e.ctx, in, dataDir, ids)
			if err != nil {
				return err
			}
			info := demoInfo{FHIRBase: in.api.Base(), Issuer: in.api.Base(), Health: "https://" + in.server.Addr().String() + "/healthz",
				Patients: ids, Clients: da.Clients, Users: da.Users}
			if a := in.server.AdminAddr(); a != nil {
				info.Admin = "http://" + a.String() + "/admin/"
				info.AdminTokenFile, _ = filepath.Abs(filepath.Join(dataDir, "keys", "admin.token"))
			}
			if in.caFile != "" {
				info.CAFile, _ = filepath.Abs(in.caFile)
			}
			b, _ := json.MarshalIndent(info, "", "  ")
			// It holds the demo's passwords and secrets: readable by its owner only.
			// Written whole or not at all: scripts wait for the file to
			// appear and read it at once.
			tmp := filepath.Join(dataDir, ".demo.json.tmp")
			if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
				return err
			}
			if err := os.Rename(tmp, filepath.Join(dataDir, "demo.json")); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Warden demo serving FHIR R4 at %s\n", info.FHIRBase)
			if info.CAFile != "" {
				fmt.Fprintf(e.stdout, "Trust the development CA to call it:\n  curl --cacert %s %s/metadata\n", info.CAFile, info.FHIRBase)
			}
			fmt.Fprintf(e.stdout, "SMART on FHIR: %s/.well-known/smart-configuration\n", info.Issuer)
			fmt.Fprintf(e.stdout, "Clients, logins and keys are described in %s. Stop with Ctrl-C.\n", filepath.Join(dataDir, "demo.json"))
			return in.Serve(e.ctx)
		},
	}
}

// seedDemo loads the sample patients into an empty store and returns the
// ids of the Patients present.
func seedDemo(e *env, in *instance) ([]string, error) {
	q := &search.Query{Type: "Patient", Count: 100}
	res, err := in.store.Search(e.ctx, q, store.PageRequest{})
	if err != nil {
		return nil, err
	}
	if len(res.Matches) == 0 {
		bundles, err := demo.Patients()
		if err != nil {
			return nil, err
		}
		for _, b := range bundles {
			if _, err := importer.Bundle(e.ctx, in.api, b.JSON); err != nil {
				return nil, fmt.Errorf("loading sample %s: %w", b.Name, err)
			}
		}
		if res, err = in.store.Search(e.ctx, q, store.PageRequest{}); err != nil {
			return nil, err
		}
	}
	ids := make([]string, 0, len(res.Matches))
	for _, m := range res.Matches {
		ids = append(ids, m.ID)
	}
	return ids, nil
}
