package config_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/config"
)

// writeConfig writes a configuration file and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warden.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultIsValid(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestDefaults(t *testing.T) {
	want := map[string]string{
		"data_dir":                           "warden-data",
		"server.addr":                        "127.0.0.1:8443",
		"server.base_url":                    "",
		"server.tls.cert_file":               "",
		"server.tls.key_file":                "",
		"server.tls.min_version":             "1.3",
		"server.tls.client_ocsp":             "false",
		"server.tls.client_ocsp_responder":   "",
		"server.tls.client_ocsp_fail_open":   "false",
		"server.tls.client_ocsp_timeout":     "3s",
		"server.tls.client_cert_routes_file": "",
		"server.tls.client_ca_file":          "",
		"server.tls.client_crl_files":        "",
		"server.insecure_allow_http":         "false",
		"server.read_header_timeout":         "5s",
		"server.read_timeout":                "30s",
		"server.write_timeout":               "1m0s",
		"server.idle_timeout":                "2m0s",
		"server.shutdown_timeout":            "20s",
		"server.max_body_bytes":              "10MiB",
		"server.max_header_count":            "100",
		"server.max_url_bytes":               "8192",
		"server.max_query_params":            "200",
		"server.max_procs":                   "0",
		"server.trusted_proxies":             "",
		"admin.addr":                         "127.0.0.1:9464",
		"admin.pprof":                        "false",
		"audit.disabled":                     "false",
		"audit.index_rate":                   "1000",
		"audit.index_max_backlog":            "60000",
		"audit.index_store":                  "auto",
		"audit.witness_policy":               "",
		"consent.default":                    "opt-out",
		"limits.disabled":                    "false",
		"limits.file":                        "",
		"limits.store":                       "memory",
		"limits.store_password_file":         "",
		"limits.store_timeout":               "100ms",
		"limits.on_store_error":              "closed",
		"inventory.file":                     "",
		"detection.disabled":                 "false",
		"detection.file":                     "",
		"detection.timezone":                 "",
		"detection.webhook_url":              "",
		"detection.webhook_secret_file":      "",
		"sealing.disabled":                   "false",
		"sealing.categories":                 "ETH,GDIS,HIV,PSY,SDV,SEX",
		"sealing.elements":                   "",
		"sealing.step_up":                    "",
		"sealing.no_break_glass":             "",
		"sealing.without_clearance":          "omit",
		"sealing.kek":                        "keyring",
		"sealing.kek_file":                   "",
		"sealing.vault_address":              "",
		"sealing.vault_mount":                "transit",
		"sealing.vault_transit_name":         "",
		"sealing.vault_token_file":           "",
		"store.url":                          "",
		"store.sqlite_synchronous":           "full",
		"store.max_conns":                    "16",
		"store.read_cache_mb":                "64",
		"fhir.default_count":                 "20",
		"fhir.max_count":                     "1000",
		"fhir.max_json_depth":                "64",
		"fhir.max_bundle_entries":            "1000",
		"fhir.lenient_search_default":        "false",
		"auth.access_lifetime":               "5m0s",
		"auth.sensitive_scopes":              "",
		"auth.sensitive_lifetime":            "2m0s",
		"auth.refresh_lifetime":              "2160h0m0s",
		"auth.online_refresh_lifetime":       "12h0m0s",
		"auth.signer_rotation":               "720h0m0s",
		"auth.step_up":                       "delete,everything",
		"auth.step_up_max_age":               "15m0s",
		"auth.site_policy_dir":               "",
		"auth.mtls_scopes":                   "",
		"auth.dpop_nonce":                    "true",
		"auth.upstream.issuer":               "",
		"auth.upstream.client_id":            "",
		"auth.upstream.client_secret_file":   "",
		"auth.upstream.name":                 "",
		"auth.upstream.scopes":               "",
		"auth.upstream.trust_mfa":            "false",
		"log.level":                          "info",
		"log.format":                         "json",
	}
	got := map[string]string{}
	for _, s := range config.Describe() {
		got[s.Path] = s.Default
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Describe defaults:\n got %v\nwant %v", got, want)
	}

	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Errorf("Load(\"\", nil) = %+v, want Default()", cfg)
	}
	cfg, err = config.Load(writeConfig(t, "# nothing but a comment\n"), nil)
	if err != nil || !reflect.DeepEqual(cfg, config.Default()) {
		t.Errorf("Load(comment-only file) = %+v, %v; want Default()", cfg, err)
	}
}

