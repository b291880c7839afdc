package dpop

import (
	"bytes"
	"crypto/elliptic"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func newNonces(t testing.TB, key byte) *Nonces {
	t.Helper()
	n, err := NewNonces(bytes.Repeat([]byte{key}, 32), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNonceRefuses lists the ways around a required server nonce (RFC
// 9449 §8); each is ErrUseNonce, which is not ErrInvalidProof.
func TestNonceRefuses(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	ours, theirs := newNonces(t, 1), newNonces(t, 2)
	current := ours.Issue(testNow)
	for _, c := range []struct {
		name  string
		nonce any // nil: no nonce claim
	}{
		{"no nonce", nil},
		{"empty nonce", ""},
		{"stale nonce (two steps old)", ours.Issue(testNow.Add(-2 * time.Minute))},
		{"nonce from the future", ours.Issue(testNow.Add(time.Minute))},
		{"nonce made with another key", theirs.Issue(testNow)},
		{"truncated nonce", current[:len(current)-1]},
		{"nonce with a flipped MAC byte", current[:20] + flip(current[20]) + current[21:]},
		{"nonce with a changed step", ours.Issue(testNow.Add(-time.Minute))[:11] + current[11:]},
		{"nonce padded", current + "="},
		{"nonce not a string", 42},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(t, Options{Nonces: ours})
			proof := sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"nonce": c.nonce}})
			_, err := v.Verify(proof, testMethod, testURI, testToken, testNow)
			if c.name == "nonce not a string" {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Verify = %v, want ErrMalformed", err)
				}
				return
			}
			if !errors.Is(err, ErrUseNonce) || errors.Is(err, ErrInvalidProof) {
				t.Fatalf("Verify = %v, want ErrUseNonce only", err)
			}
			if OAuthError(err) != "use_dpop_nonce" {
				t.Errorf("OAuthError = %q", OAuthError(err))
			}
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestNonceAccepts: the current nonce and the previous step's.
func TestNonceAccepts(t *testing.T) {
	ec := newEC(t, elliptic.P256())
	ours := newNonces(t, 1)
	v := newVerifier(t, Options{Nonces: ours})
	for _, issued := range []time.Time{testNow, testNow.Add(-time.Minute)} {
		proof := sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"nonce": ours.Issue(issued)}})
		if _, err := v.Verify(proof, testMethod, testURI, testToken, testNow); err != nil {
			t.Errorf("nonce issued at now%+v: %v", issued.Sub(testNow), err)
		}
	}
	// Without Nonces, a nonce claim is ignored.
	proof := sign(t, spec{alg: jose.ES256, key: ec, claims: map[string]any{"nonce": "anything"}})
	if _, err := newVerifier(t, Options{}).Verify(proof, testMethod, testURI, testToken, testNow); err != nil {
		t.Errorf("nonce without Nonces: %v", err)
	}
}

// TestNonces checks the nonce format and NewNonces' refusals.
func TestNonces(t *testing.T) {
	n := newNonces(t, 1)
	a, b := n.Issue(testNow), n.Issue(testNow.Add(59*time.Second))
	if a != b {
		t.Errorf("one step, two nonces: %q %q", a, b)
	}
	if c := n.Issue(testNow.Add(time.Minute)); c == a {
		t.Errorf("the nonce did not rotate")
	}
	if strings.ContainsAny(a, "+/=") || len(a) != strictBase64.EncodedLen(nonceLen) {
		t.Errorf("nonce %q is not unpadded base64url of %d bytes", a, nonceLen)
	}
	if !n.Valid(a, testNow.Add(time.Minute)) || n.Valid(a, testNow.Add(2*time.Minute)) {
		t.Errorf("nonce valid for other than its step and the next")
	}
	key := bytes.Repeat([]byte{7}, 32)
	n2, err := NewNonces(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	nonce := n2.Issue(testNow)
	key[0] = 8 // the caller's slice is copied
	if !n2.Valid(nonce, testNow) {
		t.Errorf("changing the caller's key slice changed Nonces")
	}
	for _, c := range []struct {
		key  []byte
		step time.Duration
	}{
		{make([]byte, 31), time.Minute},
		{nil, time.Minute},
		{make([]byte, 32), -time.Minute},
		{make([]byte, 32), time.Millisecond},
	} {
		if _, err := NewNonces(c.key, c.step); err == nil {
			t.Errorf("NewNonces(%d-byte key, %v) accepted", len(c.key), c.step)
		}
	}
}
