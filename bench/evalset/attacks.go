package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/wardenfhir/warden/internal/detect"
)

// The attack types, in report order.
var attackTypes = []string{"scraping", "slow-exfiltration", "id-walking", "bola-probing", "token-replay", "after-hours-bulk"}

// attack is one labelled attack instance.
type attack struct {
	kind     string
	start    time.Time
	victim   int // the normal actor whose credentials or token are used; -1 none
	detected bool
	at       time.Time // first alert (or refusal) on the attack's requests
}

// pickActor returns a random actor of kind k that is not yet a victim.
func (w *world) pickActor(k kind, victims map[int]bool) int {
	for {
		i := w.rng.IntN(len(w.actors))
		if w.actors[i].kind == k && !victims[i] {
			return i
		}
	}
}

// unrelatedPatient is a patient outside a's panel.
func (w *world) unrelatedPatient(a *actor) int {
	for {
		if p := w.rng.IntN(len(w.patients)); !a.panel[p] {
			return p
		}
	}
}

// inject appends the requests of one attack of type kind on day d and
// returns its label.
func (w *world) inject(kind string, d int, idx int32, victims map[int]bool, out []rec) ([]rec, attack) {
	rng := w.rng
	base := w.start.Add(time.Duration(d) * 24 * time.Hour)
	at := func(h float64) time.Time { return base.Add(time.Duration(h * float64(time.Hour))) }
	outside := netip.AddrFrom4([4]byte{203, 0, byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
	atk := attack{kind: kind, victim: -1}
	add := func(ev detect.Event, who int32) { out = append(out, rec{ev, who, idx}) }
	switch kind {
	case "scraping":
		// Stolen clinician credentials: two distinct patients a second
		// for ten minutes, from outside.
		v := w.pickActor(clinician, victims)
		a := &w.actors[v]
		atk.victim, atk.start = v, at(rng.Float64()*23)
		token := w.token()
		for k := 0; k < 1200; k++ {
			p := rng.IntN(len(w.patients))
			add(w.request(a, atk.start.Add(time.Duration(k)*500*time.Millisecond), token, outside, detect.Read, "Patient", w.patients[p], []int{p}, 200, 1), -1)
		}
	case "slow-exfiltration":
		// Stolen clinician credentials, in working hours, one patient
		// outside the panel every 15–25 s for an hour: about 180
		// distinct patients an hour and 6 requests a minute, under the
		// clinician-app limits (500 patients an hour, 1,200 requests a
		// minute).
		v := w.pickActor(clinician, victims)
		a := &w.actors[v]
		atk.victim, atk.start = v, at(9+rng.Float64()*7)
		token := w.token()
		t := atk.start
		for t.Before(atk.start.Add(time.Hour)) {
			p := w.unrelatedPatient(a)
			add(w.request(a, t, token, outside, detect.Read, "Patient", w.patients[p], []int{p}, 200, 1), -1)
			ev := w.request(a, t.Add(2*time.Second), token, outside, detect.Search, "Observation", "", []int{p}, 200, 20+rng.IntN(40))
			add(ev, -1)
			t = t.Add(time.Duration(15+rng.IntN(11)) * time.Second)
		}
	case "id-walking":
		// A patient-app user of their own account walks numeric ids
		// (the server's ids are random, so they answer 404).
		a := actor{kind: patientUser, client: "patient-app-0", user: fmt.Sprintf("Patient/walker-%d", idx), home: outside}
		atk.start = at(rng.Float64() * 23)
		token := w.token()
		first := 1000 + rng.IntN(100000)
		for k := 0; k < 600; k++ {
			id := strconv.Itoa(first + k)
			add(w.request(&a, atk.start.Add(time.Duration(k)*time.Second), token, outside, detect.Read, "Patient", id, nil, 404, 0), -1)
		}
	case "bola-probing":
		// A patient-app token asks for other patients' real ids: reads
		// answer 404, compartment searches 403.
		a := actor{kind: patientUser, client: "patient-app-0", user: fmt.Sprintf("Patient/prober-%d", idx), home: outside}
		atk.start = at(rng.Float64() * 23)
		token := w.token()
		t := atk.start
		for t.Before(atk.start.Add(10 * time.Minute)) {
			p := rng.IntN(len(w.patients))
			if rng.IntN(2) == 0 {
				add(w.request(&a, t, token, outside, detect.Read, "Patient", w.patients[p], nil, 404, 0), -1)
			} else {
				add(w.request(&a, t, token, outside, detect.Search, "Observation", "", nil, 403, 0), -1)
			}
			t = t.Add(time.Duration(3+rng.IntN(4)) * time.Second)
		}
	case "token-replay":
		// A patient's session token is copied and used from another
		// network while the patient goes on using it.
		v := w.pickActor(patientUser, victims)
		a := &w.actors[v]
		atk.victim, atk.start = v, at(8+rng.Float64()*14)
		token := w.token()
		p := a.own[0]
		vt := atk.start.Add(-time.Duration(rng.IntN(120)) * time.Second)
		for vt.Before(atk.start.Add(15 * time.Minute)) {
			ev := w.request(a, vt, token, a.home, detect.Search, patientTypes[rng.IntN(len(patientTypes))], "", []int{p}, 200, 1+rng.IntN(30))
			add(ev, int32(v))
			vt = vt.Add(time.Duration(5+rng.IntN(16)) * time.Second)
		}
		for t := atk.start; t.Before(atk.start.Add(10 * time.Minute)); t = t.Add(time.Duration(2+rng.IntN(4)) * time.Second) {
			add(w.request(a, t, token, outside, detect.Search, patientTypes[rng.IntN(len(patientTypes))], "", []int{p}, 200, 1+rng.IntN(30)), -1)
		}
	case "after-hours-bulk":
		// A clinician, from home at night, with their own fresh token:
		// large-_count searches and $everything across many patients.
		v := w.pickActor(clinician, victims)
		a := &w.actors[v]
		atk.victim, atk.start = v, at(1+rng.Float64()*3)
		token := w.token()
		t := atk.start
		for k := 0; k < 12; k++ {
			if k%4 == 0 {
				ps := make([]int, 0, 1000)
				for len(ps) < 1000 {
					ps = append(ps, rng.IntN(len(w.patients)))
				}
				ev := w.request(a, t, token, a.home, detect.Search, "Observation", "", ps, 200, 1000)
				ev.Count = 1000
				add(ev, -1)
			} else {
				p := rng.IntN(len(w.patients))
				add(w.request(a, t, token, a.home, detect.Everything, "Patient", w.patients[p], []int{p}, 200, 300+rng.IntN(500)), -1)
			}
			t = t.Add(time.Duration(20+rng.IntN(40)) * time.Second)
		}
	}
	if atk.victim >= 0 {
		victims[atk.victim] = true
	}
	return out, atk
}
