package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Bounds of the numeric settings: wide enough for any real deployment,
// narrow enough that a slip of the keyboard (a timeout of 0, a body limit
// of 10 GiB) is caught before it becomes an outage or an attack surface.
const (
	maxTimeout       = time.Hour
	minBodyBytes     = KiB
	maxBodyBytes     = GiB
	maxConns         = 1000
	maxReadCacheMB   = 64 << 10 // 64 GB
	maxCount         = 10000
	minJSONDepth     = 8
	maxJSONDepth     = 1024
	maxBundleEntries = 100000
)

// Validate reports every setting whose value is unusable or unsafe, each
// as a *SettingError wrapping ErrInvalid, joined with errors.Join; nil when
// the configuration can be served. It depends on nothing but c.
func (c Config) Validate() error {
	var v validator
	v.nonEmpty("data_dir", c.DataDir)

	v.sealing(c.Sealing)
	for _, l := range []struct {
		key    string
		n, min int
	}{{"server.max_header_count", c.Server.MaxHeaderCount, 10}, {"server.max_url_bytes", c.Server.MaxURLBytes, 256}, {"server.max_query_params", c.Server.MaxQueryParams, 10}} {
		if l.n < l.min {
			v.fail(l.key, "%d: want at least %d", l.n, l.min)
		}
	}
	if c.Server.MaxProcs < 0 || c.Server.MaxProcs > 4096 {
		v.fail("server.max_procs", "%d: want 0 (automatic) to 4096", c.Server.MaxProcs)
	}
	if c.Detect.Timezone != "" {
		if _, err := time.LoadLocation(c.Detect.Timezone); err != nil {
			v.fail("detection.timezone", "%q: not an IANA time zone", c.Detect.Timezone)
		}
	}
	if u := c.Detect.WebhookURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://127.") && !strings.HasPrefix(u, "http://[::1]") && !strings.HasPrefix(u, "http://localhost") {
		v.fail("detection.webhook_url", "%q: want https://, or http:// to a loopback address", u)
	}
	switch c.Limits.OnStoreError {
	case "closed", "open":
	default:
		v.fail("limits.on_store_error", "%q: want closed or open", c.Limits.OnStoreError)
	}
	if c.Limits.Store != "memory" && !strings.HasPrefix(c.Limits.Store, "redis://") && !strings.HasPrefix(c.Limits.Store, "rediss://") {
		v.fail("limits.store", "%q: want memory, redis://… or rediss://…", c.Limits.Store)
	}
	if !c.Limits.Disabled {
		v.timeout("limits.store_timeout", c.Limits.StoreTimeout)
	}

	switch c.Consent.Default {
	case "opt-out", "opt-in":
	default:
		v.fail("consent.default", "%q: want opt-out or opt-in", c.Consent.Default)
	}

	s := c.Server
	serverHost, serverOK := v.addr("server.addr", s.Addr)
	if s.InsecureAllowHTTP {
		if serverOK && !isLoopback(serverHost) {
			v.fail("server.insecure_allow_http", "plain HTTP is only allowed when server.addr is a loopback address (127.0.0.1, ::1, localhost), not %q", s.Addr)
		}
		if s.TLS.CertFile != "" || s.TLS.KeyFile != "" {
			v.fail("server.insecure_allow_http", "contradicts server.tls.cert_file/key_file: choose TLS or plain HTTP")
		}
	}
	if s.BaseURL != "" {
		v.baseURL("server.base_url", s.BaseURL, s.InsecureAllowHTTP)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		v.fail("server.tls", "set both cert_file and key_file, or neither (for a development certificate)")
	}
	if s.TLS.ClientOCSP {
		v.timeout("server.tls.client_ocsp_timeout", s.TLS.ClientOCSPTimeout)
		if s.TLS.ClientCAFile == "" {
			v.fail("server.tls.client_ocsp", "needs server.tls.client_ca_file: OCSP is asked about certificates of trusted CAs")
		}
	}
	if s.TLS.ClientCertRoutesFile != "" && (s.TLS.ClientCAFile == "" || s.InsecureAllowHTTP) {
		v.fail("server.tls.client_cert_routes_file", "needs TLS and server.tls.client_ca_file: the routes accept CA-issued client certificates only")
	}
	switch s.TLS.MinVersion {
	case "1.2", "1.3":
	default:
		v.fail("server.tls.min_version", "%q: want 1.3 or 1.2", s.TLS.MinVersion)
	}
	v.timeout("server.read_header_timeout", s.ReadHeaderTimeout)
	v.timeout("server.read_timeout", s.ReadTimeout)
	v.timeout("server.write_timeout", s.WriteTimeout)
	v.timeout("server.idle_timeout", s.IdleTimeout)
	v.timeout("server.shutdown_timeout", s.ShutdownTimeout)
	if s.ReadHeaderTimeout > s.ReadTimeout {
		v.fail("server.read_header_timeout", "%v is longer than server.read_timeout (%v), which includes it", s.ReadHeaderTimeout, s.ReadTimeout)
	}
	if s.MaxBodyBytes < minBodyBytes || s.MaxBodyBytes > maxBodyBytes {
		v.fail("server.max_body_bytes", "%v: want between %v and %v", s.MaxBodyBytes, minBodyBytes, maxBodyBytes)
	}
	for i, p := range s.TrustedProxies {
		switch {
		case !p.IsValid():
			v.fail("server.trusted_proxies", "item %d is not a CIDR", i+1)
		case p.Bits() == 0:
			v.fail("server.trusted_proxies", "%v would trust every address to say who the client is", p)
		case p != p.Masked():
			v.fail("server.trusted_proxies", "%v has host bits set (did you mean %v?)", p, p.Masked())
		}
	}

	if c.Admin.Addr != "" {
		host, ok := v.addr("admin.addr", c.Admin.Addr)
		switch {
		case ok && c.Admin.Addr == s.Addr && !strings.HasSuffix(s.Addr, ":0"):
			v.fail("admin.addr", "%q is also server.addr", c.Admin.Addr)
		case ok && !isLoopback(host):
			// Plain HTTP, and it carries the admin API and its token.
			v.fail("admin.addr", "%q is not a loopback address: the admin listener speaks plain HTTP and serves the admin API; bind it to 127.0.0.1 or ::1 and reach it through SSH or a local proxy", c.Admin.Addr)
		}
	}

	v.storeURL("store.url", c.Store.URL)
	switch c.Store.SQLiteSynchronous {
	case "full", "normal":
	default:
		v.fail("store.sqlite_synchronous", "%q: want full or normal", c.Store.SQLiteSynchronous)
	}
	v.between("store.max_conns", c.Store.MaxConns, 1, maxConns)
	v.between("store.read_cache_mb", c.Store.ReadCacheMB, 0, maxReadCacheMB)

	f := c.FHIR
	v.between("fhir.max_count", f.MaxCount, 1, maxCount)
	v.between("fhir.default_count", f.DefaultCount, 1, max(f.MaxCount, 1))
	v.between("fhir.max_json_depth", f.MaxJSONDepth, minJSONDepth, maxJSONDepth)
	v.between("fhir.max_bundle_entries", f.MaxBundleEntries, 1, maxBundleEntries)

	a := c.Auth
	v.lifetime("auth.access_lifetime", a.AccessTokenLifetime, time.Hour)
	v.lifetime("auth.sensitive_lifetime", a.SensitiveTokenLifetime, a.AccessTokenLifetime)
	v.lifetime("auth.refresh_lifetime", a.RefreshTokenLifetime, 366*24*time.Hour)
	v.lifetime("auth.online_refresh_lifetime", a.OnlineRefreshLifetime, a.RefreshTokenLifetime)
	v.lifetime("auth.signer_rotation", a.SigningKeyRotation, 366*24*time.Hour)
	v.lifetime("auth.step_up_max_age", a.StepUpMaxAge, 24*time.Hour)
	for _, s := range a.StepUp {
		switch s {
		case "delete", "everything", "create", "update":
		default:
			v.fail("auth.step_up", "%q: want delete, everything, create or update", s)
		}
	}
	v.between("audit.index_rate", c.Audit.IndexRate, 0, 1_000_000)
	v.between("audit.index_max_backlog", c.Audit.IndexMaxBacklog, 0, 100_000_000)
	switch c.Audit.IndexStore {
	case "auto", "trail", "fhir":
	default:
		v.fail("audit.index_store", "%q: want auto, trail or fhir", c.Audit.IndexStore)
	}
	for _, s := range a.SensitiveScopes {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t") {
			v.fail("auth.sensitive_scopes", "%q is not one scope", s)
		}
	}

	if u := a.Upstream; u.Issuer != "" {
		v.baseURL("auth.upstream.issuer", u.Issuer, false)
		v.nonEmpty("auth.upstream.client_id", u.ClientID)
	} else if u.ClientID != "" || u.ClientSecretFile != "" {
		v.fail("auth.upstream.issuer", "must be set when auth.upstream.client_id or client_secret_file is")
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.fail("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		v.fail("log.format", "%q: want json or text", c.Log.Format)
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) fail(setting, format string, args ...any) {
	v.errs = append(v.errs, &SettingError{Setting: setting, Err: fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))})
}

