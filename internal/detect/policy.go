package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalidPolicy is wrapped by every policy error.
var ErrInvalidPolicy = errors.New("detect: invalid policy")

// Policy is the detection section of Warden's configuration: how much
// each signal weighs, its thresholds, and which action a total score
// leads to. Start from DefaultPolicy; ParsePolicy decodes a file over it.
// docs/DETECTION.md explains every field and how the defaults were
// chosen.
type Policy struct {
	// Disabled turns detection off (Observe returns no verdicts, Check
	// answers ActionNone). Loud on purpose: detection is on by default.
	Disabled bool `yaml:"disabled"`
	// DefaultClass is the class of an event whose Class is empty.
	DefaultClass string `yaml:"default_class"`
	// PartialFrom: a signal observed at this fraction of its threshold
	// or more scores that fraction of its weight (so evidence just under
	// several thresholds adds up); below it, nothing.
	PartialFrom float64 `yaml:"partial_from"`
	// MaxStrength caps a signal's score at this multiple of its weight.
	MaxStrength float64 `yaml:"max_strength"`
	// Realert is how often an ongoing action at the same level is
	// alerted again; a stronger action is always alerted at once.
	Realert time.Duration `yaml:"realert"`
	// PeerBlockMax bounds any throttle or quarantine of a peer address
	// (many people may share one address).
	PeerBlockMax time.Duration `yaml:"peer_block_max"`
	// Ladder maps a total score to an action: the highest step whose At
	// the score reaches applies. For is how long a step-up, throttle or
	// quarantine stands (0 for a quarantine: until released).
	Ladder   []Step   `yaml:"ladder"`
	Capacity Capacity `yaml:"capacity"`
	Signals  Signals  `yaml:"signals"`
}

// Step is one rung of the ladder.
type Step struct {
	At     float64       `yaml:"at"`
	Action string        `yaml:"action"` // alert, step-up, throttle, quarantine
	For    time.Duration `yaml:"for"`
}

// Capacity bounds the state kept. When a table is full the least
// recently seen of a sample is forgotten (its learned baseline and
// counters, never a standing throttle or quarantine).
type Capacity struct {
	Clients int `yaml:"clients"`
	Users   int `yaml:"users"`
	Tokens  int `yaml:"tokens"`
	Peers   int `yaml:"peers"`
	// Blocks bounds standing throttles and quarantines per scope. A
	// quarantine is never evicted: when the token table is full of
	// quarantines, the next token quarantine lands on its user or
	// client instead.
	Blocks int `yaml:"blocks"`
}

// PerClass is one value per client class.
type PerClass struct {
	PatientApp   float64 `yaml:"patient-app"`
	ClinicianApp float64 `yaml:"clinician-app"`
	Backend      float64 `yaml:"backend"`
}

func (p PerClass) of(class string) float64 {
	switch class {
	case ClinicianApp:
		return p.ClinicianApp
	case Backend:
		return p.Backend
	default:
		return p.PatientApp
	}
}

// Signals holds the settings of every signal.
type Signals struct {
	Velocity          Velocity `yaml:"velocity"`
	ClientVelocity    Velocity `yaml:"client_velocity"`
	Probing           Probing  `yaml:"probing"`
	Errors            Errors   `yaml:"errors"`
	ClientErrors      Ratio    `yaml:"client_errors"`
	PeerErrors        Errors   `yaml:"peer_errors"`
	Bulk              Bulk     `yaml:"bulk"`
	Unrelated         Counter  `yaml:"unrelated"`
	Hours             Hours    `yaml:"hours"`
	Networks          Networks `yaml:"networks"`
	SpoofedForwarding Counter  `yaml:"spoofed_forwarding"`
}

// Velocity scores the distinct patients touched in a sliding hour (ten-
// minute buckets) against max(Floor, Multiplier × baseline), the
// baseline being Expected until WarmupHours active hours are learned,
// then the larger of an EWMA (LearnRate) of the hourly peaks and the
// highest peak, fading slowly. Hours with an alert are learned ten times
// slower. With SilentWarmup the signal only learns until it is warm.
type Velocity struct {
	Weight       float64  `yaml:"weight"`
	Scope        string   `yaml:"scope"`
	Multiplier   float64  `yaml:"multiplier"`
	LearnRate    float64  `yaml:"learn_rate"`
	WarmupHours  int      `yaml:"warmup_hours"`
	SilentWarmup bool     `yaml:"silent_during_warmup"`
	Expected     PerClass `yaml:"expected"`
	Floor        PerClass `yaml:"floor"`
}

