package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
)

type kind uint8

const (
	patientUser kind = iota // a patient using a SMART patient app
	clinician               // a practitioner using a clinician app
	backendSvc              // a SMART Backend Services client
)

// actor is one normal caller of the simulated site.
type actor struct {
	kind   kind
	client string
	user   string
	own    []int        // patient user: their patients (guardians have two); clinician: the panel
	panel  map[int]bool // clinician: the patients they have a care relationship with
	home   netip.Addr   // patient: home Wi-Fi; clinician: home (on call)
	mobile netip.Addr   // patient: mobile data
	onCall bool         // clinician: takes night calls
}

// rec is one simulated request: the event, the normal actor it belongs
// to (-1 for an attacker's) and the attack it is part of (-1 none).
type rec struct {
	ev     detect.Event
	actor  int32
	attack int32
}

type world struct {
	rng      *rand.Rand
	patients []string
	real     int // how many of patients are Synthea ids
	actors   []actor
	start    time.Time
	jti      int
	hospital []netip.Addr
}

func addr(rng *rand.Rand, a byte) netip.Addr {
	return netip.AddrFrom4([4]byte{a, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
}

// newWorld builds the site: patients (the Synthea ids, then synthetic
// ones up to the population needed) and n normal actors: 80% patient-app
// users, 18% clinicians, 2% backend services.
func newWorld(rng *rand.Rand, n int, synthea []string, start time.Time) *world {
	w := &world{rng: rng, start: start}
	need := max(n+n/5, 2000)
	w.patients = append(w.patients, synthea...)
	w.real = len(synthea)
	for len(w.patients) < need {
		w.patients = append(w.patients, syntheticID(rng))
	}
	rng.Shuffle(len(w.patients), func(i, j int) { w.patients[i], w.patients[j] = w.patients[j], w.patients[i] })
	for i := 0; i < 4; i++ {
		w.hospital = append(w.hospital, netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}))
	}
	nPatientApps := max(2, n/2500)
	nextPatient := 0
	for i := 0; i < n; i++ {
		r := rng.Float64()
		switch {
		case r < 0.80:
			a := actor{kind: patientUser, client: fmt.Sprintf("patient-app-%d", rng.IntN(nPatientApps)),
				home: addr(rng, 10), mobile: addr(rng, 100)}
			a.own = []int{nextPatient % len(w.patients)}
			nextPatient++
			if rng.Float64() < 0.1 { // a guardian: their child too
				a.own = append(a.own, nextPatient%len(w.patients))
				nextPatient++
			}
			a.user = "Patient/" + w.patients[a.own[0]]
			w.actors = append(w.actors, a)
		case r < 0.98:
			a := actor{kind: clinician, client: fmt.Sprintf("clinician-app-%d", rng.IntN(3)),
				user: fmt.Sprintf("Practitioner/pr-%d", i), home: addr(rng, 172), onCall: rng.Float64() < 0.15,
				panel: map[int]bool{}}
			size := 40 + rng.IntN(160)
			for len(a.own) < size {
				p := rng.IntN(len(w.patients))
				if !a.panel[p] {
					a.panel[p] = true
					a.own = append(a.own, p)
				}
			}
			w.actors = append(w.actors, a)
		default:
			w.actors = append(w.actors, actor{kind: backendSvc, client: fmt.Sprintf("backend-%d", i), home: addr(rng, 198)})
		}
	}
	return w
}

func (w *world) token() string {
	w.jti++
	return fmt.Sprintf("jti-%d", w.jti)
}

func (a *actor) class() string {
	switch a.kind {
	case clinician:
		return detect.ClinicianApp
	case backendSvc:
		return detect.Backend
	}
	return detect.PatientApp
}

// unrelated is the patients of ps that a has no care relationship with
// (clinicians only: for other callers the question does not apply).
func (w *world) unrelated(a *actor, ps []int) []string {
	if a.kind != clinician {
		return nil
	}
	var out []string
	for _, p := range ps {
		if !a.panel[p] {
			out = append(out, w.patients[p])
		}
	}
	return out
}

func (w *world) ids(ps []int) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = w.patients[p]
	}
	return out
}

// request builds the event of a request by actor a about patients ps.
func (w *world) request(a *actor, t time.Time, token string, peer netip.Addr, interaction, typ, id string, ps []int, status, results int) detect.Event {
	ev := detect.Event{Time: t, Client: a.client, Class: a.class(), User: a.user, Token: token, Peer: peer,
		Interaction: interaction, Type: typ, ID: id, Status: status, Results: results}
	if status < 300 && results > 0 {
		ev.Patients = w.ids(ps)
		ev.Unrelated = w.unrelated(a, ps)
	}
	return ev
}

var patientTypes = []string{"Observation", "Condition", "MedicationRequest", "Immunization", "AllergyIntolerance", "Encounter", "DiagnosticReport"}

