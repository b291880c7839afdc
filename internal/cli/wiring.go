package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/wardenfhir/warden/internal/adminapi"
	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/eventdb"
	"github.com/wardenfhir/warden/internal/audit/index"
	"github.com/wardenfhir/warden/internal/audithttp"
	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/coherence"
	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/consent"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/grants"
	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/limits"
	"github.com/wardenfhir/warden/internal/limits/redislimit"
	"github.com/wardenfhir/warden/internal/mtls"
	"github.com/wardenfhir/warden/internal/privacy"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/server"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/store/sqlstore"
)

func osEnviron() []string { return os.Environ() }

// defaultProcs is the runtime's own GOMAXPROCS (the CPUs this process may
// use, cgroup limits included), taken before anything changes it.
var defaultProcs = runtime.GOMAXPROCS(0)

// serveProcs is the GOMAXPROCS a serving process runs with: the
// configured server.max_procs, or twice the CPUs available when 0. A
// thread in a blocking system call keeps its processor until the runtime
// takes it back (20 µs or more later), and a serving process is often in
// one: the audit journal's fsync before each group of responses, the
// transparency log's file writes, SQLite's. With only one processor per
// CPU, each such call idles a CPU the rest of the requests are queued
// for; audited reads at concurrency 32 on two CPUs went from 39 % to 47 %
// of the unaudited rate with twice as many (docs/PERFORMANCE.md). An
// explicit GOMAXPROCS in the environment (envSet) is left as the runtime
// applied it: 0 is returned.
func serveProcs(configured, available int, envSet bool) int {
	switch {
	case envSet:
		return 0
	case configured > 0:
		return configured
	default:
		return 2 * max(available, 1)
	}
}

// setServeProcs applies serveProcs to this process and logs what is in
// force.
func setServeProcs(cfg config.Config, log *slog.Logger) {
	_, envSet := os.LookupEnv("GOMAXPROCS")
	if n := serveProcs(cfg.Server.MaxProcs, defaultProcs, envSet); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	log.Debug("go scheduler", "max_procs", runtime.GOMAXPROCS(0), "cpus", defaultProcs)
}

// newLogger builds the structured logger the configuration asks for.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch cfg.Log.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStore opens the configured store: SQLite in the data directory by
// default, PostgreSQL for postgres:// URLs.
func openStore(ctx context.Context, cfg config.Config) (database, error) {
	u := cfg.Store.URL
	switch {
	case isPostgres(u):
		return postgres.Open(ctx, u, postgres.Options{MaxConns: cfg.Store.MaxConns})
	case u == "" || strings.HasPrefix(u, "sqlite:"):
		path := sqliteFile(cfg)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		return sqlite.Open(ctx, path, sqlite.Options{Synchronous: cfg.Store.SQLiteSynchronous})
	}
	return nil, fmt.Errorf("unsupported store URL scheme (want sqlite:PATH or postgres://…)")
}

// cacheReads turns on a serving instance's read cache
// (store.read_cache_mb): short-lived commands have nothing to gain from
// it. Sealed resources are never kept (sealing.Unsealed).
func cacheReads(cfg config.Config, st database) {
	if c, ok := st.(interface {
		CacheReads(maxBytes int64, cacheable func([]byte) bool)
	}); ok {
		c.CacheReads(int64(cfg.Store.ReadCacheMB)<<20, sealing.Unsealed)
	}
}

