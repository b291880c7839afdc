package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// serverTimer sums the time the server spends in its handlers, per path.
type serverTimer struct {
	next http.Handler
	mu   sync.Mutex
	by   map[string]time.Duration
}

func (s *serverTimer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.next.ServeHTTP(w, r)
	d := time.Since(start)
	s.mu.Lock()
	s.by[r.URL.Path] += d
	s.mu.Unlock()
}

func (s *serverTimer) total() (all, login time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, d := range s.by {
		all += d
		if p == "/auth/login" {
			login += d
		}
	}
	return all, login
}

// BenchmarkStandaloneLaunch measures the server time of one full
// standalone launch: authorize → login → approve → token → refresh. The
// login's Argon2id password check dominates; it is reported apart.
func BenchmarkStandaloneLaunch(b *testing.B) {
	e := newEnv(b)
	timer := &serverTimer{next: e.mux, by: map[string]time.Duration{}}
	e.ts.Config.Handler = timer
	c, _ := e.appClient(b, ClientPublic, appScopes)
	u := e.addUser(b, "alice", "Patient/p1", []string{"p1"}, false)
	scope := "launch/patient openid fhirUser offline_access patient/*.rs"
	b.ResetTimer()
	for b.Loop() {
		p := newPKCE()
		code := e.standaloneCode(b, c, u, scope, "", p)
		st, tok, _ := e.exchange(b, c, "", code, p.verifier)
		if st != http.StatusOK {
			b.Fatalf("%d %v", st, tok)
		}
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {c.ID}}
		if st, body, _ := e.postForm(b, "/auth/token", f, "", ""); st != http.StatusOK || !strings.Contains(body["scope"].(string), "patient/") {
			b.Fatalf("refresh %d %v", st, body)
		}
	}
	all, login := timer.total()
	n := float64(b.N)
	b.ReportMetric(float64(all.Microseconds())/1000/n, "server-ms/launch")
	b.ReportMetric(float64(login.Microseconds())/1000/n, "login-ms/launch")
	b.ReportMetric(float64((all-login).Microseconds())/1000/n, "non-login-ms/launch")
}
