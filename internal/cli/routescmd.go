package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/reqid"
	"github.com/wardenfhir/warden/internal/routes"
)

// fhirBasePath is the path of the FHIR base the configuration serves.
func fhirBasePath(cfg config.Config) string {
	if u, err := url.Parse(cfg.Server.BaseURL); err == nil && cfg.Server.BaseURL != "" {
		return strings.TrimRight(u.Path, "/")
	}
	return "/fhir"
}

// inventoryFor is the inventory cfg declares: inventory.file, or the
// built-in one declaring everything Warden implements.
func inventoryFor(cfg config.Config) (routes.Inventory, error) {
	if cfg.Routes.File == "" {
		return routes.Default(fhirBasePath(cfg)), nil
	}
	b, err := os.ReadFile(cfg.Routes.File)
	if err != nil {
		return routes.Inventory{}, fmt.Errorf("inventory.file: %w", err)
	}
	inv, err := routes.Parse(b)
	if err != nil {
		return routes.Inventory{}, fmt.Errorf("inventory.file %s: %w", cfg.Routes.File, err)
	}
	return inv, nil
}

// routeGuard builds the inventory's guard for the public listener. The
// FHIR API (set in api once built) classifies requests under its base;
// an expired route's alert goes to the log, the metrics and — once set
// in trail — the audit trail.
func routeGuard(cfg config.Config, api *atomic.Pointer[fhirapi.API], trail *atomic.Pointer[audit.Sink], log *slog.Logger) (*routes.Guard, error) {
	inv, err := inventoryFor(cfg)
	if err != nil {
		return nil, err
	}
	classify := func(r *http.Request) routes.Request {
		req := routes.Request{Method: r.Method, Path: r.URL.Path}
		if a := api.Load(); a != nil {
			if it, typ, op, ok := a.Classify(r); ok {
				req.FHIR, req.Interaction, req.Type, req.Op = true, it, typ, op
			}
		}
		return req
	}
	expired := func(ctx context.Context, rt routes.Route) {
		log.Error("an expired route was asked for; it answers 410", "route", rt.Name, "owner", rt.Owner, "expired", rt.Expires)
		if s := trail.Load(); s != nil {
			rec := audit.Record{RequestID: reqid.New(), Time: time.Now(), Surface: audit.SurfaceAdmin, Action: "route-expired",
				Method: "-", Path: "/inventory", Status: http.StatusGone,
				DenyRule: fmt.Sprintf("route %q (owner %q) expired on %s", rt.Name, rt.Owner, rt.Expires.UTC().Format(time.RFC3339))}
			if _, err := (*s).Append(context.WithoutCancel(ctx), rec); err != nil {
				log.Error("the expired-route alert could not be written to the audit trail", "error", err.Error())
			}
		}
	}
	return routes.New(routes.Options{Inventory: inv, Classify: classify, OnExpired: expired})
}

func routesCommand() *command {
	var configFile string
	var asJSON bool
	return &command{
		name:    "routes",
		summary: "print the API inventory: what is served, by whom, until when",
		usage:   "[--json]",
		help: `Warden serves only the routes and FHIR interactions its inventory declares
(inventory.file; without one, everything Warden implements). Each route may
name an owner, a deprecation date (responses then carry Deprecation, Sunset
and Link headers) and an expiry (after it the route answers 410 Gone and
raises an alert). An undeclared route answers like an unknown one.

  warden routes          the live inventory as a table, with each route's
                         status now: active, deprecated or expired
  warden routes --json   the same as JSON`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML)")
			fs.BoolVar(&asJSON, "json", false, "print JSON")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
				return fmt.Errorf("%w: routes takes no arguments", errUsage)
			}
			cfg, err := config.Load(configFile, e.environ)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			inv, err := inventoryFor(cfg)
			if err != nil {
				return err
			}
			return writeInventory(e.stdout, inv, time.Now(), asJSON)
		},
	}
}

// routeView is a route as `warden routes --json` prints it.
type routeView struct {
	routes.Route
	Status routes.Status `json:"status"`
}

func writeInventory(w io.Writer, inv routes.Inventory, now time.Time, asJSON bool) error {
	if asJSON {
		out := make([]routeView, 0, len(inv.Routes))
		for _, r := range inv.Routes {
			out = append(out, routeView{Route: r, Status: r.StatusAt(now)})
		}
		return writeJSONTo(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tSERVES\tOWNER\tSTATUS\tDEPRECATED\tSUNSET\tEXPIRES")
	date := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.DateOnly)
	}
	for _, r := range inv.Routes {
		var serves string
		if len(r.Paths) > 0 {
			methods := "any method"
			if len(r.Methods) > 0 {
				methods = strings.Join(r.Methods, ",")
			}
			serves = strings.Join(r.Paths, " ") + " (" + methods + ")"
		} else {
			list := func(l []string) string {
				if len(l) == 0 {
					return "*"
				}
				return strings.Join(l, ",")
			}
			serves = "FHIR " + list(r.Interactions) + " on " + list(r.Types)
			if len(r.Operations) > 0 {
				serves += " ops " + list(r.Operations)
			}
		}
		owner := r.Owner
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, serves, owner, r.StatusAt(now), date(r.Deprecated), date(r.Sunset), date(r.Expires))
	}
	return tw.Flush()
}
