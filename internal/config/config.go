// Package config owns Warden's configuration: one YAML file, overridden by
// WARDEN_* environment variables, checked by [Config.Validate].
//
// Decoding is strict. An unknown key in the file or an unknown WARDEN_*
// variable is an error that names it (and, in the file, its line): a typo
// that is silently ignored leaves a security setting at a value nobody
// chose. Every leaf setting has exactly one environment variable, derived
// from its path: server.addr is WARDEN_SERVER_ADDR. The environment beats
// the file, and the file beats the defaults, which are the secure choice for
// every setting. Variables that begin with WARDEN_TEST_ belong to the test
// suite and are not settings.
//
// A value is written the same way in both places: durations as Go durations
// ("30s", "2m"), sizes as bytes or with a unit ("10MiB"), booleans as true or
// false, lists as YAML sequences in the file and as comma-separated text in
// the environment.
//
// Secrets are never configuration values, only the paths of the files that
// hold them (settings named *_file). This package never opens those files,
// never logs, and never touches the network.
package config

import (
	"net/netip"
	"time"
)

// Config is Warden's whole configuration. Build it with [Default] or
// [Load], then check it with [Config.Validate] before use.
//
// Each leaf field's yaml tag names its key, its doc tag describes it for
// [Describe]; the environment variable is derived from the path of keys.
type Config struct {
	DataDir string  `yaml:"data_dir" doc:"directory for Warden's own files: the SQLite database, the development PKI, generated keys"`
	Server  Server  `yaml:"server"`
	Admin   Admin   `yaml:"admin"`
	Store   Store   `yaml:"store"`
	FHIR    FHIR    `yaml:"fhir"`
	Auth    Auth    `yaml:"auth"`
	Audit   Audit   `yaml:"audit"`
	Consent Consent `yaml:"consent"`
	Limits  Limits  `yaml:"limits"`
	Sealing Sealing `yaml:"sealing"`
	Detect  Detect  `yaml:"detection"`
	Routes  Routes  `yaml:"inventory"`
	Log     Log     `yaml:"log"`
}

// Server configures the FHIR listener.
type Server struct {
	Addr              string         `yaml:"addr" doc:"host:port the FHIR API listens on"`
	BaseURL           string         `yaml:"base_url" doc:"FHIR base URL announced to clients; empty derives https://ADDR/fhir"`
	TLS               TLS            `yaml:"tls"`
	InsecureAllowHTTP bool           `yaml:"insecure_allow_http" doc:"serve plain HTTP without TLS; refused unless server.addr is a loopback address"`
	ReadHeaderTimeout time.Duration  `yaml:"read_header_timeout" doc:"time allowed to read request headers"`
	ReadTimeout       time.Duration  `yaml:"read_timeout" doc:"time allowed to read a whole request, body included"`
	WriteTimeout      time.Duration  `yaml:"write_timeout" doc:"time allowed to write a response"`
	IdleTimeout       time.Duration  `yaml:"idle_timeout" doc:"time an idle keep-alive connection stays open"`
	ShutdownTimeout   time.Duration  `yaml:"shutdown_timeout" doc:"time in-flight requests get to finish on shutdown"`
	MaxBodyBytes      ByteSize       `yaml:"max_body_bytes" doc:"largest request body accepted"`
	MaxHeaderCount    int            `yaml:"max_header_count" doc:"most header fields a request may carry (431 above it)"`
	MaxURLBytes       int            `yaml:"max_url_bytes" doc:"longest request target accepted, in bytes (414 above it)"`
	MaxQueryParams    int            `yaml:"max_query_params" doc:"most query parameters a request may carry (400 above it)"`
	TrustedProxies    []netip.Prefix `yaml:"trusted_proxies" doc:"CIDRs of reverse proxies whose X-Forwarded-For is believed; empty trusts none"`
	MaxProcs          int            `yaml:"max_procs" doc:"threads running Go code at once (GOMAXPROCS); 0 is twice the CPUs available, so that a thread waiting on the disk (the audit journal's fsync, the log's files) does not leave a CPU idle; the GOMAXPROCS environment variable, when set, wins"`
}

