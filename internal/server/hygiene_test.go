package server_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/server"
)

// rawRequest writes req on a fresh connection to addr and returns the
// response's status and body.
func rawRequest(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestRequestLimitsRawSocket sends requests over the limits on a real
// socket: each is refused with its status and an OperationOutcome, and
// the handler is never reached; the same shapes under the limits are
// served.
func TestRequestLimitsRawSocket(t *testing.T) {
	var reached atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	ts := start(t, server.Options{InsecureAllowHTTP: true, MaxHeaderCount: 20, MaxURLBytes: 1024, MaxQueryParams: 10},
		map[string]http.Handler{"/fhir": h})
	addr := ts.srv.Addr().String()

	headers := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		return b.String()
	}
	params := func(n int) string {
		p := make([]string, n)
		for i := range p {
			p[i] = fmt.Sprintf("p%d=v", i)
		}
		return strings.Join(p, "&")
	}
	cases := []struct {
		name   string
		req    string
		status int
	}{
		{"too many headers", "GET /fhir/Patient HTTP/1.1\r\nHost: x\r\n" + headers(25) + "\r\n", 431},
		{"many headers of one name", "GET /fhir/Patient HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("Accept: a\r\n", 25) + "\r\n", 431},
		{"long URL", "GET /fhir/Patient?name=" + strings.Repeat("a", 1100) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"too many query parameters", "GET /fhir/Patient?" + params(11) + " HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"empty parameters count", "GET /fhir/Patient?" + strings.Repeat("&", 11) + " HTTP/1.1\r\nHost: x\r\n\r\n", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := reached.Load()
			status, body := rawRequest(t, addr, c.req)
			if status != c.status {
				t.Fatalf("status %d, want %d", status, c.status)
			}
			if !strings.Contains(body, `"resourceType":"OperationOutcome"`) {
				t.Errorf("body is not an OperationOutcome: %q", body)
			}
			if reached.Load() != before {
				t.Error("handler reached")
			}
		})
	}
	ok := []string{
		"GET /fhir/Patient HTTP/1.1\r\nHost: x\r\n" + headers(18) + "\r\n",
		"GET /fhir/Patient?" + params(10) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /fhir/Patient?name=" + strings.Repeat("a", 900) + " HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for i, req := range ok {
		before := reached.Load()
		if status, _ := rawRequest(t, addr, req); status != 200 || reached.Load() != before+1 {
			t.Errorf("request %d under the limits: status %d, reached %v", i, status, reached.Load() != before)
		}
	}
}

// TestDefaultRequestLimits: zero Options take the documented defaults.
func TestDefaultRequestLimits(t *testing.T) {
	var reached atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })
	ts := start(t, server.Options{InsecureAllowHTTP: true}, map[string]http.Handler{"/fhir": h})
	addr := ts.srv.Addr().String()
	var b strings.Builder
	for i := range server.DefaultMaxHeaderCount + 1 {
		fmt.Fprintf(&b, "X-H%d: v\r\n", i)
	}
	if status, _ := rawRequest(t, addr, "GET /fhir/Patient HTTP/1.1\r\nHost: x\r\n"+b.String()+"\r\n"); status != 431 {
		t.Errorf("default header count: status %d, want 431", status)
	}
	if status, _ := rawRequest(t, addr, "GET /fhir/"+strings.Repeat("a", server.DefaultMaxURLBytes)+" HTTP/1.1\r\nHost: x\r\n\r\n"); status != 414 {
		t.Errorf("default URL length: status %d, want 414", status)
	}
	q := strings.Repeat("a=1&", server.DefaultMaxQueryParams) + "a=1"
	if status, _ := rawRequest(t, addr, "GET /fhir/Patient?"+q+" HTTP/1.1\r\nHost: x\r\n\r\n"); status != 400 {
		t.Errorf("default query parameters: status %d, want 400", status)
	}
	if reached.Load() != 0 {
		t.Errorf("handler reached %d times", reached.Load())
	}
}

// TestSlowClientCutOff: a client trickling its headers (slowloris) or
// its body past the timeouts is cut off without reaching the handler
// with a whole request, while a prompt upload of the same size passes.
func TestSlowClientCutOff(t *testing.T) {
	var reached atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1<<16)
		n := 0
		for {
			k, err := r.Body.Read(b)
			n += k
			if err != nil {
				break
			}
		}
		if n == 4096 {
			reached.Add(1)
		}
	})
	ts := start(t, server.Options{InsecureAllowHTTP: true, ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond},
		map[string]http.Handler{"/fhir": h})
	addr := ts.srv.Addr().String()

	trickle := func(parts []string) time.Duration {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		begin := time.Now()
		for _, p := range parts {
			if _, err := c.Write([]byte(p)); err != nil {
				return time.Since(begin)
			}
			time.Sleep(150 * time.Millisecond)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return time.Since(begin)
			}
		}
	}
	headers := []string{"GET /fhir/Patient HTTP/1.1\r\n", "Host: x\r\n", "X-A: 1\r\n", "X-B: 1\r\n", "X-C: 1\r\n", "X-D: 1\r\n", "X-E: 1\r\n", "\r\n"}
	if d := trickle(headers); d > 3*time.Second {
		t.Errorf("slow headers held the connection %v", d)
	}
	body := []string{"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n"}
	for range 16 {
		body = append(body, strings.Repeat("a", 256))
	}
	if d := trickle(body); d > 4*time.Second {
		t.Errorf("slow body held the connection %v", d)
	}
	if reached.Load() != 0 {
		t.Fatalf("a trickled request was served whole %d times", reached.Load())
	}
	status, _ := rawRequest(t, addr, body[0]+strings.Repeat("a", 4096))
	if status != 200 || reached.Load() != 1 {
		t.Errorf("prompt upload: status %d, served %d", status, reached.Load())
	}
}