// Probing scores, per actor (the user; the client when there is no user;
// the peer when unauthenticated), reads by id that look enumerated (same
// type and prefix, numeric tail within NeighbourGap of one of the last
// eight reads, which failed or disclosed another patient) and distinct
// ids answered 403 or 404, as a count decaying with HalfLife.
type Probing struct {
	Weight       float64       `yaml:"weight"`
	Scope        string        `yaml:"scope"`
	Threshold    float64       `yaml:"threshold"`
	HalfLife     time.Duration `yaml:"half_life"`
	NeighbourGap int           `yaml:"neighbour_gap"`
}

// Errors scores 401/403/404 answers (and EmptySearch per search that
// found nothing) as a count decaying with HalfLife: per actor for
// authenticated callers (signals.errors), per peer address for
// unauthenticated ones (signals.peer_errors).
type Errors struct {
	Weight      float64       `yaml:"weight"`
	Scope       string        `yaml:"scope"`
	Threshold   float64       `yaml:"threshold"`
	HalfLife    time.Duration `yaml:"half_life"`
	EmptySearch float64       `yaml:"empty_search"`
}

// Ratio scores a client's share of error answers, once it has at least
// MinErrors of them (decaying with HalfLife): strength is share/Threshold.
type Ratio struct {
	Weight    float64       `yaml:"weight"`
	Scope     string        `yaml:"scope"`
	Threshold float64       `yaml:"threshold"`
	MinErrors float64       `yaml:"min_errors"`
	HalfLife  time.Duration `yaml:"half_life"`
}

// Bulk scores bulk-shaped requests ($export, $everything, _count of
// LargeCount or more, ManyIncludes or more _include/_revinclude) from an
// actor that is not of a class in Classes and has not done bulk on
// LearnDays distinct days. A request that disclosed at most one patient
// counts SinglePatient of one. Counts decay with HalfLife; Threshold of
// them is full strength.
type Bulk struct {
	Weight        float64       `yaml:"weight"`
	Scope         string        `yaml:"scope"`
	Threshold     float64       `yaml:"threshold"`
	HalfLife      time.Duration `yaml:"half_life"`
	LargeCount    int           `yaml:"large_count"`
	ManyIncludes  int           `yaml:"many_includes"`
	SinglePatient float64       `yaml:"single_patient"`
	LearnDays     int           `yaml:"learn_days"`
	Classes       []string      `yaml:"classes"`
}

// Counter scores a count decaying with HalfLife against Threshold.
type Counter struct {
	Weight    float64       `yaml:"weight"`
	Scope     string        `yaml:"scope"`
	Threshold float64       `yaml:"threshold"`
	HalfLife  time.Duration `yaml:"half_life"`
}

// Hours scores a user's request in an hour of the day (site time) that
// holds less than MinShare of the user's active hours. The profile
// starts from PriorDays of a prior: clinician-app users active from
// ClinicianDayStart to ClinicianDayEnd, patient-app users at any hour.
type Hours struct {
	Weight            float64 `yaml:"weight"`
	Scope             string  `yaml:"scope"`
	MinShare          float64 `yaml:"min_share"`
	PriorDays         float64 `yaml:"prior_days"`
	ClinicianDayStart int     `yaml:"clinician_day_start"`
	ClinicianDayEnd   int     `yaml:"clinician_day_end"`
}

// Networks scores a token used from more than one network (IPv4 /
// IPv4Prefix, IPv6 / IPv6Prefix): strength is the number of switches
// between networks over Switches. A phone going from Wi-Fi to mobile
// data switches once; a replayed token used alongside its owner keeps
// switching.
type Networks struct {
	Weight     float64 `yaml:"weight"`
	Scope      string  `yaml:"scope"`
	Switches   float64 `yaml:"switches"`
	IPv4Prefix int     `yaml:"ipv4_prefix"`
	IPv6Prefix int     `yaml:"ipv6_prefix"`
}

