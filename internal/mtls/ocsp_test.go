package mtls_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/wardenfhir/warden/internal/mtls"
)

// ocspResponse is a response about leaf signed by signer (the CA itself
// when signerCert is nil; a delegated responder's certificate is embedded).
func (ca *testCA) ocspResponse(t testing.TB, tmpl ocsp.Response, signerCert *x509.Certificate, signerKey crypto.Signer) []byte {
	t.Helper()
	respCert, key := ca.cert, crypto.Signer(ca.key)
	if signerCert != nil {
		respCert, key = signerCert, signerKey
		tmpl.Certificate = signerCert
	}
	der, err := ocsp.CreateResponse(ca.cert, respCert, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// responderCert is a delegated OCSP responder's certificate from ca,
// with id-kp-OCSPSigning when ocspSigning.
func (ca *testCA) responderCert(t testing.TB, ocspSigning bool) (*x509.Certificate, crypto.Signer) {
	usage := x509.ExtKeyUsageClientAuth
	if ocspSigning {
		usage = x509.ExtKeyUsageOCSPSigning
	}
	c := ca.issue(t, "OCSP responder", usage, time.Now().Add(time.Hour))
	return c.Leaf, c.PrivateKey.(crypto.Signer)
}

// ocspResponder is a loopback OCSP responder: answer makes the DER answer
// to each request (nil: 500), and calls counts the requests.
type ocspResponder struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	answer func(req *ocsp.Request) []byte
}

func newOCSPResponder(t *testing.T, answer func(req *ocsp.Request) []byte) *ocspResponder {
	r := &ocspResponder{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		r.calls.Add(1)
		b, _ := io.ReadAll(hr.Body)
		req, err := ocsp.ParseRequest(b)
		if err != nil || hr.Method != http.MethodPost || hr.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "bad request", 400)
			return
		}
		r.mu.Lock()
		der := r.answer(req)
		r.mu.Unlock()
		if der == nil {
			http.Error(w, "down", 500)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(der)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *ocspResponder) set(answer func(req *ocsp.Request) []byte) {
	r.mu.Lock()
	r.answer = answer
	r.mu.Unlock()
}

// statusAnswer answers every request by the CA with status for the
// requested serial, valid for an hour.
func statusAnswer(t testing.TB, ca *testCA, status int) func(*ocsp.Request) []byte {
	return func(req *ocsp.Request) []byte {
		return ca.ocspResponse(t, ocsp.Response{Status: status, SerialNumber: req.SerialNumber,
			ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour), RevokedAt: time.Now().Add(-time.Minute)}, nil, nil)
	}
}

