package limits

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("limits: invalid configuration")

// The client classes. A client's class comes from its registration; named
// clients in Config.Clients pick one and override parts of it.
const (
	PatientApp   = "patient-app"   // apps a patient uses for their own record (many users per client)
	ClinicianApp = "clinician-app" // apps clinicians use across their patients
	Backend      = "backend"       // SMART Backend Services: no user, may do bulk
)

// classNames lists the client classes, in a fixed order.
var classNames = []string{PatientApp, ClinicianApp, Backend}

// RateLimit is a GCRA limit: Rate cost units come back per period and at
// most Burst can be spent at once. A Rate of "off" is no limit.
type RateLimit struct {
	Rate  Rate `yaml:"rate"`
	Burst int  `yaml:"burst"`
}

// PatientBudget allows at most Count distinct patients touched in any
// Window-long span (a sliding window, exact).
type PatientBudget struct {
	Count  int           `yaml:"count"`
	Window time.Duration `yaml:"window"`
}

// DistinctPatients holds the distinct-patient budgets of a class.
type DistinctPatients struct {
	Client *PatientBudget `yaml:"client"` // all users of one client together
	User   *PatientBudget `yaml:"user"`   // one user, per class
}

// ClassLimits are the limits of one client class. In a file, a field left
// out keeps the built-in value of the class.
type ClassLimits struct {
	Client           *RateLimit       `yaml:"client"`      // per client id
	User             *RateLimit       `yaml:"user"`        // per user, per class
	Patient          *RateLimit       `yaml:"patient"`     // per patient context, per class
	Concurrency      *int             `yaml:"concurrency"` // in-flight requests per client, per process
	DistinctPatients DistinctPatients `yaml:"distinct_patients"`
}

// ClientLimits are the limits of one named client: its class, and what it
// overrides of that class.
type ClientLimits struct {
	Class       string `yaml:"class"`
	ClassLimits `yaml:",inline"`
}

// Config is the limits section of Warden's configuration. Start from
// Default; ParseConfig decodes a file over it.
type Config struct {
	// Disabled turns every limit off. Loud on purpose: limits are on by
	// default.
	Disabled bool `yaml:"disabled"`
	// Store is "memory" (one process) or redis://HOST:PORT/DB
	// (rediss:// for TLS) shared by every replica. No password in the
	// URL: put it in the file named by StorePasswordFile.
	Store             string `yaml:"store"`
	StorePasswordFile string `yaml:"store_password_file"`
	// StoreTimeout bounds each round trip to the store.
	StoreTimeout time.Duration `yaml:"store_timeout"`
	// OnStoreError is "closed" (refuse with 503: the default) or "open"
	// (serve without limits while the store is unreachable).
	OnStoreError string `yaml:"on_store_error"`
	// DefaultClass is the class of a client with no class of its own.
	DefaultClass string `yaml:"default_class"`
	// IPv6Prefix is the prefix length an IPv6 source address is counted
	// by: one host usually holds a whole /64.
	IPv6Prefix     int       `yaml:"ipv6_prefix"`
	PerAddress     RateLimit `yaml:"per_address"`
	PerCertificate RateLimit `yaml:"per_certificate"`
	// AuthPerAddress meters the authorization server (discovery,
	// authorize, login, token, registration, introspection, revocation)
	// per source address, apart from the FHIR API's budget: its requests
	// come before any verified client, and a token endpoint that checks
	// signatures or secrets is where guessing and flooding go.
	AuthPerAddress RateLimit               `yaml:"auth_per_address"`
	Classes        map[string]ClassLimits  `yaml:"classes"`
	Clients        map[string]ClientLimits `yaml:"clients"`
	Costs          CostModel               `yaml:"costs"`
}

func perMin(n int) Rate { return Rate{Count: n, Period: time.Minute} }

func ptr[T any](v T) *T { return &v }