// registerReadCache exposes the read cache's hits and misses on /metrics.
func registerReadCache(reg prometheus.Registerer, st database) error {
	c, ok := st.(interface {
		ReadCacheStats() sqlstore.ReadCacheStats
	})
	if !ok {
		return nil
	}
	hits := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "warden_store_read_cache_hits_total",
		Help: "Reads by id served from the read cache (store.read_cache_mb) after the database confirmed the cached version is current.",
	}, func() float64 { return float64(c.ReadCacheStats().Hits) })
	misses := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "warden_store_read_cache_misses_total",
		Help: "Reads by id that read the resource from the database: not cached, or cached in a version no longer current.",
	}, func() float64 { return float64(c.ReadCacheStats().Misses) })
	searchHits := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "warden_store_read_cache_search_hits_total",
		Help: "Search matches whose JSON came from the read cache, which held the version the search found.",
	}, func() float64 { return float64(c.ReadCacheStats().SearchHits) })
	searchMisses := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "warden_store_read_cache_search_misses_total",
		Help: "Search matches whose JSON was read from the database (and then kept, if cacheable).",
	}, func() float64 { return float64(c.ReadCacheStats().SearchMisses) })
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "warden_store_read_cache_bytes",
		Help: "Memory the read cache holds now (resources' JSON and bookkeeping), at most store.read_cache_mb.",
	}, func() float64 { return float64(c.ReadCacheStats().Bytes) })
	for _, m := range []prometheus.Collector{hits, misses, searchHits, searchMisses, size} {
		if err := reg.Register(m); err != nil {
			return err
		}
	}
	return nil
}

// oauthURIs are the authorization server's endpoints for base, as the
// authserver mounts them.
func oauthURIs(base string) fhirapi.OAuthURIs {
	e, err := authserver.EndpointsFor(base)
	if err != nil {
		return fhirapi.OAuthURIs{}
	}
	return fhirapi.OAuthURIs{Authorize: e.Authorize, Token: e.Token, Introspect: e.Introspect, Revoke: e.Revoke}
}

// ownIndex reports whether the searchable copy of the audit trail lives
// in its own index (audit.index_store) rather than in the FHIR store.
// auto is the own index, whatever the store: one audited instance owns a
// database's trail (claimTrail), so no replica searches events another
// indexed, and on PostgreSQL the own index also spares the database a
// write per event (audited reads 5,869 → 6,936 req/s, docs/PERFORMANCE.md).
func ownIndex(cfg config.Config) bool {
	return cfg.Audit.IndexStore != "fhir"
}

