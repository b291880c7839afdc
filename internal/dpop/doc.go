// Package dpop verifies DPoP proofs (RFC 9449) and the sender constraint
// of bound access tokens: a token whose cnf names a DPoP key (jkt, RFC
// 9449 §6) or a client certificate (x5t#S256, RFC 8705 §3) is honoured
// only together with a proof signed by that key or over a connection
// presenting that certificate. A stolen bound token is useless to its
// thief.
//
// It owns the proof checks of RFC 9449 §4.3 ([Verifier.Verify]), the
// memory of proofs already used ([ReplayCache], [MemoryReplayCache]), the
// server nonces of §8 ([Nonces]) and the binding check ([CheckBinding]).
// Its core takes strings and a clock, never an *http.Request; request.go
// is the one thin adapter to net/http. It never mints tokens, never
// decides what a token grants, and never puts a proof, a token or a key
// in its errors: an error says why a proof was refused and nothing about
// what it held.
//
// # Wiring
//
// At the token endpoint (RFC 9449 §5), a request carrying a DPoP header
// gets a token bound to the proof's key:
//
//	proof, err := v.VerifyRequest(r, origin, "", now) // no access token yet
//	switch {
//	case errors.Is(err, dpop.ErrUseNonce):
//		w.Header().Set("DPoP-Nonce", nonces.Issue(now))
//		// 400 {"error":"use_dpop_nonce"}
//	case err != nil:
//		// 400 {"error":"invalid_dpop_proof"}
//	}
//	claims.JKT = proof.JKT // the token's cnf.jkt; token_type "DPoP"
//
// At the FHIR API (RFC 9449 §7), "Authorization: DPoP <token>" comes with
// a DPoP header whose ath is the token's hash; a bound token presented as
// "Authorization: Bearer" gets no proof and is refused by CheckBinding:
//
//	var pp *dpop.Proof
//	if strings.EqualFold(scheme, "DPoP") {
//		p, err := v.VerifyRequest(r, origin, token, now)
//		if errors.Is(err, dpop.ErrUseNonce) {
//			// 401, WWW-Authenticate: DPoP error="use_dpop_nonce"
//			// and DPoP-Nonce: nonces.Issue(now)
//		} else if err != nil {
//			// 401, WWW-Authenticate: DPoP error="invalid_dpop_proof"
//		}
//		pp = &p
//	}
//	cnf := dpop.Confirmation{JKT: principal.JKT, X5tS256: principal.CertThumbprint}
//	if err := dpop.CheckBinding(cnf, pp, mtls.PeerThumbprint(r.TLS)); err != nil {
//		// 401, WWW-Authenticate: DPoP error="invalid_token"
//	}
//
// origin is the server's public scheme://host[:port] from configuration,
// never the request's Host header: htu exists so that a proof made for
// one server cannot be spent at another.
package dpop
