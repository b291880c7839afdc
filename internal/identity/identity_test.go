package identity_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// aeadSealer is a real AEAD (XChaCha20-Poly1305 with a random key), the
// shape of package keyring's Sealer.
type aeadSealer struct{ key []byte }

func newSealer(t testing.TB) *aeadSealer {
	k := make([]byte, chacha20poly1305.KeySize)
	rand.Read(k)
	return &aeadSealer{key: k}
}

func (s *aeadSealer) Seal(pt, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.NewX(s.key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(pt)+a.Overhead())
	rand.Read(nonce)
	return a.Seal(nonce, nonce, pt, ad), nil
}

func (s *aeadSealer) Unseal(ct, ad []byte) ([]byte, error) {
	a, err := chacha20poly1305.NewX(s.key)
	if err != nil {
		return nil, err
	}
	if len(ct) < a.NonceSize() {
		return nil, errors.New("short ciphertext")
	}
	return a.Open(nil, ct[:a.NonceSize()], ct[a.NonceSize():], ad)
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cheap are Argon2id parameters that keep tests fast; the production floor
// is tested in TestDefaultParameters.
var cheap = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1}

type fixture struct {
	dir    *identity.Directory
	rec    store.Records
	sealer *aeadSealer
	clock  *clock
	hashes atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fixture{rec: s, sealer: newSealer(t), clock: &clock{t: time.Now().Truncate(time.Second)}}
	f.dir = identity.NewDirectoryWithParams(s, f.sealer, identity.Options{Issuer: "Warden test", Now: f.clock.Now}, cheap)
	f.dir.OnHash(func() { f.hashes.Add(1) })
	return f
}

const (
	alicePassword = "correct horse battery"
	bobPassword   = "tr0ub4dor&3-but-longer"
)

