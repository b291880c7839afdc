package pki

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Errors of names and subject alternative names.
var (
	ErrBadName     = errors.New("pki: a certificate name must be 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit")
	ErrBadDNSName  = errors.New("pki: not a valid DNS name")
	ErrBadSPIFFEID = errors.New("pki: not a valid SPIFFE ID")
	ErrBadURI      = errors.New("pki: not a valid URI for a certificate")
	ErrBadIP       = errors.New("pki: not a usable IP address")
)

// checkName accepts a certificate's NAME: its common name and the stem of
// its file names, so nothing that could leave the output directory.
func checkName(name string) error {
	if len(name) == 0 || len(name) > 64 || name == "." || name == ".." {
		return ErrBadName
	}
	for i, c := range name {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			i > 0 && (c == '.' || c == '-' || c == '_')
		if !ok {
			return ErrBadName
		}
	}
	return nil
}

// CheckDNSName accepts a host name for a certificate's dNSName (RFC 5280
// §4.2.1.6, the preferred name syntax of RFC 1034 §3.5 as relaxed by RFC
// 1123 §2.1): ASCII letters, digits and hyphens in labels of 1 to 63
// characters, not starting or ending with a hyphen, at most 253 in all,
// no trailing dot; internationalised names in their A-label (xn--) form.
// When wildcard is true a leftmost "*" label is allowed if at least two
// labels follow it. An IP address written as a name is refused: use an IP
// SAN.
func CheckDNSName(name string, wildcard bool) error {
	if len(name) == 0 || len(name) > 253 {
		return ErrBadDNSName
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("%w: %q is an IP address", ErrBadDNSName, name)
	}
	labels := strings.Split(name, ".")
	if labels[0] == "*" {
		if !wildcard || len(labels) < 3 {
			return fmt.Errorf("%w: wildcard not allowed here", ErrBadDNSName)
		}
		labels = labels[1:]
	}
	allDigits := true
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return ErrBadDNSName
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			switch {
			case '0' <= c && c <= '9':
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-':
				allDigits = false
			default:
				return ErrBadDNSName
			}
		}
	}
	if allDigits {
		return ErrBadDNSName
	}
	return nil
}

// SPIFFEID is a parsed SPIFFE ID (SPIFFE-ID standard §2):
// spiffe://TRUST-DOMAIN/PATH.
type SPIFFEID struct {
	TrustDomain string
	Path        string // "" or "/seg/seg"
}

// String is the ID's URI.
func (id SPIFFEID) String() string { return "spiffe://" + id.TrustDomain + id.Path }

// ParseSPIFFEID parses s as a SPIFFE ID by the SPIFFE-ID standard §2:
// the scheme "spiffe" in lowercase; a trust domain of lowercase letters,
// digits, '.', '-' and '_' (§2.1), no port or user info; a path of
// segments of letters, digits, '.', '-' and '_', none empty, "." or ".."
// and no trailing slash (§2.2); no query or fragment; at most 2048 bytes.
func ParseSPIFFEID(s string) (SPIFFEID, error) {
	const scheme = "spiffe://"
	if len(s) > 2048 || !strings.HasPrefix(s, scheme) {
		return SPIFFEID{}, ErrBadSPIFFEID
	}
	rest := s[len(scheme):]
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || len(td) > 255 {
		return SPIFFEID{}, fmt.Errorf("%w: empty or long trust domain", ErrBadSPIFFEID)
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return SPIFFEID{}, fmt.Errorf("%w: trust domain character %q", ErrBadSPIFFEID, c)
		}
	}
	id := SPIFFEID{TrustDomain: td}
	if !strings.Contains(rest, "/") {
		return id, nil
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return SPIFFEID{}, fmt.Errorf("%w: empty, '.' or '..' path segment", ErrBadSPIFFEID)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
				return SPIFFEID{}, fmt.Errorf("%w: path character %q", ErrBadSPIFFEID, c)
			}
		}
	}
	id.Path = "/" + path
	return id, nil
}

// checkURI accepts a uniformResourceIdentifier SAN (RFC 5280 §4.2.1.6:
// an absolute URI, RFC 3986 §4.3): SPIFFE IDs by ParseSPIFFEID, others
// with a lowercase scheme, printable ASCII only, no fragment, and a host
// when they have an authority.
func checkURI(s string) (*url.URL, error) {
	if strings.HasPrefix(strings.ToLower(s), "spiffe:") {
		if _, err := ParseSPIFFEID(s); err != nil {
			return nil, err
		}
		return url.Parse(s)
	}
	if len(s) == 0 || len(s) > 2048 {
		return nil, ErrBadURI
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return nil, ErrBadURI
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Scheme != strings.ToLower(u.Scheme) || u.Fragment != "" || strings.Contains(s, "#") {
		return nil, ErrBadURI
	}
	if u.Opaque == "" && strings.HasPrefix(s[len(u.Scheme)+1:], "//") && u.Host == "" {
		return nil, ErrBadURI
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: user information", ErrBadURI)
	}
	return u, nil
}
