package cli

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardenfhir/warden/internal/audit/verify"
	"github.com/wardenfhir/warden/internal/audit/verify/verifytest"
)

// runAudit runs `warden audit ARGS` in-process and returns its exit
// status as run would, with its output.
func runAudit(t *testing.T, environ []string, args ...string) (int, string, string) {
	t.Helper()
	c := auditCommand()
	var stdout, stderr bytes.Buffer
	e := &env{ctx: t.Context(), stdout: &stdout, stderr: &stderr, environ: environ}
	fs := newFlagSet(c, &stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(&stdout, c, fs)
			return 0, stdout.String(), stderr.String()
		}
		return 2, stdout.String(), stderr.String()
	}
	err := c.run(e, fs, fs.Args())
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.Is(err, errUsage):
		return 2, stdout.String(), err.Error()
	default:
		return 1, stdout.String(), err.Error()
	}
}

func TestAuditCommand(t *testing.T) {
	data := t.TempDir()
	tr := verifytest.New(t, data)
	tr.Append(t, 30)
	environ := []string{"WARDEN_DATA_DIR=" + data}

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{nil, {"frobnicate"}, {"verify", "extra"}, {"prove"}, {"monitor", "https://x.test/audit/log"}} {
			if code, _, _ := runAudit(t, environ, args...); code != 2 {
				t.Errorf("audit %q: exit %d, want 2", args, code)
			}
		}
		code, out, _ := runAudit(t, environ, "--help")
		if code != 0 || !strings.Contains(out, "warden audit monitor URL --vkey FILE") {
			t.Errorf("--help: exit %d\n%s", code, out)
		}
	})

	t.Run("verify clean", func(t *testing.T) {
		code, out, errOut := runAudit(t, environ, "verify")
		if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "30 entries") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if _, err := os.ReadDir(filepath.Join(data, "audit", "verified")); err != nil {
			t.Fatalf("no default state dir: %v", err)
		}
	})

	t.Run("prove", func(t *testing.T) {
		eventFile := filepath.Join(t.TempDir(), "event.json")
		code, out, errOut := runAudit(t, environ, "prove", tr.IDs[7], "--event", eventFile)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		event, err := os.ReadFile(eventFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify.VerifyProof(tr.VKey, []byte(out), event); err != nil {
			t.Fatalf("printed proof does not verify: %v\n%s", err, out)
		}
		if code, _, _ := runAudit(t, environ, "prove", "no-such-event"); code != 1 {
			t.Fatalf("unknown event: exit %d, want 1", code)
		}
	})

	t.Run("monitor", func(t *testing.T) {
		srv := httptest.NewServer(http.StripPrefix("/audit/log", http.FileServer(http.Dir(tr.LogDir()))))
		defer srv.Close()
		vkeyFile := filepath.Join(data, "audit", "log.vkey")
		state := t.TempDir()
		code, out, errOut := runAudit(t, environ, "monitor", srv.URL+"/audit/log", "--vkey", vkeyFile, "--state", state, "--once")
		if code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		// Another log's key: an alarm, exit 1.
		other := filepath.Join(t.TempDir(), "other.vkey")
		other2 := verifytest.New(t, t.TempDir())
		os.WriteFile(other, []byte(other2.VKey), 0o644)
		if code, _, errOut := runAudit(t, environ, "monitor", srv.URL+"/audit/log", "--vkey", other, "--state", t.TempDir(), "--once"); code != 1 || !strings.Contains(errOut, "bad checkpoint signature") {
			t.Fatalf("other key: exit %d: %s", code, errOut)
		}
	})

	t.Run("verify tampered", func(t *testing.T) {
		// Edit one event's bytes in the journal, with a valid frame CRC.
		path := filepath.Join(data, "audit", "journal", "journal.log")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n := binary.LittleEndian.Uint32(b)
		payload := b[8 : 8+n]
		payload[n-2] ^= 1
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runAudit(t, environ, "verify")
		if code != 1 || !strings.Contains(out, "FINDING edited event seq=0 ") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}
