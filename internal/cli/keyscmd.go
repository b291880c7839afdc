package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/sealing"
)

func keysCommand() *command {
	var (
		configFile, name string
		asJSON, reseal   bool
	)
	return &command{
		name:    "keys",
		summary: "field-level encryption keys: status, rotation, re-encryption, crypto-shredding",
		usage:   "status | rotate CATEGORY [--reseal] | reseal [--name JOB] | shred CATEGORY [PATIENT]",
		help: `Resources labelled with a sealed sensitivity category (sealing.categories:
HIV, PSY, ETH, SEX, SDV, GDIS by default) are stored encrypted: per category
a keyset wrapped by the key-encryption key (sealing.kek), per patient a data
keyset wrapped by the category's (docs/ENCRYPTION.md).

  warden keys status              every category's keys: ids, which is
                                  primary, rotations, what re-encryption
                                  jobs found still on old keys (--json)
  warden keys rotate CATEGORY     a new primary key for the category: new
                                  writes use it at once, in every process;
                                  --reseal then runs the re-encryption job
  warden keys reseal              move every sealed version (history too)
                                  to the current keys, in batches; progress
                                  is saved, so a stopped job resumes when
                                  run again with the same --name; serving
                                  goes on meanwhile
  warden keys shred CATEGORY [PATIENT]
                                  crypto-shred: destroy the category's keys
                                  (or one patient's data key in it), making
                                  that data unreadable for ever. Goes through
                                  the running server's admin API so that the
                                  audit trail records it; asks to type the
                                  category again.

Reads the store and keys of the configuration (--config, WARDEN_*).`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML)")
			fs.BoolVar(&asJSON, "json", false, "status as JSON")
			fs.BoolVar(&reseal, "reseal", false, "rotate: run the re-encryption job after rotating")
			fs.StringVar(&name, "name", "reseal", "reseal: the job `NAME` (a job of that name that did not finish resumes)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			verb, args, err := subcommand(fs, args, "status", "rotate", "reseal", "shred")
			if err != nil {
				return err
			}
			a, err := openAdmin(e, configFile)
			if err != nil {
				return err
			}
			defer a.Close()
			pol := sealingPolicy(a.cfg)
			if pol == nil {
				return errors.New("field-level encryption is disabled (sealing.disabled)")
			}
			keys, err := sealingKeys(a.cfg, a.db, a.core.keys)
			if err != nil {
				return err
			}
			admin := keyAdmin{keys: keys, tenant: pol.Tenant, publish: a.core.publish}
			switch verb {
			case "status":
				if len(args) != 0 {
					return fmt.Errorf("%w: status takes no arguments", errUsage)
				}
				st, err := keys.Status(e.ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONTo(e.stdout, st)
				}
				return writeKeyStatus(e.stdout, st)
			case "rotate":
				if len(args) != 1 {
					return fmt.Errorf("%w: rotate takes a CATEGORY", errUsage)
				}
				id, err := admin.Rotate(e.ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s: new primary key %d; new writes use it in every process\n", args[0], id)
				if !reseal {
					fmt.Fprintln(e.stdout, "run 'warden keys reseal' to move existing data to it")
					return nil
				}
				return runReseal(e, a, keys, pol, name)
			case "reseal":
				if len(args) != 0 {
					return fmt.Errorf("%w: reseal takes no arguments", errUsage)
				}
				return runReseal(e, a, keys, pol, name)
			default:
				if len(args) < 1 || len(args) > 2 {
					return fmt.Errorf("%w: shred takes a CATEGORY and optionally a PATIENT id", errUsage)
				}
				return shredThroughAdmin(e, a, args)
			}
		},
	}
}

