package fhirapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/fieldcrypt"
	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/labels"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/sealing"
	"github.com/wardenfhir/warden/internal/store"
)

// testKeys returns field-encryption keys over st's records, wrapped by a
// keyring in dir.
func testKeys(t testing.TB, st store.Records, dir string) *fieldcrypt.Keys {
	t.Helper()
	kr, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := fieldcrypt.New(st, fieldcrypt.KeyringKEK{Keyring: kr}, fieldcrypt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealPolicy seals HIV (step-up when stepUp) and PSY.
func sealPolicy(without sealing.Mode, hiv sealing.Category) *sealing.Policy {
	return &sealing.Policy{Without: without, Categories: map[string]sealing.Category{"HIV": hiv, "PSY": {}}}
}

// hivResult is an HIV viral load result of patient (labelled HIV, R).
func hivResult(id, patient string, value float64) map[string]any {
	o := observation(patient, "http://loinc.org", "20447-9", "2024-03-01", value)
	o["id"] = id
	o["note"] = []any{map[string]any{"text": "undetectable-" + id}}
	return o
}

// newSealedFixture is the authorization fixture with labelling and
// sealing, two HIV results (o1hiv of p1, o2hiv of p2) and tokens with
// sensitive scopes.
func newSealedFixture(t *testing.T, sp *sealing.Policy) *authzFixture {
	t.Helper()
	l, err := labels.New()
	if err != nil {
		t.Fatal(err)
	}
	f := newAuthzFixture(t, func(o *fhirapi.Options) {
		o.Labeller, o.Sealing = l, sp
		o.Policy.MaxAuthAge = 30 * time.Minute
	})
	for _, r := range []map[string]any{hivResult("o1hiv", "p1", 20), hivResult("o2hiv", "p2", 40)} {
		b, _ := json.Marshal(r)
		if _, err := f.api.PutTrusted(fhirapi.Trusted(context.Background()), "Observation", r["id"].(string), b, 0); err != nil {
			t.Fatal(err)
		}
	}
	tok := f.tokens()
	tok["p1-hiv"] = principal("app", "Patient/p1", "p1", "patient/*.cruds sensitive/HIV")
	tok["p1-all-sens"] = principal("app", "Patient/p1", "p1", "patient/*.rs sensitive/*")
	tok["p1-psy"] = principal("app", "Patient/p1", "p1", "patient/*.rs sensitive/PSY")
	mfa := principal("app", "Patient/p1", "p1", "patient/*.rs sensitive/HIV")
	mfa.ACR = policy.ACRMultiFactor
	tok["p1-hiv-mfa"] = mfa
	stale := principal("app", "Patient/p1", "p1", "patient/*.rs sensitive/HIV")
	stale.ACR, stale.AuthTime = policy.ACRMultiFactor, time.Now().Add(-2*time.Hour)
	tok["p1-hiv-mfa-stale"] = stale
	tok["backend-hiv"] = principal("backend", "", "", "system/Observation.rs sensitive/HIV")
	return f
}

func hasCode(t *testing.T, r response, code string) bool {
	t.Helper()
	return bytes.Contains(r.body, []byte(`"`+code+`"`))
}

// TestSealedClearance: a sealed resource opens only for a token cleared
// for its category; everyone else gets what a missing resource gets, on
// every path (read, vread, history, search by code and by patient,
// includes, $everything), and cannot change or delete it either.
func TestSealedClearance(t *testing.T) {
	f := newSealedFixture(t, sealPolicy(sealing.Omit, sealing.Category{}))
	missing := f.as("p1-read", "GET", "/Observation/nosuch", nil)

	// Refused: no sensitive scope, the wrong category's scope.
	for _, tok := range []string{"p1-read", "p1-psy", "p1-all"} {
		for _, path := range []string{"/Observation/o1hiv", "/Observation/o1hiv/_history/1", "/Observation/o1hiv/_history"} {
			r := f.as(tok, "GET", path, nil)
			if r.status != 404 || strings.ReplaceAll(diagnostics(t, r), "o1hiv", "nosuch") != diagnostics(t, missing) && !strings.Contains(diagnostics(t, r), "not found") {
				t.Errorf("%s %s: %d %s, want the 404 of a missing resource", tok, path, r.status, r.body)
			}
			if hasCode(t, r, "20447-9") || bytes.Contains(r.body, []byte("undetectable")) {
				t.Errorf("%s %s disclosed sealed content: %s", tok, path, r.body)
			}
		}
		for _, path := range []string{"/Observation?code=20447-9", "/Observation?code=http://loinc.org|20447-9",
			"/Observation?patient=p1", "/Patient/p1/Observation", "/Patient/p1/$everything",
			"/Patient?_id=p1&_revinclude=Observation:patient", "/Observation?_security=HIV", "/Observation?_summary=count&patient=p1"} {
			r := f.as(tok, "GET", path, nil)
			f.mustStatus(r, 200)
			if bytes.Contains(r.body, []byte("o1hiv")) || bytes.Contains(r.body, []byte("undetectable")) {
				t.Errorf("%s %s disclosed the sealed resource: %s", tok, path, r.body)
			}
			if total, ok := r.json(t)["total"].(float64); ok && strings.Contains(path, "patient=p1") && total != 2 {
				t.Errorf("%s %s: total %v counts the withheld resource (want 2: o1lab, o1vital)", tok, path, total)
			}
		}
	}
	// No write by an uncleared caller: not an update, not a delete, not
	// an update-as-create colliding with it.
	if r := f.as("p1-all", "PUT", "/Observation/o1hiv", hivResult("o1hiv", "p1", 999)); r.status != 404 {
		t.Errorf("uncleared update: %d %s, want 404", r.status, r.body)
	}
	// A delete is answered as for a missing resource, and deletes nothing.
	if r, gone := f.as("p1-all", "DELETE", "/Observation/o1hiv", nil), f.as("p1-all", "DELETE", "/Observation/nosuch", nil); r.status != gone.status {
		t.Errorf("uncleared delete: %d, a missing resource's: %d", r.status, gone.status)
	}
	// Cleared: the content is back, unchanged by the attempts above, and
	// code searches find it by the blind index, with and without the
	// system.
	r := f.as("p1-hiv", "GET", "/Observation/o1hiv", nil)
	f.mustStatus(r, 200)
	if !hasCode(t, r, "20447-9") || !bytes.Contains(r.body, []byte("undetectable-o1hiv")) || r.json(t)["valueQuantity"].(map[string]any)["value"].(float64) != 20 ||
		r.json(t)["meta"].(map[string]any)["versionId"] != "1" {
		t.Fatalf("cleared read: %s", r.body)
	}
	if got := securityCodes(t, r); !slices.Contains(got, "HIV") {
		t.Errorf("cleared read lost its labels: %v", got)
	}
	for _, tok := range []string{"p1-hiv", "p1-all-sens"} {
		for _, q := range []string{"code=20447-9", "code=http://loinc.org|20447-9", "code=http://loinc.org|", "code=http://loinc.org|20447-9,http://loinc.org|1234-5", "_security=HIV", "patient=p1&code=20447-9"} {
			r := f.as(tok, "GET", "/Observation?"+q, nil)
			f.mustStatus(r, 200)
			if ids := entryIDs(t, r.json(t), "match"); !slices.Contains(ids, "Observation/o1hiv") || slices.Contains(ids, "Observation/o2hiv") {
				t.Errorf("%s ?%s: %v", tok, q, ids)
			}
		}
		r := f.as(tok, "GET", "/Observation?code:not=http://loinc.org|20447-9", nil)
		if ids := entryIDs(t, r.json(t), "match"); slices.Contains(ids, "Observation/o1hiv") {
			t.Errorf("%s :not matched the sealed result: %v", tok, ids)
		}
		if r := f.as(tok, "GET", "/Observation?code=http://snomed.info/sct|20447-9", nil); slices.Contains(entryIDs(t, r.json(t), "match"), "Observation/o1hiv") {
			t.Errorf("%s: a code under another system matched", tok)
		}
	}
	// A backend with system scope and the category scope reaches both.
	r = f.as("backend-hiv", "GET", "/Observation?code=20447-9", nil)
	if ids := entryIDs(t, r.json(t), "match"); !slices.Contains(ids, "Observation/o1hiv") || !slices.Contains(ids, "Observation/o2hiv") {
		t.Errorf("backend: %v", ids)
	}
	// The cleared caller may update it, and the new version is sealed too.
	upd := hivResult("o1hiv", "p1", 30)
	f.mustStatus(f.as("p1-hiv", "PUT", "/Observation/o1hiv", upd), 200)
	if r := f.as("p1-hiv", "GET", "/Observation/o1hiv/_history/1", nil); !bytes.Contains(r.body, []byte(`"value":20`)) {
		t.Errorf("version 1 after update: %s", r.body)
	}
	if r := f.as("p1-read", "GET", "/Observation/o1hiv/_history/2", nil); r.status != 404 {
		t.Errorf("uncleared vread of the new version: %d", r.status)
	}
}

// TestSealedConsentStepUpGlass: clearance needs the scope and, where the
// category asks for it, a recent second factor or a broken glass; a
// break-the-glass user is cleared without the scope unless the category
// forbids it; a patient's consent withholds it even from a cleared app.
func TestSealedConsentStepUpGlass(t *testing.T) {
	f := newSealedFixture(t, sealPolicy(sealing.Omit, sealing.Category{StepUp: true}))
	for tok, want := range map[string]int{"p1-hiv": 404, "p1-hiv-mfa-stale": 404, "p1-hiv-mfa": 200} {
		if r := f.as(tok, "GET", "/Observation/o1hiv", nil); r.status != want {
			t.Errorf("step-up category, %s: %d, want %d", tok, r.status, want)
		}
	}
	if r := f.as("prac-p2-glass", "GET", "/Observation/o2hiv", nil); r.status != 200 || !hasCode(t, r, "20447-9") {
		t.Errorf("break the glass: %d %s", r.status, r.body)
	}
	if r := f.as("prac-p1", "GET", "/Observation/o1hiv", nil); r.status != 404 {
		t.Errorf("a practitioner without the glass or the scope: %d", r.status)
	}
	if r := f.as("prac-p1", "GET", "/Observation/o1lab", nil); r.status != 200 {
		t.Errorf("the same practitioner, an unsealed result: %d", r.status)
	}

	g := newSealedFixture(t, sealPolicy(sealing.Omit, sealing.Category{NoBreakGlass: true}))
	if r := g.as("prac-p2-glass", "GET", "/Observation/o2hiv", nil); r.status != 404 {
		t.Errorf("category closed to break-the-glass: %d", r.status)
	}

	cs := &denyList{client: "app", patient: "p1", denied: map[string]bool{}}
	l, _ := labels.New()
	h := newAuthzFixture(t, func(o *fhirapi.Options) {
		o.Labeller, o.Sealing, o.Consents = l, sealPolicy(sealing.Omit, sealing.Category{}), cs
	})
	b, _ := json.Marshal(hivResult("o1hiv", "p1", 20))
	if _, err := h.api.PutTrusted(fhirapi.Trusted(context.Background()), "Observation", "o1hiv", b, 0); err != nil {
		t.Fatal(err)
	}
	h.tokens()["p1-hiv"] = principal("app", "Patient/p1", "p1", "patient/*.rs sensitive/HIV")
	h.mustStatus(h.as("p1-hiv", "GET", "/Observation/o1hiv", nil), 200)
	cs.deny("Observation/o1hiv")
	if r := h.as("p1-hiv", "GET", "/Observation/o1hiv", nil); r.status != 404 {
		t.Errorf("consent denial with clearance: %d", r.status)
	}
}

// TestSealedRedacted: under the redact policy an uncleared caller gets
// the resource without its content and without its sensitivity label,
// marked REDACTED; searches on its sealed codes still find nothing.
func TestSealedRedacted(t *testing.T) {
	f := newSealedFixture(t, sealPolicy(sealing.Redact, sealing.Category{}))
	r := f.as("p1-read", "GET", "/Observation/o1hiv", nil)
	f.mustStatus(r, 200)
	body := r.json(t)
	if _, has := body["code"]; has || bytes.Contains(r.body, []byte("undetectable")) || bytes.Contains(r.body, []byte("20447-9")) {
		t.Errorf("redacted read has content: %s", r.body)
	}
	if got := securityCodes(t, r); slices.Contains(got, "HIV") || !slices.Contains(got, "REDACTED") {
		t.Errorf("redacted labels %v", got)
	}
	r = f.as("p1-read", "GET", "/Observation?patient=p1", nil)
	if ids := entryIDs(t, r.json(t), "match"); !slices.Contains(ids, "Observation/o1hiv") || bytes.Contains(r.body, []byte("undetectable")) {
		t.Errorf("redacted search: %v %s", ids, r.body)
	}
	if r := f.as("p1-read", "GET", "/Observation?code=20447-9", nil); len(entryIDs(t, r.json(t), "match")) != 0 {
		t.Errorf("an uncleared code search matched sealed content")
	}
	if r := f.as("p1-all", "PUT", "/Observation/o1hiv", hivResult("o1hiv", "p1", 1)); r.status != 404 {
		t.Errorf("an uncleared update of a redacted resource: %d", r.status)
	}
}

// rawDB opens the fixture's SQLite file for tampering.
func rawDB(t *testing.T, f *authzFixture) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(f.dir, "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSealedTamper: a sealed member copied from another record, another
// version or another patient, a flipped byte, a forged member in a
// write, and keys under another master key all fail closed: nothing of
// the content is served.
func TestSealedTamper(t *testing.T) {
	f := newSealedFixture(t, sealPolicy(sealing.Omit, sealing.Category{}))
	f.mustStatus(f.as("p1-hiv", "PUT", "/Observation/o1hiv", hivResult("o1hiv", "p1", 21)), 200)
	b, _ := json.Marshal(hivResult("o3hiv", "p1", 50))
	if _, err := f.api.PutTrusted(fhirapi.Trusted(context.Background()), "Observation", "o3hiv", b, 0); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, f)
	get := func(id string, version int) []byte {
		var js []byte
		if err := db.QueryRow(`SELECT json FROM resources WHERE type='Observation' AND id=? AND version=?`, id, version).Scan(&js); err != nil {
			t.Fatal(err)
		}
		return js
	}
	set := func(id string, version int, js []byte) {
		if _, err := db.Exec(`UPDATE resources SET json=? WHERE type='Observation' AND id=? AND version=?`, js, id, version); err != nil {
			t.Fatal(err)
		}
	}
	swapIn := func(dst, src []byte) []byte {
		i, j := bytes.LastIndex(dst, []byte(`,"_sealed":`)), bytes.LastIndex(src, []byte(`,"_sealed":`))
		return append(slices.Clip(dst[:i]), src[j:]...)
	}
	orig := get("o1hiv", 2)
	for name, forged := range map[string][]byte{
		"another record of the same patient": swapIn(orig, get("o3hiv", 1)),
		"another patient":                    swapIn(orig, get("o2hiv", 1)),
		"an older version":                   swapIn(orig, get("o1hiv", 1)),
		"a flipped byte":                     flipInCiphertext(t, orig),
	} {
		set("o1hiv", 2, forged)
		r := f.as("p1-hiv", "GET", "/Observation/o1hiv", nil)
		if r.status != 500 || bytes.Contains(r.body, []byte("undetectable")) || bytes.Contains(r.body, []byte("20447-9")) {
			t.Errorf("%s: %d %s, want a 500 disclosing nothing", name, r.status, r.body)
		}
		if r := f.as("p1-hiv", "GET", "/Observation?patient=p1", nil); r.status != 500 || bytes.Contains(r.body, []byte("undetectable")) {
			t.Errorf("%s in a search: %d", name, r.status)
		}
	}
	set("o1hiv", 2, orig)
	f.mustStatus(f.as("p1-hiv", "GET", "/Observation/o1hiv", nil), 200)

	forged := hivResult("o9", "p1", 1)
	forged["_sealed"] = map[string]any{"v": 1}
	if r := f.as("p1-hiv", "PUT", "/Observation/o9", forged); r.status != 400 {
		t.Errorf("a write carrying _sealed: %d", r.status)
	}

	// Another master key cannot unwrap the category keys: 503, retry.
	l, _ := labels.New()
	other, err := fhirapi.New(f.st, fhirapi.Options{BaseURL: f.url, CursorKey: bytes.Repeat([]byte{7}, 32), Unauthenticated: true,
		Labeller: l, Sealing: sealPolicy(sealing.Omit, sealing.Category{}), Keys: testKeys(t, f.st, t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ReadTrusted(fhirapi.Trusted(context.Background()), "Observation", "o1hiv"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("wrong master key: %v, want ErrUnavailable", err)
	}
}

// flipInCiphertext flips one bit in the middle of the sealed ciphertext.
func flipInCiphertext(t *testing.T, stored []byte) []byte {
	t.Helper()
	_, _, ct, ok := sealing.CiphertextOf(stored)
	if !ok {
		t.Fatal("not sealed")
	}
	ct[len(ct)/2] ^= 1
	i := bytes.LastIndex(stored, []byte(`,"_sealed":`))
	var b map[string]any
	if err := json.Unmarshal(stored[i+len(`,"_sealed":`):len(stored)-1], &b); err != nil {
		t.Fatal(err)
	}
	b["ct"] = ct
	nb, _ := json.Marshal(b)
	return append(append(append(slices.Clip(stored[:i]), `,"_sealed":`...), nb...), '}')
}

// TestSealedAtRest: after writing labelled resources, the database file
// holds none of their clinical values: not the code, not the note, not
// the display, in the resources or the index.
func TestSealedAtRest(t *testing.T) {
	f := newSealedFixture(t, sealPolicy(sealing.Omit, sealing.Category{}))
	for _, want := range []string{"o1lab"} {
		f.mustStatus(f.as("p1-read", "GET", "/Observation/"+want, nil), 200)
	}
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}
	var all []byte
	matches, _ := filepath.Glob(filepath.Join(f.dir, "w.db*"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if !bytes.Contains(all, []byte("1234-5")) {
		t.Fatal("the unlabelled results' code is not in the file: the scan looks in the wrong place")
	}
	for _, secret := range []string{"20447-9", "undetectable-o1hiv", "undetectable-o2hiv", "HIV 1 RNA"} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("%q is in the database file in clear", secret)
		}
	}
}

// TestSealedLifecycleUnderLoad: while a cleared app reads, searches and
// writes HIV results of one patient without pause, the HIV key is
// rotated, every sealed version is re-sealed by the job, and another
// patient's HIV data is crypto-shredded. No request of the app fails;
// afterwards nothing is left on the old key, the shredded patient's
// results are gone for everyone, and the first patient's all open.
func TestSealedLifecycleUnderLoad(t *testing.T) {
	f := newSealedFixture(t, sealPolicy(sealing.Omit, sealing.Category{}))
	f.tokens()["p2-hiv"] = principal("app", "Patient/p2", "p2", "patient/*.rs sensitive/HIV")
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var requests atomic.Int64
	fail := func(s string) { mu.Lock(); failures = append(failures, s); mu.Unlock() }
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var r response
				switch i % 3 {
				case 0:
					r = f.as("p1-hiv", "GET", "/Observation/o1hiv", nil)
				case 1:
					r = f.as("p1-hiv", "GET", "/Observation?code=http://loinc.org|20447-9&patient=p1", nil)
				default:
					r = f.as("p1-hiv", "PUT", fmt.Sprintf("/Observation/load-%d-%d", w, i), hivResult(fmt.Sprintf("load-%d-%d", w, i), "p1", float64(i)))
				}
				requests.Add(1)
				if r.status != 200 && r.status != 201 {
					fail(fmt.Sprintf("worker %d request %d: %d %s", w, i, r.status, r.body))
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := f.keys.Rotate(ctx, "HIV", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	st := sealing.New(f.st, f.keys, *sealPolicy(sealing.Omit, sealing.Category{}))
	p, err := f.keys.RunReseal(ctx, st.ResealJob(f.keys, f.st, "test-reseal", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.keys.ShredPatient(ctx, "HIV", "", "p2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during rotation, re-encryption and shredding; first: %s", len(failures), requests.Load(), failures[0])
	}
	if p.Resealed == 0 {
		t.Errorf("the job re-sealed nothing: %+v", p)
	}
	// A second pass finds nothing left on the old key (what was written
	// during the first went to the new key).
	p2, err := f.keys.RunReseal(ctx, st.ResealJob(f.keys, f.st, "test-reseal-2", nil))
	if err != nil || p2.Resealed != 0 || p2.Failed != 0 {
		t.Errorf("second pass: %+v, %v", p2, err)
	}
	for _, tok := range []string{"p2-hiv", "backend-hiv"} {
		if r := f.as(tok, "GET", "/Observation/o2hiv", nil); r.status != 404 || bytes.Contains(r.body, []byte("undetectable")) {
			t.Errorf("%s read of shredded data: %d %s", tok, r.status, r.body)
		}
	}
	r := f.as("p1-hiv", "GET", "/Observation?code=20447-9&_count=1000", nil)
	f.mustStatus(r, 200)
	if n := len(entryIDs(t, r.json(t), "match")); n < 2 || int64(n) > requests.Load() {
		t.Errorf("p1's HIV results after the lifecycle: %d", n)
	}
	if r := f.as("p1-hiv", "GET", "/Observation/o1hiv/_history/1", nil); r.status != 200 || !bytes.Contains(r.body, []byte("undetectable-o1hiv")) {
		t.Errorf("an old version after re-sealing: %d", r.status)
	}
	t.Logf("%d requests during the lifecycle, %d values re-sealed", requests.Load(), p.Resealed)
}