// TLS configures the FHIR listener's certificate.
type TLS struct {
	CertFile   string `yaml:"cert_file" doc:"PEM certificate chain; empty creates a development certificate in DATA_DIR/pki; certificate, key, CA bundle and CRL files are re-read when they change, without a restart"`
	KeyFile    string `yaml:"key_file" doc:"PEM private key of cert_file"`
	MinVersion string `yaml:"min_version" doc:"lowest TLS version accepted: 1.3, or 1.2 for old clients (then only ECDHE suites with AEAD)"`
	// Client certificates are requested on every connection, never
	// demanded by TLS itself; policy decides who must present one.
	ClientCAFile   string   `yaml:"client_ca_file" doc:"PEM bundle of the CAs whose client certificates are trusted (mutual TLS, RFC 8705 PKI binding); empty trusts only self-signed certificates bound to a registered client key"`
	ClientCRLFiles []string `yaml:"client_crl_files" doc:"CRL files (PEM or DER) of those CAs; a revoked client certificate fails the handshake"`
	// OCSP for client certificates, beside the CRLs.
	ClientOCSP          bool          `yaml:"client_ocsp" doc:"also ask each CA-issued client certificate's OCSP responder (its AIA, or client_ocsp_responder) whether it is revoked; answers are cached until their nextUpdate"`
	ClientOCSPResponder string        `yaml:"client_ocsp_responder" doc:"OCSP responder URL to ask instead of the certificates' AIA; empty uses the AIA"`
	ClientOCSPFailOpen  bool          `yaml:"client_ocsp_fail_open" doc:"accept a certificate when no valid OCSP answer can be had (responder down, timeout); false refuses it (revoked and unknown answers are always refused)"`
	ClientOCSPTimeout   time.Duration `yaml:"client_ocsp_timeout" doc:"how long a handshake waits for the OCSP responder"`
	// ClientCertRoutesFile names a YAML file of per-route rules.
	ClientCertRoutesFile string `yaml:"client_cert_routes_file" doc:"YAML file of routes that require a client certificate: a list of {prefix, methods, allow: any|identities, identities: [dn:…, dns:…, uri:…, sha256:…]} (docs/MTLS.md); requests on them without a suitable CA-issued certificate get 403; empty requires none"`
}

// Admin configures the operations listener (Prometheus metrics, health).
type Admin struct {
	Addr  string `yaml:"addr" doc:"host:port of the metrics, health and admin API listener (plain HTTP: loopback addresses only); empty disables it"`
	Pprof bool   `yaml:"pprof" doc:"serve Go profiling endpoints (/debug/pprof/) on the admin listener; off by default, for performance work"`
}

// Store configures where resources are kept.
type Store struct {
	URL               string `yaml:"url" doc:"sqlite:PATH or postgres://USER@HOST/DB (no password: use passfile=); empty is DATA_DIR/warden.db"`
	SQLiteSynchronous string `yaml:"sqlite_synchronous" doc:"SQLite durability: full (every commit reaches the disk) or normal"`
	MaxConns          int    `yaml:"max_conns" doc:"largest number of open database connections"`
	ReadCacheMB       int    `yaml:"read_cache_mb" doc:"MB of memory for the current versions of resources recently read by id or found by searches; each is checked against the database's current version before it is served (so writes by other processes or replicas are seen at once), and sealed (sensitive) resources are never kept; 0 turns it off"`
}

// FHIR configures the REST API's limits and defaults.
type FHIR struct {
	DefaultCount         int  `yaml:"default_count" doc:"page size of a search without _count"`
	MaxCount             int  `yaml:"max_count" doc:"largest page size a search may ask for with _count"`
	MaxJSONDepth         int  `yaml:"max_json_depth" doc:"deepest nesting accepted in a resource's JSON"`
	MaxBundleEntries     int  `yaml:"max_bundle_entries" doc:"most entries accepted in a batch or transaction Bundle"`
	LenientSearchDefault bool `yaml:"lenient_search_default" doc:"when a search has no Prefer: handling header, ignore unknown parameters (lenient) instead of rejecting the search (strict)"`
}

