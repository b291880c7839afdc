package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// memGrants is an in-memory Grants ledger (internal/grants is the real
// one, over FHIR Consents; it has its own tests).
type memGrants struct {
	mu     sync.Mutex
	grants []Grant
	fail   bool
}

func (m *memGrants) Record(_ context.Context, g Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("ledger down")
	}
	m.grants = append(m.grants, g)
	return nil
}

func (m *memGrants) ForPatient(_ context.Context, patient string) ([]Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Grant
	for _, g := range m.grants {
		if g.Patient == patient {
			out = append(out, g)
		}
	}
	return out, nil
}

func (m *memGrants) Deactivate(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.grants {
		if m.grants[i].ID == id {
			m.grants[i].Active = false
		}
	}
	return nil
}

func (m *memGrants) Block(_ context.Context, patient, id, label string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.grants {
		if m.grants[i].ID == id && m.grants[i].Patient == patient {
			m.grants[i].Blocked = append(m.grants[i].Blocked, label)
			return nil
		}
	}
	return errors.New("no such grant")
}

// connect runs a standalone launch for u's patient and returns the token
// response.
func connect(t *testing.T, e *env, c Client, u testUser, patient string) map[string]any {
	t.Helper()
	p := newPKCE()
	b := e.browser(t)
	authURL, _ := e.authorizeURL(c, "launch/patient offline_access patient/Observation.rs patient/Patient.r", p, nil)
	pg := b.login(t, b.get(t, authURL), u, "")
	if len(pg.inputs("patient")) > 0 {
		pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {patient}})
	}
	params := redirectParams(t, b.approve(t, pg, nil), c)
	st, tok, _ := e.exchange(t, c, "", params.Get("code"), p.verifier)
	if st != http.StatusOK {
		t.Fatalf("token: %d %v", st, tok)
	}
	return tok
}

// portalLogin signs u in to the patient pages and returns the page.
func portalLogin(t *testing.T, b *browser, u testUser) page {
	t.Helper()
	pg := b.get(t, b.e.ts.URL+portalPath)
	if pg.status != 200 || len(pg.inputs("csrf_token")) == 0 {
		t.Fatalf("portal sign-in page: %d %.300s", pg.status, pg.body)
	}
	pg = b.post(t, portalLoginPath, url.Values{"csrf_token": {pg.csrf(t)}, "username": {u.Username}, "password": {u.password}})
	if pg.status != http.StatusSeeOther || pg.location == nil || pg.location.Path != portalPath {
		t.Fatalf("portal sign-in: %d %v %.300s", pg.status, pg.location, pg.body)
	}
	return b.get(t, b.e.ts.URL+portalPath)
}

// TestPortalRevoke: a patient's approval is recorded as a grant; the
// patient sees the app on the patient pages and revokes it; at once its
// access token is refused and its refresh token is dead.
func TestPortalRevoke(t *testing.T) {
	ledger := &memGrants{}
	e := newEnv(t, func(o *Options) { o.Grants = ledger })
	c, _ := e.appClient(t, ClientPublic, appScopes)
	u := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	tok := connect(t, e, c, u, "p1")
	grants, _ := ledger.ForPatient(e.ctx, "p1")
	if len(grants) != 1 || grants[0].ClientID != c.ID || !grants[0].Active || grants[0].UserID != u.ID ||
		!slices.Contains(grants[0].Scopes, "patient/Observation.rs") {
		t.Fatalf("recorded grants: %+v", grants)
	}
	pr, err := e.tokens.Verify(e.ctx, tok["access_token"].(string))
	if err != nil || pr.GrantID != grants[0].ID {
		t.Fatalf("the token's grant %q is not the recorded one %q (%v)", pr.GrantID, grants[0].ID, err)
	}

	b := e.browser(t)
	pg := portalLogin(t, b, u)
	if !strings.Contains(pg.body, c.Name) || !strings.Contains(pg.body, "observations") {
		t.Fatalf("the page does not show the app and what it may read: %.1500s", pg.body)
	}
	pg = b.post(t, portalRevokePath, url.Values{"csrf_token": {pg.csrf(t)}, "grant": {grants[0].ID}})
	if pg.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %.300s", pg.status, pg.body)
	}
	if _, err := e.tokens.Verify(e.ctx, tok["access_token"].(string)); err == nil {
		t.Fatal("the app's access token still verifies after the revoke returned")
	}
	st, body, _ := e.postForm(t, "/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {c.ID}}, "", "")
	if st == http.StatusOK {
		t.Fatalf("refresh after revoke: %d %v", st, body)
	}
	if g, _ := ledger.ForPatient(e.ctx, "p1"); g[0].Active {
		t.Fatal("the ledger still lists the grant as active")
	}
	if pg = b.get(t, e.ts.URL+portalPath+"?done=revoked"); !strings.Contains(pg.body, "Access revoked") {
		t.Fatalf("after revoke: %.1000s", pg.body)
	}
}