func TestDescribe(t *testing.T) {
	settings := config.Describe()
	env := make([]string, 0, len(settings))
	seen := map[string]bool{}
	for _, s := range settings {
		if want := "WARDEN_" + strings.ToUpper(strings.ReplaceAll(s.Path, ".", "_")); s.Env != want {
			t.Errorf("%s: Env = %s, want %s", s.Path, s.Env, want)
		}
		if seen[s.Env] {
			t.Errorf("%s: Env %s used twice", s.Path, s.Env)
		}
		seen[s.Env] = true
		if s.Doc == "" || s.Type == "" {
			t.Errorf("%s: Doc %q, Type %q: want both", s.Path, s.Doc, s.Type)
		}
		env = append(env, s.Env+"="+s.Default)
	}
	// Every default, written back through the environment, is the default.
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatalf("Load(defaults as environment) = %v", err)
	}
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Errorf("Load(defaults as environment) = %+v, want Default()", cfg)
	}
}

// TestSecretsOnlyAsFiles keeps secrets out of configuration values: a
// setting whose name speaks of a secret must be the path of a file.
func TestSecretsOnlyAsFiles(t *testing.T) {
	for _, s := range config.Describe() {
		name := s.Path[strings.LastIndex(s.Path, ".")+1:]
		for _, word := range []string{"key", "secret", "password", "passwd", "token", "credential", "private"} {
			if strings.Contains(name, word) && !strings.HasSuffix(name, "_file") {
				t.Errorf("%s looks like a secret: name it *_file and hold the path of a file", s.Path)
			}
		}
	}
}

