package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/wardenfhir/warden/internal/witness"
)

// witnessFlags are the settings of 'warden witness'.
type witnessFlags struct {
	dir, addr, name, logs, url string
	policyOut                  string
	tlsCert, tlsKey            string
	insecureHTTP, printKey     bool
}

func witnessCommand() *command {
	var f witnessFlags
	return &command{
		name:    "witness",
		summary: "run a transparency-log witness for a partner's audit log",
		usage:   "--logs FILE [--dir DIR] [--addr ADDR] [--name NAME] [--tls-cert FILE --tls-key FILE | --insecure-http] | --print-key",
		help: `Runs a C2SP tlog-witness (c2sp.org/tlog-witness): it cosigns a log's
checkpoint only if the log's key signed it and it is consistent with the
last checkpoint the witness cosigned for that log, so a forked or
rewritten audit log is refused. Partner organisations run it against a
Warden's audit log; the log publishes a checkpoint only once its policy's
witnesses have cosigned it.

On first start (--name required) it creates its Ed25519 key in --dir
(private part mode 0600) and prints the line to add to the log's witness
policy: "witness <name> <vkey> <url>". --print-key prints that line and
exits. --logs lists the logs to follow, one signed-note verifier key
("<origin>+<hash>+<base64>") a line, '#' comments.

Serves POST /add-checkpoint and GET /healthz over HTTPS (TLS 1.2 or
later); --insecure-http serves plain HTTP, on a loopback address only.
Stops gracefully on SIGINT/SIGTERM.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&f.dir, "dir", "./witness-data", "`DIR` for the witness key and state (created mode 0700)")
			fs.StringVar(&f.addr, "addr", "127.0.0.1:7380", "listen `ADDR`ess")
			fs.StringVar(&f.name, "name", "", "the witness's key `NAME`, e.g. witness.partner.example (required on first start)")
			fs.StringVar(&f.logs, "logs", "", "`FILE` listing the logs' verifier keys, one a line")
			fs.StringVar(&f.url, "url", "", "public `URL` of the witness for the policy line (default from --addr)")
			fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate chain `FILE` (PEM)")
			fs.StringVar(&f.tlsKey, "tls-key", "", "TLS private key `FILE` (PEM)")
			fs.BoolVar(&f.insecureHTTP, "insecure-http", false, "serve plain HTTP (loopback addresses only; for tests and local proxies)")
			fs.BoolVar(&f.printKey, "print-key", false, "print the policy line for this witness and exit")
			fs.StringVar(&f.policyOut, "policy-out", "", "once listening, write to `FILE` a complete one-witness policy (its line and a quorum of it) for the log's audit.witness_policy")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unexpected arguments", errUsage)
			}
			return runWitness(e, f)
		},
	}
}

func runWitness(e *env, f witnessFlags) error {
	useTLS := f.tlsCert != "" || f.tlsKey != ""
	if !f.printKey {
		switch {
		case f.logs == "":
			return fmt.Errorf("%w: --logs is required", errUsage)
		case useTLS && (f.tlsCert == "" || f.tlsKey == ""):
			return fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
		case useTLS && f.insecureHTTP:
			return fmt.Errorf("%w: --insecure-http with a TLS certificate", errUsage)
		case !useTLS && !f.insecureHTTP:
			return fmt.Errorf("%w: --tls-cert and --tls-key are required (or --insecure-http on a loopback address)", errUsage)
		case f.insecureHTTP && !isLoopbackAddr(f.addr):
			return fmt.Errorf("%w: --insecure-http refused on %q: plain HTTP only on a loopback address", errUsage, f.addr)
		}
	}
	key, err := witness.LoadOrCreateKey(f.dir, f.name)
	if err != nil {
		return err
	}
	if f.printKey {
		fmt.Fprintln(e.stdout, key.PolicyLine(publicURL(f, f.addr)))
		return nil
	}
	list, err := os.ReadFile(f.logs)
	if err != nil {
		return err
	}
	logs, err := witness.ParseLogList(list)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if useTLS {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	state, err := witness.OpenState(e.ctx, filepath.Join(f.dir, witness.StateFile))
	if err != nil {
		return err
	}
	defer state.Close()
	w, err := witness.New(witness.Options{Signer: key.Signer, Logs: logs, State: state})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           witness.NewHandler(w, log),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	line := key.PolicyLine(publicURL(f, ln.Addr().String()))
	fmt.Fprintln(e.stdout, line)
	if f.policyOut != "" {
		policy := line + "\nquorum " + key.Name() + "\n"
		tmp := f.policyOut + ".tmp"
		if err := os.WriteFile(tmp, []byte(policy), 0o644); err != nil {
			ln.Close()
			return err
		}
		if err := os.Rename(tmp, f.policyOut); err != nil {
			ln.Close()
			return err
		}
	}
	origins := make([]string, len(logs))
	for i, l := range logs {
		origins[i] = l.Name()
	}
	log.Info("witness serving", "addr", ln.Addr().String(), "tls", useTLS, "name", key.Name(), "logs", origins)

	served := make(chan error, 1)
	go func() {
		if useTLS {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		return err
	case <-e.ctx.Done():
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(ctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	log.Info("witness stopped")
	return err
}

// publicURL is --url, or the URL of addr: https unless --insecure-http.
func publicURL(f witnessFlags, addr string) string {
	if f.url != "" {
		return f.url
	}
	scheme := "https"
	if f.insecureHTTP {
		scheme = "http"
	}
	return scheme + "://" + addr
}

// isLoopbackAddr reports whether addr (host:port) names only a loopback
// address: a literal loopback IP or "localhost". An empty host listens on
// every interface and is not loopback.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