// Auth configures the SMART on FHIR authorization server and the checks
// of every request.
type Auth struct {
	AccessTokenLifetime    time.Duration `yaml:"access_lifetime" doc:"lifetime of access tokens unless a client is registered with a shorter one"`
	SensitiveScopes        []string      `yaml:"sensitive_scopes" doc:"scopes (e.g. patient/*.cruds) whose tokens get sensitive_lifetime instead"`
	SensitiveTokenLifetime time.Duration `yaml:"sensitive_lifetime" doc:"lifetime of access tokens that carry a sensitive scope"`
	RefreshTokenLifetime   time.Duration `yaml:"refresh_lifetime" doc:"lifetime of offline_access refresh tokens (each refresh rotates them)"`
	OnlineRefreshLifetime  time.Duration `yaml:"online_refresh_lifetime" doc:"lifetime of online_access refresh tokens"`
	SigningKeyRotation     time.Duration `yaml:"signer_rotation" doc:"age at which the token-signing keys are replaced (old keys stay published until their tokens expire)"`
	StepUp                 []string      `yaml:"step_up" doc:"actions that need a recent multi-factor login (RFC 9470): delete, everything, create, update"`
	StepUpMaxAge           time.Duration `yaml:"step_up_max_age" doc:"how recent the multi-factor login behind a step-up action must be"`
	Upstream               Upstream      `yaml:"upstream"`
	DPoPNonce              bool          `yaml:"dpop_nonce" doc:"require the server's current nonce in every DPoP proof (RFC 9449 §8), so that proofs cannot be made ahead of time; clients retry once per nonce change on use_dpop_nonce"`
	MTLSScopes             []string      `yaml:"mtls_scopes" doc:"scope prefixes (e.g. system/) whose tokens are issued only over mutual TLS and bound to the client certificate, whatever the client's registration"`
	SitePolicyDir          string        `yaml:"site_policy_dir" doc:"directory of Cedar (.cedar) site policy files deciding whose records practitioners and related persons reach; empty uses the built-in default (care relationship, related person, break-the-glass)"`
}

// Upstream configures sign-in through an upstream OpenID Connect provider
// (a hospital's identity provider), offered beside the local password
// login. Accounts are linked with 'warden users link'.
type Upstream struct {
	Issuer           string   `yaml:"issuer" doc:"issuer URL of the OpenID Connect provider; empty turns upstream sign-in off"`
	ClientID         string   `yaml:"client_id" doc:"Warden's client id at the provider"`
	ClientSecretFile string   `yaml:"client_secret_file" doc:"file holding Warden's client secret at the provider (empty for a public client with PKCE)"`
	Name             string   `yaml:"name" doc:"label of the sign-in button, e.g. Hospital SSO"`
	Scopes           []string `yaml:"scopes" doc:"scopes asked of the provider besides openid"`
	TrustMFA         bool     `yaml:"trust_mfa" doc:"count the provider's multi-factor login (amr mfa) as Warden's second factor for step-up"`
}