// DefaultPolicy is the safe default: every signal on, tuned on the
// evaluation set (bench/evalset, docs/DETECTION.md).
func DefaultPolicy() Policy {
	return Policy{
		DefaultClass: PatientApp,
		PartialFrom:  0.5,
		MaxStrength:  3,
		Realert:      5 * time.Minute,
		PeerBlockMax: time.Hour,
		Ladder: []Step{
			{At: 1, Action: "alert"},
			{At: 2, Action: "step-up", For: 15 * time.Minute},
			{At: 3, Action: "throttle", For: 10 * time.Minute},
			{At: 5, Action: "quarantine"},
		},
		Capacity: Capacity{Clients: 10_000, Users: 100_000, Tokens: 200_000, Peers: 100_000, Blocks: 100_000},
		Signals: Signals{
			Velocity: Velocity{Weight: 1.5, Scope: "actor", Multiplier: 3, LearnRate: 0.1, WarmupHours: 8,
				Expected: PerClass{PatientApp: 1, ClinicianApp: 30, Backend: 10_000},
				Floor:    PerClass{PatientApp: 5, ClinicianApp: 100, Backend: 10_000}},
			ClientVelocity: Velocity{Weight: 1.5, Scope: "client", Multiplier: 4, LearnRate: 0.1, WarmupHours: 20, SilentWarmup: true,
				Expected: PerClass{PatientApp: 2_000, ClinicianApp: 2_000, Backend: 20_000},
				Floor:    PerClass{PatientApp: 200, ClinicianApp: 200, Backend: 2_000}},
			Probing:      Probing{Weight: 2, Scope: "actor", Threshold: 6, HalfLife: 10 * time.Minute, NeighbourGap: 16},
			Errors:       Errors{Weight: 1, Scope: "actor", Threshold: 8, HalfLife: 5 * time.Minute, EmptySearch: 0.1},
			ClientErrors: Ratio{Weight: 1, Scope: "client", Threshold: 0.5, MinErrors: 200, HalfLife: 10 * time.Minute},
			PeerErrors:   Errors{Weight: 1, Scope: "peer", Threshold: 30, HalfLife: 5 * time.Minute, EmptySearch: 0},
			Bulk: Bulk{Weight: 1.5, Scope: "actor", Threshold: 1, HalfLife: time.Hour, LargeCount: 500, ManyIncludes: 3,
				SinglePatient: 0.25, LearnDays: 2, Classes: []string{Backend}},
			Unrelated:         Counter{Weight: 1.5, Scope: "user", Threshold: 4, HalfLife: 30 * time.Minute},
			Hours:             Hours{Weight: 0.5, Scope: "actor", MinShare: 0.01, PriorDays: 3, ClinicianDayStart: 7, ClinicianDayEnd: 19},
			Networks:          Networks{Weight: 2, Scope: "token", Switches: 3, IPv4Prefix: 24, IPv6Prefix: 48},
			SpoofedForwarding: Counter{Weight: 0.3, Scope: "peer", Threshold: 1, HalfLife: 10 * time.Minute},
		},
	}
}

// ParsePolicy decodes a YAML detection section over DefaultPolicy and
// validates it. Decoding is strict: an unknown or repeated key is an
// error. A ladder given in the file replaces the default ladder whole.
func ParsePolicy(data []byte) (Policy, error) {
	p := DefaultPolicy()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// DecodeNode is ParsePolicy for the detection node of a larger document.
func DecodeNode(n *yaml.Node) (Policy, error) {
	data, err := yaml.Marshal(n)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return ParsePolicy(data)
}

func invalid(setting, format string, args ...any) error {
	return fmt.Errorf("%w: detect.%s: %s", ErrInvalidPolicy, setting, fmt.Sprintf(format, args...))
}

// clip shortens a value echoed in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

var classNames = []string{PatientApp, ClinicianApp, Backend}

const (
	maxWeight   = 100.0
	maxDuration = 30 * 24 * time.Hour
	maxCapacity = 10_000_000
	maxCount    = 1e9
)

// number checks that v is finite and within [lo, hi].
func number(setting string, v, lo, hi float64) error {
	if math.IsNaN(v) || v < lo || v > hi {
		return invalid(setting, "%v: must be from %v to %v", v, lo, hi)
	}
	return nil
}

func duration(setting string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return invalid(setting, "%s: must be from %s to %s", d, lo, hi)
	}
	return nil
}

func weightScope(setting string, w float64, scope string) error {
	if err := number(setting+".weight", w, 0, maxWeight); err != nil {
		return err
	}
	if _, ok := parseScope(scope); !ok {
		return invalid(setting+".scope", "%q: want one of %s", clip(scope), strings.Join(scopeNames[:], ", "))
	}
	return nil
}

