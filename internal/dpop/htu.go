package dpop

import (
	"net/url"
	"strings"
)

// sameURI reports whether a proof's htu names the request's target URI
// (RFC 9449 §4.3 step 9): the request's URI without its query and
// fragment, and an htu that has neither (RFC 9449 §4.2 defines htu
// "without query and fragment parts"; one that carries them is refused),
// compared after
// the syntax- and scheme-based normalisation of RFC 3986 §6.2.2 and
// §6.2.3: scheme and host case, the default port (80 for http, 443 for
// https) dropped, an empty path as "/", percent-encodings of unreserved
// characters decoded and the others' hex in upper case. Dot segments are
// not resolved: a proof naming "/a/../b" does not match "/b", which fails
// closed. Only absolute http and https URIs with a host and no userinfo
// match anything.
func sameURI(htu, uri string) bool {
	if strings.ContainsAny(htu, "?#") {
		return false
	}
	a, ok := normalURI(htu)
	if !ok {
		return false
	}
	b, ok := normalURI(uri)
	return ok && a == b
}

// normalURI returns the normal form sameURI compares, and false for a URI
// that can match nothing.
func normalURI(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case scheme != "https" && scheme != "http":
		return "", false
	}
	host = strings.TrimSuffix(host, ":") // an empty port is the default (RFC 3986 §6.2.3)
	path, ok := normalPath(u.EscapedPath())
	if !ok {
		return "", false
	}
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}

// normalPath applies RFC 3986 §6.2.2.1 and §6.2.2.2 to an escaped path:
// %XX of an unreserved character becomes the character; other %XX keep
// upper-case hex. A malformed escape matches nothing.
func normalPath(p string) (string, bool) {
	if !strings.Contains(p, "%") {
		return p, true
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", false
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	return b.String(), true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isUnreserved reports RFC 3986 §2.3 unreserved characters.
func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
