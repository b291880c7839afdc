package cli

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/pki"
)

// passphraseEnv is the environment variable read when --passphrase-file
// is not given. The passphrase is never a flag value: ps would show it.
const passphraseEnv = "WARDEN_PKI_PASSPHRASE"

// maxPassphraseFile bounds what --passphrase-file reads.
const maxPassphraseFile = 4096

// pkiFlags are the settings of 'warden pki VERB'; each verb registers the
// ones it uses.
type pkiFlags struct {
	configFile, dir, passphraseFile string

	name, keyType string
	days          int
	workFactor    int

	dns, ips, uris    listFlag
	spiffe, out       string
	keyPassFile       string
	force, jsonOutput bool

	reason  string
	crlDays int
	refresh bool
}

// pkiVerb is one 'warden pki' subcommand.
type pkiVerb struct {
	name, usage, help string
	flags             func(fs *flag.FlagSet, f *pkiFlags)
	run               func(e *env, f *pkiFlags, args []string) error
}

func pkiCommand() *command {
	return &command{
		name:    "pki",
		summary: "run a small certificate authority for mutual TLS between organisations",
		usage:   "init|issue|revoke|list|crl [flags] [arguments]",
		help: `Runs a certificate authority kept in a directory (default DATA_DIR/pki-ca):
it issues the server and client certificates that organisations use to
authenticate each other with mutual TLS, and the revocation list (CRL)
Warden checks them against.

  warden pki init                        create the CA (once)
  warden pki issue server|client NAME    issue a certificate and its key
  warden pki revoke SERIAL|FILE          revoke a certificate; writes a new CRL
  warden pki list                        every certificate issued, with its status
  warden pki crl                         print the CRL (--refresh signs a new one)

The CA key is stored encrypted (age, scrypt) under a passphrase, read from
--passphrase-file FILE ("-" for standard input) or from the environment
variable WARDEN_PKI_PASSPHRASE; there is deliberately no flag for the
passphrase itself, since other users of the machine could read it in the
process list.

To trust this CA's clients, set in Warden's configuration:
  server.tls.client_ca_file: DIR/ca.pem
  server.tls.client_crl_files: [DIR/crl.pem]

Run 'warden pki VERB --help' for each subcommand's flags.`,
		run: func(e *env, fs *flag.FlagSet, args []string) error { return runPKI(e, args) },
	}
}

