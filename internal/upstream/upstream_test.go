package upstream_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/upstream"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64 = 100

func newCA(t *testing.T, name string) *ca {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &ca{c, key}
}

// issue a leaf for usage, valid for names (DNS names or IP addresses).
func (c *ca) issue(t *testing.T, cn string, usage x509.ExtKeyUsage, names ...string) tls.Certificate {
	var dnsNames []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, n)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: dnsNames,
		IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writePair(t *testing.T, dir, name string, c tls.Certificate) (string, string) {
	cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	kd, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func writeCA(t *testing.T, dir, name string, c *ca) string {
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// upstreamServer is a loopback FHIR server that requires a client
// certificate from clientCA and answers with the serial of the one it saw.
func upstreamServer(t *testing.T, serverCert tls.Certificate, clientCA *ca) *httptest.Server {
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].SerialNumber.String())
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c upstream.TLSConfig, url string) (string, error) {
	t.Helper()
	tr, err := c.Transport()
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), nil
}

func TestUpstreamMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, other := newCA(t, "upstream CA"), newCA(t, "warden client CA"), newCA(t, "other CA")
	caFile := writeCA(t, dir, "upstream-ca.pem", serverCA)
	good := upstreamServer(t, serverCA.issue(t, "fhir", x509.ExtKeyUsageServerAuth, "fhir.example", "127.0.0.1"), clientCA)
	wrongName := upstreamServer(t, serverCA.issue(t, "fhir", x509.ExtKeyUsageServerAuth, "elsewhere.example"), clientCA)
	foreign := upstreamServer(t, other.issue(t, "fhir", x509.ExtKeyUsageServerAuth, "fhir.example"), clientCA)
	clientOnly := upstreamServer(t, serverCA.issue(t, "fhir", x509.ExtKeyUsageClientAuth, "fhir.example"), clientCA)
	warden := clientCA.issue(t, "warden", x509.ExtKeyUsageClientAuth)
	certFile, keyFile := writePair(t, dir, "warden", warden)
	otherCert, otherKey := writePair(t, dir, "other", other.issue(t, "warden", x509.ExtKeyUsageClientAuth))
	cfg := upstream.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "fhir.example"}

	refused := []struct {
		name string
		cfg  upstream.TLSConfig
		url  string
	}{
		{"no client certificate", upstream.TLSConfig{CAFile: caFile, ServerName: "fhir.example"}, good.URL},
		{"client certificate from another CA", upstream.TLSConfig{CAFile: caFile, CertFile: otherCert, KeyFile: otherKey, ServerName: "fhir.example"}, good.URL},
		{"server certificate for another name", cfg, wrongName.URL},
		{"server certificate without the dialled IP, no ServerName", upstream.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, wrongName.URL + "/x"},
		{"server certificate from another CA", cfg, foreign.URL},
		{"server certificate not for server authentication", cfg, clientOnly.URL},
		{"system roots not trusted when ca_file is set: server CA absent", upstream.TLSConfig{CAFile: writeCA(t, dir, "other-ca.pem", other), CertFile: certFile, KeyFile: keyFile, ServerName: "fhir.example"}, good.URL},
	}
	for _, c := range refused {
		t.Run("refused: "+c.name, func(t *testing.T) {
			if body, err := get(t, c.cfg, c.url); err == nil {
				t.Fatalf("connected: %q", body)
			}
		})
	}
	t.Run("name and CA right", func(t *testing.T) {
		if body, err := get(t, cfg, good.URL); err != nil || body != warden.Leaf.SerialNumber.String() {
			t.Fatalf("%q, %v", body, err)
		}
	})
	t.Run("no server_name: the URL's host (an IP address here)", func(t *testing.T) {
		c := upstream.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
		if body, err := get(t, c, good.URL); err != nil || body != warden.Leaf.SerialNumber.String() {
			t.Fatalf("%q, %v", body, err)
		}
	})
	t.Run("TLS 1.3 minimum by default", func(t *testing.T) {
		c, err := cfg.ClientConfig()
		if err != nil || c.MinVersion != tls.VersionTLS13 {
			t.Fatalf("%v, %v", c, err)
		}
	})
	t.Run("rotation of the client certificate", func(t *testing.T) {
		rc := cfg
		rc.CheckEvery = 10 * time.Millisecond
		tr, err := rc.Transport()
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		seen := func() string {
			t.Helper()
			tr.CloseIdleConnections() // a new connection, a new handshake
			resp, err := client.Get(good.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		if s := seen(); s != warden.Leaf.SerialNumber.String() {
			t.Fatalf("first: %s", s)
		}
		next := clientCA.issue(t, "warden", x509.ExtKeyUsageClientAuth)
		writePair(t, dir, "warden", next)
		time.Sleep(30 * time.Millisecond)
		if s := seen(); s != next.Leaf.SerialNumber.String() {
			t.Fatalf("after rotation the upstream saw %s, want the new certificate's serial %s", s, next.Leaf.SerialNumber)
		}
		os.WriteFile(certFile, []byte("half written"), 0o600)
		time.Sleep(30 * time.Millisecond)
		if s := seen(); s != next.Leaf.SerialNumber.String() {
			t.Fatalf("a broken rotation replaced the certificate: %s", s)
		}
	})
	t.Run("rotation of the CA bundle", func(t *testing.T) {
		dir := t.TempDir()
		bundle := writeCA(t, dir, "ca.pem", other) // not the upstream's CA yet
		rc := upstream.TLSConfig{CAFile: bundle, CertFile: certFile, KeyFile: keyFile, ServerName: "fhir.example", CheckEvery: 10 * time.Millisecond}
		writePair(t, dir, "w", warden)
		rc.CertFile, rc.KeyFile = filepath.Join(dir, "w.pem"), filepath.Join(dir, "w-key.pem")
		tr, err := rc.Transport()
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		if _, err := client.Get(good.URL); err == nil {
			t.Fatal("connected with a bundle without the upstream's CA")
		}
		writeCA(t, dir, "ca.pem", serverCA)
		time.Sleep(30 * time.Millisecond)
		tr.CloseIdleConnections()
		resp, err := client.Get(good.URL)
		if err != nil {
			t.Fatalf("the rotated bundle was not picked up: %v", err)
		}
		resp.Body.Close()
	})
}

func TestUpstreamConfigRejects(t *testing.T) {
	dir := t.TempDir()
	c := newCA(t, "c")
	caFile := writeCA(t, dir, "ca.pem", c)
	certFile, keyFile := writePair(t, dir, "w", c.issue(t, "w", x509.ExtKeyUsageClientAuth))
	notPEM := filepath.Join(dir, "junk.pem")
	os.WriteFile(notPEM, []byte("junk"), 0o600)
	for name, cfg := range map[string]upstream.TLSConfig{
		"cert without key":  {CAFile: caFile, CertFile: certFile},
		"key without cert":  {CAFile: caFile, KeyFile: keyFile},
		"TLS 1.1":           {CAFile: caFile, MinVersion: "1.1"},
		"missing CA file":   {CAFile: filepath.Join(dir, "missing.pem")},
		"CA file not PEM":   {CAFile: notPEM},
		"key does not load": {CAFile: caFile, CertFile: certFile, KeyFile: notPEM},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := cfg.ClientConfig(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := (upstream.TLSConfig{CertFile: certFile, KeyFile: keyFile, MinVersion: "1.1"}).Transport(); !errors.Is(err, upstream.ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
}
