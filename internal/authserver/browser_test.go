package authserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/identity"
)

// browser drives the HTML forms with net/http and a cookie jar, by the
// stable field names, as a scripted user agent would.
type browser struct {
	e      *env
	client *http.Client
}

func (e *env) browser(t testing.TB) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *e.http
	c.Jar = jar
	return &browser{e: e, client: &c}
}

// page is one response of the interaction.
type page struct {
	status   int
	body     string
	location *url.URL // set for redirects
	header   http.Header
}

func (b *browser) do(t testing.TB, req *http.Request) page {
	t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(body), header: resp.Header}
	if loc := resp.Header.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		p.location = u
	}
	return p
}

func (b *browser) get(t testing.TB, rawURL string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

// post submits a form to a page path, same-origin as a browser would.
func (b *browser) post(t testing.TB, path string, form url.Values) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.e.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(t, req)
}

var inputRE = regexp.MustCompile(`<input[^>]*>`)
var attrRE = regexp.MustCompile(`([a-z_-]+)="([^"]*)"`)

// inputs returns the values of the page's inputs named name.
func (p page) inputs(name string) []string {
	var out []string
	for _, tag := range inputRE.FindAllString(p.body, -1) {
		attrs := map[string]string{}
		for _, m := range attrRE.FindAllStringSubmatch(tag, -1) {
			attrs[m[1]] = html.UnescapeString(m[2])
		}
		if attrs["name"] == name {
			out = append(out, attrs["value"])
		}
	}
	return out
}

func (p page) csrf(t testing.TB) string {
	t.Helper()
	v := p.inputs("csrf_token")
	if len(v) == 0 || v[0] == "" {
		t.Fatalf("no csrf_token on the page (%d): %s", p.status, p.body)
	}
	return v[0]
}

// pkce is a code verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := rand.Text() + rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authorizeURL builds a SMART authorization request.
func (e *env) authorizeURL(c Client, scope string, p pkce, mod func(url.Values)) (string, url.Values) {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ID},
		"redirect_uri":          {c.RedirectURIs[0]},
		"scope":                 {scope},
		"state":                 {rand.Text()[:16]},
		"aud":                   {e.issuer},
		"code_challenge":        {p.challenge},
		"code_challenge_method": {"S256"},
	}
	if mod != nil {
		mod(q)
	}
	return e.ts.URL + "/auth/authorize?" + q.Encode(), q
}

// testUser is a created account and its credentials.
type testUser struct {
	identity.User
	password, totpSecret string
}

func (e *env) addUser(t testing.TB, name, fhirUser string, patients []string, totp bool) testUser {
	t.Helper()
	pw := "correct horse battery " + name
	u, secret, err := e.users.Create(e.ctx, identity.NewUser{Username: name, Password: pw, Name: "User " + name, FHIRUser: fhirUser, Patients: patients, TOTP: totp})
	if err != nil {
		t.Fatal(err)
	}
	return testUser{User: u, password: pw, totpSecret: secret}
}

// appClient registers an interactive app.
func (e *env) appClient(t testing.TB, typ, scopes string) (Client, string) {
	t.Helper()
	c, secret, err := e.srv.Clients().Add(e.ctx, NewClient{
		Name: "App " + typ, Type: typ, Scopes: scopes,
		RedirectURIs: []string{"https://app.example/callback"},
		Origins:      []string{"https://app.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, secret
}

// login posts the login form of p.
func (b *browser) login(t testing.TB, p page, u testUser, otp string) page {
	t.Helper()
	return b.post(t, "/auth/login", url.Values{
		"csrf_token": {p.csrf(t)}, "username": {u.Username}, "password": {u.password}, "otp": {otp},
	})
}

// approve posts the approval form of p, keeping the scopes keep (all when
// keep is nil).
func (b *browser) approve(t testing.TB, p page, keep []string) page {
	t.Helper()
	scopes := p.inputs("scope")
	if keep != nil {
		scopes = keep
	}
	return b.post(t, "/auth/approve", url.Values{"csrf_token": {p.csrf(t)}, "scope": scopes, "decision": {"allow"}})
}

// redirectParams checks that p redirects to the app and returns its query.
func redirectParams(t testing.TB, p page, c Client) url.Values {
	t.Helper()
	if p.location == nil || (p.status != http.StatusSeeOther && p.status != http.StatusFound) {
		t.Fatalf("expected a redirect to the app, got %d: %.400s", p.status, p.body)
	}
	base := *p.location
	base.RawQuery = ""
	if base.String() != c.RedirectURIs[0] {
		t.Fatalf("redirect to %s", p.location)
	}
	return p.location.Query()
}

// exchange redeems a code at the token endpoint.
func (e *env) exchange(t testing.TB, c Client, secret, code, verifier string) (int, map[string]any, http.Header) {
	t.Helper()
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[0]}, "code_verifier": {verifier}}
	if secret == "" {
		f.Set("client_id", c.ID)
		return e.postForm(t, "/auth/token", f, "", "")
	}
	return e.postForm(t, "/auth/token", f, c.ID, secret)
}

// standaloneCode runs authorize → login → (picker) → approve and returns
// the code; pick chooses the patient when a picker appears.
func (e *env) standaloneCode(t testing.TB, c Client, u testUser, scope, pick string, p pkce) string {
	t.Helper()
	b := e.browser(t)
	authURL, q := e.authorizeURL(c, scope, p, nil)
	pg := b.get(t, authURL)
	if pg.status != http.StatusOK {
		t.Fatalf("authorize: %d %s", pg.status, pg.body)
	}
	pg = b.login(t, pg, u, "")
	if len(pg.inputs("patient")) > 0 || strings.Contains(pg.body, `name="q"`) {
		pg = b.post(t, "/auth/picker", url.Values{"csrf_token": {pg.csrf(t)}, "patient": {pick}})
	}
	pg = b.approve(t, pg, nil)
	params := redirectParams(t, pg, c)
	if params.Get("state") != q.Get("state") || params.Get("iss") != e.issuer || params.Get("code") == "" {
		t.Fatalf("redirect params %v", params)
	}
	return params.Get("code")
}
