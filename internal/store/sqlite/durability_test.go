package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/fhir/search"
	"github.com/wardenfhir/warden/internal/fhir/searchparam"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// crashChildEnv, when set to a database path, turns the test binary into
// the writer that TestDurability kills.
const crashChildEnv = "WARDEN_SQLITE_CRASH_CHILD"

// durableBody is the JSON of a version written by the crash child.
func durableBody(id string, version int64) []byte {
	return fmt.Appendf(nil, `{"resourceType":"Basic","id":%q,"meta":{"versionId":"%d"},"pad":%q}`, id, version, strings.Repeat(id, 20))
}

func durableWrite(id string, version int64) store.Write {
	return store.Write{
		Resource: store.Resource{Type: "Basic", ID: id, Version: version, LastUpdated: time.Now(), JSON: durableBody(id, version)},
		Entries: []searchparam.Entry{
			{Param: "identifier", Type: searchparam.Token, System: "urn:durable", Code: id},
			{Param: "code", Type: searchparam.Token, System: "urn:version", Code: strconv.FormatInt(version, 10)},
		},
	}
}

// TestMain's helper: the child writes until it is killed, printing
// "ok id version" for every version of a Tx that returned nil.
func runCrashChild(path string) {
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions := map[string]int64{}
			var ids []string
			for i := 0; ; i++ {
				var ws []store.Write
				id := fmt.Sprintf("%s-%d-%d", run, g, i)
				ws = append(ws, durableWrite(id, 1))
				if i%3 == 2 {
					old := ids[i%len(ids)]
					ws = append(ws, durableWrite(old, versions[old]+1))
				}
				err := s.Tx(context.Background(), func(tx store.Tx) error {
					for _, w := range ws {
						if err := tx.Put(context.Background(), w); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					mu.Lock()
					fmt.Fprintln(out, "error:", err)
					out.Flush()
					mu.Unlock()
					return
				}
				ids = append(ids, id)
				mu.Lock()
				for _, w := range ws {
					versions[w.Resource.ID] = w.Resource.Version
					fmt.Fprintf(out, "ok %s %d\n", w.Resource.ID, w.Resource.Version)
				}
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(1)
}

// TestDurability kills a process that writes through Tx with SIGKILL
// while it writes, then checks that every write whose Tx returned nil
// (which the child reported before it died) is in the reopened database,
// intact and indexed, and that the database file passes SQLite's
// integrity check. It does so over several crashes of the same file.
func TestDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; slow")
	}
	path := filepath.Join(t.TempDir(), "durable.db")
	acked := map[string]int64{} // id → highest acknowledged version
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDurability$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a number of acknowledged writes that varies by
		// round, so the kill lands at different points of the commit
		// cycle.
		want := 300 + round*237
		n := 0
		sc := bufio.NewScanner(stdout)
		deadline := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ok" {
				t.Errorf("child: %s", sc.Text())
				continue
			}
			v, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("child: %s", sc.Text())
			}
			acked[f[1]] = max(acked[f[1]], v)
			if n++; n == want {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		deadline.Stop()
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not SIGKILL; stderr:\n%s", round, err, stderr.String())
		}
		if n < want {
			t.Fatalf("round %d: the child acknowledged %d writes, want %d", round, n, want)
		}
		checkDurable(t, path, acked)
	}
}

func checkDurable(t *testing.T, path string, acked map[string]int64) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q %v", integrity, err)
	}
	db.Close()

	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopening after the crash: %v", err)
	}
	defer s.Close()
	pIdentifier := &searchparam.Param{Code: "identifier", Type: searchparam.Token, Base: "Basic"}
	pCode := &searchparam.Param{Code: "code", Type: searchparam.Token, Base: "Basic"}
	lost := 0
	for id, v := range acked {
		cur, err := s.Read(ctx, "Basic", id)
		if err != nil || cur.Version < v {
			if lost++; lost < 10 {
				t.Errorf("%s: acknowledged version %d, read %v %v", id, v, cur, err)
			}
			continue
		}
		got, err := s.VRead(ctx, "Basic", id, v)
		if err != nil || !bytes.Equal(got.JSON, durableBody(id, v)) {
			t.Errorf("%s version %d: %v, %+v", id, v, err, got)
		}
		// The index holds the current version's entries.
		q := &search.Query{Type: "Basic", Count: 10, Clauses: []search.Clause{
			{Param: pIdentifier, Values: []search.Value{{System: "urn:durable", Code: id}}},
			{Param: pCode, Values: []search.Value{{System: "urn:version", Code: strconv.FormatInt(cur.Version, 10)}}},
		}}
		res, err := s.Search(ctx, q, store.PageRequest{})
		if err != nil || len(res.Matches) != 1 {
			t.Errorf("%s: search of the current version: %v %v", id, res, err)
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(acked))
	}
}
