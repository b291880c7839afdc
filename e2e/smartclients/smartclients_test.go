// Package smartclients_test runs real, unmodified SMART and OAuth client
// libraries from npm (fhirclient, oauth4webapi) against a `warden demo`
// built from this tree: standalone launch with PKCE, refresh and a patient
// read for both, revocation for oauth4webapi, and a Backend Services system
// token with a signed assertion. The clients are the Node scripts next to
// this file; this test builds the server, starts the demo, runs each script
// as a subtest and fails with the script's own message.
//
// It needs Node 20 or later and node_modules/ (./setup.sh installs it);
// without them, or with -short, it skips. It never changes the tree: the
// binary and the demo's data live in the test's temporary directory.
package smartclients_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Time limits of the run.
const (
	demoStartLimit = 60 * time.Second // until demo.json is written
	scriptLimit    = 60 * time.Second // each client script
	demoStopLimit  = 15 * time.Second // from SIGINT to exit
)

// scripts are the client scripts, in the order they run. They sign in
// different demo users (patient1, patient2, patient3), so no one-time code
// is used twice in one time step.
var scripts = []string{
	"fhirclient-standalone.mjs",
	"oauth4webapi-standalone.mjs",
	"oauth4webapi-backend.mjs",
	"oauth4webapi-dpop.mjs",
	"patient-portal.mjs", // needs Chromium (Debian's chromium package)
}

// chromiumPath is where the patient pages' browser test finds Chromium
// (Debian's package; scripts/test installs it).
const chromiumPath = "/usr/bin/chromium"

// demoFile is the part of DIR/demo.json the test reads itself.
type demoFile struct {
	FHIRBase string `json:"fhir_base"`
	Issuer   string `json:"issuer"`
	CAFile   string `json:"ca_file"`
}

func TestSMARTClientLibraries(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the SMART client end-to-end test in -short mode")
	}
	node := requireNode(t)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(here, "node_modules", "fhirclient")); err != nil {
		t.Skip("skipping: e2e/smartclients/node_modules is missing; run e2e/smartclients/setup.sh (npm ci)")
	}

	tmp := t.TempDir()
	warden := buildWarden(t, tmp)
	demoJSON, demo := startDemo(t, warden, filepath.Join(tmp, "demo"))

	for _, script := range scripts {
		name := strings.TrimSuffix(script, ".mjs")
		t.Run(name, func(t *testing.T) {
			if script == "patient-portal.mjs" {
				if _, err := os.Stat(chromiumPath); err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatalf("%s is missing (scripts/test installs Debian's chromium)", chromiumPath)
					}
					t.Skipf("skipping: %s is missing (apt-get install chromium)", chromiumPath)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), scriptLimit)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, script, demoJSON)
			cmd.Dir = here
			cmd.Env = withEnv(os.Environ(), "NODE_EXTRA_CA_CERTS", demo.CAFile)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("%s did not finish within %v\nstdout:\n%s\nstderr:\n%s", script, scriptLimit, &stdout, &stderr)
			}
			if err != nil {
				t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", script, err, &stdout, &stderr)
			}
			var summary struct {
				Script string `json:"script"`
				OK     bool   `json:"ok"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &summary); err != nil {
				t.Fatalf("%s exited 0 but printed no JSON summary (%v):\n%s", script, err, &stdout)
			}
			if !summary.OK || summary.Script != name {
				t.Fatalf("%s summary is not a success for %s:\n%s", script, name, &stdout)
			}
			t.Logf("%s", &stdout)
		})
	}
}

// requireNode returns the path of node, skipping the test when it is
// missing or older than 20.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node is not installed (the SMART client libraries run on Node 20+)")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Skipf("skipping: %s --version: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < 20 {
		t.Skipf("skipping: the SMART client scripts need Node 20 or later, found %s", version)
	}
	return node
}

// buildWarden builds ./cmd/warden of this module into dir.
func buildWarden(t *testing.T, dir string) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "warden")
	build := exec.Command("go", "build", "-o", bin, "./cmd/warden")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/warden: %v\n%s", err, out)
	}
	return bin
}

// startDemo runs `warden demo` on a free loopback port with its data in
// dir, waits until it has written dir/demo.json, and stops it with SIGINT
// when the test ends. It returns the path of demo.json and its contents.
func startDemo(t *testing.T, warden, dir string) (string, demoFile) {
	t.Helper()
	var output lockedBuffer
	cmd := exec.Command(warden, "demo", "--addr", "127.0.0.1:0", "--data", dir)
	cmd.Env = withEnv(os.Environ(), "WARDEN_ADMIN_ADDR", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting warden demo: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { stopDemo(t, cmd, exited, &output) })

	path := filepath.Join(dir, "demo.json")
	deadline := time.NewTimer(demoStartLimit)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			exited <- err // for stopDemo
			t.Fatalf("warden demo exited before writing demo.json: %v\n%s", err, output.String())
		case <-deadline.C:
			t.Fatalf("warden demo wrote no demo.json within %v\n%s", demoStartLimit, output.String())
		case <-tick.C:
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			var demo demoFile
			if json.Unmarshal(b, &demo) != nil || demo.FHIRBase == "" || demo.CAFile == "" {
				continue // still being written
			}
			return path, demo
		}
	}
}

// stopDemo interrupts the demo as Ctrl-C would and waits for it to exit.
func stopDemo(t *testing.T, cmd *exec.Cmd, exited chan error, output *lockedBuffer) {
	select {
	case err := <-exited:
		t.Logf("warden demo had already exited: %v", err)
		return
	default:
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Errorf("interrupting warden demo: %v", err)
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Errorf("waiting for warden demo: %v", err)
		} else if err != nil {
			t.Logf("warden demo exited after SIGINT with %v", err)
		}
	case <-time.After(demoStopLimit):
		_ = cmd.Process.Kill()
		<-exited
		t.Errorf("warden demo did not exit within %v of SIGINT; killed\n%s", demoStopLimit, output.String())
	}
}

// withEnv returns env with key set to value, replacing any earlier value
// (the machine may already set NODE_EXTRA_CA_CERTS to a system bundle).
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// lockedBuffer collects the demo's output from its two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
