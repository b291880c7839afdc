// Command warden is a FHIR R4 server and security gateway for healthcare
// APIs. Run `warden help` for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wardenfhir/warden/internal/cli"
)

func main() {
	// Started as the audit journal's fsync helper, this process serves
	// it and nothing else (internal/audit/journal, fsyncHelper).
	if code, helper := cli.Helper(); helper {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