// Responses that must not pass for a good answer about the certificate,
// then the ones that must.
func TestVerifyOCSPResponse(t *testing.T) {
	ca, other := newTestCA(t, "partner CA"), newTestCA(t, "other CA")
	leaf := ca.issue(t, "app", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour)).Leaf
	now := time.Now()
	good := ocsp.Response{Status: ocsp.Good, SerialNumber: leaf.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	with := func(f func(*ocsp.Response)) ocsp.Response { r := good; f(&r); return r }
	delegated, delegatedKey := ca.responderCert(t, true)
	noEKU, noEKUKey := ca.responderCert(t, false)
	foreign, foreignKey := other.responderCert(t, true)
	refused := map[string][]byte{
		"signed by another CA's key": other.ocspResponse(t, good, nil, nil),
		"about another serial":       ca.ocspResponse(t, with(func(r *ocsp.Response) { r.SerialNumber = big.NewInt(7) }), nil, nil),
		"stale (nextUpdate past)": ca.ocspResponse(t, with(func(r *ocsp.Response) {
			r.ThisUpdate, r.NextUpdate = now.Add(-2*time.Hour), now.Add(-time.Minute)
		}), nil, nil),
		"thisUpdate in the future":          ca.ocspResponse(t, with(func(r *ocsp.Response) { r.ThisUpdate = now.Add(time.Hour) }), nil, nil),
		"no nextUpdate and old":             ca.ocspResponse(t, with(func(r *ocsp.Response) { r.ThisUpdate, r.NextUpdate = now.Add(-2*time.Hour), time.Time{} }), nil, nil),
		"delegated without OCSPSigning":     ca.ocspResponse(t, good, noEKU, noEKUKey),
		"delegated responder of another CA": ca.ocspResponse(t, good, foreign, foreignKey),
		"responder error status":            ocsp.UnauthorizedErrorResponse,
		"not DER":                           []byte("<html>proxy error</html>"),
		"empty":                             nil,
	}
	for name, der := range refused {
		t.Run(name, func(t *testing.T) {
			if _, err := mtls.VerifyOCSPResponse(der, leaf, ca.cert, now); !errors.Is(err, mtls.ErrOCSPUnavailable) {
				t.Fatalf("err = %v, want ErrOCSPUnavailable", err)
			}
		})
	}
	accepted := map[string]struct {
		der    []byte
		status int
	}{
		"good, signed by the CA":             {ca.ocspResponse(t, good, nil, nil), ocsp.Good},
		"good, delegated responder":          {ca.ocspResponse(t, good, delegated, delegatedKey), ocsp.Good},
		"revoked":                            {ca.ocspResponse(t, with(func(r *ocsp.Response) { r.Status, r.RevokedAt = ocsp.Revoked, now.Add(-time.Minute) }), nil, nil), ocsp.Revoked},
		"unknown":                            {ca.ocspResponse(t, with(func(r *ocsp.Response) { r.Status = ocsp.Unknown }), nil, nil), ocsp.Unknown},
		"no nextUpdate, fresh":               {ca.ocspResponse(t, with(func(r *ocsp.Response) { r.NextUpdate = time.Time{} }), nil, nil), ocsp.Good},
		"thisUpdate within the clock's skew": {ca.ocspResponse(t, with(func(r *ocsp.Response) { r.ThisUpdate = now.Add(2 * time.Minute) }), nil, nil), ocsp.Good},
	}
	for name, c := range accepted {
		t.Run(name, func(t *testing.T) {
			resp, err := mtls.VerifyOCSPResponse(c.der, leaf, ca.cert, now)
			if err != nil || resp.Status != c.status {
				t.Fatalf("resp %v, err %v; want status %d", resp, err, c.status)
			}
		})
	}
}

