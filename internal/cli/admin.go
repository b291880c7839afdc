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
	"text/tabwriter"
	"time"

	"github.com/wardenfhir/warden/internal/adminapi"
	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/identity"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// adminSession is an admin command's connection to an instance's data:
// the store and the auth core, without listeners. A running server sees
// what it changes within a few seconds (reloadEvery).
type adminSession struct {
	cfg  config.Config
	db   database
	core *authCore
	base string
}

func openAdmin(e *env, configFile string) (*adminSession, error) {
	cfg, err := config.Load(configFile, e.environ)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := openStore(e.ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	base := strings.TrimRight(cfg.Server.BaseURL, "/")
	if base == "" {
		scheme := "https"
		if cfg.Server.InsecureAllowHTTP {
			scheme = "http"
		}
		base = scheme + "://" + cfg.Server.Addr + "/fhir"
	}
	core, err := openAuthCore(e.ctx, cfg, db, base)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &adminSession{cfg: cfg, db: db, core: core, base: base}, nil
}

func (a *adminSession) Close() error { return a.db.Close() }

// subcommand splits "verb [flags] args" for commands with verbs; flags
// may come before or after the verb.
func subcommand(fs *flag.FlagSet, args []string, verbs ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("%w: expected one of %s", errUsage, strings.Join(verbs, ", "))
	}
	verb := args[0]
	found := false
	for _, v := range verbs {
		found = found || v == verb
	}
	if !found {
		return "", nil, fmt.Errorf("%w: unknown subcommand %q (want %s)", errUsage, verb, strings.Join(verbs, ", "))
	}
	// Flags may come before, between or after the arguments.
	var positional []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return "", nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	return verb, positional, nil
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func clientsCommand() *command {
	var (
		configFile                                  string
		name, typ, scopes, owner, contact, jwksFile string
		jwksURL                                     string
		redirects, origins, jwksHosts               listFlag
		lifetime                                    time.Duration
		tlsAuth                                     authserver.ClientTLS
		dpopBound                                   bool
	)
	return &command{
		name:    "clients",
		summary: "register and manage OAuth clients (SMART apps, backend services)",
		usage:   "add|list|show|disable|enable [flags] [CLIENT_ID]",
		help: `Manages the registered OAuth clients in the instance's database.

  warden clients add --name N --type public|confidential|backend --scopes S [flags]
      registers a client and prints it as JSON; a confidential client's
      secret is printed this once and stored only as a hash. --scopes is the
      client's ceiling: nothing outside it is ever granted, whatever the
      client asks for. Backend clients authenticate with a signed JWT
      (private_key_jwt): give --jwks-file (a JWK Set) or --jwks-url; or by
      their TLS client certificate (RFC 8705): --tls-auth tls_client_auth
      with one of --tls-subject-dn, --tls-san-dns, --tls-san-uri (a SPIFFE
      ID, say), checked against server.tls.client_ca_file; or --tls-auth
      self_signed_tls_client_auth with the certificate's key in --jwks-file.
      Their access tokens are then bound to that certificate (cnf
      x5t#S256); --cert-bound binds a private_key_jwt client's tokens too.
  warden clients list                 one line per client
  warden clients show CLIENT_ID       the client as JSON (never its secret)
  warden clients disable CLIENT_ID    refuses new tokens and kills the client's
                                      live tokens (a running server notices
                                      within seconds)
  warden clients enable CLIENT_ID`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML) of the instance")
			fs.StringVar(&name, "name", "", "human name shown on the approval page")
			fs.StringVar(&typ, "type", "", "public, confidential or backend")
			fs.StringVar(&scopes, "scopes", "", "scope ceiling, space-separated (e.g. 'launch/patient openid fhirUser patient/*.rs')")
			fs.Var(&redirects, "redirect-uri", "exact redirect URI (repeatable)")
			fs.Var(&origins, "origin", "browser origin allowed to call the token endpoint (repeatable)")
			fs.StringVar(&owner, "owner", "", "who is responsible for the client")
			fs.StringVar(&contact, "contact", "", "how to reach the owner")
			fs.StringVar(&jwksFile, "jwks-file", "", "`FILE` holding the backend client's public JWK Set")
			fs.StringVar(&jwksURL, "jwks-url", "", "URL of the backend client's JWK Set")
			fs.Var(&jwksHosts, "jwks-host", "host the JWK Set URL may be fetched from (repeatable; default its own host)")
			fs.DurationVar(&lifetime, "token-lifetime", 0, "access-token lifetime for this client (0: the server default)")
			fs.StringVar(&tlsAuth.AuthMethod, "tls-auth", "", "authenticate by TLS client certificate: tls_client_auth or self_signed_tls_client_auth")
			fs.StringVar(&tlsAuth.SubjectDN, "tls-subject-dn", "", "tls_client_auth: the certificate's subject DN (RFC 4514, e.g. 'CN=lab,O=Partner')")
			fs.StringVar(&tlsAuth.SANDNS, "tls-san-dns", "", "tls_client_auth: a DNS name the certificate carries")
			fs.StringVar(&tlsAuth.SANURI, "tls-san-uri", "", "tls_client_auth: a URI the certificate carries (e.g. spiffe://partner.example/lab)")
			fs.BoolVar(&tlsAuth.BoundTokens, "cert-bound", false, "bind the client's access tokens to the TLS client certificate it presents")
			fs.BoolVar(&dpopBound, "dpop-bound", false, "require a DPoP proof at every token request, so that all the client's tokens are DPoP-bound (RFC 9449); without it a proof is optional")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			verb, rest, err := subcommand(fs, args, "add", "list", "show", "disable", "enable")
			if err != nil {
				return err
			}
			wantArgs := map[string]int{"add": 0, "list": 0, "show": 1, "disable": 1, "enable": 1}[verb]
			if len(rest) != wantArgs {
				return fmt.Errorf("%w: %s takes %d argument(s)", errUsage, verb, wantArgs)
			}
			a, err := openAdmin(e, configFile)
			if err != nil {
				return err
			}
			defer a.Close()
			reg := a.core.clients
			switch verb {
			case "add":
				nc := authserver.NewClient{Name: name, Type: typ, RedirectURIs: redirects, Scopes: scopes, TokenLifetime: lifetime,
					Owner: owner, Contact: contact, Origins: origins, JWKSURL: jwksURL, JWKSHosts: jwksHosts, TLS: tlsAuth, DPoPBound: dpopBound}
				if jwksFile != "" {
					b, err := os.ReadFile(jwksFile)
					if err != nil {
						return err
					}
					nc.JWKS = string(b)
				}
				c, secret, err := reg.Add(e.ctx, nc)
				if err != nil {
					return err
				}
				return writeJSONTo(e.stdout, adminapi.View(c, secret))
			case "list":
				list, err := reg.List(e.ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT_ID\tTYPE\tSTATUS\tNAME\tSCOPES")
				for _, c := range list {
					status := "enabled"
					if c.Disabled {
						status = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Type, status, c.Name, c.Scopes)
				}
				return tw.Flush()
			case "show":
				c, err := reg.Get(e.ctx, rest[0])
				if err != nil {
					return err
				}
				return writeJSONTo(e.stdout, adminapi.View(c, ""))
			case "disable":
				if err := reg.Disable(e.ctx, rest[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "client %s disabled; its tokens no longer work\n", rest[0])
			case "enable":
				if err := reg.Enable(e.ctx, rest[0]); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "client %s enabled\n", rest[0])
			}
			return nil
		},
	}
}

