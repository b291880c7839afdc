package authserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/mtls"
)

// trustChecker stands in for the FHIR listener's certificate checks
// (tested in internal/mtls): a certificate is Verified when it chains to
// roots for client authentication.
type trustChecker struct{ roots *x509.CertPool }

func (c trustChecker) Identify(cs *tls.ConnectionState) (mtls.Identity, error) {
	leaf := cs.PeerCertificates[0]
	id := mtls.Identity{Thumbprint: mtls.Thumbprint(leaf), SubjectDN: leaf.Subject.String(), DNSNames: leaf.DNSNames}
	for _, u := range leaf.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	id.Verified = err == nil
	return id, nil
}

type certMaker struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

func newCertMaker(t *testing.T) certMaker {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Partner CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return certMaker{ca: ca, caKey: key}
}

// cert issues a client certificate; self makes it self-signed.
func (m certMaker) cert(t *testing.T, subject pkix.Name, spiffe string, self bool) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(spiffe)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	parent, signer := m.ca, m.caKey
	if self {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// tokenWithCert asks for a client_credentials token over a connection
// presenting cert (nil: none).
func (e *env) tokenWithCert(t *testing.T, cert *tls.Certificate, form url.Values) (int, map[string]any) {
	t.Helper()
	cfg := e.ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := c.PostForm(e.ts.URL+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// RFC 8705: clients authenticated by certificate, and tokens bound to it.
func TestMutualTLSClientAuthentication(t *testing.T) {
	m := newCertMaker(t)
	roots := x509.NewCertPool()
	roots.AddCert(m.ca)
	e := newEnv(t, func(o *Options) { o.Certificates = trustChecker{roots} })
	subject := pkix.Name{CommonName: "lab-gateway", Organization: []string{"Partner Lab"}}
	const spiffe = "spiffe://partner.example/lab-gateway"
	good := m.cert(t, subject, spiffe, false)
	otherSAN := m.cert(t, subject, "spiffe://partner.example/other", false)
	forged := m.cert(t, subject, spiffe, true) // self-signed with the same names

	byURI, _, err := e.srv.registry.Add(e.ctx, NewClient{Name: "lab (SPIFFE)", Type: ClientBackend, Scopes: "system/Observation.rs",
		TLS: ClientTLS{AuthMethod: TLSClientAuth, SANURI: spiffe}})
	if err != nil {
		t.Fatal(err)
	}
	byDN, _, err := e.srv.registry.Add(e.ctx, NewClient{Name: "lab (DN)", Type: ClientBackend, Scopes: "system/Observation.rs",
		TLS: ClientTLS{AuthMethod: TLSClientAuth, SubjectDN: "cn=lab-gateway, o=Partner Lab"}})
	if err != nil {
		t.Fatal(err)
	}
	selfKey := m.cert(t, pkix.Name{CommonName: "device"}, "spiffe://x/device", true)
	jwk := jose.JSONWebKey{Key: selfKey.Leaf.PublicKey}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	bySelf, _, err := e.srv.registry.Add(e.ctx, NewClient{Name: "device", Type: ClientBackend, Scopes: "system/Observation.rs",
		JWKS: string(set), TLS: ClientTLS{AuthMethod: SelfSignedTLSClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	form := func(id string, extra ...string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "scope": {"system/Observation.rs"}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return f
	}
	refused := []struct {
		name string
		cert *tls.Certificate
		form url.Values
	}{
		{"no certificate", nil, form(byURI.ID)},
		{"another SPIFFE ID", &otherSAN, form(byURI.ID)},
		{"self-signed certificate naming the registered SPIFFE ID", &forged, form(byURI.ID)},
		{"self-signed certificate naming the registered DN", &forged, form(byDN.ID)},
		{"a client secret instead", &good, form(byURI.ID, "client_secret", "guess")},
		{"someone else's registered client id", &good, form(bySelf.ID)},
		{"self-signed client, another key", &forged, form(bySelf.ID)},
	}
	for _, c := range refused {
		status, body := e.tokenWithCert(t, c.cert, c.form)
		if status != http.StatusUnauthorized && status != http.StatusBadRequest || body["access_token"] != nil {
			t.Errorf("%s: %d %v", c.name, status, body)
		}
	}
	for _, c := range []struct {
		name string
		cert tls.Certificate
		id   string
	}{{"PKI, SPIFFE ID", good, byURI.ID}, {"PKI, subject DN written differently", good, byDN.ID}, {"self-signed, registered key", selfKey, bySelf.ID}} {
		status, body := e.tokenWithCert(t, &c.cert, form(c.id))
		tok, _ := body["access_token"].(string)
		if status != http.StatusOK || tok == "" {
			t.Fatalf("%s: %d %v", c.name, status, body)
		}
		p, err := e.tokens.Verify(e.ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if p.CertThumbprint != mtls.Thumbprint(c.cert.Leaf) {
			t.Errorf("%s: token bound to %q, want the certificate's thumbprint", c.name, p.CertThumbprint)
		}
		rs, rsSecret := e.appClient(t, ClientConfidential, appScopes)
		_, intro, _ := e.postForm(t, "/auth/introspect", url.Values{"token": {tok}}, rs.ID, rsSecret)
		if cnf, _ := intro["cnf"].(map[string]any); cnf["x5t#S256"] != mtls.Thumbprint(c.cert.Leaf) {
			t.Errorf("%s: introspection cnf %v", c.name, intro["cnf"])
		}
	}
}

func TestClientTLSRegistration(t *testing.T) {
	e := newEnv(t)
	bad := map[string]NewClient{
		"no name for tls_client_auth": {TLS: ClientTLS{AuthMethod: TLSClientAuth}},
		"two names":                   {TLS: ClientTLS{AuthMethod: TLSClientAuth, SANDNS: "a.example", SANURI: "spiffe://a/b"}},
		"relative SAN URI":            {TLS: ClientTLS{AuthMethod: TLSClientAuth, SANURI: "lab-gateway"}},
		"self-signed without keys":    {TLS: ClientTLS{AuthMethod: SelfSignedTLSClientAuth}},
		"subject without a method":    {TLS: ClientTLS{SANDNS: "a.example"}},
		"unknown method":              {TLS: ClientTLS{AuthMethod: "tls_magic"}},
		"malformed DN":                {TLS: ClientTLS{AuthMethod: TLSClientAuth, SubjectDN: "no equals sign"}},
	}
	for name, n := range bad {
		n.Name, n.Type, n.Scopes = "x", ClientBackend, "system/Observation.rs"
		if _, _, err := e.srv.registry.Add(e.ctx, n); !errors.Is(err, ErrInvalidClient) {
			t.Errorf("%s: %v", name, err)
		}
	}
	pub := NewClient{Name: "phone", Type: ClientPublic, Scopes: "patient/*.rs", RedirectURIs: []string{"https://app.example/cb"},
		TLS: ClientTLS{BoundTokens: true}}
	if _, _, err := e.srv.registry.Add(e.ctx, pub); !errors.Is(err, ErrInvalidClient) {
		t.Errorf("public client with certificate-bound tokens: %v", err)
	}
	c, secret, err := e.srv.registry.Add(e.ctx, NewClient{Name: "portal", Type: ClientConfidential, Scopes: "user/*.rs",
		RedirectURIs: []string{"https://portal.example/cb"}, TLS: ClientTLS{AuthMethod: TLSClientAuth, SANDNS: "portal.example"}})
	if err != nil || secret != "" || !c.TLS.BoundTokens {
		t.Fatalf("confidential mTLS client: secret %q bound %v err %v", secret, c.TLS.BoundTokens, err)
	}
	for _, dn := range []string{"CN=a,O=b", "cn=a, o=b", " CN = a ,O=b"} {
		got, err := parseDN(dn)
		if err != nil || strings.Join(got, ",") != "CN=a,O=b" {
			t.Errorf("parseDN(%q) = %v, %v", dn, got, err)
		}
	}
}

// auth.mtls_scopes: a system/ token is issued only over mutual TLS, and
// bound to the certificate, even to a private_key_jwt client.
func TestMTLSRequiredByScope(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MTLSScopes = []string{"system/"} })
	keys := newBackendKeys(t)
	c, _, err := e.srv.registry.Add(e.ctx, NewClient{Name: "svc", Type: ClientBackend, Scopes: "system/Observation.rs", JWKS: keys.jwks(t)})
	if err != nil {
		t.Fatal(err)
	}
	form := func() url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"},
			"client_assertion_type": {assertionType}, "client_assertion": {keys.sign(t, jose.RS384, "rs", assertionClaims(e, c.ID))}}
	}
	if st, body := e.tokenWithCert(t, nil, form()); st != http.StatusBadRequest || body["access_token"] != nil {
		t.Fatalf("system/ token without a certificate: %d %v", st, body)
	}
	cert := newCertMaker(t).cert(t, pkix.Name{CommonName: "svc"}, "spiffe://x/svc", true)
	st, body := e.tokenWithCert(t, &cert, form())
	if st != http.StatusOK {
		t.Fatalf("with a certificate: %d %v", st, body)
	}
	p, err := e.tokens.Verify(e.ctx, body["access_token"].(string))
	if err != nil || p.CertThumbprint != mtls.Thumbprint(cert.Leaf) {
		t.Fatalf("token not bound to the certificate: %q %v", p.CertThumbprint, err)
	}
}