func pkiVerbs() []*pkiVerb {
	return []*pkiVerb{
		{
			name:  "init",
			usage: "[--dir DIR] [--name NAME] [--days N] [--key-type ecdsa-p256|ecdsa-p384] [--scrypt-work-factor LOG2N]",
			help: `Creates a new certificate authority in DIR: ca.pem (the root certificate
to hand to anyone who must trust certificates from this CA), ca-key.pem
(its private key, encrypted with the passphrase, mode 0600), index.json
(the record of every certificate issued) and crl.pem (an empty
revocation list). The passphrase must be at least 12 characters; keep it
somewhere safe: without it the CA can issue and revoke nothing. Refuses
a directory that already holds a CA.`,
			flags: func(fs *flag.FlagSet, f *pkiFlags) {
				pkiCommonFlags(fs, f, true)
				fs.StringVar(&f.name, "name", "Warden CA", "the CA's `NAME` (its certificate's common name), e.g. \"Hospital A mTLS CA\"")
				fs.IntVar(&f.days, "days", pki.DefaultCADays, "validity of the CA certificate in `DAYS`")
				fs.StringVar(&f.keyType, "key-type", string(pki.ECDSAP256), "key `TYPE` of the CA and of the certificates it issues: ecdsa-p256 or ecdsa-p384")
				fs.IntVar(&f.workFactor, "scrypt-work-factor", pki.DefaultWorkFactor, fmt.Sprintf("`LOG2N`: the cost of each passphrase guess (scrypt N = 2^LOG2N; 18 takes 256 MiB and about a second); %d to 22", pki.MinWorkFactor))
			},
			run: runPKIInit,
		},
		{
			name:  "issue",
			usage: "server|client NAME [--dns HOST]... [--ip ADDR]... [--spiffe URI | --uri URI...] [--days N] [--out DIR]",
			help: `Issues a certificate and a fresh private key, writing NAME.pem and
NAME-key.pem (mode 0600) to --out. NAME is the certificate's common name
and the stem of the file names (letters, digits, '.', '-', '_').

A server certificate is for TLS servers only (extended key usage
serverAuth): give the host names and addresses clients use with --dns and
--ip (default: NAME itself, if it is a host name). A client certificate
is for TLS clients only (clientAuth), e.g. a partner's backend service;
--spiffe gives it a SPIFFE ID (spiffe://trust-domain/path) that Warden can
match (warden clients add --tls-san-uri). Validity defaults to 397 days
for servers and 90 for clients, and never exceeds 397 days or the CA's
own expiry.

The key is written unencrypted unless --key-passphrase-file is given
(then age-encrypted; decrypt with 'age -d'). Existing files are not
replaced without --force.`,
			flags: func(fs *flag.FlagSet, f *pkiFlags) {
				pkiCommonFlags(fs, f, true)
				fs.Var(&f.dns, "dns", "a DNS `HOST` name the certificate is for (repeatable; '*.example.org' allowed for servers)")
				fs.Var(&f.ips, "ip", "an IP `ADDR`ess the certificate is for (repeatable)")
				fs.StringVar(&f.spiffe, "spiffe", "", "SPIFFE ID `URI` (spiffe://trust-domain/path), the certificate's only URI")
				fs.Var(&f.uris, "uri", "another `URI` name (repeatable; not with --spiffe)")
				fs.IntVar(&f.days, "days", 0, "validity in `DAYS` (default 397 for server, 90 for client; at most 397)")
				fs.StringVar(&f.out, "out", ".", "`DIR`ectory to write NAME.pem and NAME-key.pem to")
				fs.StringVar(&f.keyPassFile, "key-passphrase-file", "", "encrypt the issued key with the passphrase in `FILE` (at least 12 characters)")
				fs.BoolVar(&f.force, "force", false, "replace existing NAME.pem and NAME-key.pem")
			},
			run: runPKIIssue,
		},
		{
			name:  "revoke",
			usage: "SERIAL|FILE [--reason REASON] [--crl-days N]",
			help: `Revokes a certificate, given by its serial number (hexadecimal, as 'warden
pki list' or 'openssl x509 -serial' print it) or by its PEM file, and
writes a new CRL to DIR/crl.pem. Warden reloads the CRL within a second
and refuses the certificate at the TLS handshake from then on. Revoking
a revoked certificate changes nothing. Revocation cannot be undone.

REASON (RFC 5280 §5.3.1) is one of unspecified, keyCompromise,
affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn.`,
			flags: func(fs *flag.FlagSet, f *pkiFlags) {
				pkiCommonFlags(fs, f, true)
				fs.StringVar(&f.reason, "reason", "unspecified", "revocation `REASON`")
				fs.IntVar(&f.crlDays, "crl-days", pki.DefaultCRLDays, "`DAYS` until the new CRL's nextUpdate")
			},
			run: runPKIRevoke,
		},
		{
			name:  "list",
			usage: "[--dir DIR] [--json]",
			help: `Lists every certificate the CA has issued: serial, kind, name, status
(valid, revoked or expired) and expiry. Needs no passphrase.`,
			flags: func(fs *flag.FlagSet, f *pkiFlags) {
				pkiCommonFlags(fs, f, false)
				fs.BoolVar(&f.jsonOutput, "json", false, "print the index entries as JSON")
			},
			run: runPKIList,
		},
		{
			name:  "crl",
			usage: "[--dir DIR] [--refresh [--crl-days N]]",
			help: `Prints the current CRL (PEM). With --refresh, first signs a new one
(the next CRL number) valid for --crl-days: run it regularly (cron,
systemd timer) well before the current CRL's nextUpdate, which is printed
to standard error, since relying parties may refuse a stale CRL. Only
--refresh needs the passphrase.`,
			flags: func(fs *flag.FlagSet, f *pkiFlags) {
				pkiCommonFlags(fs, f, true)
				fs.BoolVar(&f.refresh, "refresh", false, "sign a fresh CRL first")
				fs.IntVar(&f.crlDays, "crl-days", pki.DefaultCRLDays, "`DAYS` until the new CRL's nextUpdate (with --refresh)")
			},
			run: runPKICRL,
		},
	}
}

func pkiCommonFlags(fs *flag.FlagSet, f *pkiFlags, passphrase bool) {
	fs.StringVar(&f.configFile, "config", "", "configuration `FILE` whose data_dir holds the CA (in pki-ca)")
	fs.StringVar(&f.dir, "dir", "", "the CA's `DIR`ectory (default DATA_DIR/pki-ca)")
	if passphrase {
		fs.StringVar(&f.passphraseFile, "passphrase-file", "", "read the CA passphrase from `FILE` (\"-\": standard input); default $"+passphraseEnv)
	}
}

