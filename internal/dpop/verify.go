package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Defaults for Options.
const (
	DefaultWindow        = 60 * time.Second
	DefaultReplayEntries = 1 << 20
)

// maxProofLen bounds the proofs Verify reads. An RS256 proof with a
// 4096-bit jwk is under 2 KiB.
const maxProofLen = 8 << 10

// RSA key sizes accepted in a jwk: smaller keys are weak, larger ones make
// every verification slow for the server.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// typ is the JWS typ of a DPoP proof (RFC 9449 §4.2).
const typ = "dpop+jwt"

// allowedAlgorithms is the most Options.Algorithms may name: asymmetric
// algorithms only (RFC 9449 §4.3 step 5), so neither none nor an HMAC
// keyed with a public key can pass.
var allowedAlgorithms = []string{
	string(jose.ES256), string(jose.ES384), string(jose.EdDSA), string(jose.PS256), string(jose.RS256),
}

// strictBase64 is base64url without padding: no trailing bits set, so
// that one proof has exactly one encoding.
var strictBase64 = base64.RawURLEncoding.Strict()

// Options configure New.
type Options struct {
	// Algorithms is the allow-list of proof algorithms (default: ES256,
	// ES384, EdDSA, PS256, RS256; it may name only these).
	Algorithms []string
	// Window is how far a proof's iat may be from now, either way
	// (default 60 s). A proof is remembered for as long as it could be
	// accepted: until iat + Window.
	Window time.Duration
	// Replays remembers the proofs already accepted. Default: a
	// MemoryReplayCache of DefaultReplayEntries, right for one process;
	// several replicas share one backed by the shared store.
	Replays ReplayCache
	// Nonces, when set, makes a current server nonce mandatory in every
	// proof (RFC 9449 §8); a proof without one fails with ErrUseNonce.
	Nonces *Nonces
}

// Verifier checks DPoP proofs. It is safe for concurrent use.
type Verifier struct {
	algs    []jose.SignatureAlgorithm
	window  time.Duration
	replays ReplayCache
	nonces  *Nonces
}

// New returns a Verifier for o.
func New(o Options) (*Verifier, error) {
	if o.Window < 0 {
		return nil, fmt.Errorf("%w: negative Window", errInvalidOption)
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = allowedAlgorithms
	}
	v := &Verifier{window: o.Window, replays: o.Replays, nonces: o.Nonces}
	for _, a := range o.Algorithms {
		if !slices.Contains(allowedAlgorithms, a) {
			return nil, fmt.Errorf("%w: algorithm %q is not one of %s", errInvalidOption, a, strings.Join(allowedAlgorithms, ", "))
		}
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	if v.replays == nil {
		v.replays = NewMemoryReplayCache(DefaultReplayEntries)
	}
	return v, nil
}

// Proof is what a verified DPoP proof establishes.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's public key,
	// base64url: the value of a bound token's cnf.jkt (RFC 9449 §6.1).
	JKT string
	// JTI is the proof's unique identifier.
	JTI string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// Algorithm is the proof's alg ("ES256", ...).
	Algorithm string
}

// header is the JOSE header of a proof as Verify reads it before go-jose
// does: to name the reason of a refusal.
type header struct {
	Alg string     `json:"alg"`
	Typ string     `json:"typ"`
	JWK *headerJWK `json:"jwk"`
}

// headerJWK holds the members of a jwk that carry private or symmetric
// key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2; "priv" of
// ML-DSA keys): any of them present refuses the proof.
type headerJWK struct {
	D    *josejson.RawMessage `json:"d"`
	P    *josejson.RawMessage `json:"p"`
	Q    *josejson.RawMessage `json:"q"`
	DP   *josejson.RawMessage `json:"dp"`
	DQ   *josejson.RawMessage `json:"dq"`
	QI   *josejson.RawMessage `json:"qi"`
	Oth  *josejson.RawMessage `json:"oth"`
	K    *josejson.RawMessage `json:"k"`
	Priv *josejson.RawMessage `json:"priv"`
}