// The checker against a loopback responder: every answer, the failure
// policies, the responder named by the certificate, the cache.
func TestOCSPChecker(t *testing.T) {
	ca := newTestCA(t, "partner CA")
	leaf := ca.issue(t, "app", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour)).Leaf
	r := newOCSPResponder(t, statusAnswer(t, ca, ocsp.Good))
	check := func(o mtls.OCSPOptions) error {
		t.Helper()
		if o.ResponderURL == "" {
			o.ResponderURL = r.srv.URL
		}
		c, err := mtls.NewOCSPChecker(o)
		if err != nil {
			t.Fatal(err)
		}
		return c.Check(context.Background(), leaf, ca.cert)
	}
	cases := []struct {
		name   string
		answer func(*ocsp.Request) []byte
		open   bool
		want   error
	}{
		{"good", statusAnswer(t, ca, ocsp.Good), false, nil},
		{"revoked", statusAnswer(t, ca, ocsp.Revoked), false, mtls.ErrCertRevoked},
		{"revoked, fail open", statusAnswer(t, ca, ocsp.Revoked), true, mtls.ErrCertRevoked},
		{"unknown", statusAnswer(t, ca, ocsp.Unknown), false, mtls.ErrOCSPUnknown},
		{"unknown, fail open", statusAnswer(t, ca, ocsp.Unknown), true, mtls.ErrOCSPUnknown},
		{"responder answers 500, fail closed", func(*ocsp.Request) []byte { return nil }, false, mtls.ErrOCSPUnavailable},
		{"responder answers 500, fail open", func(*ocsp.Request) []byte { return nil }, true, nil},
		{"signed by the wrong key, fail closed", statusAnswer(t, newTestCA(t, "other CA"), ocsp.Good), false, mtls.ErrOCSPUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.set(c.answer)
			if err := check(mtls.OCSPOptions{FailOpen: c.open}); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	r.set(statusAnswer(t, ca, ocsp.Good))

	t.Run("responder down", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		if err := check(mtls.OCSPOptions{ResponderURL: down.URL}); !errors.Is(err, mtls.ErrOCSPUnavailable) {
			t.Fatalf("fail closed: err = %v", err)
		}
		if err := check(mtls.OCSPOptions{ResponderURL: down.URL, FailOpen: true}); err != nil {
			t.Fatalf("fail open: err = %v", err)
		}
	})
	t.Run("responder too slow", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(500 * time.Millisecond) }))
		defer slow.Close()
		start := time.Now()
		if err := check(mtls.OCSPOptions{ResponderURL: slow.URL, Timeout: 50 * time.Millisecond}); !errors.Is(err, mtls.ErrOCSPUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Fatalf("the check waited %v, past its timeout", d)
		}
	})
	t.Run("responder from the certificate's AIA", func(t *testing.T) {
		key := newKey(t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(424242), Subject: pkix.Name{CommonName: "aia app"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), OCSPServer: []string{"ldap://ignored", r.srv.URL},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		aia, _ := x509.ParseCertificate(der)
		c, _ := mtls.NewOCSPChecker(mtls.OCSPOptions{})
		before := r.calls.Load()
		r.set(statusAnswer(t, ca, ocsp.Revoked))
		if err := c.Check(context.Background(), aia, ca.cert); !errors.Is(err, mtls.ErrCertRevoked) {
			t.Fatalf("err = %v", err)
		}
		if r.calls.Load() != before+1 {
			t.Fatal("the AIA responder was not asked")
		}
		if err := c.Check(context.Background(), leaf, ca.cert); !errors.Is(err, mtls.ErrOCSPUnavailable) {
			t.Fatalf("a certificate naming no responder, none configured: err = %v", err)
		}
		r.set(statusAnswer(t, ca, ocsp.Good))
	})
	t.Run("cache until nextUpdate, bounded", func(t *testing.T) {
		now := time.Now()
		c, _ := mtls.NewOCSPChecker(mtls.OCSPOptions{ResponderURL: r.srv.URL, Now: func() time.Time { return now }, MaxCached: 2})
		before := r.calls.Load()
		for range 5 {
			if err := c.Check(context.Background(), leaf, ca.cert); err != nil {
				t.Fatal(err)
			}
		}
		if n := r.calls.Load() - before; n != 1 {
			t.Fatalf("responder called %d times for 5 checks of one certificate, want 1", n)
		}
		now = now.Add(61 * time.Minute) // past nextUpdate: asked again
		r.set(func(req *ocsp.Request) []byte {
			return ca.ocspResponse(t, ocsp.Response{Status: ocsp.Revoked, SerialNumber: req.SerialNumber, RevokedAt: now,
				ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, nil, nil)
		})
		if err := c.Check(context.Background(), leaf, ca.cert); !errors.Is(err, mtls.ErrCertRevoked) {
			t.Fatalf("after nextUpdate: err = %v, want the new answer (revoked)", err)
		}
		for i := range 5 { // more certificates than MaxCached: no error, the cache starts over
			l := ca.issue(t, "app", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour)).Leaf
			if err := c.Check(context.Background(), l, ca.cert); !errors.Is(err, mtls.ErrCertRevoked) {
				t.Fatalf("certificate %d: %v", i, err)
			}
		}
		r.set(statusAnswer(t, ca, ocsp.Good))
	})
	t.Run("concurrent checks share one request", func(t *testing.T) {
		slowCalls := atomic.Int64{}
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
			slowCalls.Add(1)
			time.Sleep(100 * time.Millisecond)
			b, _ := io.ReadAll(hr.Body)
			req, _ := ocsp.ParseRequest(b)
			w.Write(statusAnswer(t, ca, ocsp.Good)(req))
		}))
		defer slow.Close()
		c, _ := mtls.NewOCSPChecker(mtls.OCSPOptions{ResponderURL: slow.URL})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- c.Check(context.Background(), leaf, ca.cert) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := slowCalls.Load(); n != 1 {
			t.Fatalf("8 concurrent checks made %d requests, want 1", n)
		}
	})
	t.Run("failures logged once each, without the certificate", func(t *testing.T) {
		logs := &syncBuffer{}
		r.set(func(*ocsp.Request) []byte { return nil })
		c, _ := mtls.NewOCSPChecker(mtls.OCSPOptions{ResponderURL: r.srv.URL + "?token=secret", Logger: slog.New(slog.NewTextHandler(logs, nil))})
		for range 3 {
			c.Check(context.Background(), leaf, ca.cert)
		}
		out := logs.String()
		if n := strings.Count(out, "OCSP check failed"); n != 1 {
			t.Fatalf("logged %d times, want once:\n%s", n, out)
		}
		if strings.Contains(out, "secret") || strings.Contains(out, "app") || strings.Contains(out, leaf.SerialNumber.String()) {
			t.Fatalf("log line names the certificate or the URL's query:\n%s", out)
		}
		r.set(statusAnswer(t, ca, ocsp.Good))
	})
	if _, err := mtls.NewOCSPChecker(mtls.OCSPOptions{ResponderURL: "ftp://x"}); err == nil {
		t.Fatal("a non-http responder URL accepted")
	}
}