// TestPortalRefusals: the patient pages refuse forged and cross-patient
// requests, practitioners, and expired sessions; a ledger that cannot
// record an approval stops the code.
func TestPortalRefusals(t *testing.T) {
	ledger := &memGrants{}
	e := newEnv(t, func(o *Options) { o.Grants = ledger })
	c, _ := e.appClient(t, ClientPublic, appScopes)
	alice := e.addUser(t, "alice", "Patient/p1", []string{"p1"}, false)
	bob := e.addUser(t, "bob", "Patient/p2", []string{"p2"}, false)
	doc := e.addUser(t, "doc", "Practitioner/d1", nil, false)
	aliceTok := connect(t, e, c, alice, "p1")
	connect(t, e, c, bob, "p2")
	aliceGrant, _ := ledger.ForPatient(e.ctx, "p1")
	bobGrant, _ := ledger.ForPatient(e.ctx, "p2")

	t.Run("another patient's grant", func(t *testing.T) {
		b := e.browser(t)
		pg := portalLogin(t, b, bob)
		if strings.Contains(pg.body, aliceGrant[0].ID) {
			t.Fatal("bob's page lists alice's grant")
		}
		csrf := pg.csrf(t)
		pg = b.post(t, portalRevokePath, url.Values{"csrf_token": {csrf}, "grant": {aliceGrant[0].ID}})
		if pg.status != http.StatusNotFound {
			t.Fatalf("bob revoking alice's grant: %d", pg.status)
		}
		if _, err := e.tokens.Verify(e.ctx, aliceTok["access_token"].(string)); err != nil {
			t.Fatalf("alice's token was revoked by bob: %v", err)
		}
		pg = b.post(t, portalBlockPath, url.Values{"csrf_token": {csrf}, "grant": {aliceGrant[0].ID}, "label": {"PSY"}})
		if pg.status != http.StatusNotFound {
			t.Fatalf("bob blocking on alice's grant: %d", pg.status)
		}
	})
	t.Run("no CSRF token, or another session's", func(t *testing.T) {
		b := e.browser(t)
		portalLogin(t, b, alice)
		other := e.browser(t)
		otherPage := portalLogin(t, other, bob)
		for _, tok := range []string{"", "forged", otherPage.csrf(t)} {
			pg := b.post(t, portalRevokePath, url.Values{"csrf_token": {tok}, "grant": {aliceGrant[0].ID}})
			if pg.status != http.StatusForbidden {
				t.Fatalf("csrf %q: %d", tok, pg.status)
			}
		}
		if g, _ := ledger.ForPatient(e.ctx, "p1"); !g[0].Active {
			t.Fatal("a forged request revoked the grant")
		}
	})
	t.Run("cross-site post", func(t *testing.T) {
		b := e.browser(t)
		pg := portalLogin(t, b, alice)
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+portalRevokePath,
			strings.NewReader(url.Values{"csrf_token": {pg.csrf(t)}, "grant": {aliceGrant[0].ID}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if pg := b.do(t, req); pg.status == http.StatusSeeOther {
			t.Fatal("a cross-site form post was accepted")
		}
	})
	t.Run("practitioner", func(t *testing.T) {
		b := e.browser(t)
		pg := b.get(t, e.ts.URL+portalPath)
		pg = b.post(t, portalLoginPath, url.Values{"csrf_token": {pg.csrf(t)}, "username": {doc.Username}, "password": {doc.password}})
		if pg.status != http.StatusForbidden {
			t.Fatalf("practitioner sign-in: %d", pg.status)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		b := e.browser(t)
		pg := b.get(t, e.ts.URL+portalPath)
		pg = b.post(t, portalLoginPath, url.Values{"csrf_token": {pg.csrf(t)}, "username": {alice.Username}, "password": {"nope"}})
		if pg.status != 200 || !strings.Contains(pg.body, "wrong") {
			t.Fatalf("wrong password: %d", pg.status)
		}
		if pg = b.get(t, e.ts.URL+portalPath); len(pg.inputs("password")) == 0 {
			t.Fatal("a failed sign-in opened the portal")
		}
	})
	t.Run("expired session", func(t *testing.T) {
		b := e.browser(t)
		pg := portalLogin(t, b, alice)
		e.clock.Advance(portalLifetime + 1)
		pg = b.post(t, portalRevokePath, url.Values{"csrf_token": {pg.csrf(t)}, "grant": {aliceGrant[0].ID}})
		if pg.status != http.StatusForbidden {
			t.Fatalf("expired session: %d", pg.status)
		}
	})
	t.Run("block a category", func(t *testing.T) {
		b := e.browser(t)
		pg := portalLogin(t, b, bob)
		if p := b.post(t, portalBlockPath, url.Values{"csrf_token": {pg.csrf(t)}, "grant": {bobGrant[0].ID}, "label": {"NOPE"}}); p.status != http.StatusBadRequest {
			t.Fatalf("unknown category: %d", p.status)
		}
		if p := b.post(t, portalBlockPath, url.Values{"csrf_token": {pg.csrf(t)}, "grant": {bobGrant[0].ID}, "label": {"PSY"}}); p.status != http.StatusSeeOther {
			t.Fatalf("block: %d", p.status)
		}
		if g, _ := ledger.ForPatient(e.ctx, "p2"); !slices.Equal(g[0].Blocked, []string{"PSY"}) {
			t.Fatalf("blocked: %v", g[0].Blocked)
		}
		if pg = b.get(t, e.ts.URL+portalPath); !strings.Contains(pg.body, "Mental health") {
			t.Fatal("the page does not show the blocked category")
		}
	})
	t.Run("ledger down at approval", func(t *testing.T) {
		ledger.mu.Lock()
		ledger.fail = true
		ledger.mu.Unlock()
		defer func() { ledger.mu.Lock(); ledger.fail = false; ledger.mu.Unlock() }()
		p := newPKCE()
		b := e.browser(t)
		authURL, _ := e.authorizeURL(c, "launch/patient patient/Observation.rs", p, nil)
		pg := b.approve(t, b.login(t, b.get(t, authURL), alice, ""), nil)
		if pg.status != http.StatusServiceUnavailable || pg.location != nil {
			t.Fatalf("approval with the ledger down: %d %v", pg.status, pg.location)
		}
	})
}
