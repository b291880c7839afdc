package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/store/storetest"
	"github.com/wardenfhir/warden/internal/tokens"
)

// TestRevocationRace is issue 6's revocation race through the real HTTP
// stack: 32 concurrent clients read a patient with tokens of one grant,
// spread over the Warden processes sharing a database, while the grant is
// revoked at one of them. The number of requests that started after the
// revoking call returned and were still served must be zero. One process
// on SQLite; three on PostgreSQL (when WARDEN_TEST_POSTGRES is set).
func TestRevocationRace(t *testing.T) {
	t.Run("sqlite/1 process", func(t *testing.T) {
		revocationRace(t, "", 1)
	})
	t.Run("postgres/3 processes", func(t *testing.T) {
		revocationRace(t, storetest.PostgresURL(t), 3)
	})
}

func revocationRace(t *testing.T, storeURL string, processes int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const base = "https://warden.race.test/fhir"
	var ins []*instance
	var clients []*http.Client
	var origins []string
	first := t.TempDir()
	for i := range processes {
		cfg := config.Default()
		cfg.DataDir = first
		if i > 0 {
			// Another process: its own data directory, the same keys (the
			// signing keys in the database are sealed with them).
			cfg.DataDir = t.TempDir()
			copyDir(t, filepath.Join(first, "keys"), filepath.Join(cfg.DataDir, "keys"))
		}
		cfg.Store.URL = storeURL
		cfg.Server.Addr = "127.0.0.1:0"
		cfg.Server.BaseURL = base
		cfg.Admin.Addr = ""
		cfg.Audit.Disabled = true  // the race concerns authorization only
		cfg.Limits.Disabled = true // and 32 clients on one address would be throttled
		in, err := build(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		go in.Serve(ctx)
		ins = append(ins, in)
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(in.caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
		clients = append(clients, &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, MaxIdleConnsPerHost: 32}})
		origins = append(origins, "https://"+in.server.Addr().String()+"/fhir")
	}
	patient := `{"resourceType":"Patient","id":"race-p1","name":[{"family":"Race"}]}`
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + patient + `,"request":{"method":"PUT","url":"Patient/race-p1"}}]}`
	if _, err := ins[0].api.ProcessBundle(fhirapi.Trusted(ctx), []byte(bundle), fhirapi.BundleOptions{}); err != nil {
		t.Fatal(err)
	}
	client := fmt.Sprintf("race-app-%d", time.Now().UnixNano())
	var toks []string
	for range 4 { // several tokens of the one grant (refreshes)
		tok, _, _, err := ins[0].core.tokens.MintAccess(ctx, tokens.AccessClaims{Subject: client, ClientID: client,
			GrantID: "race-grant-" + client, Scope: "system/Patient.rs"})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}

	var returned atomic.Int64 // UnixNano when RevokeGrant returned
	var before, after, servedAfter, errs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := w % processes
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, origins[p]+"/Patient/race-p1", nil)
				req.Header.Set("Authorization", "Bearer "+toks[(w+i)%len(toks)])
				started := time.Now().UnixNano()
				resp, err := clients[p].Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r := returned.Load()
				switch {
				case r == 0 || started <= r:
					before.Add(1)
				default:
					after.Add(1)
					if resp.StatusCode == http.StatusOK {
						servedAfter.Add(1)
					} else if resp.StatusCode != http.StatusUnauthorized {
						t.Errorf("after revocation: status %d, want 401", resp.StatusCode)
					}
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := ins[0].core.tokens.RevokeGrant(ctx, "race-grant-"+client); err != nil {
		t.Fatal(err)
	}
	returned.Store(time.Now().UnixNano())
	took := time.Since(t0)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d processes: %d requests before, %d after the revoking call returned (which took %v); %d transport errors",
		processes, before.Load(), after.Load(), took, errs.Load())
	if servedAfter.Load() != 0 {
		t.Fatalf("%d of %d requests that started after the revocation returned were served", servedAfter.Load(), after.Load())
	}
	if before.Load() == 0 || after.Load() == 0 {
		t.Fatalf("the race did not happen: %d requests before, %d after", before.Load(), after.Load())
	}
	if errs.Load() != 0 {
		t.Errorf("%d requests failed in transport", errs.Load())
	}
}

// copyDir copies the regular files of from into a new directory to,
// private to the owner like the keys directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