func runPKI(e *env, args []string) error {
	verbs := pkiVerbs()
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	if len(args) == 0 {
		return fmt.Errorf("%w: expected one of %s", errUsage, strings.Join(names, ", "))
	}
	var v *pkiVerb
	for _, c := range verbs {
		if c.name == args[0] {
			v = c
		}
	}
	if v == nil {
		return fmt.Errorf("%w: unknown subcommand %q (want %s)", errUsage, args[0], strings.Join(names, ", "))
	}
	var f pkiFlags
	fs := flag.NewFlagSet("warden pki "+v.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	v.flags(fs, &f)
	// Flags may come before, between or after the arguments.
	var positional []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printPKIVerbHelp(e.stdout, v, fs)
				return nil
			}
			return fmt.Errorf("%w: %s: %v", errUsage, v.name, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	return v.run(e, &f, positional)
}

func printPKIVerbHelp(w io.Writer, v *pkiVerb, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: warden pki %s %s\n\n%s\n\nFlags:\n", v.name, v.usage, strings.TrimSpace(v.help))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// caDir is --dir, or pki-ca in the configuration's data directory.
func (f *pkiFlags) caDir(e *env) (string, error) {
	if f.dir != "" {
		return f.dir, nil
	}
	// The passphrase variable is not a configuration setting: config.Load
	// would refuse it as an unknown WARDEN_* variable.
	environ := make([]string, 0, len(e.environ))
	for _, kv := range e.environ {
		if !strings.HasPrefix(kv, passphraseEnv+"=") {
			environ = append(environ, kv)
		}
	}
	cfg, err := config.Load(f.configFile, environ)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(cfg.DataDir) == "" {
		return "", fmt.Errorf("%w: no data_dir configured: give --dir", errUsage)
	}
	return filepath.Join(cfg.DataDir, "pki-ca"), nil
}

// passphrase reads the CA passphrase from --passphrase-file or the
// environment. One trailing newline is dropped (echo adds one).
func (f *pkiFlags) passphrase(e *env) ([]byte, error) {
	if f.passphraseFile != "" {
		return readPassphraseFile(e, f.passphraseFile)
	}
	for i := len(e.environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(e.environ[i], passphraseEnv+"="); ok && v != "" {
			return []byte(v), nil
		}
	}
	return nil, fmt.Errorf("%w: the CA passphrase is needed: give --passphrase-file FILE or set %s", errUsage, passphraseEnv)
}

func readPassphraseFile(e *env, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = e.stdin
	} else {
		file, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("reading the passphrase file: %w", err)
		}
		defer file.Close()
		r = file
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPassphraseFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase file: %w", err)
	}
	if len(b) > maxPassphraseFile {
		return nil, fmt.Errorf("the passphrase file %s is larger than %d bytes", name, maxPassphraseFile)
	}
	b = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("the passphrase file %s is empty", name)
	}
	return b, nil
}

// openCA opens the CA with its passphrase, or read-only without.
func (f *pkiFlags) openCA(e *env, withKey bool) (*pki.CA, error) {
	dir, err := f.caDir(e)
	if err != nil {
		return nil, err
	}
	if f.crlDays < 0 || f.crlDays > 366 {
		return nil, fmt.Errorf("%w: --crl-days must be 1 to 366", errUsage)
	}
	o := pki.OpenOptions{CRLValidity: time.Duration(f.crlDays) * 24 * time.Hour}
	if !withKey {
		return pki.OpenReadOnly(dir, o)
	}
	pass, err := f.passphrase(e)
	if err != nil {
		return nil, err
	}
	return pki.Open(dir, pass, o)
}

func runPKIInit(e *env, f *pkiFlags, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: init takes no arguments", errUsage)
	}
	dir, err := f.caDir(e)
	if err != nil {
		return err
	}
	pass, err := f.passphrase(e)
	if err != nil {
		return err
	}
	ca, err := pki.Init(dir, pass, pki.Options{Name: f.name, Days: f.days, KeyType: pki.KeyType(f.keyType), WorkFactor: f.workFactor})
	if err != nil {
		return err
	}
	c := ca.Certificate()
	sum := sha256.Sum256(c.Raw)
	fmt.Fprintf(e.stdout, "Created the CA %q in %s, valid until %s.\n", c.Subject.CommonName, dir, c.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(e.stdout, "Root certificate: %s\nSHA-256 fingerprint: %X\n", filepath.Join(dir, pki.CertFile), sum)
	fmt.Fprintf(e.stdout, "Trust its client certificates with server.tls.client_ca_file: %s\nand server.tls.client_crl_files: [%s]\n",
		filepath.Join(dir, pki.CertFile), filepath.Join(dir, pki.CRLFile))
	return nil
}