// builtinClasses are the secure defaults of each class (docs/LIMITS.md).
func builtinClasses() map[string]ClassLimits {
	return map[string]ClassLimits{
		PatientApp: {
			Client:      &RateLimit{Rate: perMin(60000), Burst: 3000},
			User:        &RateLimit{Rate: perMin(600), Burst: 120},
			Patient:     &RateLimit{Rate: perMin(600), Burst: 120},
			Concurrency: ptr(256),
			DistinctPatients: DistinctPatients{
				Client: &PatientBudget{Count: 50000, Window: time.Hour},
				User:   &PatientBudget{Count: 10, Window: time.Hour},
			},
		},
		ClinicianApp: {
			Client:      &RateLimit{Rate: perMin(60000), Burst: 3000},
			User:        &RateLimit{Rate: perMin(1200), Burst: 200},
			Patient:     &RateLimit{Rate: perMin(1200), Burst: 200},
			Concurrency: ptr(256),
			DistinctPatients: DistinctPatients{
				Client: &PatientBudget{Count: 50000, Window: time.Hour},
				User:   &PatientBudget{Count: 500, Window: time.Hour},
			},
		},
		Backend: {
			Client:      &RateLimit{Rate: perMin(6000), Burst: 1000},
			User:        &RateLimit{Rate: perMin(1200), Burst: 200},
			Patient:     &RateLimit{Rate: perMin(1200), Burst: 200},
			Concurrency: ptr(32),
			DistinctPatients: DistinctPatients{
				Client: &PatientBudget{Count: 100000, Window: time.Hour},
				User:   &PatientBudget{Count: 500, Window: time.Hour},
			},
		},
	}
}

// Default is the secure default configuration: limits on, in memory,
// failing closed, with the built-in values of every class.
func Default() Config {
	return Config{
		Store:          "memory",
		StoreTimeout:   100 * time.Millisecond,
		OnStoreError:   "closed",
		DefaultClass:   PatientApp,
		IPv6Prefix:     64,
		PerAddress:     RateLimit{Rate: perMin(6000), Burst: 600},
		PerCertificate: RateLimit{Rate: perMin(6000), Burst: 600},
		AuthPerAddress: RateLimit{Rate: perMin(6000), Burst: 1000},
		Classes:        builtinClasses(),
		Clients:        map[string]ClientLimits{},
		Costs:          DefaultCosts(),
	}
}

