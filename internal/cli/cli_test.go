package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"warden": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs the command line end to end from testdata/script/*.txtar.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		// [postgres]: WARDEN_TEST_POSTGRES names a test database.
		Condition: func(cond string) (bool, error) {
			if cond == "postgres" {
				return os.Getenv("WARDEN_TEST_POSTGRES") != "", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("SYNTHEA", filepath.Join(repoRoot(), "..", "shared", "data", "synthea"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// fhir [-anon] [-h] DEMODIR METHOD PATH [BODYFILE]: call the FHIR API of the
			// demo whose demo.json is in DEMODIR, trusting its CA; prints
			// the status code and the body.
			"fhir": fhirCmd,
			// get [-xff ADDR] DEMODIR PATH: GET PATH (absolute, on the
			// demo's listener) with no credentials; prints the status,
			// Retry-After and the body.
			"get": getCmd,
			// metrics DEMODIR: the demo's /metrics on its admin listener.
			"metrics": metricsCmd,
			// startload DEMODIR / stopload FILE / audited DATADIR FILE:
			// the audit trail's crash test (auditload_test.go).
			"startload": startLoadCmd,
			"stopload":  stopLoadCmd,
			"audited":   auditedCmd,
			"searched":  searchedCmd,
			// mtls DEMODIR PATH [nocert]: the demo's mutual-TLS partner
			// client (mtlsdemo_test.go).
			"mtls": mtlsCmd,
			// pgschema VAR / freeport VAR / copykeys FROM TO /
			// revocationrace DATADIR PORT...: the revocation race across
			// processes (racescript_test.go).
			"pgschema":       pgSchemaCmd,
			"freeport":       freePortCmd,
			"copykeys":       copyKeysCmd,
			"revocationrace": raceCmd,
			// demopatient DEMODIR VAR: VAR is the id of the demo's first
			// patient.
			"demopatient": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: demopatient DEMODIR VAR")
				}
				var info demoInfo
				ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], "demo.json"))), &info))
				if len(info.Patients) == 0 {
					ts.Fatalf("the demo has no patients")
				}
				ts.Setenv(args[1], info.Patients[0])
			},
			// sleep DURATION
			"sleep": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: sleep DURATION")
				}
				d, err := time.ParseDuration(args[0])
				ts.Check(err)
				time.Sleep(d)
			},
			// waitfile FILE: wait up to 60 s for FILE to exist.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitfile FILE")
				}
				deadline := time.Now().Add(60 * time.Second)
				for time.Now().Before(deadline) {
					if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				ts.Fatalf("%s did not appear", args[0])
			},
		},
	})
}

func fhirCmd(ts *testscript.TestScript, neg bool, args []string) {
	anon, headers := false, false
	for len(args) > 0 && (args[0] == "-anon" || args[0] == "-h") {
		anon, headers = anon || args[0] == "-anon", headers || args[0] == "-h"
		args = args[1:]
	}
	if len(args) < 3 || len(args) > 4 {
		ts.Fatalf("usage: fhir [-anon] DEMODIR METHOD PATH [BODYFILE]")
	}
	var info demoInfo
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], "demo.json"))), &info))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ts.ReadFile(info.CAFile))) {
		ts.Fatalf("no CA in %s", info.CAFile)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var body io.Reader
	if len(args) == 4 {
		body = strings.NewReader(ts.ReadFile(args[3]))
	}
	req, err := http.NewRequest(args[1], info.FHIRBase+"/"+args[2], body)
	ts.Check(err)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if !anon {
		req.Header.Set("Authorization", "Bearer "+backendToken(ts, client, info))
	}
	resp, err := client.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(ts.Stdout(), "%d\n", resp.StatusCode)
	if headers {
		for _, k := range []string{"Deprecation", "Sunset", "Link"} {
			for _, v := range resp.Header.Values(k) {
				fmt.Fprintf(ts.Stdout(), "%s: %s\n", k, v)
			}
		}
	}
	fmt.Fprintf(ts.Stdout(), "%s\n", b)
	if (resp.StatusCode >= 400) != neg {
		ts.Fatalf("status %d", resp.StatusCode)
	}
}

func metricsCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: metrics DEMODIR")
	}
	var info demoInfo
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], "demo.json"))), &info))
	if info.Admin == "" {
		ts.Fatalf("the demo has no admin listener")
	}
	resp, err := http.Get(strings.TrimSuffix(info.Admin, "/admin/") + "/metrics")
	ts.Check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	if (resp.StatusCode != http.StatusOK) != neg {
		ts.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	ts.Stdout().Write(b)
}

func getCmd(ts *testscript.TestScript, neg bool, args []string) {
	xff := ""
	if len(args) > 1 && args[0] == "-xff" {
		xff, args = args[1], args[2:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: get [-xff ADDR] DEMODIR PATH")
	}
	var info demoInfo
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], "demo.json"))), &info))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ts.ReadFile(info.CAFile))) {
		ts.Fatalf("no CA in %s", info.CAFile)
	}
	u, err := url.Parse(info.FHIRBase)
	ts.Check(err)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodGet, u.Scheme+"://"+u.Host+args[1], nil)
	ts.Check(err)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := client.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(ts.Stdout(), "%d\n", resp.StatusCode)
	if v := resp.Header.Get("Retry-After"); v != "" {
		fmt.Fprintf(ts.Stdout(), "Retry-After: %s\n", v)
	}
	fmt.Fprintf(ts.Stdout(), "%s\n", b)
	if (resp.StatusCode >= 400) != neg {
		ts.Fatalf("status %d", resp.StatusCode)
	}
}

// backendToken gets an access token the way a SMART Backend Services
// client does: discovery, then client_credentials with a private_key_jwt
// assertion signed by the demo backend client's key.
func backendToken(ts *testscript.TestScript, client *http.Client, info demoInfo) string {
	var backend *demoClient
	for i := range info.Clients {
		if info.Clients[i].Type == "backend" && info.Clients[i].PrivateKeyFile != "" {
			backend = &info.Clients[i]
		}
	}
	if backend == nil {
		ts.Fatalf("demo.json lists no backend client")
	}
	resp, err := client.Get(info.Issuer + "/.well-known/smart-configuration")
	ts.Check(err)
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	ts.Check(json.NewDecoder(resp.Body).Decode(&conf))
	resp.Body.Close()
	block, _ := pem.Decode([]byte(ts.ReadFile(backend.PrivateKeyFile)))
	if block == nil {
		ts.Fatalf("no PEM key in %s", backend.PrivateKeyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	ts.Check(err)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", backend.KeyID))
	ts.Check(err)
	jti := make([]byte, 16)
	rand.Read(jti)
	claims, _ := json.Marshal(map[string]any{"iss": backend.ClientID, "sub": backend.ClientID, "aud": conf.TokenEndpoint,
		"exp": time.Now().Add(time.Minute).Unix(), "jti": hex.EncodeToString(jti)})
	jws, err := signer.Sign(claims)
	ts.Check(err)
	assertion, err := jws.CompactSerialize()
	ts.Check(err)
	resp, err = client.PostForm(conf.TokenEndpoint, url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {"system/*.cruds"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	})
	ts.Check(err)
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		ts.Fatalf("token endpoint: %d %s", resp.StatusCode, b)
	}
	return tok.AccessToken
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..")
}
