package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/coherence"
	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/privacy"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/tokens"
	"github.com/wardenfhir/warden/internal/web"
)

// database is what the configured store offers: resources and records.
type database interface {
	store.Store
	store.Records
}

// authCore is what both the server and the admin commands need: the
// master keyring, the token service and the directories of users and
// clients.
type authCore struct {
	bus *postgres.Bus // notices between replicas; nil on SQLite
	// member keeps this process's revocation state coherent with the
	// database (package coherence); set by a serving instance
	// (joinCoherence), nil in admin commands, which publish their
	// changes without being members.
	member atomic.Pointer[coherence.Member]
	// consents caches patients' compiled consents; a coherence round
	// forgets them when any process changed a Consent.
	consents atomic.Pointer[privacy.Enforcer]
	// sealKeys are the field-encryption keys; a coherence round drops
	// the unwrapped ones another process may have rotated or shredded.
	sealKeys atomic.Pointer[fieldcrypt.Keys]
	// publish returns once every serving process applied a change to
	// revocations or keys (coherence), noting when in the request's
	// audit event.
	publish func(ctx context.Context) error
	keys    *keyring.Keyring
	tokens  *tokens.Service
	users   *identity.Directory
	clients *authserver.Registry
	// dpop checks DPoP proofs at the token endpoint and the FHIR API;
	// its memory of used proofs is this process's on SQLite, the shared
	// store's on PostgreSQL (every replica refuses a replay).
	dpop *dpop.Verifier
}

