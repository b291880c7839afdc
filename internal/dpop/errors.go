package dpop

import "errors"

// Reasons a proof is refused. Verify's refusals match ErrInvalidProof and
// exactly one of these (errors.Is); callers log the reason and answer
// every one the same way (error "invalid_dpop_proof", RFC 9449 §5 and
// §7.1).
var (
	ErrInvalidProof = errors.New("dpop: invalid proof")

	ErrMissingProof  = errors.New("no DPoP proof")                        // no DPoP header (VerifyRequest)
	ErrMalformed     = errors.New("not one compact JWS")                  // JWE, JSON serialization, bad base64 or JSON, too long, several DPoP headers
	ErrType          = errors.New("typ is not dpop+jwt")                  // RFC 9449 §4.2
	ErrAlgorithm     = errors.New("algorithm not allowed")                // none, HS*, or outside the allow-list
	ErrPrivateKey    = errors.New("jwk holds private key material")       // d, p, q, dp, dq, qi, k, oth, priv
	ErrKey           = errors.New("jwk missing or unusable with its alg") // no jwk, wrong curve or type, RSA size
	ErrSignature     = errors.New("bad signature")                        // does not verify under its own jwk
	ErrMissingClaim  = errors.New("required claim missing")               // jti, htm, htu, iat; ath with a token
	ErrMethod        = errors.New("htm does not match the request")       // RFC 9449 §4.3 step 8
	ErrURI           = errors.New("htu does not match the request")       // RFC 9449 §4.3 step 9
	ErrIssuedAt      = errors.New("iat outside the accepted window")      // too old or in the future
	ErrTokenHash     = errors.New("ath does not match the access token")  // RFC 9449 §4.3 step 12
	ErrReplayed      = errors.New("proof already used")                   // jti seen before, RFC 9449 §11.1
	errInvalidOption = errors.New("dpop: invalid options")
)

// ErrUseNonce refuses a proof that lacks a current server nonce (missing,
// stale, or not made by this server's key). It does NOT match
// ErrInvalidProof: the answer is error "use_dpop_nonce" together with a
// fresh nonce in the DPoP-Nonce header (RFC 9449 §8 and §9), and the
// client retries with a new proof.
var ErrUseNonce = errors.New("dpop: a current server nonce is required")

// ErrReplayCheck means the replay cache could not say whether a proof is
// new (it is full, or its backend failed). The proof is refused (fail
// closed); the fault is the server's, so the answer is 503, not an OAuth
// error. It does not match ErrInvalidProof.
var ErrReplayCheck = errors.New("dpop: replay check unavailable")

// ErrReplayCacheFull is MemoryReplayCache's refusal when it holds as many
// unexpired proofs as it may; it matches ErrReplayCheck.
var ErrReplayCacheFull = &replayFull{}

type replayFull struct{}

func (*replayFull) Error() string { return "dpop: replay cache full" }
func (*replayFull) Unwrap() error { return ErrReplayCheck }

// invalidProof is a refusal: it matches ErrInvalidProof and its reason.
type invalidProof struct{ reason error }

func (e *invalidProof) Error() string   { return ErrInvalidProof.Error() + ": " + e.reason.Error() }
func (e *invalidProof) Unwrap() []error { return []error{ErrInvalidProof, e.reason} }

func invalid(reason error) error { return &invalidProof{reason: reason} }

// OAuthError names the OAuth error code for an error of this package:
// "use_dpop_nonce" (RFC 9449 §8), "invalid_dpop_proof" (§5, §7.1), or
// "invalid_token" for a token whose binding is not satisfied (RFC 6750
// §3.1, RFC 8705 §3). It returns "" for any other error (ErrReplayCheck:
// answer 503).
func OAuthError(err error) string {
	switch {
	case errors.Is(err, ErrUseNonce):
		return "use_dpop_nonce"
	case errors.Is(err, ErrInvalidProof):
		return "invalid_dpop_proof"
	case errors.Is(err, ErrBinding):
		return "invalid_token"
	}
	return ""
}