func (k *headerJWK) private() bool {
	return k.D != nil || k.P != nil || k.Q != nil || k.DP != nil || k.DQ != nil || k.QI != nil ||
		k.Oth != nil || k.K != nil || k.Priv != nil
}

// claims is the payload of a proof (RFC 9449 §4.2).
type claims struct {
	JTI   string           `json:"jti"`
	HTM   string           `json:"htm"`
	HTU   string           `json:"htu"`
	IAT   *jwt.NumericDate `json:"iat"`
	ATH   string           `json:"ath"`
	Nonce string           `json:"nonce"`
}

// Verify checks the DPoP proof sent with a request whose method is method
// and whose target URI is uri, as RFC 9449 §4.3 lists: the proof is one
// JWS in compact serialization (step 2); typ is dpop+jwt (step 4); alg is
// in the allow-list, never none or an HMAC (step 5); the jwk header is a
// public key (step 7), of the type and size alg needs, and the signature
// verifies under it (step 6); jti, htm, htu and iat are present (step 3);
// htm equals method (step 8); htu, which has no query or fragment,
// equals uri without its query and fragment, after RFC 3986 §6.2.2–6.2.3
// normalisation (step 9); the nonce, when
// Options.Nonces is set, is current (step 10, else ErrUseNonce); iat is
// within Window of now either way (step 11); with an access token (at the
// resource server; "" at the token endpoint), ath is the base64url
// SHA-256 of it (step 12; at the token endpoint an ath is ignored); and
// the proof was not accepted before (§11.1).
//
// A proof is remembered by its key's thumbprint and its jti until iat +
// Window, after which its iat alone refuses it: a replay is refused
// for as long as the proof could be accepted at all. Once that has
// passed (plus up to 16 s of MemoryReplayCache's bucketing), a new proof
// from the same key, with a fresh iat and signature, may reuse the jti;
// nobody but the key's holder can make one. Only a proof that passed
// every other check is remembered, so refused proofs cost no memory.
//
// Refusals match ErrInvalidProof and one reason, except ErrUseNonce and
// ErrReplayCheck (see their docs). Verify uses context.Background for the
// replay cache; VerifyContext takes a context.
func (v *Verifier) Verify(proof, method, uri, accessToken string, now time.Time) (Proof, error) {
	return v.VerifyContext(context.Background(), proof, method, uri, accessToken, now)
}

// VerifyContext is Verify with a context for the replay cache.
func (v *Verifier) VerifyContext(ctx context.Context, proof, method, uri, accessToken string, now time.Time) (Proof, error) {
	if len(proof) == 0 || len(proof) > maxProofLen {
		return Proof{}, invalid(ErrMalformed)
	}
	h, err := readHeader(proof)
	if err != nil {
		return Proof{}, err
	}
	// RFC 7515 §4.1.9: media types compare without regard to case.
	if !strings.EqualFold(h.Typ, typ) && !strings.EqualFold(h.Typ, "application/"+typ) {
		return Proof{}, invalid(ErrType)
	}
	alg := jose.SignatureAlgorithm(h.Alg)
	if !slices.Contains(v.algs, alg) {
		return Proof{}, invalid(ErrAlgorithm)
	}
	if h.JWK == nil {
		return Proof{}, invalid(ErrKey)
	}
	if h.JWK.private() {
		return Proof{}, invalid(ErrPrivateKey)
	}
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{alg})
	if err != nil || len(jws.Signatures) != 1 {
		return Proof{}, invalid(ErrKey)
	}
	jwk := jws.Signatures[0].Protected.JSONWebKey
	if jwk == nil || !jwk.IsPublic() || !keyFits(alg, jwk.Key) {
		return Proof{}, invalid(ErrKey)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return Proof{}, invalid(ErrSignature)
	}
	var c claims
	if err := josejson.Unmarshal(payload, &c); err != nil {
		return Proof{}, invalid(ErrMalformed)
	}
	if c.JTI == "" || c.HTM == "" || c.HTU == "" || c.IAT == nil || (accessToken != "" && c.ATH == "") {
		return Proof{}, invalid(ErrMissingClaim)
	}
	if c.HTM != method {
		return Proof{}, invalid(ErrMethod)
	}
	if !sameURI(c.HTU, uri) {
		return Proof{}, invalid(ErrURI)
	}
	if v.nonces != nil && !v.nonces.Valid(c.Nonce, now) {
		return Proof{}, ErrUseNonce
	}
	iat := c.IAT.Time()
	if iat.Before(now.Add(-v.window)) || iat.After(now.Add(v.window)) {
		return Proof{}, invalid(ErrIssuedAt)
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(want)) != 1 {
			return Proof{}, invalid(ErrTokenHash)
		}
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return Proof{}, invalid(ErrKey)
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	if err := v.replays.Remember(ctx, replayID(jkt, c.JTI), iat.Add(v.window), now); err != nil {
		if errors.Is(err, ErrReplayed) {
			return Proof{}, invalid(ErrReplayed)
		}
		return Proof{}, fmt.Errorf("%w: %w", ErrReplayCheck, err)
	}
	return Proof{JKT: jkt, JTI: c.JTI, IssuedAt: iat, Algorithm: h.Alg}, nil
}