func (v Velocity) validate(s string) error {
	if err := weightScope(s, v.Weight, v.Scope); err != nil {
		return err
	}
	if err := number(s+".multiplier", v.Multiplier, 1, 1000); err != nil {
		return err
	}
	if err := number(s+".learn_rate", v.LearnRate, 0.001, 1); err != nil {
		return err
	}
	if v.WarmupHours < 0 || v.WarmupHours > 24*365 {
		return invalid(s+".warmup_hours", "%d: must be from 0 to %d", v.WarmupHours, 24*365)
	}
	for _, c := range []struct {
		n string
		p PerClass
	}{{"expected", v.Expected}, {"floor", v.Floor}} {
		for _, x := range []struct {
			n string
			v float64
		}{{PatientApp, c.p.PatientApp}, {ClinicianApp, c.p.ClinicianApp}, {Backend, c.p.Backend}} {
			if err := number(s+"."+c.n+"."+x.n, x.v, 1, maxCount); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e Errors) validate(s string) error {
	if err := weightScope(s, e.Weight, e.Scope); err != nil {
		return err
	}
	if err := number(s+".threshold", e.Threshold, 1, maxCount); err != nil {
		return err
	}
	if err := duration(s+".half_life", e.HalfLife, time.Second, maxDuration); err != nil {
		return err
	}
	return number(s+".empty_search", e.EmptySearch, 0, 1)
}

func (c Counter) validate(s string) error {
	if err := weightScope(s, c.Weight, c.Scope); err != nil {
		return err
	}
	if err := number(s+".threshold", c.Threshold, 1, maxCount); err != nil {
		return err
	}
	return duration(s+".half_life", c.HalfLife, time.Second, maxDuration)
}

// Validate checks every setting and names the first one that is wrong.
func (p Policy) Validate() error {
	if !slices.Contains(classNames, p.DefaultClass) {
		return invalid("default_class", "%q: want one of %s", clip(p.DefaultClass), strings.Join(classNames, ", "))
	}
	if err := number("partial_from", p.PartialFrom, 0.05, 1); err != nil {
		return err
	}
	if err := number("max_strength", p.MaxStrength, 1, 100); err != nil {
		return err
	}
	if err := duration("realert", p.Realert, time.Second, 24*time.Hour); err != nil {
		return err
	}
	if err := duration("peer_block_max", p.PeerBlockMax, time.Second, maxDuration); err != nil {
		return err
	}
	if len(p.Ladder) == 0 || len(p.Ladder) > 16 {
		return invalid("ladder", "%d steps: want 1 to 16", len(p.Ladder))
	}
	for i, st := range p.Ladder {
		s := fmt.Sprintf("ladder[%d]", i)
		if err := number(s+".at", st.At, 0.01, 1e6); err != nil {
			return err
		}
		a, ok := parseAction(st.Action)
		if !ok || a == ActionNone {
			return invalid(s+".action", "%q: want alert, step-up, throttle or quarantine", clip(st.Action))
		}
		if i > 0 {
			prev, _ := parseAction(p.Ladder[i-1].Action)
			if st.At <= p.Ladder[i-1].At || a <= prev {
				return invalid(s, "steps must rise in both score and action (%v %s after %v %s)", st.At, a, p.Ladder[i-1].At, prev)
			}
		}
		switch {
		case a == ActionAlert && st.For != 0:
			return invalid(s+".for", "an alert has no duration")
		case (a == ActionStepUp || a == ActionThrottle) && (st.For < time.Second || st.For > maxDuration):
			return invalid(s+".for", "%s: a %s needs a duration from 1s to %s", st.For, a, maxDuration)
		case a == ActionQuarantine && (st.For < 0 || st.For > maxDuration || (st.For > 0 && st.For < time.Second)):
			return invalid(s+".for", "%s: a quarantine lasts 0 (until released) or from 1s to %s", st.For, maxDuration)
		}
	}
	for _, c := range []struct {
		n string
		v int
	}{{"clients", p.Capacity.Clients}, {"users", p.Capacity.Users}, {"tokens", p.Capacity.Tokens}, {"peers", p.Capacity.Peers}, {"blocks", p.Capacity.Blocks}} {
		if c.v < 16 || c.v > maxCapacity {
			return invalid("capacity."+c.n, "%d: must be from 16 to %d", c.v, maxCapacity)
		}
	}
	sg := p.Signals
	if err := sg.Velocity.validate("signals.velocity"); err != nil {
		return err
	}
	if err := sg.ClientVelocity.validate("signals.client_velocity"); err != nil {
		return err
	}
	pr := sg.Probing
	if err := weightScope("signals.probing", pr.Weight, pr.Scope); err != nil {
		return err
	}
	if err := number("signals.probing.threshold", pr.Threshold, 1, maxCount); err != nil {
		return err
	}
	if err := duration("signals.probing.half_life", pr.HalfLife, time.Second, maxDuration); err != nil {
		return err
	}
	if pr.NeighbourGap < 0 || pr.NeighbourGap > 1_000_000 {
		return invalid("signals.probing.neighbour_gap", "%d: must be from 0 (off) to 1000000", pr.NeighbourGap)
	}
	if err := sg.Errors.validate("signals.errors"); err != nil {
		return err
	}
	if err := sg.PeerErrors.validate("signals.peer_errors"); err != nil {
		return err
	}
	ce := sg.ClientErrors
	if err := weightScope("signals.client_errors", ce.Weight, ce.Scope); err != nil {
		return err
	}
	if err := number("signals.client_errors.threshold", ce.Threshold, 0.01, 1); err != nil {
		return err
	}
	if err := number("signals.client_errors.min_errors", ce.MinErrors, 1, maxCount); err != nil {
		return err
	}
	if err := duration("signals.client_errors.half_life", ce.HalfLife, time.Second, maxDuration); err != nil {
		return err
	}
	b := sg.Bulk
	if err := weightScope("signals.bulk", b.Weight, b.Scope); err != nil {
		return err
	}
	if err := number("signals.bulk.threshold", b.Threshold, 0.1, maxCount); err != nil {
		return err
	}
	if err := duration("signals.bulk.half_life", b.HalfLife, time.Second, maxDuration); err != nil {
		return err
	}
	if b.LargeCount < 1 || b.LargeCount > 1_000_000 {
		return invalid("signals.bulk.large_count", "%d: must be from 1 to 1000000", b.LargeCount)
	}
	if b.ManyIncludes < 1 || b.ManyIncludes > 1000 {
		return invalid("signals.bulk.many_includes", "%d: must be from 1 to 1000", b.ManyIncludes)
	}
	if err := number("signals.bulk.single_patient", b.SinglePatient, 0, 1); err != nil {
		return err
	}
	if b.LearnDays < 0 || b.LearnDays > 365 {
		return invalid("signals.bulk.learn_days", "%d: must be from 0 (never learn) to 365", b.LearnDays)
	}
	for i, c := range b.Classes {
		if !slices.Contains(classNames, c) {
			return invalid(fmt.Sprintf("signals.bulk.classes[%d]", i), "%q: want one of %s", clip(c), strings.Join(classNames, ", "))
		}
	}
	if err := sg.Unrelated.validate("signals.unrelated"); err != nil {
		return err
	}
	h := sg.Hours
	if err := weightScope("signals.hours", h.Weight, h.Scope); err != nil {
		return err
	}
	if err := number("signals.hours.min_share", h.MinShare, 0, 0.5); err != nil {
		return err
	}
	if err := number("signals.hours.prior_days", h.PriorDays, 0, 365); err != nil {
		return err
	}
	if h.ClinicianDayStart < 0 || h.ClinicianDayStart > 23 {
		return invalid("signals.hours.clinician_day_start", "%d: must be an hour from 0 to 23", h.ClinicianDayStart)
	}
	if h.ClinicianDayEnd <= h.ClinicianDayStart || h.ClinicianDayEnd > 24 {
		return invalid("signals.hours.clinician_day_end", "%d: must be after clinician_day_start and at most 24", h.ClinicianDayEnd)
	}
	n := sg.Networks
	if err := weightScope("signals.networks", n.Weight, n.Scope); err != nil {
		return err
	}
	if err := number("signals.networks.switches", n.Switches, 1, 1000); err != nil {
		return err
	}
	if n.IPv4Prefix < 8 || n.IPv4Prefix > 32 {
		return invalid("signals.networks.ipv4_prefix", "%d: must be from 8 to 32", n.IPv4Prefix)
	}
	if n.IPv6Prefix < 16 || n.IPv6Prefix > 128 {
		return invalid("signals.networks.ipv6_prefix", "%d: must be from 16 to 128", n.IPv6Prefix)
	}
	return sg.SpoofedForwarding.validate("signals.spoofed_forwarding")
}
