// Package cli implements the warden command line: subcommands, flags and
// the wiring of every concrete component. It is the only package that
// knows all the others; nothing imports it but cmd/warden.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/wardenfhir/warden/internal/audit/journal"
)

// Version is the software version, set at build time with
// -ldflags "-X github.com/wardenfhir/warden/internal/cli.Version=…".
var Version = "dev"

// env is the process environment; tests replace it through Main's caller.
type env struct {
	ctx     context.Context
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	environ []string
}

type command struct {
	name    string
	summary string
	usage   string // argument synopsis
	help    string // longer description
	run     func(e *env, fs *flag.FlagSet, args []string) error
	flags   func(fs *flag.FlagSet)
}

// errUsage marks an error in how the command was called (exit status 2).
var errUsage = errors.New("usage")

func commands() []*command {
	return []*command{
		demoCommand(),
		serveCommand(),
		importCommand(),
		clientsCommand(),
		usersCommand(),
		launchCommand(),
		witnessCommand(),
		auditCommand(),
		pkiCommand(),
		labelsCommand(),
		keysCommand(),
		detectionCommand(),
		routesCommand(),
		configCommand(),
		versionCommand(),
	}
}

// Helper is the first thing the warden command's main does: started as
// the audit journal's fsync helper (a child process of a server, see
// internal/audit/journal), the process serves it and Helper returns its
// exit code and true; else false, and the server's journal may start
// one.
func Helper() (code int, helper bool) { return journal.FsyncHelperMain() }

// Main runs the warden command line with args (without the program name)
// and returns the process exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(&env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, environ: osEnviron()}, args)
}

func run(e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] {
					printCommandHelp(e.stdout, c, newFlagSet(c, e.stdout))
					return 0
				}
			}
		}
		printHelp(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		fs := newFlagSet(c, e.stderr)
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(e.stdout)
				printCommandHelp(e.stdout, c, fs)
				return 0
			}
			return 2
		}
		if err := c.run(e, fs, fs.Args()); err != nil {
			if errors.Is(err, errUsage) {
				fmt.Fprintf(e.stderr, "warden %s: %v\nRun 'warden %s --help' for usage.\n", c.name, err, c.name)
				return 2
			}
			fmt.Fprintf(e.stderr, "warden %s: %v\n", c.name, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(e.stderr, "warden: unknown command %q\nRun 'warden help' for the list of commands.\n", args[0])
	return 2
}

func newFlagSet(c *command, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("warden "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { printCommandHelp(out, c, fs) }
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "Warden: a FHIR R4 server and security gateway for healthcare APIs.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: warden <command> [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'warden <command> --help' for a command's flags.")
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: warden %s %s\n\n%s\n", c.name, c.usage, strings.TrimSpace(c.help))
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version",
		help:    "Prints Warden's version and the Go version it was built with.",
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: no arguments expected", errUsage)
			}
			goVersion := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
			}
			fmt.Fprintf(e.stdout, "warden %s (%s)\n", Version, goVersion)
			return nil
		},
	}
}