func TestLoadFile(t *testing.T) {
	const full = `
data_dir: /var/lib/warden
server:
  addr: "0.0.0.0:443"
  base_url: https://fhir.example.org/r4
  tls:
    cert_file: /etc/warden/cert.pem
    key_file: /etc/warden/key.pem
    min_version: "1.2"
  read_header_timeout: 2s
  read_timeout: 1m
  write_timeout: 90s
  idle_timeout: 5m
  shutdown_timeout: 45s
  max_body_bytes: 4MiB
  trusted_proxies: [10.0.0.0/8, "fd00::/8"]
  max_procs: 6
admin:
  addr: ""
store:
  url: postgres://warden@db.internal/warden?sslmode=verify-full
  sqlite_synchronous: normal
  max_conns: 32
  read_cache_mb: 0
fhir:
  default_count: 50
  max_count: 500
  max_json_depth: 32
  max_bundle_entries: 200
  lenient_search_default: true
auth:
  access_lifetime: 3m
  sensitive_scopes: [patient/*.cruds]
  sensitive_lifetime: 1m
  refresh_lifetime: 720h
  online_refresh_lifetime: 8h
  signer_rotation: 168h
  step_up: [delete]
  step_up_max_age: 5m
consent:
  default: opt-in
log:
  level: debug
  format: text
`
	want := config.Config{
		DataDir: "/var/lib/warden",
		Server: config.Server{
			Addr:              "0.0.0.0:443",
			BaseURL:           "https://fhir.example.org/r4",
			TLS:               config.TLS{CertFile: "/etc/warden/cert.pem", KeyFile: "/etc/warden/key.pem", MinVersion: "1.2", ClientOCSPTimeout: 3 * time.Second},
			ReadHeaderTimeout: 2 * time.Second,
			ReadTimeout:       time.Minute,
			WriteTimeout:      90 * time.Second,
			IdleTimeout:       5 * time.Minute,
			ShutdownTimeout:   45 * time.Second,
			MaxBodyBytes:      4 * config.MiB,
			MaxHeaderCount:    100,
			MaxURLBytes:       8 << 10,
			MaxQueryParams:    200,
			TrustedProxies:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
			MaxProcs:          6,
		},
		Store: config.Store{URL: "postgres://warden@db.internal/warden?sslmode=verify-full", SQLiteSynchronous: "normal", MaxConns: 32, ReadCacheMB: 0},
		FHIR:  config.FHIR{DefaultCount: 50, MaxCount: 500, MaxJSONDepth: 32, MaxBundleEntries: 200, LenientSearchDefault: true},
		Auth: config.Auth{AccessTokenLifetime: 3 * time.Minute, SensitiveScopes: []string{"patient/*.cruds"}, SensitiveTokenLifetime: time.Minute,
			RefreshTokenLifetime: 720 * time.Hour, OnlineRefreshLifetime: 8 * time.Hour, SigningKeyRotation: 168 * time.Hour,
			StepUp: []string{"delete"}, StepUpMaxAge: 5 * time.Minute, DPoPNonce: true},
		Audit:   config.Audit{IndexRate: 1000, IndexMaxBacklog: 60_000, IndexStore: "auto"},
		Consent: config.Consent{Default: "opt-in"},
		Limits:  config.Limits{Store: "memory", StoreTimeout: 100 * time.Millisecond, OnStoreError: "closed"},
		Sealing: config.Sealing{Categories: []string{"ETH", "GDIS", "HIV", "PSY", "SDV", "SEX"}, WithoutClearance: "omit",
			KEK: "keyring", VaultMount: "transit"},
		Log: config.Log{Level: "debug", Format: "text"},
	}
	cfg, err := config.Load(writeConfig(t, full), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// A partial file changes what it names and nothing else.
	tests := []struct {
		name, yaml string
		check      func(*config.Config)
	}{
		{"one key", "server:\n  addr: 127.0.0.1:9000\n", func(c *config.Config) { c.Server.Addr = "127.0.0.1:9000" }},
		{"nested", "server:\n  tls:\n    min_version: \"1.2\"\n", func(c *config.Config) { c.Server.TLS.MinVersion = "1.2" }},
		{"empty section", "server:\n  # addr: x\nlog:\n  level: warn\n", func(c *config.Config) { c.Log.Level = "warn" }},
		{"size in bytes", "server:\n  max_body_bytes: 2048\n", func(c *config.Config) { c.Server.MaxBodyBytes = 2048 }},
		{"size in decimal unit", "server:\n  max_body_bytes: 3MB\n", func(c *config.Config) { c.Server.MaxBodyBytes = 3000000 }},
		{"empty list", "server:\n  trusted_proxies: []\n", func(*config.Config) {}},
		{"alias", "admin:\n  addr: &a 127.0.0.1:9999\nserver:\n  addr: *a\n", func(c *config.Config) {
			c.Admin.Addr, c.Server.Addr = "127.0.0.1:9999", "127.0.0.1:9999"
		}},
		{"explicit document", "---\nlog:\n  format: text\n...\n", func(c *config.Config) { c.Log.Format = "text" }},
		{"empty string disables admin", "admin:\n  addr: \"\"\n", func(c *config.Config) { c.Admin.Addr = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(writeConfig(t, tt.yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			want := config.Default()
			tt.check(&want)
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("got  %+v\nwant %+v", cfg, want)
			}
		})
	}
}

func TestLoadEnv(t *testing.T) {
	file := writeConfig(t, "server:\n  addr: 127.0.0.1:1111\n  read_timeout: 10s\nlog:\n  level: warn\n")
	tests := []struct {
		name  string
		path  string
		env   []string
		check func(*config.Config)
	}{
		{"env beats file", file, []string{"WARDEN_SERVER_ADDR=127.0.0.1:2222"}, func(c *config.Config) {
			c.Server.Addr, c.Server.ReadTimeout, c.Log.Level = "127.0.0.1:2222", 10*time.Second, "warn"
		}},
		{"file beats default", file, nil, func(c *config.Config) {
			c.Server.Addr, c.Server.ReadTimeout, c.Log.Level = "127.0.0.1:1111", 10*time.Second, "warn"
		}},
		{"last entry wins", "", []string{"WARDEN_LOG_LEVEL=debug", "WARDEN_LOG_LEVEL=error"}, func(c *config.Config) { c.Log.Level = "error" }},
		{"duration", "", []string{"WARDEN_SERVER_IDLE_TIMEOUT=90s"}, func(c *config.Config) { c.Server.IdleTimeout = 90 * time.Second }},
		{"size", "", []string{"WARDEN_SERVER_MAX_BODY_BYTES=512KiB"}, func(c *config.Config) { c.Server.MaxBodyBytes = 512 * config.KiB }},
		{"bool", "", []string{"WARDEN_FHIR_LENIENT_SEARCH_DEFAULT=true"}, func(c *config.Config) { c.FHIR.LenientSearchDefault = true }},
		{"int", "", []string{"WARDEN_STORE_MAX_CONNS=4"}, func(c *config.Config) { c.Store.MaxConns = 4 }},
		{"list", "", []string{"WARDEN_SERVER_TRUSTED_PROXIES=10.1.0.0/16, 192.168.0.0/24"}, func(c *config.Config) {
			c.Server.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.168.0.0/24")}
		}},
		{"empty value is the empty string", "", []string{"WARDEN_ADMIN_ADDR="}, func(c *config.Config) { c.Admin.Addr = "" }},
		{"nested", "", []string{"WARDEN_SERVER_TLS_MIN_VERSION=1.2"}, func(c *config.Config) { c.Server.TLS.MinVersion = "1.2" }},
		{"others ignored", "", []string{"HOME=/root", "WARDEN_TEST_POSTGRES=postgres://x", "warden_log_level=nonsense", "NOEQUALS", "WARDEN_PKI_PASSPHRASE=a secret, not a setting"}, func(*config.Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(tt.path, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			want := config.Default()
			tt.check(&want)
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("got  %+v\nwant %+v", cfg, want)
			}
		})
	}
}

// TestLoadErrors: each way a file or environment goes wrong names the
// setting (and the line) and wraps the sentinel it should.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string // written to a file when not empty
		env    []string
		is     error
		want   []string // substrings of the message
		prefix bool     // message starts with the file name
	}{
		{"unknown key", "log:\n  level: info\nserver:\n  adr: 127.0.0.1:1\n", nil, config.ErrUnknown,
			[]string{":4: server.adr: unknown setting (did you mean server.addr?)"}, true},
		{"unknown top-level key", "data_dir: x\nlogging:\n  level: info\n", nil, config.ErrUnknown,
			[]string{":2: logging: unknown setting"}, true},
		{"unknown key far from any", "server:\n  zzzzzzzz: 1\n", nil, config.ErrUnknown,
			[]string{":2: server.zzzzzzzz: unknown setting (keys of server: addr, base_url"}, true},
		{"key under a leaf", "server:\n  addr:\n    host: x\n", nil, config.ErrInvalid,
			[]string{":3: server.addr: invalid value: want a single value, not a mapping"}, true},
		{"section as a value", "server: 127.0.0.1:1\n", nil, config.ErrInvalid,
			[]string{":1: server: invalid value: want a mapping of settings"}, true},
		{"repeated key", "log:\n  level: info\n  level: debug\n", nil, config.ErrInvalid,
			[]string{":3: log.level: invalid value: set twice (first at line 2)"}, true},
		{"null leaf", "server:\n  addr:\n", nil, config.ErrInvalid,
			[]string{"server.addr: invalid value: no value"}, true},
		{"null list", "server:\n  trusted_proxies:\n", nil, config.ErrInvalid,
			[]string{"write [] for an empty list"}, true},
		{"merge key", "base: &b {addr: x}\n", nil, config.ErrUnknown, []string{"base: unknown setting"}, true},
		{"merge key in section", "server:\n  <<: {addr: x}\n", nil, config.ErrUnknown, []string{"merge keys"}, true},
		{"duration without unit", "server:\n  read_timeout: 30\n", nil, config.ErrInvalid,
			[]string{":2: server.read_timeout: invalid value: \"30\" is not a duration"}, true},
		{"bad size", "server:\n  max_body_bytes: 10 megabytes\n", nil, config.ErrInvalid,
			[]string{":2: server.max_body_bytes: invalid value"}, true},
		{"negative size", "server:\n  max_body_bytes: -1\n", nil, config.ErrInvalid, []string{"server.max_body_bytes"}, true},
		{"huge size", "server:\n  max_body_bytes: 9000000000GiB\n", nil, config.ErrInvalid, []string{"too large"}, true},
		{"bad int", "store:\n  max_conns: many\n", nil, config.ErrInvalid, []string{":2: store.max_conns"}, true},
		{"float int", "fhir:\n  max_count: 1.5\n", nil, config.ErrInvalid, []string{":2: fhir.max_count"}, true},
		{"bad bool", "server:\n  insecure_allow_http: sure\n", nil, config.ErrInvalid, []string{"not a boolean"}, true},
		{"scalar list", "server:\n  trusted_proxies: 10.0.0.0/8\n", nil, config.ErrInvalid, []string{"want a list"}, true},
		{"bad list item", "server:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.1\n", nil, config.ErrInvalid,
			[]string{":4: server.trusted_proxies: invalid value: list item 2"}, true},
		{"nested list item", "server:\n  trusted_proxies: [[10.0.0.0/8]]\n", nil, config.ErrInvalid, []string{"list item 1"}, true},
		{"second document", "log:\n  level: info\n---\nlog:\n  level: debug\n", nil, config.ErrInvalid, []string{"second YAML document"}, true},
		{"top-level list", "- a\n- b\n", nil, config.ErrInvalid, []string{"want a mapping of settings"}, true},
		{"every problem at once", "server:\n  adr: x\nlog:\n  levle: y\n", []string{"WARDEN_LOG_LEVLE=x"}, config.ErrUnknown,
			[]string{":2: server.adr", ":4: log.levle", "environment: WARDEN_LOG_LEVLE"}, true},

		{"unknown env", "", []string{"WARDEN_SERVER_ADR=127.0.0.1:1"}, config.ErrUnknown,
			[]string{"environment: WARDEN_SERVER_ADR: unknown setting (did you mean WARDEN_SERVER_ADDR?)"}, false},
		{"unknown env far from any", "", []string{"WARDEN_NOPE=1"}, config.ErrUnknown,
			[]string{"environment: WARDEN_NOPE: unknown setting"}, false},
		{"section env", "", []string{"WARDEN_SERVER=x"}, config.ErrUnknown, []string{"WARDEN_SERVER: unknown"}, false},
		{"bare prefix env", "", []string{"WARDEN_=x"}, config.ErrUnknown, []string{"WARDEN_: unknown"}, false},
		{"bad env duration", "", []string{"WARDEN_SERVER_READ_TIMEOUT=soon"}, config.ErrInvalid,
			[]string{"environment: WARDEN_SERVER_READ_TIMEOUT: invalid value: \"soon\" is not a duration"}, false},
		{"bad env bool", "", []string{"WARDEN_SERVER_INSECURE_ALLOW_HTTP=yes please"}, config.ErrInvalid, []string{"WARDEN_SERVER_INSECURE_ALLOW_HTTP"}, false},
		{"empty env int", "", []string{"WARDEN_FHIR_MAX_COUNT="}, config.ErrInvalid, []string{"WARDEN_FHIR_MAX_COUNT"}, false},
		{"empty env list item", "", []string{"WARDEN_SERVER_TRUSTED_PROXIES=10.0.0.0/8,,"}, config.ErrInvalid, []string{"list item 2 is empty"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.yaml != "" {
				path = writeConfig(t, tt.yaml)
			}
			cfg, err := config.Load(path, tt.env)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", cfg)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			var se *config.SettingError
			if !errors.As(err, &se) {
				t.Errorf("error %q holds no *SettingError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.prefix && !strings.HasPrefix(err.Error(), path+":") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
	big := writeConfig(t, "# "+strings.Repeat("x", 1<<20)+"\n")
	if _, err := config.Load(big, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversize file: %v", err)
	}
	bad := writeConfig(t, "server:\n  addr: [\n")
	if _, err := config.Load(bad, nil); err == nil || !strings.Contains(err.Error(), bad+": yaml:") {
		t.Errorf("syntax error: %v", err)
	}
}

// TestValidate lists the ways to get past each check, then the values it
// must let through.
func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*config.Config)
		setting string // "" when the configuration is valid
	}{
		// Plain HTTP anywhere but loopback.
		{"http on all interfaces", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, ":8080" }, "server.insecure_allow_http"},
		{"http on 0.0.0.0", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "0.0.0.0:8080" }, "server.insecure_allow_http"},
		{"http on ::", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "[::]:8080" }, "server.insecure_allow_http"},
		{"http on a LAN address", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "192.168.1.10:8080" }, "server.insecure_allow_http"},
		{"http on a host name", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "fhir.example.org:80" }, "server.insecure_allow_http"},
		{"http on a name that starts like loopback", func(c *config.Config) {
			c.Server.InsecureAllowHTTP, c.Server.Addr = true, "localhost.example.org:80"
		}, "server.insecure_allow_http"},
		{"http with a certificate", func(c *config.Config) {
			c.Server.InsecureAllowHTTP, c.Server.TLS.CertFile, c.Server.TLS.KeyFile = true, "c.pem", "k.pem"
		}, "server.insecure_allow_http"},
		{"http base URL without insecure_allow_http", func(c *config.Config) { c.Server.BaseURL = "http://127.0.0.1:8443/fhir" }, "server.base_url"},

		// OCSP and per-route client certificates need a client CA.
		{"ocsp without a client CA", func(c *config.Config) { c.Server.TLS.ClientOCSP = true }, "server.tls.client_ocsp"},
		{"ocsp with a client CA", func(c *config.Config) { c.Server.TLS.ClientOCSP, c.Server.TLS.ClientCAFile = true, "ca.pem" }, ""},
		{"ocsp with no timeout", func(c *config.Config) {
			c.Server.TLS.ClientOCSP, c.Server.TLS.ClientCAFile, c.Server.TLS.ClientOCSPTimeout = true, "ca.pem", 0
		}, "server.tls.client_ocsp_timeout"},
		{"routes without a client CA", func(c *config.Config) { c.Server.TLS.ClientCertRoutesFile = "routes.yaml" }, "server.tls.client_cert_routes_file"},

		// Limits.
		{"limits store unknown", func(c *config.Config) { c.Limits.Store = "memcached://x" }, "limits.store"},
		{"limits store redis", func(c *config.Config) { c.Limits.Store = "redis://127.0.0.1:6379/0" }, ""},
		// Sealing.
		{"sealing category malformed", func(c *config.Config) { c.Sealing.Categories = []string{"H/IV"} }, "sealing.categories"},
		{"sealing step-up unknown category", func(c *config.Config) { c.Sealing.StepUp = []string{"XYZ"} }, "sealing.step_up"},
		{"sealing no-break-glass unknown category", func(c *config.Config) { c.Sealing.NoBreakGlass = []string{"XYZ"} }, "sealing.no_break_glass"},
		{"sealing element without category", func(c *config.Config) { c.Sealing.Elements = []string{"note"} }, "sealing.elements"},
		{"sealing element meta", func(c *config.Config) { c.Sealing.Elements = []string{"HIV:meta"} }, "sealing.elements"},
		{"sealing element ok", func(c *config.Config) { c.Sealing.Elements = []string{"SEX:note"} }, ""},
		{"sealing without clearance unknown", func(c *config.Config) { c.Sealing.WithoutClearance = "show" }, "sealing.without_clearance"},
		{"sealing kek unknown", func(c *config.Config) { c.Sealing.KEK = "hsm" }, "sealing.kek"},
		{"sealing vault incomplete", func(c *config.Config) { c.Sealing.KEK = "vault"; c.Sealing.VaultAddress = "https://v:8200" }, "sealing.kek"},
		{"detection timezone unknown", func(c *config.Config) { c.Detect.Timezone = "Mars/Olympus" }, "detection.timezone"},
		{"detection timezone ok", func(c *config.Config) { c.Detect.Timezone = "America/Chicago" }, ""},
		{"detection webhook plain http", func(c *config.Config) { c.Detect.WebhookURL = "http://siem.example/hook" }, "detection.webhook_url"},
		{"detection webhook loopback", func(c *config.Config) { c.Detect.WebhookURL = "http://127.0.0.1:9000/hook" }, ""},
		{"header count too low", func(c *config.Config) { c.Server.MaxHeaderCount = 3 }, "server.max_header_count"},
		{"url bytes too low", func(c *config.Config) { c.Server.MaxURLBytes = 10 }, "server.max_url_bytes"},
		{"sealing disabled skips checks", func(c *config.Config) { c.Sealing.Disabled = true; c.Sealing.KEK = "hsm" }, ""},
		{"limits fail mode", func(c *config.Config) { c.Limits.OnStoreError = "maybe" }, "limits.on_store_error"},

		// Consent default: exactly one of two words.
		{"consent default misspelt", func(c *config.Config) { c.Consent.Default = "optout" }, "consent.default"},
		{"consent default empty", func(c *config.Config) { c.Consent.Default = "" }, "consent.default"},
		{"consent default opt-in", func(c *config.Config) { c.Consent.Default = "opt-in" }, ""},
		{"audit index store misspelt", func(c *config.Config) { c.Audit.IndexStore = "pebble" }, "audit.index_store"},
		{"audit index store fhir", func(c *config.Config) { c.Audit.IndexStore = "fhir" }, ""},

		// Addresses.
		{"addr without port", func(c *config.Config) { c.Server.Addr = "127.0.0.1" }, "server.addr"},
		{"addr with named port", func(c *config.Config) { c.Server.Addr = "127.0.0.1:https" }, "server.addr"},
		{"addr with port out of range", func(c *config.Config) { c.Server.Addr = "127.0.0.1:70000" }, "server.addr"},
		{"addr with signed port", func(c *config.Config) { c.Server.Addr = "127.0.0.1:+80" }, "server.addr"},
		{"addr with bad host", func(c *config.Config) { c.Server.Addr = "300.1.1.1:80" }, "server.addr"},
		{"addr with spaces", func(c *config.Config) { c.Server.Addr = "my host:80" }, "server.addr"},
		{"admin addr bad", func(c *config.Config) { c.Admin.Addr = "9464" }, "admin.addr"},
		{"admin on the server's addr", func(c *config.Config) { c.Admin.Addr = c.Server.Addr }, "admin.addr"},

		// Base URL.
		{"base URL relative", func(c *config.Config) { c.Server.BaseURL = "/fhir" }, "server.base_url"},
		{"base URL other scheme", func(c *config.Config) { c.Server.BaseURL = "ftp://x/fhir" }, "server.base_url"},
		{"base URL with user", func(c *config.Config) { c.Server.BaseURL = "https://u:p@x/fhir" }, "server.base_url"},
		{"base URL with query", func(c *config.Config) { c.Server.BaseURL = "https://x/fhir?a=b" }, "server.base_url"},
		{"base URL with fragment", func(c *config.Config) { c.Server.BaseURL = "https://x/fhir#top" }, "server.base_url"},
		{"base URL unparsable", func(c *config.Config) { c.Server.BaseURL = "https://x/%zz" }, "server.base_url"},

		// TLS.
		{"TLS 1.1", func(c *config.Config) { c.Server.TLS.MinVersion = "1.1" }, "server.tls.min_version"},
		{"TLS empty version", func(c *config.Config) { c.Server.TLS.MinVersion = "" }, "server.tls.min_version"},
		{"cert without key", func(c *config.Config) { c.Server.TLS.CertFile = "c.pem" }, "server.tls"},
		{"key without cert", func(c *config.Config) { c.Server.TLS.KeyFile = "k.pem" }, "server.tls"},

		// Limits.
		{"zero timeout", func(c *config.Config) { c.Server.ReadTimeout = 0 }, "server.read_timeout"},
		{"negative timeout", func(c *config.Config) { c.Server.WriteTimeout = -time.Second }, "server.write_timeout"},
		{"day-long timeout", func(c *config.Config) { c.Server.IdleTimeout = 24 * time.Hour }, "server.idle_timeout"},
		{"zero shutdown", func(c *config.Config) { c.Server.ShutdownTimeout = 0 }, "server.shutdown_timeout"},
		{"header timeout beyond read timeout", func(c *config.Config) { c.Server.ReadHeaderTimeout = time.Minute }, "server.read_header_timeout"},
		{"tiny body", func(c *config.Config) { c.Server.MaxBodyBytes = 10 }, "server.max_body_bytes"},
		{"huge body", func(c *config.Config) { c.Server.MaxBodyBytes = 10 * config.GiB }, "server.max_body_bytes"},
		{"zero conns", func(c *config.Config) { c.Store.MaxConns = 0 }, "store.max_conns"},
		{"zero count", func(c *config.Config) { c.FHIR.DefaultCount = 0 }, "fhir.default_count"},
		{"default above max count", func(c *config.Config) { c.FHIR.DefaultCount = 2000 }, "fhir.default_count"},
		{"negative max count", func(c *config.Config) { c.FHIR.MaxCount = -1 }, "fhir.max_count"},
		{"shallow JSON", func(c *config.Config) { c.FHIR.MaxJSONDepth = 2 }, "fhir.max_json_depth"},
		{"deep JSON", func(c *config.Config) { c.FHIR.MaxJSONDepth = 100000 }, "fhir.max_json_depth"},
		{"zero bundle", func(c *config.Config) { c.FHIR.MaxBundleEntries = 0 }, "fhir.max_bundle_entries"},

		// Proxies.
		{"trust everyone v4", func(c *config.Config) { c.Server.TrustedProxies = prefixes("0.0.0.0/0") }, "server.trusted_proxies"},
		{"trust everyone v6", func(c *config.Config) { c.Server.TrustedProxies = prefixes("::/0") }, "server.trusted_proxies"},
		{"host bits set", func(c *config.Config) { c.Server.TrustedProxies = prefixes("10.0.0.1/8") }, "server.trusted_proxies"},
		{"invalid prefix", func(c *config.Config) { c.Server.TrustedProxies = []netip.Prefix{{}} }, "server.trusted_proxies"},
		{"negative procs", func(c *config.Config) { c.Server.MaxProcs = -1 }, "server.max_procs"},
		{"absurd procs", func(c *config.Config) { c.Server.MaxProcs = 5000 }, "server.max_procs"},

		// Store.
		{"password in store URL", func(c *config.Config) { c.Store.URL = "postgres://warden:hunter2@db/warden" }, "store.url"},
		{"password parameter in store URL", func(c *config.Config) { c.Store.URL = "postgresql://warden@db/warden?password=hunter2" }, "store.url"},
		{"unparsable postgres URL", func(c *config.Config) { c.Store.URL = "postgres://warden:hunter2@db:port/%zz" }, "store.url"},
		{"unknown store scheme", func(c *config.Config) { c.Store.URL = "mysql://db/warden" }, "store.url"},
		{"bare path", func(c *config.Config) { c.Store.URL = "/var/lib/warden.db" }, "store.url"},
		{"sqlite without path", func(c *config.Config) { c.Store.URL = "sqlite:" }, "store.url"},
		{"sqlite as a URL", func(c *config.Config) { c.Store.URL = "sqlite://warden.db" }, "store.url"},
		{"sqlite synchronous off", func(c *config.Config) { c.Store.SQLiteSynchronous = "off" }, "store.sqlite_synchronous"},
		{"negative read cache", func(c *config.Config) { c.Store.ReadCacheMB = -1 }, "store.read_cache_mb"},
		{"read cache past the limit", func(c *config.Config) { c.Store.ReadCacheMB = 1 << 20 }, "store.read_cache_mb"},

		// The rest.
		{"empty data dir", func(c *config.Config) { c.DataDir = " " }, "data_dir"},
		{"log level", func(c *config.Config) { c.Log.Level = "trace" }, "log.level"},
		{"log format", func(c *config.Config) { c.Log.Format = "xml" }, "log.format"},

		// What must pass.
		{"http on 127.0.0.1", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "127.0.0.1:8080" }, ""},
		{"http on 127.0.0.2", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "127.0.0.2:8080" }, ""},
		{"http on ::1", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "[::1]:8080" }, ""},
		{"http on localhost", func(c *config.Config) { c.Server.InsecureAllowHTTP, c.Server.Addr = true, "localhost:8080" }, ""},
		{"http base URL with insecure_allow_http", func(c *config.Config) {
			c.Server.InsecureAllowHTTP, c.Server.BaseURL = true, "http://127.0.0.1:8080/fhir"
		}, ""},
		{"TLS on all interfaces", func(c *config.Config) { c.Server.Addr = ":443" }, ""},
		{"host name", func(c *config.Config) { c.Server.Addr = "fhir.example.org:443" }, ""},
		{"ephemeral ports", func(c *config.Config) { c.Server.Addr, c.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"admin disabled", func(c *config.Config) { c.Admin.Addr = "" }, ""},
		{"TLS 1.2", func(c *config.Config) { c.Server.TLS.MinVersion = "1.2" }, ""},
		{"certificate", func(c *config.Config) { c.Server.TLS.CertFile, c.Server.TLS.KeyFile = "c.pem", "k.pem" }, ""},
		{"https base URL", func(c *config.Config) { c.Server.BaseURL = "https://fhir.example.org/r4" }, ""},
		{"proxies", func(c *config.Config) { c.Server.TrustedProxies = prefixes("10.0.0.0/8", "2001:db8::/32") }, ""},
		{"sqlite path", func(c *config.Config) { c.Store.URL = "sqlite:/var/lib/warden/warden.db" }, ""},
		{"postgres", func(c *config.Config) { c.Store.URL = "postgres://warden@db/warden?sslmode=verify-full" }, ""},
		{"postgres passfile", func(c *config.Config) { c.Store.URL = "postgresql://warden@db/warden?passfile=/run/secrets/pgpass" }, ""},
		{"postgres socket", func(c *config.Config) { c.Store.URL = "postgres:///warden" }, ""},
		{"sqlite normal", func(c *config.Config) { c.Store.SQLiteSynchronous = "normal" }, ""},
		{"bounds", func(c *config.Config) {
			c.FHIR.DefaultCount, c.FHIR.MaxCount, c.FHIR.MaxJSONDepth = 1, 1, 8
			c.Server.MaxBodyBytes, c.Server.ReadHeaderTimeout, c.Server.ReadTimeout = config.KiB, time.Hour, time.Hour
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.setting == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error about %s", tt.setting)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			var se *config.SettingError
			if !errors.As(err, &se) || se.Setting != tt.setting {
				t.Errorf("error %q: want a *SettingError about %s", err, tt.setting)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want config.ByteSize
		text string
	}{
		{"0", 0, "0"},
		{"1500", 1500, "1500"},
		{"1024", config.KiB, "1KiB"},
		{"10MiB", 10 * config.MiB, "10MiB"},
		{" 10 MiB ", 10 * config.MiB, "10MiB"},
		{"2GiB", 2 * config.GiB, "2GiB"},
		{"3kB", 3000, "3000"},
		{"3KB", 3000, "3000"},
		{"5B", 5, "5"},
		{"1536KiB", 1536 * config.KiB, "1536KiB"},
	} {
		var s config.ByteSize
		if err := s.UnmarshalText([]byte(tt.in)); err != nil || s != tt.want {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", tt.in, s, err, tt.want)
		}
		if got := s.String(); got != tt.text {
			t.Errorf("%d.String() = %q, want %q", s, got, tt.text)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "+1", "1.5MiB", "10 mb", "1e6", "0x10", "9223372036854775807KiB", "99999999999999999999"} {
		var s config.ByteSize
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = %d, want an error", bad, s)
		}
	}
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestAuthSettingsRefused(t *testing.T) {
	for _, c := range []struct {
		name    string
		mutate  func(*config.Config)
		setting string
	}{
		{"access tokens for a day", func(c *config.Config) { c.Auth.AccessTokenLifetime = 24 * time.Hour }, "auth.access_lifetime"},
		{"zero lifetime", func(c *config.Config) { c.Auth.AccessTokenLifetime = 0 }, "auth.access_lifetime"},
		{"sensitive longer than normal", func(c *config.Config) { c.Auth.SensitiveTokenLifetime = time.Hour }, "auth.sensitive_lifetime"},
		{"unknown step-up action", func(c *config.Config) { c.Auth.StepUp = []string{"read"} }, "auth.step_up"},
		{"two scopes in one item", func(c *config.Config) { c.Auth.SensitiveScopes = []string{"patient/*.cruds user/*.cruds"} }, "auth.sensitive_scopes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			c.mutate(&cfg)
			err := cfg.Validate()
			var se *config.SettingError
			if !errors.As(err, &se) || se.Setting != c.setting {
				t.Errorf("Validate() = %v, want an error about %s", err, c.setting)
			}
		})
	}
}

func TestUpstreamSettings(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.Upstream.ClientID = "warden"
	var se *config.SettingError
	if err := cfg.Validate(); !errors.As(err, &se) || se.Setting != "auth.upstream.issuer" {
		t.Errorf("client id without issuer: %v", err)
	}
	cfg.Auth.Upstream = config.Upstream{Issuer: "http://idp.example", ClientID: "warden"}
	if err := cfg.Validate(); !errors.As(err, &se) || se.Setting != "auth.upstream.issuer" {
		t.Errorf("plain-HTTP issuer: %v", err)
	}
	cfg.Auth.Upstream = config.Upstream{Issuer: "https://idp.example", ClientID: "warden"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("good upstream: %v", err)
	}
}

func TestAdminListenerStaysOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464", ":9464"} {
		cfg := config.Default()
		cfg.Admin.Addr = addr
		var se *config.SettingError
		if err := cfg.Validate(); !errors.As(err, &se) || se.Setting != "admin.addr" {
			t.Errorf("admin.addr %s: %v, want refused", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:9464", "[::1]:9464", "localhost:9464", ""} {
		cfg := config.Default()
		cfg.Admin.Addr = addr
		if err := cfg.Validate(); err != nil {
			t.Errorf("admin.addr %q: %v", addr, err)
		}
	}
}