// Audit configures the audit trail: every request's AuditEvent, made
// durable in DATA_DIR/audit/journal before its response is released, and
// committed to the transparency log in DATA_DIR/audit/log.
type Audit struct {
	Disabled        bool   `yaml:"disabled" doc:"serve every request UNAUDITED (no AuditEvent, no log); only for measuring the audit trail's cost, never in production; each start logs an error while it is set"`
	IndexRate       int    `yaml:"index_rate" doc:"events per second at most that the background indexer adds to the searchable copy of the trail (AuditEvent search), so that load peaks do not also pay for indexing; a search of AuditEvents always catches up first; 0 is unbounded"`
	IndexMaxBacklog int    `yaml:"index_max_backlog" doc:"events at most that may wait to be indexed into the searchable copy under sustained load: beyond it the indexer ignores index_rate until half of them are indexed, so that load above the rate is paid for as it comes and an AuditEvent search never waits for more than this many events (about 10 s at SQLite's indexing speed); 0 is no bound"`
	IndexStore      string `yaml:"index_store" doc:"where the searchable copy of the trail lives: trail (its own log-structured index in DATA_DIR/audit/index, about half the CPU per event of the FHIR store), fhir (AuditEvent resources in the FHIR store), or auto: trail"`
	WitnessPolicy   string `yaml:"witness_policy" doc:"C2SP tlog-policy file naming the witnesses (warden witness) that must cosign each checkpoint before it is published; empty publishes checkpoints signed by Warden alone"`
}

// Consent configures the enforcement of patients' privacy consents.
type Consent struct {
	Default string `yaml:"default" doc:"where a patient's consents say nothing: opt-out (data flows to apps and users the scopes and site policy allow, as HIPAA permits for treatment, payment and operations) or opt-in (nothing of a patient flows to a client without a Consent permitting it; each patient's app approval is one)"`
}

// Limits configures the FHIR API's rate, cost, concurrency and
// distinct-patient limits (docs/LIMITS.md).
type Limits struct {
	Disabled          bool          `yaml:"disabled" doc:"serve without any limit; limits are on by default"`
	File              string        `yaml:"file" doc:"YAML file of the limits per class (patient-app, clinician-app, backend), per named client, per address and certificate, and the cost table (docs/LIMITS.md); empty uses the built-in defaults"`
	Store             string        `yaml:"store" doc:"where the counters live: memory (this process) or redis://HOST:PORT/DB (rediss:// for TLS), shared by every replica"`
	StorePasswordFile string        `yaml:"store_password_file" doc:"file holding the Redis password (never in the URL)"`
	StoreTimeout      time.Duration `yaml:"store_timeout" doc:"longest wait for the counters' store per request"`
	OnStoreError      string        `yaml:"on_store_error" doc:"closed: refuse requests (503) while the store is unreachable; open: serve them unlimited"`
}

// Sealing configures the field-level encryption of sensitive resources
// (docs/ENCRYPTION.md): resources labelled with a sealed category are
// stored encrypted and opened only for callers cleared for it.
type Sealing struct {
	Disabled         bool     `yaml:"disabled" doc:"store sensitive resources in clear; sealing is on by default"`
	Categories       []string `yaml:"categories" doc:"the sensitivity labels (HL7 v3 ActCode) whose resources are sealed; a token needs the scope sensitive/CODE (or sensitive/*) to open them"`
	Elements         []string `yaml:"elements" doc:"CATEGORY:element entries sealing only those top-level elements for a category (for example SEX:note); a category without entries seals the whole clinical content"`
	StepUp           []string `yaml:"step_up" doc:"categories that also need a multi-factor login within auth.step_up_max_age (or a break-the-glass reason)"`
	NoBreakGlass     []string `yaml:"no_break_glass" doc:"categories a break-the-glass reason does not open without their scope"`
	WithoutClearance string   `yaml:"without_clearance" doc:"what a caller without clearance gets: omit (as if the resource did not exist) or redact (id and meta only, labelled REDACTED)"`
	KEK              string   `yaml:"kek" doc:"the key-encryption key that wraps the category keys: keyring (the master keyring in DIR/keys), passphrase (a local key file protected by WARDEN_KEK_PASSPHRASE_FILE or WARDEN_KEK_PASSPHRASE) or vault (HashiCorp Vault Transit)"`
	KEKFile          string   `yaml:"kek_file" doc:"the passphrase-protected key file (kek: passphrase); empty means DIR/keys/kek.age, created on first start"`
	VaultAddress     string   `yaml:"vault_address" doc:"Vault's base URL (kek: vault)"`
	VaultMount       string   `yaml:"vault_mount" doc:"the Transit engine's mount path (kek: vault)"`
	VaultKey         string   `yaml:"vault_transit_name" doc:"the Transit key's name, type aes256-gcm96 (kek: vault)"`
	VaultTokenFile   string   `yaml:"vault_token_file" doc:"file holding the Vault token (kek: vault); never in the configuration itself"`
}