// users creates alice (password only) and bob (password and TOTP) and
// returns bob's TOTP secret.
func (f *fixture) users(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	if _, _, err := f.dir.Create(ctx, identity.NewUser{Username: "Alice", Password: alicePassword, Name: "Alice A.",
		FHIRUser: "Patient/p1", Patients: []string{"p1"}}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := f.dir.Create(ctx, identity.NewUser{Username: "bob", Password: bobPassword, Name: "Bob B.",
		FHIRUser: "RelatedPerson/r1", Patients: []string{"p2", "p3"}, TOTP: true})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// code returns the TOTP code of secret at the fixture's time plus steps
// periods.
func (f *fixture) code(t *testing.T, secret string, steps int) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, f.clock.Now().Add(time.Duration(steps)*30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var home = netip.MustParseAddr("192.0.2.10")

func (f *fixture) auth(user, pass, otp string) (*identity.User, identity.Authn, error) {
	return f.dir.Authenticate(context.Background(), identity.Attempt{Username: user, Password: pass, OTP: otp, Remote: home})
}

func TestCreateAndLookup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, secret, err := f.dir.Create(ctx, identity.NewUser{Username: "ＡＬＩＣＥ", Password: alicePassword, Name: "Alice",
		FHIRUser: "Patient/p1", Patients: []string{"p1"}, TOTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.ID == "" || u.FHIRUser != "Patient/p1" || u.Created.IsZero() {
		t.Errorf("Create = %+v", u)
	}
	if len(secret) != 32 || strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		t.Errorf("TOTP secret %q is not 160 bits of base32", secret)
	}
	if strings.Contains(string(u.TOTPSealed), secret) || strings.Contains(u.PasswordHash, alicePassword) {
		t.Error("secret stored in clear")
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("PasswordHash = %q", u.PasswordHash)
	}
	// Usernames are mapped by RFC 8265 UsernameCaseMapped on lookup too.
	for _, name := range []string{"alice", "Alice", "ALICE", "ａｌｉｃｅ", "AlIcE"} {
		got, err := f.dir.ByUsername(ctx, name)
		if err != nil || got.ID != u.ID {
			t.Errorf("ByUsername(%q) = %v, %v", name, got, err)
		}
	}
	if got, err := f.dir.Get(ctx, u.ID); err != nil || got.Username != "alice" || len(got.Patients) != 1 {
		t.Errorf("Get = %+v, %v", got, err)
	}
	for _, name := range []string{"alic", "alice ", " alice", "alice\x00", "al\u200bice", "", "bob"} {
		if _, err := f.dir.ByUsername(ctx, name); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("ByUsername(%q) = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := f.dir.Get(ctx, ""); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("Get(\"\") = %v", err)
	}
	url, err := f.dir.OTPAuthURL(u.Username, secret)
	if err != nil || !strings.HasPrefix(url, "otpauth://totp/Warden%20test:alice?") || !strings.Contains(url, "secret="+secret) {
		t.Errorf("OTPAuthURL = %q, %v", url, err)
	}
	if _, err := f.dir.OTPAuthURL("alice", "not base32!"); err == nil {
		t.Error("OTPAuthURL accepted a bad secret")
	}
	list, err := f.dir.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != u.ID {
		t.Errorf("List = %v, %v", list, err)
	}
}

func TestCreateRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.dir.Create(ctx, identity.NewUser{Username: "alice", Password: alicePassword}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		nu   identity.NewUser
		want error
	}{
		{"same name", identity.NewUser{Username: "alice", Password: alicePassword}, identity.ErrExists},
		{"same name upper case", identity.NewUser{Username: "ALICE", Password: alicePassword}, identity.ErrExists},
		{"same name full width", identity.NewUser{Username: "ａｌｉｃｅ", Password: alicePassword}, identity.ErrExists},
		{"empty password", identity.NewUser{Username: "carol", Password: ""}, identity.ErrWeakPassword},
		{"11 characters", identity.NewUser{Username: "carol", Password: "abcdefghijk"}, identity.ErrWeakPassword},
		{"11 characters, more bytes", identity.NewUser{Username: "carol", Password: "ééééééééééé"}, identity.ErrWeakPassword},
		{"too long", identity.NewUser{Username: "carol", Password: strings.Repeat("x", identity.MaxPasswordBytes+1)}, identity.ErrWeakPassword},
		{"invalid UTF-8", identity.NewUser{Username: "carol", Password: "abcdefghijk\xff"}, identity.ErrWeakPassword},
		{"empty username", identity.NewUser{Username: "", Password: alicePassword}, identity.ErrInvalidUsername},
		{"space in username", identity.NewUser{Username: "carol smith", Password: alicePassword}, identity.ErrInvalidUsername},
		{"control character", identity.NewUser{Username: "carol\x00", Password: alicePassword}, identity.ErrInvalidUsername},
		{"too long username", identity.NewUser{Username: strings.Repeat("c", 129), Password: alicePassword}, identity.ErrInvalidUsername},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := f.dir.Create(ctx, tc.nu); !errors.Is(err, tc.want) {
				t.Errorf("Create = %v, want %v", err, tc.want)
			}
		})
	}
	if list, _ := f.dir.List(ctx); len(list) != 1 {
		t.Errorf("refused creates left %d users", len(list))
	}
}

func TestConcurrentCreateOneWins(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, _, errs[i] = f.dir.Create(context.Background(), identity.NewUser{Username: "Dave", Password: alicePassword})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, identity.ErrExists):
			t.Errorf("Create = %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent creates of one name succeeded", ok)
	}
}