func usersCommand() *command {
	var (
		configFile, username, name, fhirUser, passwordFile string
		upstreamIssuer, upstreamSubject                    string
		patients                                           listFlag
		totp                                               bool
	)
	return &command{
		name:    "users",
		summary: "create and manage local user accounts",
		usage:   "add|list|link|disable|enable [flags] [USERNAME]",
		help: `Manages the local user accounts that sign in to authorize SMART apps.

  warden users add --username U --fhir-user Patient/123 [--patient ID]... [--totp]
      creates an account linked to a FHIR user (Patient, Practitioner or
      RelatedPerson). The password is read from --password-file, or from the
      first line of standard input. With --totp the account needs a one-time
      code too; its secret is printed this once (and as an otpauth:// URL for
      authenticator apps). --patient lists the patients the user may pick
      (a Patient user may always pick themself).
  warden users link USERNAME --issuer URL --subject SUB
      lets the user sign in through the upstream OpenID Connect provider
      (auth.upstream): its id_token for that issuer and subject maps to
      this account
  warden users list
  warden users disable USERNAME       refuses every further sign-in
  warden users enable USERNAME`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML) of the instance")
			fs.StringVar(&username, "username", "", "sign-in name")
			fs.StringVar(&name, "name", "", "display name")
			fs.StringVar(&fhirUser, "fhir-user", "", "the FHIR resource the user is, e.g. Patient/123 or Practitioner/9")
			fs.Var(&patients, "patient", "patient id the user may choose in the patient picker (repeatable)")
			fs.StringVar(&passwordFile, "password-file", "", "`FILE` whose first line is the password (default: standard input)")
			fs.BoolVar(&totp, "totp", false, "require a TOTP one-time code at sign-in")
			fs.StringVar(&upstreamIssuer, "issuer", "", "upstream provider's issuer (for link)")
			fs.StringVar(&upstreamSubject, "subject", "", "the user's subject (sub) at the upstream provider (for link)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			verb, rest, err := subcommand(fs, args, "add", "list", "link", "disable", "enable")
			if err != nil {
				return err
			}
			wantArgs := map[string]int{"add": 0, "list": 0, "link": 1, "disable": 1, "enable": 1}[verb]
			if len(rest) != wantArgs {
				return fmt.Errorf("%w: %s takes %d argument(s)", errUsage, verb, wantArgs)
			}
			var password string
			if verb == "add" {
				if password, err = readPassword(e, passwordFile); err != nil {
					return err
				}
			}
			a, err := openAdmin(e, configFile)
			if err != nil {
				return err
			}
			defer a.Close()
			switch verb {
			case "add":
				if id, ok := strings.CutPrefix(fhirUser, "Patient/"); ok && !slices.Contains(patients, id) {
					patients = append(listFlag{id}, patients...)
				}
				u, secret, err := a.core.users.Create(e.ctx, identity.NewUser{Username: username, Password: password, Name: name,
					FHIRUser: fhirUser, Patients: patients, TOTP: totp})
				if err != nil {
					return err
				}
				out := map[string]any{"id": u.ID, "username": u.Username, "fhir_user": u.FHIRUser, "patients": u.Patients}
				if secret != "" {
					out["totp_secret"] = secret
					if url, err := a.core.users.OTPAuthURL(u.Username, secret); err == nil {
						out["totp_url"] = url
					}
				}
				return writeJSONTo(e.stdout, out)
			case "list":
				list, err := a.core.users.List(e.ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tFHIR_USER\tSTATUS\tSECOND_FACTOR")
				for _, u := range list {
					status, mfa := "enabled", "no"
					if u.Disabled {
						status = "disabled"
					}
					if u.HasTOTP() {
						mfa = "totp"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Username, u.FHIRUser, status, mfa)
				}
				return tw.Flush()
			case "link":
				if upstreamIssuer == "" || upstreamSubject == "" {
					return fmt.Errorf("%w: link needs --issuer and --subject", errUsage)
				}
				if err := a.core.users.LinkUpstream(e.ctx, rest[0], upstreamIssuer, upstreamSubject); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "user %s linked to %s at %s\n", rest[0], upstreamSubject, upstreamIssuer)
			case "disable", "enable":
				if err := a.core.users.SetDisabled(e.ctx, rest[0], verb == "disable"); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "user %s %sd\n", rest[0], verb)
			}
			return nil
		},
	}
}

