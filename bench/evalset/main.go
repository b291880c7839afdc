// Command evalset is the evaluation set of Warden's abuse detection
// (internal/detect): it simulates days of traffic on simulated time —
// SMART patient apps, clinician apps and backend services over the
// Synthea patient ids — injects labelled attacks (scraping, slow
// exfiltration under the rate limit, ID walking, BOLA probing, token
// replay from a second address, after-hours bulk reads), feeds every
// request straight into a detect.Engine with the default policy, and
// reports per attack type the recall, the time to detection and the
// false-positive rate of normal callers, as a Markdown table.
//
// The first simulated day is for learning; attacks and false positives
// are counted on the days after it. The engine never sees the labels.
//
//	go run ./bench/evalset -clients 10000 -days 3 -seed 1 -out bench/out/evalset.md
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "evalset:", err)
		os.Exit(1)
	}
}

// config is one evaluation run.
type config struct {
	clients, days, attacks int
	seed                   uint64
	synthea                string
	policy                 detect.Policy
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("evalset", flag.ContinueOnError)
	cfg := config{policy: detect.DefaultPolicy()}
	fs.IntVar(&cfg.clients, "clients", 10000, "normal callers (80% patient-app users, 18% clinicians, 2% backend services)")
	fs.IntVar(&cfg.days, "days", 3, "simulated days: one learning day, then evaluation days")
	fs.IntVar(&cfg.attacks, "attacks", 5, "instances of each attack type per evaluation day")
	fs.Uint64Var(&cfg.seed, "seed", 1, "random seed")
	fs.StringVar(&cfg.synthea, "synthea", "../shared/data/synthea", "folder of Synthea bundles (synthetic ids when absent)")
	policyFile := fs.String("policy", "", "detection policy YAML (default: the built-in policy)")
	out := fs.String("out", "", "write the Markdown report to this file too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.clients < 100 || cfg.days < 2 || cfg.attacks < 1 {
		return errors.New("want -clients ≥ 100, -days ≥ 2 and -attacks ≥ 1")
	}
	if *policyFile != "" {
		data, err := os.ReadFile(*policyFile)
		if err != nil {
			return err
		}
		if cfg.policy, err = detect.ParsePolicy(data); err != nil {
			return err
		}
	}
	began := time.Now()
	res, err := evaluate(cfg)
	if err != nil {
		return err
	}
	md := res.markdown(cfg, time.Since(began))
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	_, err = io.WriteString(stdout, md)
	return err
}

// typeResult is the outcome for one attack type.
type typeResult struct {
	kind     string
	n, found int
	ttd      []time.Duration
}

// result is the outcome of one run.
type result struct {
	types          []typeResult
	normal         int     // normal callers evaluated (victims excluded)
	flagged        []int   // normal callers flagged, per evaluation day
	near           []int   // normal callers that scored ≥ 0.5 without being flagged, per evaluation day
	fpRate         float64 // flagged per normal caller per evaluation day
	flaggedBy      map[string]int
	nearBy         map[string]int
	events         int
	observe        time.Duration
	patients, real int
}

