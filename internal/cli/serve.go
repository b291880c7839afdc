package cli

import (
	"flag"
	"fmt"

	"github.com/wardenfhir/warden/internal/config"
)

func serveCommand() *command {
	var configFile string
	return &command{
		name:    "serve",
		summary: "serve the FHIR API",
		usage:   "[--config FILE]",
		help: `Serves the FHIR R4 API over HTTPS with the settings of the configuration
file (YAML) and WARDEN_* environment overrides. Without a certificate in
the configuration, a development CA and server certificate are created in
DATA_DIR/pki. Stops gracefully on SIGINT/SIGTERM, draining in-flight
requests. Run 'warden config check --describe' for every setting.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML); defaults plus environment when empty")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unexpected arguments", errUsage)
			}
			cfg, err := config.Load(configFile, e.environ)
			if err != nil {
				return err
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
			log.Info("serving", "fhir_base", in.api.Base(), "admin", fmt.Sprint(in.server.AdminAddr()))
			return in.Serve(e.ctx)
		},
	}
}

func configCommand() *command {
	var configFile string
	var describe bool
	return &command{
		name:    "config",
		summary: "check a configuration file",
		usage:   "check [--config FILE] [--describe]",
		help: `'warden config check' loads the configuration file and the WARDEN_*
environment overrides exactly as 'warden serve' would, validates them, and
reports the first problem (unknown keys and unknown WARDEN_ variables are
errors). With --describe it lists every setting, its environment variable
and its default.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML)")
			fs.BoolVar(&describe, "describe", false, "list every setting with its environment variable and default")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) == 0 || args[0] != "check" {
				return fmt.Errorf("%w: expected 'check'", errUsage)
			}
			// flags may also follow the subcommand: config check --config F
			if err := fs.Parse(args[1:]); err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("%w: unexpected arguments", errUsage)
			}
			if describe {
				for _, s := range config.Describe() {
					fmt.Fprintf(e.stdout, "%-32s %-36s default %-22q %s\n", s.Path, s.Env, s.Default, s.Doc)
				}
				return nil
			}
			cfg, err := config.Load(configFile, e.environ)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "configuration OK")
			return nil
		},
	}
}