// readPassword reads the first line of the password file, or of standard
// input; never from a flag, which would leave it in shell history and the
// process list.
func readPassword(e *env, file string) (string, error) {
	var r io.Reader = e.stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", errors.New("no password given (use --password-file or standard input)")
	}
	return line, nil
}

func launchCommand() *command {
	var configFile, patient, encounter, fhirUser string
	var ttl time.Duration
	return &command{
		name:    "launch",
		summary: "mint an EHR launch context for a SMART app",
		usage:   "--patient ID [--encounter ID] [--fhir-user REF] [--ttl D]",
		help: `Mints the launch context of an EHR launch: the EHR opens the app with
?iss=FHIR_BASE&launch=LAUNCH_ID, the app passes launch=LAUNCH_ID to the
authorize endpoint, and the token it gets carries the patient (and
encounter) below without a patient picker. A launch id works once and
expires after --ttl. Prints the launch id.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&configFile, "config", "", "configuration `FILE` (YAML) of the instance")
			fs.StringVar(&patient, "patient", "", "patient id in context")
			fs.StringVar(&encounter, "encounter", "", "encounter id in context")
			fs.StringVar(&fhirUser, "fhir-user", "", "the user the EHR launched for (e.g. Practitioner/9)")
			fs.DurationVar(&ttl, "ttl", 5*time.Minute, "how long the launch id stays usable")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unexpected arguments", errUsage)
			}
			if patient == "" {
				return fmt.Errorf("%w: --patient is required", errUsage)
			}
			a, err := openAdmin(e, configFile)
			if err != nil {
				return err
			}
			defer a.Close()
			id, err := mintLaunch(e.ctx, a, authserver.LaunchContext{Patient: patient, Encounter: encounter, FHIRUser: fhirUser, Expires: time.Now().Add(ttl)})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, id)
			return nil
		},
	}
}

// mintLaunch stores a launch context through an authorization server
// built for the purpose (no listener).
func mintLaunch(ctx context.Context, a *adminSession, l authserver.LaunchContext) (string, error) {
	cursorKey, err := secretFile(a.cfg.DataDir, "cursor.key", 32)
	if err != nil {
		return "", err
	}
	api, err := fhirapi.New(a.db, fhirapi.Options{BaseURL: a.base, CursorKey: cursorKey, Verifier: a.core.tokens})
	if err != nil {
		return "", err
	}
	srv, err := newAuthServer(ctx, a.cfg, a.db, a.core, api, a.base, nil, nil)
	if err != nil {
		return "", err
	}
	return srv.MintLaunch(ctx, l)
}