// runReseal runs the re-encryption job over the store's every version.
func runReseal(e *env, a *adminSession, keys *fieldcrypt.Keys, pol *sealing.Policy, name string) error {
	r, ok := a.db.(sealing.Replacer)
	if !ok {
		return errors.New("this store cannot re-encrypt in place")
	}
	st := sealing.New(a.db, keys, *pol)
	last := time.Now()
	job := st.ResealJob(keys, r, name, func(p fieldcrypt.Progress) {
		if time.Since(last) > 2*time.Second {
			fmt.Fprintf(e.stderr, "  %d versions scanned, %d re-sealed\n", p.Done, p.Resealed)
			last = time.Now()
		}
	})
	p, err := keys.RunReseal(e.ctx, job)
	if err != nil {
		return fmt.Errorf("re-encryption stopped after %d versions (run it again to resume): %w", p.Done, err)
	}
	fmt.Fprintf(e.stdout, "re-encryption finished: %d sealed values scanned, %d moved to the current keys, %d shredded left as they are, %d that do not open left as they are\n",
		p.Done, p.Resealed, p.Shredded, p.Failed)
	return nil
}

func writeKeyStatus(w io.Writer, st []fieldcrypt.KeyStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CATEGORY\tTENANT\tSTATE\tKEYS (primary*)\tROTATIONS\tSCANNED\tON OLD KEYS\tRESEALED")
	for _, s := range st {
		state := "active"
		if s.Shredded {
			state = "shredded " + s.ShreddedAt.UTC().Format(time.RFC3339)
		}
		var ids []string
		for _, k := range s.Keys {
			id := fmt.Sprintf("%d", k.ID)
			if k.Primary {
				id += "*"
			}
			ids = append(ids, id)
		}
		tenant := s.Tenant
		if tenant == "" {
			tenant = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", s.Category, tenant, state, strings.Join(ids, ","), s.Rotations, s.Scanned, s.OnOldKey-s.Resealed, s.Resealed)
	}
	if len(st) == 0 {
		fmt.Fprintln(tw, "(no keys yet: nothing sealed)")
	}
	return tw.Flush()
}

// shredThroughAdmin asks the running server to shred, so that the audit
// trail records it, after the operator types the category again.
func shredThroughAdmin(e *env, a *adminSession, args []string) error {
	cat := args[0]
	what := "every resource sealed under " + cat
	path := "/admin/keys/" + url.PathEscape(cat) + "/shred"
	if len(args) == 2 {
		what = "patient " + args[1] + "'s data sealed under " + cat
		path = "/admin/keys/" + url.PathEscape(cat) + "/patients/" + url.PathEscape(args[1]) + "/shred"
	}
	fmt.Fprintf(e.stderr, "This destroys the keys of %s: it can never be read again.\nType the category (%s) to go on: ", what, cat)
	line, _ := readLine(e.stdin)
	if line != cat {
		return errors.New("not confirmed; nothing was destroyed")
	}
	body, _ := json.Marshal(map[string]string{"confirm": cat})
	out, err := postAdmin(e, a, path, body, "shredding")
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "destroyed: %s\n", bytes.TrimSpace(out))
	return nil
}

// postAdmin posts body to the running server's admin API (as its
// administrator, with the data directory's admin token), so that what it
// asks is done by the server and audited there; what names the request in
// errors.
func postAdmin(e *env, a *adminSession, path string, body []byte, what string) ([]byte, error) {
	token, err := adminTokenFile(a.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, "http://"+a.cfg.Admin.Addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+string(token))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s goes through the running server's admin API (%s) so that it is audited: %w", what, a.cfg.Admin.Addr, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server refused: %s %s", resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

// readLine reads one line (without its end) from r, byte by byte so
// that nothing after it is consumed.
func readLine(r io.Reader) (string, error) {
	var b []byte
	var one [1]byte
	for len(b) < 256 {
		n, err := r.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			b = append(b, one[0])
		}
		if err != nil {
			if len(b) > 0 {
				break
			}
			return "", err
		}
	}
	return strings.TrimSuffix(string(b), "\r"), nil
}
