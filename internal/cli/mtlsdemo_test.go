package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// mtlsCmd: mtls DEMODIR PATH [nocert|othercert] — the demo's partner
// client (RFC 8705 tls_client_auth) gets a token over a connection with
// its certificate, then calls the FHIR API with it: over that connection,
// or (nocert) over one without a certificate. Prints the token endpoint's
// status and token_type, then the API's status and body.
func mtlsCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: mtls DEMODIR PATH [nocert]")
	}
	var info demoInfo
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], "demo.json"))), &info))
	var partner *demoClient
	for i := range info.Clients {
		if info.Clients[i].AuthMethod == "tls_client_auth" {
			partner = &info.Clients[i]
		}
	}
	if partner == nil {
		ts.Fatalf("demo.json lists no mutual-TLS client")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ts.ReadFile(info.CAFile)))
	cert, err := tls.LoadX509KeyPair(partner.CertFile, partner.CertKey)
	ts.Check(err)
	client := func(withCert bool) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if withCert {
			cfg.Certificates = []tls.Certificate{cert}
		}
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	resp, err := client(false).Get(info.Issuer + "/.well-known/smart-configuration")
	ts.Check(err)
	var conf struct {
		TokenEndpoint string   `json:"token_endpoint"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	}
	ts.Check(json.NewDecoder(resp.Body).Decode(&conf))
	resp.Body.Close()
	if !strings.Contains(strings.Join(conf.AuthMethods, " "), "tls_client_auth") {
		ts.Fatalf("discovery does not offer tls_client_auth: %v", conf.AuthMethods)
	}
	resp, err = client(true).PostForm(conf.TokenEndpoint, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {partner.ClientID}, "scope": {"system/Patient.rs"}})
	if err != nil { // the handshake refused the certificate (revoked, expired)
		fmt.Fprintf(ts.Stdout(), "token refused: %v\n", err)
		if !neg {
			ts.Fatalf("token request: %v", err)
		}
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	json.Unmarshal(b, &tok)
	fmt.Fprintf(ts.Stdout(), "token %d %s\n", resp.StatusCode, tok.TokenType)
	if resp.StatusCode != 200 {
		ts.Fatalf("token endpoint: %d %s", resp.StatusCode, b)
	}
	req, _ := http.NewRequest(http.MethodGet, info.FHIRBase+"/"+args[1], nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = client(len(args) == 2).Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, _ = io.ReadAll(resp.Body)
	fmt.Fprintf(ts.Stdout(), "%d\n%s\n", resp.StatusCode, b)
	if (resp.StatusCode >= 400) != neg {
		ts.Fatalf("status %d", resp.StatusCode)
	}
}