// readHeader checks that proof is one compact JWS (RFC 7515 §7.1: only the
// base64url alphabet and two dots, strict base64url, no JWE, no JSON
// serialization) and decodes its header.
func readHeader(proof string) (header, error) {
	dots := 0
	for i := 0; i < len(proof); i++ {
		switch c := proof[i]; {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return header{}, invalid(ErrMalformed)
		}
	}
	if dots != 2 {
		return header{}, invalid(ErrMalformed)
	}
	h64, rest, _ := strings.Cut(proof, ".")
	p64, sig64, _ := strings.Cut(rest, ".")
	hdr, err := strictBase64.DecodeString(h64)
	if err != nil {
		return header{}, invalid(ErrMalformed)
	}
	if !isStrictBase64(p64) || !isStrictBase64(sig64) {
		return header{}, invalid(ErrMalformed)
	}
	var h header
	if err := josejson.Unmarshal(hdr, &h); err != nil {
		return header{}, invalid(ErrMalformed)
	}
	return h, nil
}

// isStrictBase64 reports whether s, already known to hold only base64url
// characters, is canonical unpadded base64url (RFC 4648 §5, §3.5): its
// length is not 1 mod 4 and the unused low bits of its last character
// are zero. It decodes nothing.
func isStrictBase64(s string) bool {
	switch len(s) % 4 {
	case 1:
		return false
	case 2:
		return b64value(s[len(s)-1])&0x0f == 0
	case 3:
		return b64value(s[len(s)-1])&0x03 == 0
	}
	return true
}

// b64value is the 6-bit value of a base64url character.
func b64value(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	}
	return 63 // '_'
}

// keyFits reports whether key is the kind alg signs with (RFC 7518 §3):
// P-256 for ES256, P-384 for ES384, Ed25519 for EdDSA, RSA of 2048 to
// 4096 bits for RS256 and PS256.
func keyFits(alg jose.SignatureAlgorithm, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return (alg == jose.ES256 && k.Curve == elliptic.P256()) || (alg == jose.ES384 && k.Curve == elliptic.P384())
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(k) == ed25519.PublicKeySize
	case *rsa.PublicKey:
		n := k.N.BitLen()
		return (alg == jose.RS256 || alg == jose.PS256) && n >= minRSABits && n <= maxRSABits
	}
	return false
}

// replayID names a proof in the replay cache: its key's thumbprint and its
// jti, so that one client's jti cannot collide with another's.
func replayID(jkt, jti string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

// Nonce is a fresh server nonce for a DPoP-Nonce header (RFC 9449 §8),
// or "" when v does not require nonces.
func (v *Verifier) Nonce(now time.Time) string {
	if v.nonces == nil {
		return ""
	}
	return v.nonces.Issue(now)
}

// Algorithms are the proof algorithms v accepts, for the DPoP challenge's
// algs parameter (RFC 9449 §7.1).
func (v *Verifier) Algorithms() []string {
	out := make([]string, len(v.algs))
	for i, a := range v.algs {
		out[i] = string(a)
	}
	return out
}
