package web_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wardenfhir/warden/internal/web"
)

// interaction is the kind of state the authorization server seals.
type interaction struct {
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	UserID   string   `json:"user_id,omitempty"`
}

func newSealed(t testing.TB, key []byte, purpose string) *web.Sealed {
	t.Helper()
	s, err := web.NewSealed(key, purpose)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealedRoundTrip(t *testing.T) {
	s := newSealed(t, testKey, "authorize")
	in := interaction{ClientID: "growth-chart", Scopes: []string{"launch/patient", "patient/*.rs"}, UserID: "u1"}
	v, err := s.Seal(in, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "growth") || strings.ContainsAny(v, "=+/;, ") {
		t.Errorf("sealed value %q leaks or is not cookie-safe", v)
	}
	var out interaction
	if err := s.Open(v, &out); err != nil {
		t.Fatal(err)
	}
	if out.ClientID != in.ClientID || out.UserID != in.UserID || len(out.Scopes) != 2 {
		t.Errorf("Open = %+v", out)
	}
	if v2, _ := s.Seal(in, time.Minute); v2 == v {
		t.Error("two seals of one value are equal: nonce reuse")
	}
}

func TestSealedRefuses(t *testing.T) {
	now := time.Now()
	s := newSealed(t, testKey, "authorize")
	s.SetNow(func() time.Time { return now })
	good, err := s.Seal(interaction{ClientID: "app"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	reenc := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	flipped := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return reenc(b)
	}
	otherPurpose, _ := newSealed(t, testKey, "login").Seal(interaction{ClientID: "app"}, 10*time.Minute)
	otherKey, _ := newSealed(t, bytes.Repeat([]byte{7}, 32), "authorize").Seal(interaction{ClientID: "app"}, 10*time.Minute)
	wrongShape, _ := s.Seal(map[string]any{"client_id": "app", "admin": true}, 10*time.Minute)
	notObject, _ := s.Seal([]int{1, 2}, 10*time.Minute)
	for _, tc := range []struct {
		name, value string
		want        error
	}{
		{"empty", "", web.ErrSealedInvalid},
		{"not base64", strings.Repeat("!", len(good)), web.ErrSealedInvalid},
		{"flipped nonce bit", flipped(0), web.ErrSealedInvalid},
		{"flipped expiry bit", flipped(24 + 7), web.ErrSealedInvalid},
		{"flipped body bit", flipped(len(raw) / 2), web.ErrSealedInvalid},
		{"flipped tag bit", flipped(len(raw) - 1), web.ErrSealedInvalid},
		{"truncated", reenc(raw[:len(raw)-1]), web.ErrSealedInvalid},
		{"extended", reenc(append(bytes.Clone(raw), 0)), web.ErrSealedInvalid},
		{"nonce only", reenc(raw[:24]), web.ErrSealedInvalid},
		{"padded", good + "=", web.ErrSealedInvalid},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(good) + "/", web.ErrSealedInvalid},
		{"line break inside", good[:20] + "\n" + good[20:], web.ErrSealedInvalid},
		{"other purpose", otherPurpose, web.ErrSealedInvalid},
		{"other key", otherKey, web.ErrSealedInvalid},
		{"unknown field", wrongShape, web.ErrSealedInvalid},
		{"not an object", notObject, web.ErrSealedInvalid},
		{"too long", strings.Repeat("A", web.MaxSealedLen+1), web.ErrSealedInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out interaction
			if err := s.Open(tc.value, &out); !errors.Is(err, tc.want) {
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
		})
	}
	var out interaction
	if err := s.Open(good, &out); err != nil || out.ClientID != "app" {
		t.Fatalf("genuine value: %v", err)
	}
	// Expiry: valid up to the last second, refused from the expiry on.
	now = now.Add(10*time.Minute - time.Second)
	if err := s.Open(good, &out); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
	now = now.Add(time.Second)
	if err := s.Open(good, &out); !errors.Is(err, web.ErrSealedExpired) {
		t.Errorf("at expiry: %v, want ErrSealedExpired", err)
	}
}

func TestSealedLimits(t *testing.T) {
	if _, err := web.NewSealed(make([]byte, 31), "x"); err == nil {
		t.Error("NewSealed accepted a 31-byte key")
	}
	if _, err := web.NewSealed(testKey, ""); err == nil {
		t.Error("NewSealed accepted an empty purpose")
	}
	s := newSealed(t, testKey, "authorize")
	if _, err := s.Seal(interaction{}, 0); err == nil {
		t.Error("Seal accepted a zero lifetime")
	}
	if _, err := s.Seal(interaction{ClientID: strings.Repeat("x", web.MaxSealedLen)}, time.Minute); err == nil {
		t.Error("Seal made a value too large for a cookie")
	}
	if _, err := s.Seal(func() {}, time.Minute); err == nil {
		t.Error("Seal accepted a value JSON cannot encode")
	}
}

// fuzzGenuine are values sealed with testKey for purpose "fuzz", valid
// until 2126; testdata/fuzz/FuzzSealedOpen holds them and variants. They
// are fixed (not sealed when the test starts) because each fuzzing worker
// process runs the setup again.
var fuzzGenuine = []string{
	"tGPuOexQWUDnjwCp7Fh5VN5PYG17kqfljOp-AEO8J7sHXWbx9tkApUaDQKk35ApCeltLStPrlsF4nIlStxWznaVh4LHRtslWlF7zdf8c2NouH3FoSR_j5w",
}

// FuzzSealedOpen checks that Open accepts nothing but values Seal made:
// any other input fails with ErrSealedInvalid or ErrSealedExpired, and
// never panics.
func FuzzSealedOpen(f *testing.F) {
	s := newSealed(f, testKey, "fuzz")
	genuine := map[string]bool{}
	for _, v := range fuzzGenuine {
		genuine[v] = true
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value string) {
		var out interaction
		err := s.Open(value, &out)
		switch {
		case err == nil:
			if !genuine[value] {
				t.Fatalf("Open(%q) accepted a value Seal never made", value)
			}
		case !errors.Is(err, web.ErrSealedInvalid) && !errors.Is(err, web.ErrSealedExpired):
			t.Fatalf("Open(%q) = %v", value, err)
		}
	})
}