// Detect configures the inline abuse detection (docs/DETECTION.md):
// scraping, ID enumeration, error bursts, bulk-shaped queries, access
// without a care relationship, unusual hours, token replay, spoofed
// forwarding headers.
type Detect struct {
	Disabled          bool   `yaml:"disabled" doc:"serve without abuse detection; it is on by default"`
	File              string `yaml:"file" doc:"YAML policy file: signal weights and thresholds, the ladder from alert to step-up, throttle and quarantine (docs/DETECTION.md); empty uses the built-in defaults"`
	Timezone          string `yaml:"timezone" doc:"the site's IANA time zone, for learning each user's usual hours (UTC when empty)"`
	WebhookURL        string `yaml:"webhook_url" doc:"where alerts are POSTed as JSON (https, or http to a loopback address); empty sends none. Alerts also go to the audit trail and to Prometheus metrics"`
	WebhookSecretFile string `yaml:"webhook_secret_file" doc:"file holding the HMAC-SHA256 secret that signs webhook deliveries (X-Warden-Signature)"`
}

// Routes configures the API inventory (docs/INVENTORY.md): only
// declared routes and FHIR interactions are served.
type Routes struct {
	File string `yaml:"file" doc:"YAML file declaring the routes and FHIR interactions served, each with an owner and optional expiry, deprecation and sunset dates (warden routes prints them); empty declares everything Warden implements"`
}

// Log configures the operational log (never PHI).
type Log struct {
	Level  string `yaml:"level" doc:"least severe level written: debug, info, warn or error"`
	Format string `yaml:"format" doc:"json or text"`
}

// Default returns the configuration used where neither the file nor the
// environment says otherwise: loopback listeners, TLS 1.3, plain HTTP off,
// bounded timeouts and sizes, SQLite with full synchronous commits.
func Default() Config {
	return Config{
		DataDir: "warden-data",
		Server: Server{
			Addr:              "127.0.0.1:8443",
			TLS:               TLS{MinVersion: "1.3", ClientOCSPTimeout: 3 * time.Second},
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   20 * time.Second,
			MaxBodyBytes:      10 * MiB,
			MaxHeaderCount:    100,
			MaxURLBytes:       8 << 10,
			MaxQueryParams:    200,
		},
		Admin: Admin{Addr: "127.0.0.1:9464"},
		Store: Store{SQLiteSynchronous: "full", MaxConns: 16, ReadCacheMB: 64},
		FHIR: FHIR{
			DefaultCount:     20,
			MaxCount:         1000,
			MaxJSONDepth:     64,
			MaxBundleEntries: 1000,
		},
		Auth: Auth{
			AccessTokenLifetime:    5 * time.Minute,
			SensitiveTokenLifetime: 2 * time.Minute,
			RefreshTokenLifetime:   90 * 24 * time.Hour,
			OnlineRefreshLifetime:  12 * time.Hour,
			SigningKeyRotation:     30 * 24 * time.Hour,
			StepUp:                 []string{"delete", "everything"},
			StepUpMaxAge:           15 * time.Minute,
			DPoPNonce:              true,
		},
		Audit:   Audit{IndexRate: 1000, IndexMaxBacklog: 60_000, IndexStore: "auto"},
		Consent: Consent{Default: "opt-out"},
		Limits:  Limits{Store: "memory", StoreTimeout: 100 * time.Millisecond, OnStoreError: "closed"},
		Sealing: Sealing{Categories: []string{"ETH", "GDIS", "HIV", "PSY", "SDV", "SEX"}, WithoutClearance: "omit",
			KEK: "keyring", VaultMount: "transit"},
		Log: Log{Level: "info", Format: "json"},
	}
}