// chart emits the requests of one look at patient p's chart: a read of
// the Patient and a few searches (some empty, some with includes), a few
// seconds apart; it returns the time after the last one.
func (w *world) chart(out []rec, who int32, a *actor, t time.Time, token string, peer netip.Addr, p int, n int) ([]rec, time.Time) {
	rng := w.rng
	status := 200
	if rng.Float64() < 0.01 {
		status = 404 // a stale link
	}
	out = append(out, rec{w.request(a, t, token, peer, detect.Read, "Patient", w.patients[p], []int{p}, status, 1), who, -1})
	for i := 1; i < n; i++ {
		t = t.Add(time.Duration(1+rng.IntN(20)) * time.Second)
		results := rng.IntN(60)
		if rng.Float64() < 0.2 {
			results = 0
		}
		ev := w.request(a, t, token, peer, detect.Search, patientTypes[rng.IntN(len(patientTypes))], "", []int{p}, 200, results)
		ev.Count = []int{0, 20, 50, 100}[rng.IntN(4)]
		if rng.Float64() < 0.1 {
			ev.Includes = 1 + rng.IntN(2)
		}
		out = append(out, rec{ev, who, -1})
	}
	return out, t
}

// day appends the normal traffic of day d.
func (w *world) day(d int, out []rec) []rec {
	rng := w.rng
	base := w.start.Add(time.Duration(d) * 24 * time.Hour)
	at := func(h float64) time.Time { return base.Add(time.Duration(h * float64(time.Hour))) }
	for i := range w.actors {
		a := &w.actors[i]
		who := int32(i)
		switch a.kind {
		case patientUser:
			for s := 0; s < 1+rng.IntN(3); s++ {
				h := 7 + rng.Float64()*16
				if rng.Float64() < 0.05 {
					h = rng.Float64() * 7
				}
				t := at(h)
				token, peer := w.token(), a.home
				if rng.Float64() < 0.3 {
					peer = a.mobile
				}
				switchAt := -1
				if rng.Float64() < 0.1 {
					switchAt = 2 + rng.IntN(4) // Wi-Fi to mobile data, once
				}
				for k, p := range a.own {
					n := 3 + rng.IntN(8)
					if k == 0 && switchAt > 0 {
						var first []rec
						first, t = w.chart(nil, who, a, t, token, peer, p, switchAt)
						out = append(out, first...)
						if peer == a.home {
							peer = a.mobile
						} else {
							peer = a.home
						}
						t = t.Add(time.Duration(5+rng.IntN(30)) * time.Second)
						n = max(1, n-switchAt)
					}
					out, t = w.chart(out, who, a, t, token, peer, p, n)
					t = t.Add(time.Duration(2+rng.IntN(20)) * time.Second)
				}
			}
		case clinician:
			token := w.token()
			peer := w.hospital[rng.IntN(len(w.hospital))]
			startH := 7 + rng.Float64()*2
			length := 8 + rng.Float64()*2
			// The worklist: one search disclosing up to 30 panel patients.
			list := a.own[:min(30, len(a.own))]
			ev := w.request(a, at(startH), token, peer, detect.Search, "Patient", "", list, 200, len(list))
			ev.Count = 50
			out = append(out, rec{ev, who, -1})
			seen := 20 + rng.IntN(21)
			for k := 0; k < seen; k++ {
				p := a.own[rng.IntN(len(a.own))]
				t := at(startH + rng.Float64()*length)
				out, _ = w.chart(out, who, a, t, token, peer, p, 3+rng.IntN(8))
			}
			if rng.Float64() < 0.05 { // a consult: a patient from outside the panel
				for k := 0; k < 1+rng.IntN(2); k++ {
					p := rng.IntN(len(w.patients))
					out, _ = w.chart(out, who, a, at(startH+rng.Float64()*length), token, peer, p, 3+rng.IntN(5))
				}
			}
			if a.onCall && rng.Float64() < 0.5 { // a night on call, from home, on the ward's (panel) patients
				ntoken := w.token()
				for k := 0; k < 3+rng.IntN(6); k++ {
					h := 22 + rng.Float64()*8
					if h >= 24 {
						h -= 24
					}
					p := a.own[rng.IntN(len(a.own))]
					out, _ = w.chart(out, who, a, at(h), ntoken, a.home, p, 2+rng.IntN(5))
				}
			}
		case backendSvc:
			token := w.token()
			// Nightly bulk export: the kick-off, then files of 1,000 patients.
			t := at(1 + rng.Float64()*2)
			ev := detect.Event{Time: t, Client: a.client, Class: detect.Backend, Token: token, Peer: a.home,
				Interaction: detect.Export, Type: "Patient", Status: 202}
			out = append(out, rec{ev, who, -1})
			n := min(len(w.patients), 5000)
			off := rng.IntN(len(w.patients))
			for f := 0; f < n; f += 1000 {
				t = t.Add(time.Duration(10+rng.IntN(50)) * time.Second)
				ps := make([]int, 0, 1000)
				for k := f; k < min(f+1000, n); k++ {
					ps = append(ps, (off+k)%len(w.patients))
				}
				out = append(out, rec{w.request(a, t, token, a.home, detect.Other, "Binary", "", ps, 200, len(ps)), who, -1})
			}
			// Daytime lookups.
			dtoken := w.token()
			for k := 0; k < 5+rng.IntN(20); k++ {
				p := rng.IntN(len(w.patients))
				ev := w.request(a, at(8+rng.Float64()*10), dtoken, a.home, detect.Search, "Encounter", "", []int{p}, 200, 1+rng.IntN(30))
				ev.Count = 100
				out = append(out, rec{ev, who, -1})
			}
		}
	}
	return out
}
