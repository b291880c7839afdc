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
		cfg.Detect.Disabled = true // and their burst of 401s flagged as probing
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

	load := startRaceLoad(len(origins), func(w, i int) (*http.Client, *http.Request) {
		p := w % len(origins)
		req, _ := http.NewRequest(http.MethodGet, origins[p]+"/Patient/race-p1", nil)
		req.Header.Set("Authorization", "Bearer "+toks[(w+i)%len(toks)])
		return clients[p], req
	})
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := ins[0].core.tokens.RevokeGrant(ctx, "race-grant-"+client); err != nil {
		t.Fatal(err)
	}
	load.returned.Store(time.Now().UnixNano())
	took := time.Since(t0)
	time.Sleep(300 * time.Millisecond)
	load.stop()
	t.Logf("%d processes: %d requests before, %d after the revoking call returned (which took %v); %d transport errors",
		processes, load.before.Load(), load.after.Load(), took, load.errs.Load())
	if load.servedAfter.Load() != 0 {
		t.Fatalf("%d of %d requests that started after the revocation returned were served", load.servedAfter.Load(), load.after.Load())
	}
	if n := load.otherAfter.Load(); n != 0 {
		t.Errorf("%d requests after revocation answered neither 200 nor 401", n)
	}
	if load.before.Load() == 0 || load.after.Load() == 0 {
		t.Fatalf("the race did not happen: %d requests before, %d after", load.before.Load(), load.after.Load())
	}
	if load.errs.Load() != 0 {
		t.Errorf("%d requests failed in transport", load.errs.Load())
	}
}

// raceLoad is 32 clients sending requests until stopped, each counted as
// started before or after returned (UnixNano; 0: not yet), and after it
// as served (200), refused (401) or other.
type raceLoad struct {
	returned                                     atomic.Int64
	before, after, servedAfter, otherAfter, errs atomic.Int64
	stop                                         func()
}

// startRaceLoad starts the clients; next gives worker w's i-th request.
func startRaceLoad(targets int, next func(w, i int) (*http.Client, *http.Request)) *raceLoad {
	l := &raceLoad{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				c, req := next(w, i)
				started := time.Now().UnixNano()
				resp, err := c.Do(req)
				if err != nil {
					l.errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if r := l.returned.Load(); r == 0 || started <= r {
					l.before.Add(1)
					continue
				}
				l.after.Add(1)
				switch resp.StatusCode {
				case http.StatusOK:
					l.servedAfter.Add(1)
				case http.StatusUnauthorized:
				default:
					l.otherAfter.Add(1)
				}
			}
		}()
	}
	l.stop = func() { close(done); wg.Wait() }
	return l
}

// copyDir copies the regular files of from into a new directory to,
// private to the owner like the keys directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := copyFiles(from, to); err != nil {
		t.Fatal(err)
	}
}

func copyFiles(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
