package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
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

// The RFC 7239 Forwarded header from trusted proxies is walked right to
// left like X-Forwarded-For: quoted IPv6 with ports, IPv4 with ports;
// obfuscated or unknown nodes and malformed values stop the walk; zones
// are dropped; a peer that is not trusted gets no say.
func TestClientAddrForwarded(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	many := strings.Repeat("for=6.6.6.6, ", 500) + "for=198.51.100.1"
	cases := []struct {
		name, remote string
		fwd          []string
		want         string
	}{
		{"untrusted peer ignored", "203.0.113.9:4000", []string{"for=198.51.100.1"}, "203.0.113.9:4000"},
		{"trusted proxy names the client", "10.1.1.1:4000", []string{"for=198.51.100.1;proto=https"}, "198.51.100.1:0"},
		{"quoted IPv6 with port", "10.1.1.1:4000", []string{`for="[2001:db8:cafe::17]:4711"`}, "[2001:db8:cafe::17]:0"},
		{"IPv4 with port", "10.1.1.1:4000", []string{`for="192.0.2.43:47011"`}, "192.0.2.43:0"},
		{"case of the parameter name", "10.1.1.1:4000", []string{"For=198.51.100.1"}, "198.51.100.1:0"},
		{"client claims left of the real hop ignored", "10.1.1.1:4000", []string{"for=6.6.6.6, for=198.51.100.1"}, "198.51.100.1:0"},
		{"trusted chain skipped across header lines", "10.1.1.1:4000", []string{"for=198.51.100.1, for=10.2.2.2", "for=10.3.3.3"}, "198.51.100.1:0"},
		{"untrusted hop in the middle stops the walk", "10.1.1.1:4000", []string{"for=10.9.9.9, for=203.0.113.5, for=10.2.2.2"}, "203.0.113.5:0"},
		{"obfuscated node stops at the last trusted hop", "10.1.1.1:4000", []string{"for=198.51.100.1, for=_hidden, for=10.2.2.2"}, "10.2.2.2:0"},
		{"unknown node keeps the peer", "10.1.1.1:4000", []string{"for=unknown"}, "10.1.1.1:4000"},
		{"element without for keeps the peer", "10.1.1.1:4000", []string{"by=10.1.1.1;proto=https"}, "10.1.1.1:4000"},
		{"unterminated bracket", "10.1.1.1:4000", []string{`for="[2001:db8::1"`}, "10.1.1.1:4000"},
		{"garbage", "10.1.1.1:4000", []string{"for=<script>;;;==,,"}, "10.1.1.1:4000"},
		{"IPv6 zone dropped", "10.1.1.1:4000", []string{`for="[fe80::1%eth0]"`}, "[fe80::1]:0"},
		{"many values: the rightmost untrusted one", "10.1.1.1:4000", []string{many}, "198.51.100.1:0"},
		{"trusted proxy that sends nothing", "10.1.1.1:4000", nil, "10.1.1.1:4000"},
	}
	for _, c := range cases {
		if got := clientAddr(c.remote, forwardedFor(c.fwd), trusted); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// Through the wrapper, Forwarded wins over X-Forwarded-For from a
// trusted proxy (it is the standard one), and from an untrusted peer
// neither is believed.
func TestForwardedThroughWrap(t *testing.T) {
	s := New(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, InsecureAllowHTTP: true})
	var peer string
	h := s.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { peer = r.RemoteAddr }))
	for _, c := range []struct{ remote, want string }{
		{"10.1.1.1:4000", "198.51.100.1:0"},
		{"203.0.113.9:4000", "203.0.113.9:4000"},
	} {
		r := httptest.NewRequest("GET", "http://w.example/", nil)
		r.RemoteAddr = c.remote
		r.Header.Set("Forwarded", `for="198.51.100.1:1234"`)
		r.Header.Set("X-Forwarded-For", "192.0.2.77")
		h.ServeHTTP(httptest.NewRecorder(), r)
		if peer != c.want {
			t.Errorf("peer %s: %q, want %q", c.remote, peer, c.want)
		}
	}
}

// FuzzForwardedFor: any Forwarded value yields one hop per element,
// each either "unknown" or an address, and clientAddr on it is the peer
// or an address — never a value the header chose verbatim otherwise.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"for=198.51.100.1", `for="[2001:db8::1]:80"`, "for=_x, for=unknown", `for="[`, ";;,=", "for=\"\""} {
		f.Add(s)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, v string) {
		hops := forwardedFor([]string{v})
		if len(hops) != strings.Count(v, ",")+1 {
			t.Fatalf("%d hops for %d elements", len(hops), strings.Count(v, ",")+1)
		}
		for _, h := range hops {
			if _, err := netip.ParseAddr(h); h != "unknown" && err != nil {
				t.Fatalf("hop %q is neither unknown nor an address", h)
			}
		}
		got := clientAddr("10.1.1.1:4000", hops, trusted)
		if _, err := netip.ParseAddrPort(got); err != nil {
			t.Fatalf("client %q is not an address", got)
		}
	})
}