// sqliteFile is the SQLite database file of cfg, or "" when the store is
// not SQLite.
func sqliteFile(cfg config.Config) string {
	u := cfg.Store.URL
	if u != "" && !strings.HasPrefix(u, "sqlite:") {
		return ""
	}
	if path := strings.TrimPrefix(u, "sqlite:"); path != "" {
		return path
	}
	return filepath.Join(cfg.DataDir, "warden.db")
}

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// secretFile returns the contents of a key file in the data directory,
// creating it with n random bytes (mode 0600) on first use.
func secretFile(dir, name string, n int) ([]byte, error) {
	path := filepath.Join(dir, "keys", name)
	if b, err := os.ReadFile(path); err == nil {
		if len(b) < n {
			return nil, fmt.Errorf("key file %s is too short", path)
		}
		return b, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// adminTokenFile returns the admin API's token, DATA_DIR/keys/admin.token
// (64 hex characters, created on first use, mode 0600): whoever can read
// the data directory can administer the instance anyway.
func adminTokenFile(dir string) ([]byte, error) {
	raw, err := secretFile(dir, "admin.key", 32)
	if err != nil {
		return nil, err
	}
	tok := []byte(hex.EncodeToString(raw[:32]))
	path := filepath.Join(dir, "keys", "admin.token")
	if b, err := os.ReadFile(path); err == nil && string(b) == string(tok)+"\n" {
		return tok, nil
	}
	if err := os.WriteFile(path, append(tok, '\n'), 0o600); err != nil {
		return nil, err
	}
	return tok, nil
}

// instance is a wired Warden: store, API, authorization server and
// listeners.
type instance struct {
	cfg    config.Config
	store  database
	api    *fhirapi.API
	core   *authCore
	member *coherence.Member // this process's place among the processes sharing the database
	audit  *auditTrail
	tls    *mtls.Listener // nil with plain HTTP
	auth   *authserver.Server
	server *server.Server
	log    *slog.Logger
	caFile string // development CA, when one was created
	// limitsStore is the limits' Redis connection (nil in memory).
	limitsStore io.Closer
	// detectClose stops the detection's alert deliveries (nil: none).
	detectClose io.Closer
}

// baseURL is the FHIR base the server announces.
func baseURL(cfg config.Config, addr net.Addr) string {
	if cfg.Server.BaseURL != "" {
		return strings.TrimRight(cfg.Server.BaseURL, "/")
	}
	scheme := "https"
	if cfg.Server.InsecureAllowHTTP {
		scheme = "http"
	}
	return scheme + "://" + addr.String() + "/fhir"
}

// build wires an instance from cfg and binds its listeners.
func build(ctx context.Context, cfg config.Config, log *slog.Logger) (*instance, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	in := &instance{cfg: cfg, log: log}
	srvOpts := server.Options{
		Addr:              cfg.Server.Addr,
		InsecureAllowHTTP: cfg.Server.InsecureAllowHTTP,
		AdminAddr:         cfg.Admin.Addr,
		AdminPprof:        cfg.Admin.Pprof,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		ShutdownTimeout:   cfg.Server.ShutdownTimeout,
		MaxBodyBytes:      int64(cfg.Server.MaxBodyBytes),
		MaxHeaderCount:    cfg.Server.MaxHeaderCount,
		MaxURLBytes:       cfg.Server.MaxURLBytes,
		MaxQueryParams:    cfg.Server.MaxQueryParams,
		TrustedProxies:    cfg.Server.TrustedProxies,
		Logger:            log,
	}
	if !cfg.Server.InsecureAllowHTTP {
		certFile, keyFile := cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile
		if certFile == "" {
			host, _, err := net.SplitHostPort(cfg.Server.Addr)
			if err != nil {
				return nil, err
			}
			hosts := []string{"localhost", "127.0.0.1", "::1"}
			if host != "" && host != "localhost" && host != "127.0.0.1" && host != "::1" && host != "0.0.0.0" && host != "::" {
				hosts = append(hosts, host)
			}
			pki, err := mtls.EnsureDevPKI(filepath.Join(cfg.DataDir, "pki"), hosts, time.Now())
			if err != nil {
				return nil, err
			}
			certFile, keyFile, in.caFile = pki.CertFile, pki.KeyFile, pki.CAFile
		}
		var ocsp *mtls.OCSPChecker
		if t := cfg.Server.TLS; t.ClientOCSP {
			var err error
			if ocsp, err = mtls.NewOCSPChecker(mtls.OCSPOptions{ResponderURL: t.ClientOCSPResponder, FailOpen: t.ClientOCSPFailOpen,
				Timeout: t.ClientOCSPTimeout, Logger: log}); err != nil {
				return nil, fmt.Errorf("server.tls.client_ocsp: %w", err)
			}
		}
		listener, err := mtls.NewListener(mtls.ServerOptions{CertFile: certFile, KeyFile: keyFile,
			MinVersion: cfg.Server.TLS.MinVersion, ClientCAFile: cfg.Server.TLS.ClientCAFile, CRLFiles: cfg.Server.TLS.ClientCRLFiles,
			OCSP: ocsp, Logger: log})
		if err != nil {
			return nil, err
		}
		in.tls = listener
		srvOpts.TLS = listener.TLSConfig()
		if f := cfg.Server.TLS.ClientCertRoutesFile; f != "" {
			rules, err := loadRouteRules(f)
			if err != nil {
				return nil, err
			}
			// Checked now, so that a bad rule stops the start.
			if _, err := mtls.RequireClientCert(listener, rules, http.NotFoundHandler()); err != nil {
				return nil, fmt.Errorf("server.tls.client_cert_routes_file: %w", err)
			}
			srvOpts.Around = func(next http.Handler) http.Handler {
				g, _ := mtls.RequireClientCert(listener, rules, next)
				return g
			}
		}
	}
	// The API inventory stands outside everything else on the listener:
	// an undeclared route reaches nothing.
	var apiRef atomic.Pointer[fhirapi.API]
	var trailRef atomic.Pointer[audit.Sink]
	guard, err := routeGuard(cfg, &apiRef, &trailRef, log)
	if err != nil {
		return nil, err
	}
	inner := srvOpts.Around
	srvOpts.Around = func(next http.Handler) http.Handler {
		if inner != nil {
			next = inner(next)
		}
		return guard.Handler(next)
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	in.store = st
	srvOpts.Ready = st.Ping
	cacheReads(cfg, st)
	cursorKey, err := secretFile(cfg.DataDir, "cursor.key", 32)
	if err != nil {
		st.Close()
		return nil, err
	}
	// Bind first so that the base URL can name the real port.
	probe := server.New(srvOpts)
	if err := probe.Start(); err != nil {
		st.Close()
		return nil, err
	}
	base := baseURL(cfg, probe.Addr())
	fail := func(err error) (*instance, error) {
		probe.Close()
		if in.detectClose != nil {
			in.detectClose.Close()
		}
		if in.limitsStore != nil {
			in.limitsStore.Close()
		}
		if in.audit != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			in.audit.Close(cctx)
			cancel()
		}
		st.Close()
		return nil, err
	}
	core, err := openAuthCore(ctx, cfg, st, base)
	if err != nil {
		return fail(err)
	}
	in.core = core
	if in.member, err = core.joinCoherence(ctx, st, log); err != nil {
		return fail(err)
	}
	site, err := loadSitePolicy(cfg)
	if err != nil {
		return fail(fmt.Errorf("loading the site policy: %w", err))
	}
	var sink audit.Sink
	var freshen func(context.Context) error
	// The FHIR API's store: st, with AuditEvents from the trail's own
	// index when it has one.
	var apiStore store.Store = st
	if cfg.Audit.Disabled {
		log.Error("THE AUDIT TRAIL IS OFF (audit.disabled): requests are served unaudited; never run this in production")
	} else {
		trail, err := openAudit(ctx, cfg, st, core.keys, base, log)
		if err != nil {
			return fail(err)
		}
		in.audit, sink = trail, trail.pipeline
		trailRef.Store(&sink)
		if err := trail.registerMetrics(probe.Metrics()); err != nil {
			return fail(err)
		}
		// The log is public by design (its leaves are hiding
		// commitments): witnesses, monitors and auditors follow it here.
		probe.Handle(auditLogPrefix, http.StripPrefix(auditLogPrefix, trail.log.Handler()))
		// The searchable copy (AuditEvent search) is caught up before
		// every request that can return AuditEvents.
		opts := index.Options{Base: base, Rate: cfg.Audit.IndexRate, MaxBacklog: cfg.Audit.IndexMaxBacklog}
		var x *index.Indexer
		if ownIndex(cfg) {
			edb, err := eventdb.Open(filepath.Join(cfg.DataDir, "audit", "index"))
			if err != nil {
				return fail(fmt.Errorf("opening the audit trail's index: %w", err))
			}
			// The index keeps where the journal holds each event, not a
			// second copy.
			if err := edb.UseJournal(trail.journal.File()); err != nil {
				edb.Close()
				return fail(fmt.Errorf("opening the audit journal for the trail's index: %w", err))
			}
			trail.events = edb
			apiStore = eventdb.Route(st, edb)
			x, err = index.NewSink(trail.journal, edb, opts)
		} else {
			x, err = index.New(trail.journal, st, st, opts)
		}
		if err == nil {
			err = indexWithinJournal(ctx, x, trail.journal)
		}
		if err != nil {
			return fail(err)
		}
		trail.index = x
		freshen = func(ctx context.Context) error { _, err := x.CatchUp(ctx); return err }
	}
	// Patients' consents, loaded through the API as Warden itself,
	// compiled and cached until a Consent changes anywhere.
	var api *fhirapi.API
	def := consent.OptOut
	if cfg.Consent.Default == "opt-in" {
		def = consent.OptIn
	}
	consents, err := privacy.New(privacy.Options{Default: def,
		Load: privacy.LoadFrom(func(ctx context.Context, typ string, q url.Values) ([]store.Resource, error) {
			return api.SearchTrusted(ctx, typ, q)
		}),
		Publish: func(ctx context.Context) error {
			effective, err := in.member.Publish(ctx)
			if err == nil {
				audit.AnnotationsFrom(ctx).Effective(effective)
			}
			return err
		}})
	if err != nil {
		return fail(err)
	}
	core.consents.Store(consents)
	labeller, err := labels.New()
	if err != nil {
		return fail(err)
	}
	var sealKeys *fieldcrypt.Keys
	sealPolicy := sealingPolicy(cfg)
	if sealPolicy != nil {
		if sealKeys, err = sealingKeys(cfg, st, core.keys); err != nil {
			return fail(fmt.Errorf("opening the sealing keys: %w", err))
		}
		core.sealKeys.Store(sealKeys)
	}
	detector, release, detectClose, err := newDetector(cfg, probe.Metrics(), sink, st, log)
	if err != nil {
		return fail(err)
	}
	in.detectClose = detectClose
	limiter, limitsStore, err := newLimiter(cfg, log)
	if err != nil {
		return fail(err)
	}
	in.limitsStore = limitsStore
	api, err = fhirapi.New(apiStore, fhirapi.Options{
		Labeller:             labeller,
		Sealing:              sealPolicy,
		Keys:                 sealKeys,
		Limiter:              limiter,
		Detector:             detector,
		Spoofed:              server.ForwardedSpoofed,
		BaseURL:              base,
		CursorKey:            cursorKey,
		DefaultCount:         cfg.FHIR.DefaultCount,
		MaxCount:             cfg.FHIR.MaxCount,
		MaxBodyBytes:         int64(cfg.Server.MaxBodyBytes),
		MaxJSONDepth:         cfg.FHIR.MaxJSONDepth,
		MaxBundleEntries:     cfg.FHIR.MaxBundleEntries,
		LenientSearchDefault: cfg.FHIR.LenientSearchDefault,
		Version:              Version,
		Logger:               log,
		Verifier:             core.tokens,
		Origins:              &clientOrigins{reg: core.clients, log: log},
		Policy:               policyOptions(cfg),
		Site:                 site,
		Audit:                sink,
		BeforeAuditEventRead: freshen,
		DPoP:                 core.dpop,
		Origin:               originOf(base),
		OAuth:                oauthURIs(base),
		// The authorization server is built below, with the API.
		RevokeGrant: func(ctx context.Context, id string) error { return in.auth.RevokeGrant(ctx, id) },
		Consents:    consents,
	})
	if err != nil {
		return fail(err)
	}
	in.api = api
	apiRef.Store(api)
	if err := guard.Register(probe.Metrics()); err != nil {
		return fail(err)
	}
	if err := registerReadCache(probe.Metrics(), st); err != nil {
		return fail(err)
	}
	ledger := grants.New(api)
	var certs authserver.CertificateChecker
	if in.tls != nil {
		certs = in.tls
	}
	if in.auth, err = newAuthServer(ctx, cfg, st, core, api, base, certs, ledger); err != nil {
		return fail(err)
	}
	adminToken, err := adminTokenFile(cfg.DataDir)
	if err != nil {
		return fail(err)
	}
	admin, err := adminapi.New(core.clients, in.auth, adminToken, log)
	if err != nil {
		return fail(err)
	}
	admin.WithGrants(ledger)
	if detector != nil {
		admin.WithDetection(release)
	}
	if sealKeys != nil {
		admin.WithKeys(keyAdmin{keys: sealKeys, tenant: sealPolicy.Tenant, publish: core.publish})
	}
	probe.Handle(api.Prefix(), api)
	// The authorization server is metered per source address, on a
	// budget of its own (limits.auth_per_address), and watched by the
	// abuse detection as its addresses' traffic.
	authMux := http.NewServeMux()
	in.auth.Register(authMux)
	var authHandler http.Handler = authMux
	if detector != nil {
		authHandler = detectAuth(detector, authHandler)
	}
	if limiter != nil {
		authHandler = limits.AuthMiddleware(limiter, authHandler)
	}
	if sink == nil {
		probe.SetAdminAPI(admin)
	} else {
		// The authorization server and the admin API are audited like the
		// FHIR API: every request an event (refusals too), each response
		// held until its event is durable.
		probe.SetAdminAPI(audithttp.Handler(audithttp.Options{Sink: sink, Surface: audit.SurfaceAdmin,
			Action: adminapi.AuditAction, Logger: log}, admin))
		authHandler = audithttp.Handler(audithttp.Options{Sink: sink, Surface: audit.SurfaceAuth,
			Action: authserver.AuditAction, Logger: log}, authHandler)
	}
	for _, prefix := range authserver.RoutePrefixes(base) {
		probe.Mux().Handle(prefix, authHandler)
	}
	in.server = probe
	return in, nil
}

// reloadEvery is how often a server re-reads signing keys and
// revocations that another process (the admin commands, another replica)
// wrote to the shared database.
const reloadEvery = 2 * time.Second

// Serve serves until ctx ends, keeping the token service's view of keys
// and revocations fresh.
func (in *instance) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if in.audit != nil {
		go func() {
			if err := in.audit.Run(ctx); err != nil && ctx.Err() == nil {
				in.log.Error("audit sequencer stopped", "error", err.Error())
			}
		}()
	}
	// Another process revoked something: apply it before its call returns.
	go in.member.Run(ctx)
	go func() {
		t := time.NewTicker(reloadEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := in.core.tokens.Reload(ctx); err != nil && ctx.Err() == nil {
					in.log.Warn("reloading keys and revocations failed", "error", err.Error())
				}
			}
		}
	}()
	return in.server.Serve(ctx)
}

