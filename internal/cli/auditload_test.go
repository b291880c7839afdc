package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/audit/journal"
)

// auditLoad is load running in the background of a script, for the audit
// trail's crash test: it records the request id of every response it got.
type auditLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	ids  []string
	errs int
}

var (
	loadsMu sync.Mutex
	loads   = map[*testscript.TestScript]*auditLoad{}
)

// startLoadCmd: startload DEMODIR — GET requests from 8 concurrent
// clients (a backend token, then Patient searches and reads of a demo
// patient, and some anonymous requests that are refused) until stopload.
func startLoadCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: startload DEMODIR")
	}
	var info demoInfo
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], "demo.json"))), &info))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ts.ReadFile(info.CAFile)))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 8}}
	token := backendToken(ts, client, info)
	l := &auditLoad{stop: make(chan struct{})}
	paths := []string{"Patient?_count=2", "Patient/" + info.Patients[0], "Observation?patient=" + info.Patients[0] + "&_count=5"}
	for w := range 8 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, info.FHIRBase+"/"+paths[(w+i)%len(paths)], nil)
				if (w+i)%5 != 0 {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				if err != nil {
					l.mu.Lock()
					l.errs++
					l.mu.Unlock()
					time.Sleep(10 * time.Millisecond) // the server is gone; stopload ends this
					continue
				}
				resp.Body.Close()
				if id := resp.Header.Get("X-Request-Id"); id != "" {
					l.mu.Lock()
					l.ids = append(l.ids, id)
					l.mu.Unlock()
				}
			}
		}()
	}
	loadsMu.Lock()
	loads[ts] = l
	loadsMu.Unlock()
}

// stopLoadCmd: stopload FILE — stops the load and writes the request id
// of every response it got to FILE, one a line; fails if there were none.
func stopLoadCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: stopload FILE")
	}
	loadsMu.Lock()
	l := loads[ts]
	delete(loads, ts)
	loadsMu.Unlock()
	if l == nil {
		ts.Fatalf("no load running")
	}
	close(l.stop)
	l.wg.Wait()
	if len(l.ids) < 20 {
		ts.Fatalf("only %d responses before the kill", len(l.ids))
	}
	ts.Logf("%d responses, %d failed requests", len(l.ids), l.errs)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Join(l.ids, "\n")+"\n"), 0o600))
}

// auditedCmd: audited DATADIR IDSFILE — every request id in IDSFILE has
// its event in the audit journal of DATADIR (the server must be stopped),
// and every event decodes and opens its commitment.
func auditedCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: audited DATADIR IDSFILE")
	}
	j, err := journal.Open(filepath.Join(ts.MkAbs(args[0]), "audit", "journal"))
	ts.Check(err)
	defer j.Close()
	seen := map[string]bool{}
	err = j.Read(0, func(seq uint64, entry []byte) error {
		e, err := audit.DecodeJournalEntry(entry)
		if err != nil {
			return fmt.Errorf("entry %d: %w", seq, err)
		}
		if !audit.Open(e.Leaf, e.Nonce, e.Canonical) {
			return fmt.Errorf("entry %d does not open its commitment", seq)
		}
		var ev struct {
			Entity []auditEntity `json:"entity"`
		}
		if err := json.Unmarshal(e.Canonical, &ev); err != nil {
			return fmt.Errorf("entry %d: %w", seq, err)
		}
		noteRequests(seen, ev.Entity)
		return nil
	})
	ts.Check(err)
	missing, of := unseen(ts, args[1], seen, "no event for request")
	if (missing > 0) != neg {
		ts.Fatalf("%d of %d answered requests have no audit event (journal: %d events)", missing, of, len(seen))
	}
}

// searchedCmd: searched DEMODIR IDSFILE — with the demo running, pages
// through every AuditEvent the FHIR API serves (AuditEvent?_count=1000,
// following next links) and checks that every request id in IDSFILE has
// its event there, read back whole, and that no event is served twice:
// the trail's index, caught up after a crash, serves every event of the
// journal and nothing else.
func searchedCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: searched DEMODIR IDSFILE")
	}
	var info demoInfo
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], "demo.json"))), &info))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(ts.ReadFile(info.CAFile)))
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	token := backendToken(ts, client, info)
	seen, served := map[string]bool{}, map[string]bool{}
	next := info.FHIRBase + "/AuditEvent?_count=1000"
	for pages := 0; next != ""; pages++ {
		if pages > 1000 {
			ts.Fatalf("the trail's pages do not end")
		}
		req, err := http.NewRequest(http.MethodGet, next, nil)
		ts.Check(err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		ts.Check(err)
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct {
					ResourceType string        `json:"resourceType"`
					ID           string        `json:"id"`
					Entity       []auditEntity `json:"entity"`
				} `json:"resource"`
			} `json:"entry"`
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ts.Check(err)
		if resp.StatusCode != http.StatusOK {
			ts.Fatalf("%s: status %d: %s", next, resp.StatusCode, body)
		}
		ts.Check(json.Unmarshal(body, &b))
		for _, e := range b.Entry {
			if e.Resource.ResourceType != "AuditEvent" {
				ts.Fatalf("a %q among the AuditEvents", e.Resource.ResourceType)
			}
			if served[e.Resource.ID] {
				ts.Fatalf("event %s served twice", e.Resource.ID)
			}
			served[e.Resource.ID] = true
			noteRequests(seen, e.Resource.Entity)
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	if missing, of := unseen(ts, args[1], seen, "AuditEvent search finds no event for request"); missing > 0 {
		ts.Fatalf("%d of %d answered requests have no event in AuditEvent search (%d events served)", missing, of, len(served))
	}
	ts.Logf("%d events served, every answered request's among them", len(served))
}

// auditEntity is what the crash test reads of an AuditEvent's entity:
// the request id is the identifier of the one of type XrequestId.
type auditEntity struct {
	What struct {
		Identifier struct{ Value string } `json:"identifier"`
	} `json:"what"`
	Type struct{ Code string } `json:"type"`
}

// noteRequests marks in seen the request id an event's entities name.
func noteRequests(seen map[string]bool, entities []auditEntity) {
	for _, en := range entities {
		if en.Type.Code == "XrequestId" {
			seen[en.What.Identifier.Value] = true
		}
	}
}

// unseen counts the request ids listed in file (one a line) that are not
// in seen, of how many, logging the first few after what.
func unseen(ts *testscript.TestScript, file string, seen map[string]bool, what string) (missing, of int) {
	ids := strings.Fields(ts.ReadFile(file))
	for _, id := range ids {
		if !seen[id] {
			missing++
			if missing <= 5 {
				ts.Logf("%s %s", what, id)
			}
		}
	}
	return missing, len(ids)
}