func runPKIIssue(e *env, f *pkiFlags, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("%w: issue needs server|client and NAME", errUsage)
	}
	kind, err := pki.ParseKind(args[0])
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	name := args[1]
	o := pki.IssueOptions{DNSNames: f.dns, URIs: f.uris, Days: f.days}
	for _, s := range f.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("%w: --ip %q is not an IP address", errUsage, s)
		}
		o.IPs = append(o.IPs, ip)
	}
	if f.spiffe != "" {
		if _, err := pki.ParseSPIFFEID(f.spiffe); err != nil {
			return fmt.Errorf("--spiffe: %w", err)
		}
		o.URIs = append([]string{f.spiffe}, o.URIs...)
	}
	if f.keyPassFile != "" {
		if o.KeyPassphrase, err = readPassphraseFile(e, f.keyPassFile); err != nil {
			return err
		}
	}
	if !f.force {
		// Checked before issuing, so a refusal leaves no orphan in the index.
		certFile, keyFile := pki.OutputFiles(f.out, name)
		for _, file := range []string{certFile, keyFile} {
			if _, err := os.Lstat(file); err == nil {
				return fmt.Errorf("%s exists: give --force to replace it", file)
			}
		}
	}
	ca, err := f.openCA(e, true)
	if err != nil {
		return err
	}
	is, err := ca.Issue(kind, name, o)
	if err != nil {
		return err
	}
	certFile, keyFile, err := is.WriteFiles(f.out, f.force)
	if err != nil {
		return err
	}
	c := is.Certificate
	fmt.Fprintf(e.stdout, "Issued %s certificate %q, serial %s, valid until %s.\n", kind, name, is.Entry.Serial, c.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(e.stdout, "Certificate: %s\nPrivate key: %s (keep it secret)\nCA certificate: %s\n", certFile, keyFile, filepath.Join(ca.Dir(), pki.CertFile))
	return nil
}

func runPKIRevoke(e *env, f *pkiFlags, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: revoke needs one SERIAL or certificate FILE", errUsage)
	}
	reason, err := pki.ParseReason(f.reason)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	ca, err := f.openCA(e, true)
	if err != nil {
		return err
	}
	serial, err := pki.ParseSerial(args[0])
	if b, ferr := os.ReadFile(args[0]); ferr == nil {
		serial, err = ca.SerialOf(b)
	}
	if err != nil {
		return err
	}
	entry, err := ca.Revoke(serial, reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Certificate %s (%s %q) is revoked since %s (%s).\nNew CRL: %s\n",
		entry.Serial, entry.Kind, entry.Name, entry.RevokedAt.Format(time.RFC3339), entry.Reason, filepath.Join(ca.Dir(), pki.CRLFile))
	return nil
}

func runPKIList(e *env, f *pkiFlags, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: list takes no arguments", errUsage)
	}
	ca, err := f.openCA(e, false)
	if err != nil {
		return err
	}
	entries, err := ca.List()
	if err != nil {
		return err
	}
	if f.jsonOutput {
		if entries == nil {
			entries = []pki.Entry{}
		}
		return writeJSONTo(e.stdout, entries)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tKIND\tNAME\tSTATUS\tNOT AFTER\tNAMES")
	now := time.Now()
	for _, en := range entries {
		status := string(en.Status)
		if en.Status == pki.StatusValid && now.After(en.NotAfter) {
			status = "expired"
		}
		sans := strings.Join(append(append(append([]string{}, en.DNSNames...), en.IPs...), en.URIs...), ",")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", en.Serial, en.Kind, en.Name, status, en.NotAfter.Format(time.DateOnly), sans)
	}
	return tw.Flush()
}

func runPKICRL(e *env, f *pkiFlags, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: crl takes no arguments", errUsage)
	}
	ca, err := f.openCA(e, f.refresh)
	if err != nil {
		return err
	}
	var b []byte
	if f.refresh {
		b, err = ca.SignCRL()
	} else {
		b, err = ca.CRL()
	}
	if err != nil {
		return err
	}
	if crl, err := ca.VerifyCRL(b); err == nil {
		fmt.Fprintf(e.stderr, "CRL %s number %v: next update due %s\n", filepath.Join(ca.Dir(), pki.CRLFile), crl.Number, crl.NextUpdate.Format(time.RFC3339))
	}
	_, err = e.stdout.Write(b)
	return err
}
