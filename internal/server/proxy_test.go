package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// X-Forwarded-For is believed only from a trusted proxy, and only up to
// the first hop that is not one: a client cannot choose its own address.
func TestClientAddrTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"untrusted peer's header ignored", "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9:4000"},
		{"trusted proxy names the client", "10.1.1.1:4000", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"client-supplied hops left of the real one ignored", "10.1.1.1:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1:0"},
		{"chain of trusted proxies skipped", "10.1.1.1:4000", []string{"198.51.100.1, 10.2.2.2", "10.3.3.3"}, "198.51.100.1:0"},
		{"spoofed trusted address left of the client ignored", "10.1.1.1:4000", []string{"10.9.9.9, 198.51.100.1"}, "198.51.100.1:0"},
		{"garbage stops at the last trusted hop", "10.1.1.1:4000", []string{"198.51.100.1, not-an-ip, 10.2.2.2"}, "10.2.2.2:0"},
		{"garbage right away keeps the peer", "10.1.1.1:4000", []string{"<script>"}, "10.1.1.1:4000"},
		{"no header keeps the peer", "10.1.1.1:4000", nil, "10.1.1.1:4000"},
		{"IPv6 proxy and client", "[fd00::1]:4000", []string{"2001:db8::7"}, "[2001:db8::7]:0"},
		{"IPv4-mapped peer", "[::ffff:10.1.1.1]:4000", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"unparsable remote", "pipe", []string{"198.51.100.1"}, "pipe"},
	}
	for _, c := range cases {
		if got := clientAddr(c.remote, c.xff, trusted); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Forwarding headers from a peer that is not a trusted proxy are
// ignored and marked (ForwardedSpoofed), through the listener's wrapper;
// a trusted proxy's are not marked, and a request without them neither.
func TestForwardedSpoofed(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	s := New(Options{TrustedProxies: trusted, InsecureAllowHTTP: true})
	var spoofed bool
	var peer string
	h := s.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spoofed, peer = ForwardedSpoofed(r.Context()), r.RemoteAddr
	}))
	for _, c := range []struct {
		name, remote, header, value string
		spoofed                     bool
		peer                        string
	}{
		{"X-Forwarded-For from an outsider", "203.0.113.9:4000", "X-Forwarded-For", "10.1.1.1", true, "203.0.113.9:4000"},
		{"Forwarded from an outsider", "203.0.113.9:4000", "Forwarded", "for=198.51.100.1", true, "203.0.113.9:4000"},
		{"X-Real-IP from an outsider", "203.0.113.9:4000", "X-Real-IP", "198.51.100.1", true, "203.0.113.9:4000"},
		{"unparsable peer", "pipe", "X-Forwarded-For", "198.51.100.1", true, "pipe"},
		{"trusted proxy", "10.1.1.1:4000", "X-Forwarded-For", "198.51.100.1", false, "198.51.100.1:0"},
		{"no header", "203.0.113.9:4000", "", "", false, "203.0.113.9:4000"},
	} {
		r := httptest.NewRequest("GET", "http://w.example/", nil)
		r.RemoteAddr = c.remote
		if c.header != "" {
			r.Header.Set(c.header, c.value)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if spoofed != c.spoofed || peer != c.peer {
			t.Errorf("%s: spoofed %v, peer %q; want %v, %q", c.name, spoofed, peer, c.spoofed, c.peer)
		}
	}
}
