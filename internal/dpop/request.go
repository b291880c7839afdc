package dpop

import (
	"net/http"
	"strings"
	"time"
)

// ProofHeader returns the DPoP header of r ("" when there is none). More
// than one DPoP header field is refused (RFC 9449 §4.3 step 1).
func ProofHeader(r *http.Request) (string, error) {
	vs := r.Header.Values("DPoP")
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", invalid(ErrMalformed)
}

// VerifyRequest verifies the DPoP proof of r with Verify: htm is
// r.Method and htu is origin followed by the request's path. origin is the
// server's public "scheme://host[:port]" as configured, never taken from
// the request (its Host header is the client's to choose, and htu exists
// so that a proof made for one server cannot be spent at another).
// accessToken is the
// token of "Authorization: DPoP", or "" at the token endpoint. A request
// without a DPoP header fails with ErrMissingProof. r's context goes to
// the replay cache.
func (v *Verifier) VerifyRequest(r *http.Request, origin, accessToken string, now time.Time) (Proof, error) {
	proof, err := ProofHeader(r)
	if err != nil {
		return Proof{}, err
	}
	if proof == "" {
		return Proof{}, invalid(ErrMissingProof)
	}
	uri := strings.TrimSuffix(origin, "/") + r.URL.EscapedPath()
	return v.VerifyContext(r.Context(), proof, r.Method, uri, accessToken, now)
}
