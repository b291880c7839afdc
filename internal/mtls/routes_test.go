package mtls_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/mtls"
)

// issueNamed is a client certificate from ca with a SPIFFE ID and a DNS
// name.
func (ca *testCA) issueNamed(t *testing.T, cn, dns, uri string) tls.Certificate {
	key := newKey(t)
	serial++
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"Partner"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{dns}, URIs: []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// do sends method path over a new connection with cert; the status, or
// -1 when the handshake failed.
func (e *mtlsEnv) do(t *testing.T, cert *tls.Certificate, method, path string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, "https://"+e.addr+path, nil)
	resp, err := e.client(cert, 0).Do(req)
	if err != nil {
		return -1, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestRouteGuard(t *testing.T) {
	lab := mtls.RouteRule{Prefix: "/fhir/Observation", Methods: []string{"POST", "PUT"}, Allow: mtls.AllowIdentities,
		Identities: []string{"uri:spiffe://partner.example/lab"}}
	var e *mtlsEnv
	e = newEnvWith(t, nil, func(l *mtls.Listener, h http.Handler) http.Handler {
		g, err := mtls.RequireClientCert(l, []mtls.RouteRule{
			{Prefix: "/admin", Allow: mtls.AllowIdentities, Identities: []string{"dn:CN=ops,O=Partner", "dns:OPS.partner.example"}},
			{Prefix: "/admin/metrics", Allow: mtls.AllowAnyVerified},
			{Prefix: "/partner", Allow: mtls.AllowAnyVerified},
			lab,
		}, h)
		if err != nil {
			t.Fatal(err)
		}
		return g
	})
	ops := e.trusted.issueNamed(t, "ops", "ops.partner.example", "spiffe://partner.example/ops")
	opsByDNS := e.trusted.issueNamed(t, "someone", "ops.partner.example", "spiffe://partner.example/x")
	labCert := e.trusted.issueNamed(t, "lab", "lab.partner.example", "spiffe://partner.example/lab")
	selfOps := (*testCA)(nil).issueNamed(t, "ops", "ops.partner.example", "spiffe://partner.example/lab")
	otherCA := e.other.issueNamed(t, "ops", "ops.partner.example", "spiffe://partner.example/lab")
	byThumb := e.trusted.issueNamed(t, "anyone", "x.example", "spiffe://x")

	refused := []struct {
		name         string
		cert         *tls.Certificate
		method, path string
		handshake    bool // refused by the Listener before any rule
	}{
		{"no certificate", nil, "GET", "/admin", false},
		{"no certificate, below the prefix", nil, "GET", "/admin/users", false},
		{"self-signed naming an allowed DN and DNS name", &selfOps, "GET", "/admin", false},
		{"self-signed on an any-verified route", &selfOps, "GET", "/partner/x", false},
		{"self-signed with the lab's SPIFFE ID", &selfOps, "POST", "/fhir/Observation", false},
		{"another CA", &otherCA, "GET", "/admin", true},
		{"right CA, wrong identity", &labCert, "GET", "/admin", false},
		{"right CA, wrong identity, dot-dot path", &labCert, "GET", "/fhir/../admin/users", false},
		{"right CA, wrong identity, double slash", &labCert, "GET", "//admin", false},
		{"lab rule, another identity", &ops, "POST", "/fhir/Observation/1", false},
		{"prefix boundary: /admin/metrics does not cover /admin/metricsX", &labCert, "GET", "/admin/metricsX", false},
	}
	for _, c := range refused {
		t.Run("refused: "+c.name, func(t *testing.T) {
			status, body, h := e.do(t, c.cert, c.method, c.path)
			if c.handshake {
				if status != -1 {
					t.Fatalf("status %d, want a refused handshake", status)
				}
				return
			}
			if status != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", status, body)
			}
			if ct := h.Get("Content-Type"); ct != "application/fhir+json" {
				t.Fatalf("content type %q", ct)
			}
			var oo struct {
				ResourceType string
				Issue        []struct{ Severity, Code, Diagnostics string }
			}
			if err := json.Unmarshal([]byte(body), &oo); err != nil || oo.ResourceType != "OperationOutcome" ||
				len(oo.Issue) != 1 || oo.Issue[0].Code != "forbidden" || oo.Issue[0].Severity != "error" {
				t.Fatalf("not a forbidden OperationOutcome: %s", body)
			}
			if strings.Contains(body, "ops") || strings.Contains(body, "spiffe") || strings.Contains(body, "admin") {
				t.Fatalf("the outcome names the certificate or the route: %s", body)
			}
		})
	}
	allowed := []struct {
		name         string
		cert         *tls.Certificate
		method, path string
	}{
		{"DN listed", &ops, "GET", "/admin"},
		{"DN listed, below the prefix", &ops, "DELETE", "/admin/users/1"},
		{"DNS name listed (case-insensitive)", &opsByDNS, "GET", "/admin/users"},
		{"longer prefix for any verified certificate", &labCert, "GET", "/admin/metrics"},
		{"any verified", &labCert, "GET", "/partner"},
		{"prefix boundary: /admin does not cover /administrator", nil, "GET", "/administrator"},
		{"/admin/metricsX falls under /admin", &ops, "GET", "/admin/metricsX"},
		{"method filter: GET not covered by the lab rule", nil, "GET", "/fhir/Observation/1"},
		{"lab identity on its route and method", &labCert, "POST", "/fhir/Observation"},
		{"lab identity below its route", &labCert, "PUT", "/fhir/Observation/1"},
		{"no rule at all", nil, "GET", "/fhir/metadata"},
		{"self-signed where no rule applies", &selfOps, "GET", "/fhir/metadata"},
	}
	for _, c := range allowed {
		t.Run("allowed: "+c.name, func(t *testing.T) {
			if status, body, _ := e.do(t, c.cert, c.method, c.path); status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
		})
	}
	t.Run("thumbprint identity", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
		g, err := mtls.RequireClientCert(e.listener, []mtls.RouteRule{{Prefix: "/", Allow: mtls.AllowIdentities, Identities: []string{"sha256:" + thumb(byThumb)}}}, h)
		if err != nil {
			t.Fatal(err)
		}
		for cert, want := range map[*tls.Certificate]int{&byThumb: 200, &ops: 403} {
			rec := &recorder{h: http.Header{}}
			r, _ := http.NewRequest("GET", "/fhir/Patient", nil)
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}
			g.ServeHTTP(rec, r)
			if rec.status == 0 {
				rec.status = 200
			}
			if rec.status != want {
				t.Fatalf("%s: status %d, want %d", cert.Leaf.Subject.CommonName, rec.status, want)
			}
		}
	})
}