// Close stops the audit log and releases the store.
func (in *instance) Close() error {
	var errs []error
	// Queued detection alerts go to the audit trail before it closes.
	if in.detectClose != nil {
		errs = append(errs, in.detectClose.Close())
	}
	if in.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, in.audit.Close(ctx))
		cancel()
	}
	if in.limitsStore != nil {
		errs = append(errs, in.limitsStore.Close())
	}
	errs = append(errs, in.store.Close())
	return errors.Join(errs...)
}

// newLimiter builds the FHIR API's limits from the limits section: the
// classes and costs of limits.file over the built-in defaults, counted in
// this process or in Redis. Nil when limits.disabled (logged loudly).
func newLimiter(cfg config.Config, log *slog.Logger) (*limits.Limiter, io.Closer, error) {
	lc := cfg.Limits
	if lc.Disabled {
		log.Error("REQUEST LIMITS ARE OFF (limits.disabled): nothing stops a client from scraping; never run this in production")
		return nil, nil, nil
	}
	c := limits.Default()
	if lc.File != "" {
		b, err := os.ReadFile(lc.File)
		if err != nil {
			return nil, nil, fmt.Errorf("limits.file: %w", err)
		}
		if c, err = limits.ParseConfig(b); err != nil {
			return nil, nil, fmt.Errorf("limits.file %s: %w", lc.File, err)
		}
	}
	c.Store, c.StorePasswordFile, c.StoreTimeout, c.OnStoreError = lc.Store, lc.StorePasswordFile, lc.StoreTimeout, lc.OnStoreError
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	var st limits.Store = limits.NewMemoryStore()
	var closer io.Closer
	if c.Store != "memory" {
		rs, err := redislimit.Open(c.Store, redislimit.Options{Timeout: c.StoreTimeout, PasswordFile: c.StorePasswordFile})
		if err != nil {
			return nil, nil, fmt.Errorf("limits.store: %w", err)
		}
		st, closer = rs, rs
	}
	l, err := limits.New(c, st)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, nil, err
	}
	return l, closer, nil
}

// originOf is the scheme://host[:port] of the base URL: what DPoP proofs'
// htu must start with.
func originOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// loadRouteRules reads server.tls.client_cert_routes_file: a YAML list of
// mtls.RouteRule.
func loadRouteRules(path string) ([]mtls.RouteRule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("server.tls.client_cert_routes_file: %w", err)
	}
	var rules []mtls.RouteRule
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("server.tls.client_cert_routes_file %s: %w", path, err)
	}
	return rules, nil
}