func evaluate(cfg config) (*result, error) {
	rng := rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))
	ids, err := syntheaPatients(cfg.synthea)
	if err != nil {
		return nil, err
	}
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	w := newWorld(rng, cfg.clients, ids, start)
	eng, err := detect.New(cfg.policy, detect.Options{Location: time.UTC})
	if err != nil {
		return nil, err
	}
	res := &result{flaggedBy: map[string]int{}, nearBy: map[string]int{}, patients: len(w.patients), real: w.real}
	var attacks []attack
	victims := map[int]bool{}
	flaggedOn := make([]map[int32]string, cfg.days) // normal caller → why it was flagged
	near := make([]map[int32]string, cfg.days)      // normal callers that scored at least half an alert → why
	var recs []rec
	for d := 0; d < cfg.days; d++ {
		flaggedOn[d] = map[int32]string{}
		near[d] = map[int32]string{}
		recs = w.day(d, recs[:0])
		if d > 0 {
			for _, kind := range attackTypes {
				for k := 0; k < cfg.attacks; k++ {
					var a attack
					recs, a = w.inject(kind, d, int32(len(attacks)), victims, recs)
					attacks = append(attacks, a)
				}
			}
		}
		slices.SortStableFunc(recs, func(a, b rec) int { return a.ev.Time.Compare(b.ev.Time) })
		t0 := time.Now()
		for i := range recs {
			r := &recs[i]
			ev := &r.ev
			hit := eng.Check(ev.Client, ev.User, ev.Token, ev.Peer, ev.Time) != detect.ActionNone
			var v detect.Verdict
			if !hit {
				v = eng.Observe(*ev)
				hit = v.Action >= detect.ActionAlert
			}
			if !hit {
				if v.Score >= 0.5 && r.actor >= 0 && r.attack < 0 && d > 0 && !victims[int(r.actor)] && near[d][r.actor] == "" {
					names := make([]string, 0, len(v.Signals))
					for _, s := range v.Signals {
						names = append(names, s.Name)
					}
					near[d][r.actor] = w.actors[r.actor].class() + ": " + strings.Join(names, "+")
				}
				continue
			}
			if r.attack >= 0 {
				a := &attacks[r.attack]
				if !a.detected && !ev.Time.Before(a.start) {
					a.detected, a.at = true, ev.Time
				}
			}
			if r.actor >= 0 && r.attack < 0 && d > 0 && flaggedOn[d][r.actor] == "" {
				names := make([]string, 0, len(v.Signals))
				for _, s := range v.Signals {
					names = append(names, s.Name)
				}
				if len(names) == 0 {
					names = append(names, "standing action")
				}
				flaggedOn[d][r.actor] = w.actors[r.actor].class() + ": " + strings.Join(names, "+")
			}
		}
		res.observe += time.Since(t0)
		res.events += len(recs)
	}
	for _, kind := range attackTypes {
		tr := typeResult{kind: kind}
		for _, a := range attacks {
			if a.kind != kind {
				continue
			}
			tr.n++
			if a.detected {
				tr.found++
				tr.ttd = append(tr.ttd, a.at.Sub(a.start))
			}
		}
		slices.Sort(tr.ttd)
		res.types = append(res.types, tr)
	}
	for i := range w.actors {
		if !victims[i] {
			res.normal++
		}
	}
	total := 0
	for d := 1; d < cfg.days; d++ {
		n := 0
		for who, why := range flaggedOn[d] {
			if !victims[int(who)] {
				n++
				res.flaggedBy[why]++
			}
		}
		res.flagged = append(res.flagged, n)
		res.near = append(res.near, len(near[d]))
		for who, why := range near[d] {
			if flaggedOn[d][who] == "" && !victims[int(who)] {
				res.nearBy[why]++
			}
		}
		total += n
	}
	res.fpRate = float64(total) / float64(res.normal) / float64(cfg.days-1)
	return res, nil
}

func (tr typeResult) recall() float64 {
	if tr.n == 0 {
		return 0
	}
	return float64(tr.found) / float64(tr.n)
}

func (tr typeResult) maxTTD() time.Duration {
	if len(tr.ttd) == 0 {
		return 0
	}
	return tr.ttd[len(tr.ttd)-1]
}

func (tr typeResult) medianTTD() time.Duration {
	if len(tr.ttd) == 0 {
		return 0
	}
	return tr.ttd[len(tr.ttd)/2]
}

func (res *result) markdown(cfg config, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Evaluation set: %d normal callers, %d simulated days (1 learning), %d instances of each attack per evaluation day, seed %d.\n",
		cfg.clients, cfg.days, cfg.attacks, cfg.seed)
	fmt.Fprintf(&b, "Patients: %d (%d Synthea ids, the rest synthetic). %d requests observed in %s (%.2f µs each); whole run %s on %s/%s, %d CPUs, %s.\n\n",
		res.patients, res.real, res.events, res.observe.Round(time.Millisecond), float64(res.observe.Microseconds())/float64(max(res.events, 1)),
		took.Round(time.Millisecond), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	b.WriteString("| attack | instances | detected | recall | median time to detection | worst time to detection |\n|---|---|---|---|---|---|\n")
	for _, tr := range res.types {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %s | %s |\n", tr.kind, tr.n, tr.found, tr.recall(), tr.medianTTD(), tr.maxTTD())
	}
	fmt.Fprintf(&b, "\nFalse positives: normal callers flagged (alert or stronger) per evaluation day: %v of %d → %.5f per caller per day (%.2f in 1,000).\n",
		res.flagged, res.normal, res.fpRate, 1000*res.fpRate)
	fmt.Fprintf(&b, "Near misses: normal callers that scored at least 0.5 (half the alert score) but were not flagged, per evaluation day: %v.\n", res.near)
	for _, t := range []struct {
		title string
		m     map[string]int
	}{{"flagged callers by class and signals", res.flaggedBy}, {"near misses by class and signals", res.nearBy}} {
		if len(t.m) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n| %s | callers × days |\n|---|---|\n", t.title)
		keys := make([]string, 0, len(t.m))
		for k := range t.m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y string) int { return cmp.Or(t.m[y]-t.m[x], strings.Compare(x, y)) })
		for _, k := range keys {
			fmt.Fprintf(&b, "| %s | %d |\n", k, t.m[k])
		}
	}
	return b.String()
}