// recorder is the least of an http.ResponseWriter.
type recorder struct {
	h      http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(s int) { r.status = s }

func TestRequireClientCertRejectsRules(t *testing.T) {
	l := newEnv(t).listener
	h := http.NotFoundHandler()
	bad := map[string][]mtls.RouteRule{
		"empty prefix":               {{Prefix: "", Allow: "any"}},
		"relative prefix":            {{Prefix: "admin", Allow: "any"}},
		"trailing slash":             {{Prefix: "/admin/", Allow: "any"}},
		"dot-dot":                    {{Prefix: "/fhir/../admin", Allow: "any"}},
		"double slash":               {{Prefix: "//admin", Allow: "any"}},
		"wildcard":                   {{Prefix: "/admin/*", Allow: "any"}},
		"query":                      {{Prefix: "/admin?x=1", Allow: "any"}},
		"no allow":                   {{Prefix: "/admin"}},
		"unknown allow":              {{Prefix: "/admin", Allow: "all"}},
		"identities, none listed":    {{Prefix: "/admin", Allow: "identities"}},
		"any with identities":        {{Prefix: "/admin", Allow: "any", Identities: []string{"dns:x"}}},
		"identity without kind":      {{Prefix: "/admin", Allow: "identities", Identities: []string{"CN=ops"}}},
		"identity of unknown kind":   {{Prefix: "/admin", Allow: "identities", Identities: []string{"email:a@b"}}},
		"identity with empty value":  {{Prefix: "/admin", Allow: "identities", Identities: []string{"uri:"}}},
		"thumbprint not base64url":   {{Prefix: "/admin", Allow: "identities", Identities: []string{"sha256:abc"}}},
		"lower-case method":          {{Prefix: "/admin", Methods: []string{"get"}, Allow: "any"}},
		"same prefix twice":          {{Prefix: "/admin", Allow: "any"}, {Prefix: "/admin", Allow: "any"}},
		"same prefix, overlapping":   {{Prefix: "/a", Methods: []string{"GET", "PUT"}, Allow: "any"}, {Prefix: "/a", Methods: []string{"PUT"}, Allow: "any"}},
		"same prefix, all then some": {{Prefix: "/a", Allow: "any"}, {Prefix: "/a", Methods: []string{"GET"}, Allow: "any"}},
	}
	for name, rules := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := mtls.RequireClientCert(l, rules, h); !errors.Is(err, mtls.ErrBadRouteRule) {
				t.Fatalf("err = %v, want ErrBadRouteRule", err)
			}
		})
	}
	g, err := mtls.RequireClientCert(l, []mtls.RouteRule{
		{Prefix: "/", Allow: "any"},
		{Prefix: "/a", Methods: []string{"GET"}, Allow: "any"},
		{Prefix: "/a", Methods: []string{"POST"}, Allow: "identities", Identities: []string{"dns:x"}},
	}, h)
	if err != nil {
		t.Fatalf("valid rules refused: %v", err)
	}
	for _, c := range []struct{ path, method, want string }{
		{"/a", "GET", "/a"}, {"/a/b", "POST", "/a"}, {"/a", "DELETE", "/"}, {"/ab", "GET", "/"}, {"", "GET", "/"},
		{"/x/../a/b", "GET", "/a"},
	} {
		if got := g.Rule(c.path, c.method); got != c.want {
			t.Errorf("Rule(%q, %s) = %q, want %q", c.path, c.method, got, c.want)
		}
	}
}
