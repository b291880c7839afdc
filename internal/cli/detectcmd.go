package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"
)

func detectionCommand() *command {
	var (
		configFile                string
		asJSON                    bool
		client, user, token, peer string
	)
	return &command{
		name:    "detection",
		summary: "abuse detection: what stands (throttles, quarantines, step-ups) and lifting it",
		usage:   "list [--json] | release --client ID | --user FHIRUSER | --token JTI | --peer ADDRESS",
		help: `The abuse detection's standing actions are shared by every process serving
the store (docs/DETECTION.md).

  warden detection list           every step-up, throttle and quarantine in
                                  force: scope, subject, action, until when
                                  (--json)
  warden detection release --client ID | --user FHIRUSER | --token JTI | --peer ADDRESS
                                  lift what stands on one subject (a client
                                  with its users' and tokens'); goes through
                                  the running server's admin API, so the
                                  audit trail records it, and reaches every
                                  replica within 2 s

Reads the store of the configuration (--config, WARDEN_*).`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML)")
			fs.BoolVar(&asJSON, "json", false, "list as JSON")
			fs.StringVar(&client, "client", "", "release: the client `ID`")
			fs.StringVar(&user, "user", "", "release: the user (`FHIRUSER`, e.g. Practitioner/7)")
			fs.StringVar(&token, "token", "", "release: the access token's `JTI`")
			fs.StringVar(&peer, "peer", "", "release: the source `ADDRESS` (an IPv6 address names its /64)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			verb, args, err := subcommand(fs, args, "list", "release")
			if err != nil {
				return err
			}
			if len(args) != 0 {
				return fmt.Errorf("%w: %s takes no arguments", errUsage, verb)
			}
			a, err := openAdmin(e, configFile)
			if err != nil {
				return err
			}
			defer a.Close()
			if verb == "list" {
				return listStandings(e, a, asJSON)
			}
			req := map[string]string{}
			for k, v := range map[string]string{"client": client, "user": user, "token": token, "peer": peer} {
				if v != "" {
					req[k] = v
				}
			}
			if len(req) != 1 {
				return fmt.Errorf("%w: release takes exactly one of --client, --user, --token, --peer", errUsage)
			}
			if peer != "" {
				if _, err := netip.ParseAddr(peer); err != nil {
					return fmt.Errorf("%w: --peer %q is not an IP address", errUsage, peer)
				}
			}
			body, _ := json.Marshal(req)
			out, err := postAdmin(e, a, "/admin/detection/release", body, "a release")
			if err != nil {
				return err
			}
			var res struct {
				Released int `json:"released"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				return fmt.Errorf("the server answered %q: %w", out, err)
			}
			fmt.Fprintf(e.stdout, "lifted %d standing action(s) in this process; every replica lifts them within %s\n", res.Released, syncEvery)
			return nil
		},
	}
}

// standingRow is one line of `warden detection list`.
type standingRow struct {
	Scope   string    `json:"scope"`
	Subject string    `json:"subject"`
	Client  string    `json:"client,omitempty"`
	Action  string    `json:"action"`
	Until   time.Time `json:"until,omitzero"`
}

func listStandings(e *env, a *adminSession, asJSON bool) error {
	recs, err := a.db.ListRecords(e.ctx, kindStanding)
	if err != nil {
		return err
	}
	now := time.Now()
	rows := []standingRow{}
	for _, r := range recs {
		st, err := decodeStanding(r.Value)
		if err != nil || !st.Live(now) {
			continue
		}
		rows = append(rows, standingRow{Scope: st.Scope.String(), Subject: st.Key, Client: st.Client, Action: st.Action.String(), Until: st.Until})
	}
	if asJSON {
		return writeJSONTo(e.stdout, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(e.stdout, "nothing stands")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tSUBJECT\tCLIENT\tACTION\tUNTIL")
	for _, r := range rows {
		until := "released"
		if !r.Until.IsZero() {
			until = r.Until.UTC().Format(time.RFC3339)
		}
		client := r.Client
		if client == "" {
			client = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Scope, r.Subject, client, r.Action, until)
	}
	return tw.Flush()
}