// ParseConfig decodes a YAML limits section over Default and validates
// it. Decoding is strict: an unknown or repeated key is an error.
func ParseConfig(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// DecodeNode is ParseConfig for the limits node of a larger document.
func DecodeNode(n *yaml.Node) (Config, error) {
	data, err := yaml.Marshal(n)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return ParseConfig(data)
}

func invalid(setting, format string, args ...any) error {
	return fmt.Errorf("%w: limits.%s: %s", ErrInvalidConfig, setting, fmt.Sprintf(format, args...))
}

const (
	maxBurst       = maxCost
	maxRefill      = 7 * 24 * time.Hour
	maxBudgetCount = 100_000
	maxConcurrency = 1_000_000
)

func (rl RateLimit) validate(setting string) error {
	if err := rl.Rate.check(); err != nil {
		return invalid(setting+".rate", "%v", err)
	}
	if rl.Rate.Off() {
		if rl.Burst != 0 {
			return invalid(setting+".burst", "a burst needs a rate (the rate is off)")
		}
		return nil
	}
	if rl.Burst < 1 || rl.Burst > maxBurst {
		return invalid(setting+".burst", "%d: must be from 1 to %d", rl.Burst, maxBurst)
	}
	if rl.Rate.Interval()*time.Duration(rl.Burst) > maxRefill {
		return invalid(setting, "burst %d at %s takes longer than %s to refill", rl.Burst, rl.Rate, maxRefill)
	}
	return nil
}

func (b *PatientBudget) validate(setting string) error {
	if b == nil {
		return nil
	}
	if b.Count < 1 || b.Count > maxBudgetCount {
		return invalid(setting+".count", "%d: must be from 1 to %d", b.Count, maxBudgetCount)
	}
	if b.Window < time.Second || b.Window > maxRefill {
		return invalid(setting+".window", "%s: must be from 1s to %s", b.Window, maxRefill)
	}
	return nil
}

func (c ClassLimits) validate(setting string) error {
	for _, rl := range []struct {
		name string
		v    *RateLimit
	}{{"client", c.Client}, {"user", c.User}, {"patient", c.Patient}} {
		if rl.v != nil {
			if err := rl.v.validate(setting + "." + rl.name); err != nil {
				return err
			}
		}
	}
	if c.Concurrency != nil && (*c.Concurrency < 1 || *c.Concurrency > maxConcurrency) {
		return invalid(setting+".concurrency", "%d: must be from 1 to %d", *c.Concurrency, maxConcurrency)
	}
	if err := c.DistinctPatients.Client.validate(setting + ".distinct_patients.client"); err != nil {
		return err
	}
	return c.DistinctPatients.User.validate(setting + ".distinct_patients.user")
}

// Validate checks every setting and names the first one that is wrong.
func (c Config) Validate() error {
	switch {
	case c.Store == "memory":
	case strings.HasPrefix(c.Store, "redis://"), strings.HasPrefix(c.Store, "rediss://"):
		u, err := url.Parse(c.Store)
		if err != nil || u.Host == "" {
			return invalid("store", "not a redis://HOST:PORT/DB URL")
		}
		if _, ok := u.User.Password(); ok {
			return invalid("store", "the URL carries a password; put it in the file named by limits.store_password_file")
		}
	default:
		return invalid("store", "%q: want memory, redis://HOST:PORT/DB or rediss://HOST:PORT/DB", clip(c.Store))
	}
	if c.StoreTimeout < time.Millisecond || c.StoreTimeout > 5*time.Second {
		return invalid("store_timeout", "%s: must be from 1ms to 5s", c.StoreTimeout)
	}
	if c.OnStoreError != "closed" && c.OnStoreError != "open" {
		return invalid("on_store_error", "%q: want closed or open", clip(c.OnStoreError))
	}
	if !slices.Contains(classNames, c.DefaultClass) {
		return invalid("default_class", "%q: want one of %s", clip(c.DefaultClass), strings.Join(classNames, ", "))
	}
	if c.IPv6Prefix < 32 || c.IPv6Prefix > 128 {
		return invalid("ipv6_prefix", "%d: must be from 32 to 128", c.IPv6Prefix)
	}
	if err := c.PerAddress.validate("per_address"); err != nil {
		return err
	}
	if err := c.PerCertificate.validate("per_certificate"); err != nil {
		return err
	}
	if err := c.AuthPerAddress.validate("auth_per_address"); err != nil {
		return err
	}
	for _, name := range sortedKeys(c.Classes) {
		if !slices.Contains(classNames, name) {
			return invalid("classes."+name, "unknown class; the classes are %s (set one client's limits under limits.clients)", strings.Join(classNames, ", "))
		}
		if err := c.Classes[name].validate("classes." + name); err != nil {
			return err
		}
	}
	for _, id := range sortedKeys(c.Clients) {
		cl := c.Clients[id]
		if strings.TrimSpace(id) == "" {
			return invalid("clients", "a client id is empty")
		}
		if !slices.Contains(classNames, cl.Class) {
			return invalid("clients."+id+".class", "%q: want one of %s", clip(cl.Class), strings.Join(classNames, ", "))
		}
		if err := cl.ClassLimits.validate("clients." + id); err != nil {
			return err
		}
	}
	if err := c.Costs.Validate(); err != nil {
		return err
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// profile is the resolved limits of a class or a named client.
type profile struct {
	name             string // class name, or "client" for a named client's own limits
	key              string // the prefix of user and patient keys
	client           RateLimit
	user             RateLimit
	patient          RateLimit
	concurrency      int
	dpClient, dpUser PatientBudget
	// the Decision.Limit texts, built once
	limClient, limUser, limPatient, limDPClient, limDPUser, limConcurrency string
}

// overlay returns base with the fields set in over replacing it.
func overlay(base, over ClassLimits) ClassLimits {
	if over.Client != nil {
		base.Client = over.Client
	}
	if over.User != nil {
		base.User = over.User
	}
	if over.Patient != nil {
		base.Patient = over.Patient
	}
	if over.Concurrency != nil {
		base.Concurrency = over.Concurrency
	}
	if over.DistinctPatients.Client != nil {
		base.DistinctPatients.Client = over.DistinctPatients.Client
	}
	if over.DistinctPatients.User != nil {
		base.DistinctPatients.User = over.DistinctPatients.User
	}
	return base
}

func newProfile(name, key string, c ClassLimits) *profile {
	return &profile{
		name: name, key: key,
		client: *c.Client, user: *c.User, patient: *c.Patient,
		concurrency: *c.Concurrency,
		dpClient:    *c.DistinctPatients.Client, dpUser: *c.DistinctPatients.User,
		limClient:      "client rate (" + name + ")",
		limUser:        "user rate (" + name + ")",
		limPatient:     "patient-context rate (" + name + ")",
		limDPClient:    "distinct patients per client (" + name + ")",
		limDPUser:      "distinct patients per user (" + name + ")",
		limConcurrency: "concurrent requests per client (" + name + ")",
	}
}

// profiles resolves the classes (over the built-in values) and the named
// clients (over their resolved class). c must be valid.
func (c Config) profiles() (classes map[string]*profile, clients map[string]*profile) {
	resolved := map[string]ClassLimits{}
	classes = map[string]*profile{}
	for name, base := range builtinClasses() {
		cl := overlay(base, c.Classes[name])
		resolved[name] = cl
		classes[name] = newProfile(name, name, cl)
	}
	clients = map[string]*profile{}
	for id, cl := range c.Clients {
		clients[id] = newProfile(cl.Class+", named client", "client="+id, overlay(resolved[cl.Class], cl.ClassLimits))
	}
	return classes, clients
}