// openAuthCore opens the keyring in DATA_DIR/keys and the token service
// over db. issuer is the FHIR base URL.
func openAuthCore(ctx context.Context, cfg config.Config, db database, issuer string) (*authCore, error) {
	core := &authCore{}
	var notifier coherence.Notifier
	if isPostgres(cfg.Store.URL) {
		core.bus = postgres.NewBus(cfg.Store.URL)
		notifier = core.bus.Channel(coherenceChannel)
	}
	bus := core.bus
	// A revocation returns once every serving process applies it; the
	// time it took effect goes to the revoking request's audit event.
	changed := func(ctx context.Context) error {
		var effective time.Time
		var err error
		if m := core.member.Load(); m != nil {
			effective, err = m.Publish(ctx)
		} else {
			effective, err = coherence.Publish(ctx, db, notifier, coherence.DefaultLease)
		}
		if err == nil {
			audit.AnnotationsFrom(ctx).Effective(effective)
		}
		return err
	}
	core.publish = changed
	fresh := func(ctx context.Context) error {
		if m := core.member.Load(); m != nil {
			return m.Fresh(ctx)
		}
		return nil
	}
	keys, err := keyring.Open(filepath.Join(cfg.DataDir, "keys"))
	if err != nil {
		return nil, fmt.Errorf("opening the keyring: %w", err)
	}
	ts, err := tokens.New(ctx, tokens.Options{
		Issuer:      issuer,
		Audience:    issuer,
		Records:     db,
		Sealer:      keys,
		RotateEvery: cfg.Auth.SigningKeyRotation,
		MaxLifetime: max(cfg.Auth.AccessTokenLifetime, time.Hour),
		Changed:     changed,
		Fresh:       fresh,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the token service: %w", err)
	}
	var nonces *dpop.Nonces
	if cfg.Auth.DPoPNonce {
		key, err := secretFile(cfg.DataDir, "dpop-nonce.key", 32)
		if bus != nil {
			// Replicas must issue and accept the same nonces, or a client
			// balanced between two of them is told use_dpop_nonce forever.
			key, err = sharedSecret(ctx, db, "dpop-nonce", 32)
		}
		if err != nil {
			return nil, err
		}
		if nonces, err = dpop.NewNonces(key[:32], 0); err != nil {
			return nil, err
		}
	}
	opts := dpop.Options{Nonces: nonces}
	if bus != nil {
		// Replicas share PostgreSQL: a proof used at one is refused at all.
		opts.Replays = dpop.NewStoreReplayCache(db)
	}
	dv, err := dpop.New(opts)
	if err != nil {
		return nil, err
	}
	core.dpop, core.keys, core.tokens = dv, keys, ts
	core.users = identity.NewDirectory(db, keys, identity.Options{Issuer: "Warden"})
	core.clients = authserver.NewRegistry(db, ts, time.Now)
	return core, nil
}

// coherenceChannel is the LISTEN/NOTIFY channel of coherence notices
// (revocations, disabled clients).
const coherenceChannel = "warden_coherence"

// joinCoherence makes this serving process a coherence member: from now
// on every token verification first confirms the revocation state is
// current, and every revocation waits for the other processes.
func (c *authCore) joinCoherence(ctx context.Context, db database, log *slog.Logger) (*coherence.Member, error) {
	var n coherence.Notifier
	if c.bus != nil {
		n = c.bus.Channel(coherenceChannel)
	}
	var logged atomic.Bool
	reload := func(ctx context.Context) error {
		if err := c.tokens.Reload(ctx); err != nil {
			return err
		}
		if k := c.sealKeys.Load(); k != nil {
			k.Invalidate()
		}
		if e := c.consents.Load(); e != nil {
			return e.Reload(ctx)
		}
		return nil
	}
	m, err := coherence.Join(ctx, coherence.Options{Records: db, Notifier: n, Reload: reload,
		Failed: func(err error) {
			// Requests see it as 503s; say it once per outage.
			if logged.CompareAndSwap(false, true) {
				log.Error("cannot confirm the revocation state is current; requests get 503 until the database answers", "error", err.Error())
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("joining the other processes: %w", err)
	}
	c.member.Store(m)
	return m, nil
}

// policyOptions turns the step-up settings into the policy's terms.
func policyOptions(cfg config.Config) policy.Options {
	o := policy.Options{MaxAuthAge: cfg.Auth.StepUpMaxAge}
	for _, s := range cfg.Auth.StepUp {
		switch s {
		case "delete":
			o.StepUp = append(o.StepUp, policy.ActDelete)
		case "everything":
			o.StepUp = append(o.StepUp, policy.ActEverything)
		case "create":
			o.StepUp = append(o.StepUp, policy.ActCreate)
		case "update":
			o.StepUp = append(o.StepUp, policy.ActUpdate)
		}
	}
	return o
}

// newAuthServer builds the SMART authorization server.
func newAuthServer(ctx context.Context, cfg config.Config, db database, core *authCore, api *fhirapi.API, issuer string, certs authserver.CertificateChecker, ledger authserver.Grants) (*authserver.Server, error) {
	cookieKey, err := secretFile(cfg.DataDir, "cookie.key", 32)
	if err != nil {
		return nil, err
	}
	pages, err := web.NewPages()
	if err != nil {
		return nil, err
	}
	upstream, err := newUpstream(ctx, cfg, core, issuer)
	if err != nil {
		return nil, err
	}
	return authserver.New(ctx, authserver.Options{
		Issuer:               issuer,
		Records:              db,
		Tokens:               core.tokens,
		Users:                core.users,
		Pages:                pages,
		Patients:             patientDirectory{api},
		CookieKey:            cookieKey[:32],
		AccessTokenLifetime:  cfg.Auth.AccessTokenLifetime,
		SensitiveScopes:      cfg.Auth.SensitiveScopes,
		SensitiveLifetime:    cfg.Auth.SensitiveTokenLifetime,
		RefreshTokenLifetime: cfg.Auth.RefreshTokenLifetime,
		OnlineLifetime:       cfg.Auth.OnlineRefreshLifetime,
		Upstream:             upstream,
		UpstreamName:         cfg.Auth.Upstream.Name,
		Certificates:         certs,
		DPoP:                 core.dpop,
		MTLSScopes:           cfg.Auth.MTLSScopes,
		Grants:               ledger,
	})
}

// newUpstream connects to the upstream OpenID Connect provider of
// auth.upstream (its discovery document is fetched now: a provider that
// is down stops the start), or returns nil when none is configured.
func newUpstream(ctx context.Context, cfg config.Config, core *authCore, issuer string) (*identity.Upstream, error) {
	uc := cfg.Auth.Upstream
	if uc.Issuer == "" {
		return nil, nil
	}
	secret := ""
	if uc.ClientSecretFile != "" {
		b, err := os.ReadFile(uc.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth.upstream.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	redirect, err := authserver.UpstreamRedirectURL(issuer)
	if err != nil {
		return nil, err
	}
	up, err := core.users.NewUpstream(ctx, identity.UpstreamConfig{Issuer: uc.Issuer, ClientID: uc.ClientID,
		ClientSecret: secret, RedirectURL: redirect, Scopes: uc.Scopes, TrustMFA: uc.TrustMFA})
	if err != nil {
		return nil, fmt.Errorf("auth.upstream: %w", err)
	}
	return up, nil
}

// patientDirectory answers the patient picker from the FHIR store.
type patientDirectory struct{ api *fhirapi.API }

func (d patientDirectory) Label(ctx context.Context, id string) (string, error) {
	return d.api.PatientLabel(ctx, id)
}

func (d patientDirectory) Search(ctx context.Context, name string, limit int) ([]authserver.PatientChoice, error) {
	found, err := d.api.SearchPatients(ctx, name, limit)
	if err != nil {
		return nil, err
	}
	out := make([]authserver.PatientChoice, len(found))
	for i, p := range found {
		out[i] = authserver.PatientChoice{ID: p.ID, Label: p.Label}
	}
	return out, nil
}

// clientOrigins answers the FHIR API's CORS questions from the client
// registry, re-read at most every originsTTL.
type clientOrigins struct {
	reg *authserver.Registry
	log *slog.Logger

	mu     sync.Mutex
	loaded time.Time
	byID   map[string][]string
	all    map[string]bool
}

const originsTTL = 5 * time.Second

func (o *clientOrigins) snapshot(ctx context.Context) (map[string][]string, map[string]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if time.Since(o.loaded) < originsTTL && o.byID != nil {
		return o.byID, o.all
	}
	list, err := o.reg.List(ctx)
	if err != nil {
		o.log.Warn("reading client origins failed", "error", err.Error())
		return o.byID, o.all // keep the last good view; nil allows nothing
	}
	byID, all := map[string][]string{}, map[string]bool{}
	for _, c := range list {
		if c.Disabled {
			continue
		}
		byID[c.ID] = c.Origins
		for _, origin := range c.Origins {
			all[origin] = true
		}
	}
	o.byID, o.all, o.loaded = byID, all, time.Now()
	return byID, all
}

func (o *clientOrigins) ClientOrigins(ctx context.Context, clientID string) []string {
	byID, _ := o.snapshot(ctx)
	return byID[clientID]
}

func (o *clientOrigins) Registered(ctx context.Context, origin string) bool {
	_, all := o.snapshot(ctx)
	return all[origin]
}

// loadSitePolicy reads the *.cedar files of cfg.Auth.SitePolicyDir, or
// the built-in default policy when it is empty.
func loadSitePolicy(cfg config.Config) (*policy.Site, error) {
	dir := cfg.Auth.SitePolicyDir
	if dir == "" {
		return policy.DefaultSite()
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("auth.site_policy_dir %s holds no .cedar files", dir)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(p)] = b
	}
	return policy.NewSite(files)
}

// sharedSecret is a random secret of n bytes kept in the shared store
// (record kind "secret"), made by whichever replica asks first.
func sharedSecret(ctx context.Context, db database, name string, n int) ([]byte, error) {
	fresh := make([]byte, n)
	rand.Read(fresh)
	err := db.InsertRecord(ctx, store.Record{Kind: "secret", Key: name, Value: fresh})
	if err == nil {
		return fresh, nil
	}
	if !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	rec, err := db.GetRecord(ctx, "secret", name)
	if err != nil {
		return nil, err
	}
	if len(rec.Value) < n {
		return nil, fmt.Errorf("the shared secret %s is too short", name)
	}
	return rec.Value, nil
}
