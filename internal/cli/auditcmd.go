package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/audit/export"
	"github.com/wardenfhir/warden/internal/audit/journal"
	"github.com/wardenfhir/warden/internal/audit/verify"
	"github.com/wardenfhir/warden/internal/config"
)

// errFindings is a verification that ran and found faults (exit status 1).
var errFindings = errors.New("verification found faults")

func auditCommand() *command {
	var (
		configFile, stateDir, policyFile, eventFile, vkeyFile string
		interval                                              time.Duration
		once                                                  bool
		ex                                                    exportFlags
	)
	return &command{
		name:    "audit",
		summary: "verify the audit trail, prove an event, monitor a log",
		usage:   "verify|prove|monitor|export [flags] [EVENT_ID|URL]",
		help: `Checks the audit trail for auditors. Every subcommand only reads the
server's files and can run while the server does.

  warden audit verify [--state DIR] [--policy FILE]
      checks the whole trail in DATA_DIR: every event's commitment opens
      (edited), every sequenced event's leaf is in the log at its recorded
      index (reordered, inserted), every log leaf belongs to an event
      (deleted), the leaves hash to the signed checkpoint's root, the
      checkpoint is signed by DATA_DIR/audit/log.vkey (and cosigned by the
      witness policy's quorum), and it is consistent with every checkpoint
      accepted before (kept in --state; a smaller one is a rewind, another
      root a fork). Prints counts and one line per finding; exit status 1
      on any finding.
  warden audit prove EVENT_ID [--event FILE]
      prints a c2sp.org/tlog-proof that the event is in the log: its index,
      the inclusion proof and the signed checkpoint; the "extra" line is
      the commitment's nonce. --event writes the canonical event JSON, which
      with the nonce recomputes the logged leaf.
  warden audit monitor URL --vkey FILE [--state DIR] [--interval D]
      follows the log served at URL ({server}/audit/log/): each new
      checkpoint must be signed by the key in FILE and consistent with the
      last one accepted. Logs an error and exits with status 1 on a rewind,
      a fork or a bad signature; --once checks a single time.
  warden audit export [--format jsonl|syslog] [--to tls://HOST:PORT --ca FILE]
      sends the events to a SIEM: as JSON lines on standard output, or as
      RFC 5424 syslog over TLS (RFC 5425) to --to, checked against --ca,
      optionally with a client certificate (--cert, --key). Syslog export
      resumes where it left off (at least once: a session is acknowledged
      only when the receiver closes it cleanly). --follow keeps sending as
      events are made; --strip-query leaves out the requests' query strings,
      whose values may be PHI.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML) of the instance")
			fs.StringVar(&stateDir, "state", "", "`DIR` of checkpoints accepted before (default DATA_DIR/audit/verified, DATA_DIR/audit/monitor for monitor)")
			fs.StringVar(&policyFile, "policy", "", "C2SP witness policy `FILE` the checkpoint must satisfy (default audit.witness_policy)")
			fs.StringVar(&eventFile, "event", "", "prove: write the canonical event JSON to `FILE`")
			fs.StringVar(&vkeyFile, "vkey", "", "monitor: `FILE` holding the log's verifier key")
			fs.DurationVar(&interval, "interval", time.Minute, "monitor: time between checks")
			fs.BoolVar(&once, "once", false, "monitor: check once and exit")
			fs.StringVar(&ex.format, "format", "jsonl", "export: jsonl (standard output) or syslog")
			fs.StringVar(&ex.to, "to", "", "export: the syslog receiver, tls://HOST[:PORT] (default port 6514)")
			fs.StringVar(&ex.ca, "ca", "", "export: CA `FILE` (PEM) the receiver's certificate must chain to")
			fs.StringVar(&ex.cert, "cert", "", "export: client certificate `FILE` (PEM) to present to the receiver")
			fs.StringVar(&ex.key, "key", "", "export: the client certificate's key `FILE` (PEM)")
			fs.Uint64Var(&ex.from, "from", 0, "export: first journal entry (JSON lines; syslog resumes from its cursor)")
			fs.BoolVar(&ex.follow, "follow", false, "export: keep sending new events until interrupted")
			fs.BoolVar(&ex.stripQuery, "strip-query", false, "export: leave out the requests' query strings (possible PHI)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			verb, rest, err := subcommand(fs, args, "verify", "prove", "monitor", "export")
			if err != nil {
				return err
			}
			wantArgs := map[string]int{"verify": 0, "prove": 1, "monitor": 1, "export": 0}[verb]
			if len(rest) != wantArgs {
				return fmt.Errorf("%w: %s takes %d argument(s)", errUsage, verb, wantArgs)
			}
			cfg, err := config.Load(configFile, e.environ)
			if err != nil {
				return err
			}
			switch verb {
			case "verify":
				return auditVerify(e, cfg, stateDir, policyFile)
			case "prove":
				return auditProve(e, cfg, rest[0], eventFile)
			case "export":
				return auditExport(e, cfg, ex)
			case "monitor":
				if vkeyFile == "" {
					return fmt.Errorf("%w: monitor needs --vkey", errUsage)
				}
				if stateDir == "" {
					stateDir = filepath.Join(cfg.DataDir, "audit", "monitor")
				}
				return auditMonitor(e, rest[0], vkeyFile, stateDir, policyFile, interval, once)
			}
			return nil
		},
	}
}

// localTrail is the audit trail of the instance cfg describes, opened for
// reading; close the returned function's store when done.
func localTrail(e *env, cfg config.Config, stateDir, policyFile string) (verify.Trail, func() error, error) {
	if err := cfg.Validate(); err != nil {
		return verify.Trail{}, nil, err
	}
	dir := filepath.Join(cfg.DataDir, "audit")
	vkey, err := os.ReadFile(filepath.Join(dir, "log.vkey"))
	if err != nil {
		return verify.Trail{}, nil, fmt.Errorf("reading the log's verifier key: %w", err)
	}
	if policyFile == "" {
		policyFile = cfg.Audit.WitnessPolicy
	}
	var policy []byte
	if policyFile != "" {
		if policy, err = os.ReadFile(policyFile); err != nil {
			return verify.Trail{}, nil, fmt.Errorf("reading the witness policy: %w", err)
		}
	}
	if stateDir == "" {
		stateDir = filepath.Join(dir, "verified")
	}
	db, err := openStore(e.ctx, cfg)
	if err != nil {
		return verify.Trail{}, nil, fmt.Errorf("opening store: %w", err)
	}
	return verify.Trail{
		JournalDir: filepath.Join(dir, "journal"),
		Log:        verify.DirLog(filepath.Join(dir, "log")),
		VKey:       strings.TrimSpace(string(vkey)),
		Records:    db,
		Policy:     policy,
		StateDir:   stateDir,
	}, db.Close, nil
}

func auditVerify(e *env, cfg config.Config, stateDir, policyFile string) error {
	t, closeStore, err := localTrail(e, cfg, stateDir, policyFile)
	if err != nil {
		return err
	}
	defer closeStore()
	start := time.Now()
	rep, err := verify.Verify(e.ctx, t)
	if err != nil {
		return err
	}
	printReport(e.stdout, rep, time.Since(start))
	if !rep.OK() {
		return fmt.Errorf("%w: %d finding(s)", errFindings, len(rep.Findings))
	}
	return nil
}

func printReport(w io.Writer, rep *verify.Report, took time.Duration) {
	fmt.Fprintf(w, "log %s: checkpoint size %d, compared with %d earlier checkpoint(s)\n", rep.Origin, rep.Size, rep.Compared)
	fmt.Fprintf(w, "journal: %d entries, %d sequenced, %d verified in place, %d pending, %d duplicate leaves\n",
		rep.Entries, rep.Sequenced, rep.InPlace, rep.Pending, rep.Duplicates)
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "FINDING %s\n", f)
	}
	if rep.OK() {
		fmt.Fprintf(w, "OK (%s)\n", took.Round(time.Millisecond))
	}
}

func auditProve(e *env, cfg config.Config, eventID, eventFile string) error {
	t, closeStore, err := localTrail(e, cfg, "", "")
	if err != nil {
		return err
	}
	defer closeStore()
	p, err := verify.Prove(e.ctx, t, eventID)
	if err != nil {
		return err
	}
	text, err := p.MarshalText()
	if err != nil {
		return err
	}
	if eventFile != "" {
		if err := os.WriteFile(eventFile, p.Event, 0o600); err != nil {
			return err
		}
	}
	_, err = e.stdout.Write(text)
	return err
}

func auditMonitor(e *env, url, vkeyFile, stateDir, policyFile string, interval time.Duration, once bool) error {
	vkey, err := os.ReadFile(vkeyFile)
	if err != nil {
		return fmt.Errorf("reading the verifier key: %w", err)
	}
	var policy []byte
	if policyFile != "" {
		if policy, err = os.ReadFile(policyFile); err != nil {
			return fmt.Errorf("reading the witness policy: %w", err)
		}
	}
	lr, err := verify.HTTPLog(url, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil)).With("log", url)
	m := &verify.Monitor{Log: lr, VKey: strings.TrimSpace(string(vkey)), StateDir: stateDir, Policy: policy,
		Alarm: func(f verify.Finding) { log.Error("audit log alarm", "finding", f.String()) }}
	if once {
		f, err := m.Check(e.ctx)
		if err != nil {
			return err
		}
		if f != nil {
			return fmt.Errorf("%w: %s", verify.ErrAlarm, f)
		}
		fmt.Fprintln(e.stdout, "OK")
		return nil
	}
	err = m.Run(e.ctx, interval, func(err error) { log.Warn("audit log unreadable", "err", err) })
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type exportFlags struct {
	format, to, ca, cert, key string
	from                      uint64
	follow, stripQuery        bool
}

// auditExport sends the trail to a SIEM (package audit/export), reading
// the journal read-only beside a running server.
func auditExport(e *env, cfg config.Config, f exportFlags) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	db, err := openStore(e.ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	defer db.Close()
	err = export.Export(e.ctx, export.Options{
		Journal:    journal.NewFollower(filepath.Join(cfg.DataDir, "audit", "journal")),
		Format:     f.format,
		From:       f.from,
		Follow:     f.follow,
		StripQuery: f.stripQuery,
		Out:        e.stdout,
		To:         f.to,
		CAFile:     f.ca,
		CertFile:   f.cert,
		KeyFile:    f.key,
		Cursors:    db,
		Log:        slog.New(slog.NewJSONHandler(e.stderr, nil)),
	})
	if f.follow && errors.Is(err, context.Canceled) {
		return nil // interrupted: the cursor says where to resume
	}
	if errors.Is(err, export.ErrOptions) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return err
}