// OCSP in real handshakes through the Listener: good, revoked, responder
// down under both policies, and the cache (one responder call for many
// handshakes with one certificate).
func TestListenerOCSP(t *testing.T) {
	var r *ocspResponder
	env := func(t *testing.T, failOpen bool) *mtlsEnv {
		return newEnvWith(t, func(e *mtlsEnv, o *mtls.ServerOptions) {
			r = newOCSPResponder(t, statusAnswer(t, e.trusted, ocsp.Good))
			c, err := mtls.NewOCSPChecker(mtls.OCSPOptions{ResponderURL: r.srv.URL, FailOpen: failOpen, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			o.OCSP = c
		}, nil)
	}
	soon := time.Now().Add(time.Hour)

	t.Run("good, then cached", func(t *testing.T) {
		e := env(t, false)
		cert := e.trusted.issue(t, "app", x509.ExtKeyUsageClientAuth, soon)
		for i := range 4 {
			if body, err := e.get(&cert); err != nil || body != thumb(cert)+" verified" {
				t.Fatalf("handshake %d: %q, %v", i, body, err)
			}
		}
		if n := r.calls.Load(); n != 1 {
			t.Fatalf("responder called %d times for 4 handshakes, want 1", n)
		}
		self := (*testCA)(nil).issue(t, "phone", x509.ExtKeyUsageClientAuth, soon)
		if body, err := e.get(&self); err != nil || body != thumb(self)+" unverified" {
			t.Fatalf("self-signed (no issuer to ask): %q, %v", body, err)
		}
		if n := r.calls.Load(); n != 1 {
			t.Fatal("the responder was asked about a self-signed certificate")
		}
	})
	t.Run("revoked", func(t *testing.T) {
		e := env(t, false)
		r.set(statusAnswer(t, e.trusted, ocsp.Revoked))
		cert := e.trusted.issue(t, "app", x509.ExtKeyUsageClientAuth, soon)
		if body, err := e.get(&cert); err == nil {
			t.Fatalf("revoked certificate accepted: %q", body)
		}
		if body, err := e.get(nil); err != nil || body != " unverified" {
			t.Fatalf("no certificate, no OCSP: %q, %v", body, err)
		}
	})
	t.Run("responder down, fail closed", func(t *testing.T) {
		e := env(t, false)
		r.srv.Close()
		cert := e.trusted.issue(t, "app", x509.ExtKeyUsageClientAuth, soon)
		if body, err := e.get(&cert); err == nil {
			t.Fatalf("accepted without an OCSP answer: %q", body)
		}
	})
	t.Run("responder down, fail open", func(t *testing.T) {
		e := env(t, true)
		r.srv.Close()
		cert := e.trusted.issue(t, "app", x509.ExtKeyUsageClientAuth, soon)
		if body, err := e.get(&cert); err != nil || body != thumb(cert)+" verified" {
			t.Fatalf("fail open refused: %q, %v", body, err)
		}
	})
	t.Run("answer changes after nextUpdate only", func(t *testing.T) {
		e := env(t, false)
		cert := e.trusted.issue(t, "app", x509.ExtKeyUsageClientAuth, soon)
		if _, err := e.get(&cert); err != nil {
			t.Fatal(err)
		}
		r.set(statusAnswer(t, e.trusted, ocsp.Revoked))
		if _, err := e.get(&cert); err != nil {
			t.Fatal("the cached good answer (nextUpdate in an hour) was not used")
		}
	})
}

// BenchmarkOCSPCheckCached is the cost OCSP adds to a handshake whose
// certificate's answer is cached (no network call: the responder counts).
//
//	go test ./internal/mtls -run '^$' -bench OCSPCheckCached
func BenchmarkOCSPCheckCached(b *testing.B) {
	ca := newTestCA(b, "partner CA")
	leaf := ca.issue(b, "app", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour)).Leaf
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		req, _ := ocsp.ParseRequest(body)
		w.Write(statusAnswer(b, ca, ocsp.Good)(req))
	}))
	defer srv.Close()
	c, _ := mtls.NewOCSPChecker(mtls.OCSPOptions{ResponderURL: srv.URL})
	for b.Loop() {
		if err := c.Check(context.Background(), leaf, ca.cert); err != nil {
			b.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		b.Fatalf("responder called %d times", calls.Load())
	}
}
