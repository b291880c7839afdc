package mtls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
	"golang.org/x/sync/singleflight"
)

// Errors of OCSP checks. A revoked certificate is ErrCertRevoked, like a
// CRL entry.
var (
	// ErrOCSPUnknown: the responder answered "unknown" (RFC 6960 §2.2):
	// it does not know the certificate, which its CA therefore did not
	// issue as far as the responder is concerned. Refused under either
	// failure policy.
	ErrOCSPUnknown = errors.New("mtls: OCSP responder does not know the client certificate")
	// ErrOCSPUnavailable wraps every failure to get a good answer: no
	// responder, network, HTTP status, a response that does not parse,
	// is not signed by the issuer or its delegated responder, is stale or
	// is about another certificate.
	ErrOCSPUnavailable = errors.New("mtls: no valid OCSP answer for the client certificate")
)

// OCSPOptions configure an OCSPChecker.
type OCSPOptions struct {
	// ResponderURL, if set, is asked about every certificate; otherwise
	// the certificate's Authority Information Access (id-ad-ocsp).
	ResponderURL string
	// FailOpen lets a certificate through when no valid answer can be had
	// (responder down, bad or stale response). The default, fail closed,
	// refuses the handshake. "revoked" and "unknown" are refused either way.
	FailOpen bool
	// Timeout bounds one request to the responder (default 3 s): the
	// handshake waits for it.
	Timeout time.Duration
	// Client is the HTTP client (default: a fresh one with Timeout).
	Client *http.Client
	// MaxCached bounds the answer cache (default 10 000 certificates);
	// past it the cache starts over.
	MaxCached int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger hears of failures to get a good answer, once per distinct
	// failure; the line names the responder and the failure, never the
	// certificate's subject.
	Logger *slog.Logger
}

// OCSPChecker asks OCSP responders (RFC 6960) whether client certificates
// are revoked, and caches their answers until nextUpdate. It is safe for
// concurrent use.
type OCSPChecker struct {
	o OCSPOptions

	mu     sync.Mutex
	cache  map[string]ocspAnswer // issuer key hash + serial → answer
	logged map[string]bool       // failures already logged

	inflight singleflight.Group
}

type ocspAnswer struct {
	status int // ocsp.Good or ocsp.Revoked (Unknown is not cached)
	until  time.Time
}

// maxLoggedFailures bounds the set of failures already logged.
const maxLoggedFailures = 256

// maxOCSPResponse bounds a responder's answer.
const maxOCSPResponse = 64 << 10

// clockSkew is how far in the future thisUpdate may be.
const clockSkew = 5 * time.Minute

