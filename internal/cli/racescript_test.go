package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/wardenfhir/warden/internal/store/storetest"
)

// pgSchemaCmd: pgschema VAR — sets VAR to the URL of a fresh PostgreSQL
// schema (scripts guard it with "[!postgres] skip").
func pgSchemaCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: pgschema VAR")
	}
	if os.Getenv("WARDEN_TEST_POSTGRES") == "" {
		ts.Fatalf("WARDEN_TEST_POSTGRES not set: guard the script with [!postgres] skip")
	}
	u, drop, err := storetest.PostgresSchema(os.Getenv("WARDEN_TEST_POSTGRES"))
	ts.Check(err)
	ts.Defer(func() { drop() })
	ts.Setenv(args[0], u)
}

// freePortCmd: freeport VAR — sets VAR to a free loopback port.
func freePortCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Setenv(args[0], fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	l.Close()
}

// copyKeysCmd: copykeys FROMDIR TODIR — another process's keyring (the
// signing keys in the shared database are sealed with it).
func copyKeysCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: copykeys FROMDIR TODIR")
	}
	ts.Check(copyFiles(ts.MkAbs(args[0]), ts.MkAbs(args[1])))
}

// raceCmd: revocationrace DATADIR PORT... — issue 6's revocation race
// across real processes: registers a backend client (warden clients
// add), gets a token from the first process, has 32 clients read through
// every process at once, disables the client with 'warden clients
// disable' (another process, which returns once every serving process
// applied it), and fails if any request that started after that command
// returned was served.
func raceCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: revocationrace DATADIR PORT...")
	}
	dir, ports := ts.MkAbs(args[0]), args[1:]
	warden := func(args ...string) string {
		cmd := exec.Command("warden", args...)
		cmd.Env = append(os.Environ(), "PATH="+ts.Getenv("PATH"), "WARDEN_DATA_DIR="+dir,
			"WARDEN_STORE_URL="+ts.Getenv("WARDEN_STORE_URL"), "WARDEN_ADMIN_ADDR=")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			ts.Fatalf("warden %s: %v\n%s", strings.Join(args, " "), err, &errOut)
		}
		return out.String()
	}
	// A backend client with an ES384 key.
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ts.Check(err)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: string(jose.ES384), Use: "sig"}}})
	jwksFile := filepath.Join(dir, "race-jwks.json")
	ts.Check(os.WriteFile(jwksFile, jwks, 0o600))
	var added struct {
		ClientID string `json:"client_id"`
	}
	ts.Check(json.Unmarshal([]byte(warden("clients", "add", "--type", "backend", "--name", "race", "--scopes", "system/Patient.rs", "--jwks-file", jwksFile)), &added))

	clients := make([]*http.Client, len(ports))
	for i := range ports {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(ts.ReadFile(filepath.Join(filepath.Dir(dir), fmt.Sprintf("p%d", i+1), "pki", "ca.pem"))))
		clients[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 32}}
	}
	// client_credentials with a signed assertion, at the first process.
	base := ts.Getenv("WARDEN_SERVER_BASE_URL")
	u, _ := url.Parse(base)
	tokenURL := u.Scheme + "://" + u.Host + "/auth/token"
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	ts.Check(err)
	jti := make([]byte, 16)
	rand.Read(jti)
	claims, _ := json.Marshal(map[string]any{"iss": added.ClientID, "sub": added.ClientID, "aud": tokenURL, "exp": time.Now().Add(time.Minute).Unix(), "jti": hex.EncodeToString(jti)})
	jws, err := signer.Sign(claims)
	ts.Check(err)
	assertion, _ := jws.CompactSerialize()
	resp, err := clients[0].PostForm("https://127.0.0.1:"+ports[0]+"/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
	ts.Check(err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		ts.Fatalf("token: %d %s", resp.StatusCode, b)
	}

	load := startRaceLoad(len(ports), func(w, i int) (*http.Client, *http.Request) {
		p := w % len(ports)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://127.0.0.1:"+ports[p]+"/fhir/Patient?_count=1", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		return clients[p], req
	})
	time.Sleep(500 * time.Millisecond)
	// The revoking command, another process: it returned when it prints
	// its answer (not when the process has exited, which would leave the
	// servers some slack).
	t0 := time.Now()
	cmd := exec.Command("warden", "clients", "disable", added.ClientID)
	cmd.Env = append(os.Environ(), "PATH="+ts.Getenv("PATH"), "WARDEN_DATA_DIR="+dir,
		"WARDEN_STORE_URL="+ts.Getenv("WARDEN_STORE_URL"), "WARDEN_ADMIN_ADDR=")
	outPipe, err := cmd.StdoutPipe()
	ts.Check(err)
	ts.Check(cmd.Start())
	first := make([]byte, 1)
	if _, err := io.ReadFull(outPipe, first); err != nil {
		ts.Fatalf("warden clients disable printed nothing: %v", err)
	}
	load.returned.Store(time.Now().UnixNano())
	took := time.Since(t0)
	io.Copy(io.Discard, outPipe)
	ts.Check(cmd.Wait())
	time.Sleep(500 * time.Millisecond)
	load.stop()
	fmt.Fprintf(ts.Stdout(), "%d processes: %d requests before, %d after 'warden clients disable' returned (it took %v); %d served after; %d transport errors\n",
		len(ports), load.before.Load(), load.after.Load(), took.Round(time.Millisecond), load.servedAfter.Load(), load.errs.Load())
	if load.servedAfter.Load() != 0 {
		ts.Fatalf("%d requests that started after the revocation returned were served", load.servedAfter.Load())
	}
	if load.before.Load() == 0 || load.after.Load() == 0 {
		ts.Fatalf("the race did not happen: %d before, %d after", load.before.Load(), load.after.Load())
	}
}