func (v *validator) nonEmpty(setting, s string) {
	if strings.TrimSpace(s) == "" {
		v.fail(setting, "must not be empty")
	}
}

func (v *validator) between(setting string, n, lo, hi int) {
	if n < lo || n > hi {
		v.fail(setting, "%d: want between %d and %d", n, lo, hi)
	}
}

func (v *validator) timeout(setting string, d time.Duration) {
	if d <= 0 || d > maxTimeout {
		v.fail(setting, "%v: want more than 0s and at most %v", d, maxTimeout)
	}
}

// lifetime checks a token or key lifetime: positive and at most hi (SMART
// App Launch: access tokens SHOULD live no longer than an hour).
func (v *validator) lifetime(setting string, d, hi time.Duration) {
	if d <= 0 || d > hi {
		v.fail(setting, "%v: want more than 0s and at most %v", d, hi)
	}
}

// addr checks a listen address, host:port with a numeric port, and returns
// its host.
func (v *validator) addr(setting, addr string) (host string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(setting, "%q: want host:port, e.g. 127.0.0.1:8443", addr)
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
		v.fail(setting, "%q: the port must be a number from 0 to 65535", addr)
		return "", false
	}
	if host != "" && !isHostName(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			v.fail(setting, "%q: %q is neither an IP address nor a host name", addr, host)
			return "", false
		}
	}
	return host, true
}