// TestAuthenticateRefuses lists the ways around the password and second
// factor; each must fail with ErrInvalidCredentials after exactly one
// Argon2id derivation, so that none is faster or says more than another.
func TestAuthenticateRefuses(t *testing.T) {
	f := newFixture(t)
	bobSecret := f.users(t)
	ctx := context.Background()
	used := f.code(t, bobSecret, 0)
	if _, _, err := f.auth("bob", bobPassword, used); err != nil {
		t.Fatalf("bob with a fresh code: %v", err)
	}
	if _, _, err := f.dir.Create(ctx, identity.NewUser{Username: "erin", Password: alicePassword}); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.SetDisabled(ctx, "erin", true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, user, pass string
		otp              func() string
	}{
		{"unknown user", "mallory", alicePassword, nil},
		{"unknown user with OTP", "mallory", alicePassword, func() string { return "123456" }},
		{"invalid username", "al ice", alicePassword, nil},
		{"wrong password", "alice", alicePassword + "!", nil},
		{"password prefix", "alice", alicePassword[:len(alicePassword)-1], nil},
		{"empty password", "alice", "", nil},
		{"overlong password", "alice", alicePassword + strings.Repeat("x", identity.MaxPasswordBytes), nil},
		{"other user's password", "alice", bobPassword, nil},
		{"disabled user, right password", "erin", alicePassword, nil},
		{"wrong password, right OTP", "bob", alicePassword, func() string { return f.code(t, bobSecret, 1) }},
		{"wrong OTP", "bob", bobPassword, func() string { return fmt.Sprintf("%06d", (atoi(used)+1)%1000000) }},
		{"replayed OTP", "bob", bobPassword, func() string { return used }},
		{"OTP of the previous-previous step", "bob", bobPassword, func() string { return f.code(t, bobSecret, -2) }},
		{"OTP two steps ahead", "bob", bobPassword, func() string { return f.code(t, bobSecret, 2) }},
		{"OTP with 5 digits", "bob", bobPassword, func() string { return used[:5] }},
		{"OTP with 7 digits", "bob", bobPassword, func() string { return used + "0" }},
		{"OTP not digits", "bob", bobPassword, func() string { return "abcdef" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			otp := ""
			if tc.otp != nil {
				otp = tc.otp()
			}
			before := f.hashes.Load()
			u, _, err := f.auth(tc.user, tc.pass, otp)
			if !errors.Is(err, identity.ErrInvalidCredentials) || u != nil {
				t.Errorf("Authenticate = %v, %v; want ErrInvalidCredentials", u, err)
			}
			if n := f.hashes.Load() - before; n != 1 {
				t.Errorf("ran Argon2id %d times, want 1", n)
			}
			// Each case is one failure for one name: forget it, so the
			// username lock does not mask later cases.
			if _, err := f.rec.DeleteRecord(ctx, identity.KindUserFails, strings.ToLower(tc.user)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestTOTPBoundToUser moves bob's sealed TOTP secret onto alice's record:
// it must not open there (the sealing binds the user id).
func TestTOTPBoundToUser(t *testing.T) {
	f := newFixture(t)
	bobSecret := f.users(t)
	ctx := context.Background()
	alice, _ := f.dir.ByUsername(ctx, "alice")
	bob, _ := f.dir.ByUsername(ctx, "bob")
	rec, err := f.rec.GetRecord(ctx, identity.KindUser, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	tampered := *alice
	tampered.TOTPSealed = bob.TOTPSealed
	putJSON(t, f.rec, identity.KindUser, alice.ID, tampered, rec)
	_, _, err = f.auth("alice", alicePassword, f.code(t, bobSecret, 0))
	if err == nil || errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("Authenticate with a moved TOTP secret = %v, want a sealing error", err)
	}
}

func TestAuthenticateSucceeds(t *testing.T) {
	f := newFixture(t)
	bobSecret := f.users(t)
	u, authn, err := f.auth("ALICE", alicePassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || authn.ACR != policy.ACRPassword || strings.Join(authn.AMR, " ") != "pwd" || !authn.Time.Equal(f.clock.Now()) {
		t.Errorf("alice: %+v %+v", u, authn)
	}
	// An OTP given to an account without a second factor is ignored.
	if _, authn, err := f.auth("alice", alicePassword, "123456"); err != nil || authn.ACR != policy.ACRPassword {
		t.Errorf("alice with an OTP: %+v, %v", authn, err)
	}

	before := f.hashes.Load()
	if _, _, err := f.auth("bob", bobPassword, ""); !errors.Is(err, identity.ErrOTPRequired) {
		t.Fatalf("bob without OTP = %v, want ErrOTPRequired", err)
	}
	if f.hashes.Load()-before != 1 {
		t.Error("ErrOTPRequired without a password check")
	}
	// ErrOTPRequired is not a failure: it never locks.
	for range 10 {
		if _, _, err := f.auth("bob", bobPassword, ""); !errors.Is(err, identity.ErrOTPRequired) {
			t.Fatalf("bob without OTP = %v, want ErrOTPRequired", err)
		}
	}
	// The codes of the previous, current and next steps are accepted
	// (one step of skew), each once, in increasing order.
	for _, step := range []int{-1, 0, 1} {
		u, authn, err := f.auth("bob", bobPassword, f.code(t, bobSecret, step))
		if err != nil {
			t.Fatalf("bob with the code of step %+d: %v", step, err)
		}
		if u.FHIRUser != "RelatedPerson/r1" || authn.ACR != policy.ACRMultiFactor || strings.Join(authn.AMR, " ") != "pwd otp mfa" {
			t.Errorf("bob: %+v %+v", u, authn)
		}
	}
	// Having used step +1, the current step's code is now stale.
	if _, _, err := f.auth("bob", bobPassword, f.code(t, bobSecret, 0)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("an older code after a newer one = %v", err)
	}
	f.clock.Advance(2 * 30 * time.Second)
	if _, _, err := f.auth("bob", bobPassword, f.code(t, bobSecret, 0)); err != nil {
		t.Errorf("a later step: %v", err)
	}
}

// TestOTPConcurrentReplay signs in six times at once with one code:
// exactly one succeeds. The others are refused as replays, or, once the
// replays count as failed sign-ins, as a locked account (which of the two
// depends on the interleaving).
func TestOTPConcurrentReplay(t *testing.T) {
	f := newFixture(t)
	secret := f.users(t)
	code := f.code(t, secret, 0)
	var wg sync.WaitGroup
	var ok, invalid atomic.Int32
	for range 6 {
		wg.Go(func() {
			_, _, err := f.auth("bob", bobPassword, code)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, identity.ErrInvalidCredentials), errors.Is(err, identity.ErrLocked):
				invalid.Add(1)
			default:
				t.Errorf("Authenticate = %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || invalid.Load() != 5 {
		t.Errorf("one code used concurrently: %d successes, %d refusals", ok.Load(), invalid.Load())
	}
}

func TestSetDisabledAndPassword(t *testing.T) {
	f := newFixture(t)
	f.users(t)
	ctx := context.Background()
	if err := f.dir.SetDisabled(ctx, "Alice", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.auth("alice", alicePassword, ""); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("disabled = %v", err)
	}
	if u, _ := f.dir.ByUsername(ctx, "alice"); !u.Disabled {
		t.Error("Disabled not stored")
	}
	if err := f.dir.SetDisabled(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.auth("alice", alicePassword, ""); err != nil {
		t.Errorf("re-enabled = %v", err)
	}
	if err := f.dir.SetPassword(ctx, "alice", "short"); !errors.Is(err, identity.ErrWeakPassword) {
		t.Errorf("SetPassword(weak) = %v", err)
	}
	if err := f.dir.SetPassword(ctx, "nobody", alicePassword); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("SetPassword(unknown) = %v", err)
	}
	if err := f.dir.SetDisabled(ctx, "nobody", true); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("SetDisabled(unknown) = %v", err)
	}
	const next = "a whole new passphrase"
	if err := f.dir.SetPassword(ctx, "alice", next); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.auth("alice", alicePassword, ""); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("old password after SetPassword = %v", err)
	}
	if _, _, err := f.auth("alice", next, ""); err != nil {
		t.Errorf("new password = %v", err)
	}
}

// TestRehash signs in through a Directory with other parameters: the
// stored hash is replaced by one with the new parameters.
func TestRehash(t *testing.T) {
	f := newFixture(t)
	f.users(t)
	ctx := context.Background()
	stronger := identity.Argon2Params{Memory: 128, Time: 2, Threads: 1}
	d2 := identity.NewDirectoryWithParams(f.rec, f.sealer, identity.Options{Now: f.clock.Now}, stronger)
	if _, _, err := d2.Authenticate(ctx, identity.Attempt{Username: "alice", Password: alicePassword, Remote: home}); err != nil {
		t.Fatal(err)
	}
	u, _ := f.dir.ByUsername(ctx, "alice")
	p, _, _, err := identity.ParsePHC(u.PasswordHash)
	if err != nil || p != stronger {
		t.Errorf("after sign-in, hash parameters = %+v, %v; want %+v", p, err, stronger)
	}
	if _, _, err := d2.Authenticate(ctx, identity.Attempt{Username: "alice", Password: alicePassword, Remote: home}); err != nil {
		t.Errorf("after rehash: %v", err)
	}
	// A failed sign-in rehashes nothing.
	before := u.PasswordHash
	if _, _, err := f.auth("alice", "wrong password!!", ""); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if u, _ := f.dir.ByUsername(ctx, "alice"); u.PasswordHash != before {
		t.Error("a failed sign-in changed the hash")
	}
}

// TestDefaultParameters checks the production floor: OWASP's m=19 MiB,
// t=2, p=1, even when Options ask for less.
func TestDefaultParameters(t *testing.T) {
	f := newFixture(t)
	for _, opts := range []identity.Options{{}, {Argon2: identity.Argon2Params{Memory: 1024, Time: 1, Threads: 1}}} {
		d := identity.NewDirectory(f.rec, f.sealer, opts)
		if d.Params() != identity.MinArgon2Params {
			t.Errorf("Options %+v: params %+v", opts.Argon2, d.Params())
		}
	}
	want := identity.MinArgon2Params
	if want.Memory < 19*1024 || want.Time < 2 || want.Threads < 1 {
		t.Fatalf("MinArgon2Params %+v is below OWASP's", want)
	}
	d := identity.NewDirectory(f.rec, f.sealer, identity.Options{})
	u, _, err := d.Create(context.Background(), identity.NewUser{Username: "real", Password: alicePassword})
	if err != nil {
		t.Fatal(err)
	}
	p, salt, key, err := identity.ParsePHC(u.PasswordHash)
	if err != nil || p != want || salt != 16 || key != 32 {
		t.Errorf("hash %q: %+v salt %d key %d, %v", u.PasswordHash, p, salt, key, err)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q", u.PasswordHash)
	}
	if _, _, err := d.Authenticate(context.Background(), identity.Attempt{Username: "real", Password: alicePassword, Remote: home}); err != nil {
		t.Errorf("Authenticate = %v", err)
	}
}

// putJSON overwrites a record in place of old, as an attacker with write
// access to the database would.
func putJSON(t *testing.T, r store.Records, kind, key string, v any, old *store.Record) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SwapRecord(context.Background(), store.Record{Kind: kind, Key: key, Value: b}, old.Value); err != nil {
		t.Fatal(err)
	}
}

func TestSetTOTP(t *testing.T) {
	f := newFixture(t)
	oldSecret := f.users(t)
	ctx := context.Background()
	secret, err := f.dir.SetTOTP(ctx, "alice", true)
	if err != nil || secret == "" {
		t.Fatalf("SetTOTP(enable) = %q, %v", secret, err)
	}
	if _, _, err := f.auth("alice", alicePassword, ""); !errors.Is(err, identity.ErrOTPRequired) {
		t.Errorf("after enrolment, no OTP = %v", err)
	}
	if _, authn, err := f.auth("alice", alicePassword, f.code(t, secret, 0)); err != nil || authn.ACR != policy.ACRMultiFactor {
		t.Errorf("after enrolment: %+v, %v", authn, err)
	}
	// Re-enrolling bob: the old device's codes stop working.
	next, err := f.dir.SetTOTP(ctx, "bob", true)
	if err != nil || next == oldSecret {
		t.Fatalf("SetTOTP(bob) = %q, %v", next, err)
	}
	if _, _, err := f.auth("bob", bobPassword, f.code(t, oldSecret, 0)); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("old device's code = %v", err)
	}
	if _, _, err := f.auth("bob", bobPassword, f.code(t, next, 0)); err != nil {
		t.Errorf("new device's code = %v", err)
	}
	if s, err := f.dir.SetTOTP(ctx, "bob", false); err != nil || s != "" {
		t.Fatalf("SetTOTP(disable) = %q, %v", s, err)
	}
	if _, authn, err := f.auth("bob", bobPassword, ""); err != nil || authn.ACR != policy.ACRPassword {
		t.Errorf("after removal: %+v, %v", authn, err)
	}
	if _, err := f.dir.SetTOTP(ctx, "nobody", true); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("SetTOTP(unknown) = %v", err)
	}
}