// NewOCSPChecker checks the options.
func NewOCSPChecker(o OCSPOptions) (*OCSPChecker, error) {
	if o.ResponderURL != "" {
		u, err := url.Parse(o.ResponderURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("mtls: OCSP responder URL %q is not an http(s) URL", o.ResponderURL)
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.MaxCached <= 0 {
		o.MaxCached = 10_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &OCSPChecker{o: o, cache: map[string]ocspAnswer{}, logged: map[string]bool{}}, nil
}

// Check asks about leaf, issued (and signed) by issuer: nil when the
// responder says good (or no valid answer could be had and the policy is
// fail open), ErrCertRevoked, ErrOCSPUnknown, or an error wrapping
// ErrOCSPUnavailable. A cached answer is used until its nextUpdate.
func (c *OCSPChecker) Check(ctx context.Context, leaf, issuer *x509.Certificate) error {
	now := c.o.Now()
	key := cacheKey(leaf, issuer)
	c.mu.Lock()
	a, ok := c.cache[key]
	c.mu.Unlock()
	if ok && now.Before(a.until) {
		return statusError(a.status)
	}
	// Handshakes that present the same certificate at once share one
	// request to the responder.
	v, err, _ := c.inflight.Do(key, func() (any, error) {
		resp, responder, err := c.ask(ctx, leaf, issuer, now)
		if err != nil {
			c.logFailure(responder, err)
			return nil, err
		}
		if resp.Status != ocsp.Unknown && !resp.NextUpdate.IsZero() {
			c.mu.Lock()
			if len(c.cache) >= c.o.MaxCached {
				clear(c.cache)
			}
			c.cache[key] = ocspAnswer{status: resp.Status, until: resp.NextUpdate}
			c.mu.Unlock()
		}
		return resp.Status, nil
	})
	if err != nil {
		if c.o.FailOpen {
			return nil
		}
		return err
	}
	if v.(int) == ocsp.Unknown {
		return ErrOCSPUnknown
	}
	return statusError(v.(int))
}

func statusError(status int) error {
	if status == ocsp.Revoked {
		return ErrCertRevoked
	}
	return nil
}

func cacheKey(leaf, issuer *x509.Certificate) string {
	h := sha256.Sum256(issuer.RawSubjectPublicKeyInfo)
	return string(h[:]) + leaf.SerialNumber.String()
}

// ask sends the request (RFC 6960 Appendix A.1, POST) and verifies the
// answer.
func (c *OCSPChecker) ask(ctx context.Context, leaf, issuer *x509.Certificate, now time.Time) (*ocsp.Response, string, error) {
	responder := c.o.ResponderURL
	if responder == "" {
		for _, u := range leaf.OCSPServer {
			if isHTTPURL(u) {
				responder = u
				break
			}
		}
	}
	if responder == "" {
		return nil, "", fmt.Errorf("%w: no responder configured or named by the certificate", ErrOCSPUnavailable)
	}
	req, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{})
	if err != nil {
		return nil, responder, fmt.Errorf("%w: %v", ErrOCSPUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, responder, bytes.NewReader(req))
	if err != nil {
		return nil, responder, fmt.Errorf("%w: %v", ErrOCSPUnavailable, err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	hresp, err := c.o.Client.Do(hreq)
	if err != nil {
		return nil, responder, fmt.Errorf("%w: responder unreachable", ErrOCSPUnavailable)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return nil, responder, fmt.Errorf("%w: responder answered HTTP %d", ErrOCSPUnavailable, hresp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxOCSPResponse+1))
	if err != nil || len(body) > maxOCSPResponse {
		return nil, responder, fmt.Errorf("%w: response unreadable or too large", ErrOCSPUnavailable)
	}
	resp, err := VerifyOCSPResponse(body, leaf, issuer, now)
	return resp, responder, err
}

// isHTTPURL reports whether u is an http(s) URL.
func isHTTPURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

// VerifyOCSPResponse parses an OCSP response about leaf and checks it
// (RFC 6960 §3.2): about leaf's serial; signed by issuer itself or by a
// delegated responder whose certificate issuer signed, with
// id-kp-OCSPSigning (§4.2.2.2) and currently valid; thisUpdate not in the
// future (beyond a few minutes of clock skew) and nextUpdate, when present,
// not past (§4.2.2.1). A response without nextUpdate is accepted when
// thisUpdate is under an hour old. Nonces are not used (RFC 5019 §2.1.1:
// responders may pre-produce answers). Every failure wraps
// ErrOCSPUnavailable.
func VerifyOCSPResponse(der []byte, leaf, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		var re ocsp.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%w: responder status %s", ErrOCSPUnavailable, re.Status)
		}
		return nil, fmt.Errorf("%w: %v", ErrOCSPUnavailable, err)
	}
	if resp.SerialNumber == nil || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return nil, fmt.Errorf("%w: response about another certificate", ErrOCSPUnavailable)
	}
	if d := resp.Certificate; d != nil && !d.Equal(issuer) {
		// ParseResponseForCert checked that issuer signed d and d signed
		// the response; a delegated responder also needs the purpose.
		ok := false
		for _, u := range d.ExtKeyUsage {
			ok = ok || u == x509.ExtKeyUsageOCSPSigning
		}
		if !ok {
			return nil, fmt.Errorf("%w: responder certificate lacks id-kp-OCSPSigning", ErrOCSPUnavailable)
		}
		if now.Before(d.NotBefore) || now.After(d.NotAfter) {
			return nil, fmt.Errorf("%w: responder certificate expired or not yet valid", ErrOCSPUnavailable)
		}
	}
	if resp.ThisUpdate.After(now.Add(clockSkew)) {
		return nil, fmt.Errorf("%w: response from the future", ErrOCSPUnavailable)
	}
	if resp.NextUpdate.IsZero() {
		if now.Sub(resp.ThisUpdate) > time.Hour {
			return nil, fmt.Errorf("%w: stale response", ErrOCSPUnavailable)
		}
	} else if now.After(resp.NextUpdate) {
		return nil, fmt.Errorf("%w: stale response", ErrOCSPUnavailable)
	}
	switch resp.Status {
	case ocsp.Good, ocsp.Revoked, ocsp.Unknown:
	default:
		return nil, fmt.Errorf("%w: unexpected status", ErrOCSPUnavailable)
	}
	return resp, nil
}

func (c *OCSPChecker) logFailure(responder string, err error) {
	if c.o.Logger == nil {
		return
	}
	k := responder + "\x00" + err.Error()
	c.mu.Lock()
	seen := c.logged[k]
	if !seen {
		if len(c.logged) >= maxLoggedFailures {
			clear(c.logged)
		}
		c.logged[k] = true
	}
	c.mu.Unlock()
	if seen {
		return
	}
	policy := "refused (fail closed)"
	if c.o.FailOpen {
		policy = "let through (fail open)"
	}
	c.o.Logger.Warn("OCSP check failed; client certificates "+policy, "responder", redactURL(responder), "error", err.Error())
}

// redactURL drops a URL's user info and query.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