// baseURL checks the FHIR base URL that clients are told.
func (v *validator) baseURL(setting, s string, insecureHTTP bool) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.fail(setting, "%q does not parse as a URL", s)
	case u.Scheme == "http" && !insecureHTTP:
		v.fail(setting, "%q: http is only allowed with server.insecure_allow_http", s)
	case u.Scheme != "https" && u.Scheme != "http":
		v.fail(setting, "%q: want an https:// URL", s)
	case u.Host == "" || u.Opaque != "":
		v.fail(setting, "%q: want an absolute URL with a host", s)
	case u.User != nil:
		v.fail(setting, "%q: must not contain user information", s)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.Contains(s, "#"):
		v.fail(setting, "%q: must not have a query or fragment", s)
	}
}

// storeURL checks the store location: empty, sqlite:PATH or a PostgreSQL
// URL without a password.
func (v *validator) storeURL(setting, s string) {
	switch {
	case s == "":
	case strings.HasPrefix(s, "sqlite:"):
		path := strings.TrimPrefix(s, "sqlite:")
		if path == "" || strings.HasPrefix(path, "//") {
			v.fail(setting, "%q: want sqlite:PATH, e.g. sqlite:/var/lib/warden/warden.db (leave store.url empty for DATA_DIR/warden.db)", s)
		}
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		u, err := url.Parse(s)
		if err != nil {
			// Not echoed: the text may hold a password.
			v.fail(setting, "the PostgreSQL URL does not parse")
			return
		}
		if _, has := u.User.Password(); has || u.Query().Has("password") {
			v.fail(setting, "must not contain a password: keep it in a file named by the passfile parameter (postgres://USER@HOST/DB?passfile=/run/secrets/pgpass)")
		}
	default:
		scheme, _, _ := strings.Cut(s, ":")
		v.fail(setting, "scheme %q: want sqlite:PATH, postgres:// or postgresql://", scheme)
	}
}

// isLoopback reports whether the listen host is reachable only from this
// machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// isHostName reports whether s is a syntactically valid DNS name.
func isHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	// An all-numeric name such as 300.1.1.1 is a mistyped address.
	return strings.Trim(s, "0123456789.") != ""
}

// sealing checks the field-level encryption settings.
func (v *validator) sealing(s Sealing) {
	if s.Disabled {
		return
	}
	known := map[string]bool{}
	for _, c := range s.Categories {
		if !sealingCategory.MatchString(c) {
			v.fail("sealing.categories", "%q: want a code of letters, digits, _ or - (at most 32)", c)
		}
		known[c] = true
	}
	for _, list := range []struct {
		key  string
		cats []string
	}{{"sealing.step_up", s.StepUp}, {"sealing.no_break_glass", s.NoBreakGlass}} {
		for _, c := range list.cats {
			if !known[c] {
				v.fail(list.key, "%q is not in sealing.categories", c)
			}
		}
	}
	for _, e := range s.Elements {
		cat, elem, ok := strings.Cut(e, ":")
		if !ok || !known[cat] || !sealingElement.MatchString(elem) || elem == "resourceType" || elem == "id" || elem == "meta" {
			v.fail("sealing.elements", "%q: want CATEGORY:element with a category of sealing.categories and a top-level element other than resourceType, id and meta", e)
		}
	}
	switch s.WithoutClearance {
	case "omit", "redact":
	default:
		v.fail("sealing.without_clearance", "%q: want omit or redact", s.WithoutClearance)
	}
	switch s.KEK {
	case "keyring", "passphrase":
	case "vault":
		if s.VaultAddress == "" || s.VaultKey == "" || s.VaultTokenFile == "" {
			v.fail("sealing.kek", "vault needs sealing.vault_address, sealing.vault_transit_name and sealing.vault_token_file")
		}
	default:
		v.fail("sealing.kek", "%q: want keyring, passphrase or vault", s.KEK)
	}
}

var (
	sealingCategory = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	sealingElement  = regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`)
)
