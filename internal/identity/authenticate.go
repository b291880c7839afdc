package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/netip"
	"time"

	"github.com/wardenfhir/warden/internal/policy"
	"github.com/wardenfhir/warden/internal/store"
)

// Attempt is one sign-in attempt as the login form submitted it.
type Attempt struct {
	Username, Password, OTP string
	Remote                  netip.Addr // the client's address, for throttling
}

// Authn says how a user authenticated, for the id_token and access token
// claims acr, amr and auth_time (OpenID Connect Core 1.0 §2).
type Authn struct {
	ACR  string   // policy.ACRMultiFactor or policy.ACRPassword
	AMR  []string // RFC 8176 §2 values: "pwd"; with a one-time code also "otp" and "mfa"
	Time time.Time
}

// Authenticate checks a sign-in attempt and returns the user and how they
// authenticated. Every credential failure is ErrInvalidCredentials: an
// unknown username costs the same Argon2id work as a known one and fails
// the same way, as do a disabled account, a wrong password and a wrong,
// stale or replayed one-time code. ErrOTPRequired comes only after a
// correct password for an account with a second factor when a.OTP is
// empty. ErrLocked (a *LockedError) comes before any password check when
// the username or the address is throttled, even for the right password.
// Any other error is a storage or sealing failure: deny the sign-in.
func (d *Directory) Authenticate(ctx context.Context, a Attempt) (*User, Authn, error) {
	now := d.now()
	addr := addrKey(a.Remote)
	if err := addrThrottle.check(ctx, d.records, addr, now); err != nil {
		return nil, Authn{}, err
	}
	name, nameErr := CanonicalUsername(a.Username)
	if nameErr != nil {
		// No account can have this name: spend the same work, count the
		// failure against the address only.
		d.verifyDummy(a.Password)
		return nil, Authn{}, d.failed(ctx, "", addr, now)
	}
	if err := userThrottle.reserve(ctx, d.records, name, now); err != nil {
		return nil, Authn{}, err
	}
	u, err := d.checkPassword(ctx, name, a.Password)
	if err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			return nil, Authn{}, d.failed(ctx, name, addr, now)
		}
		return nil, Authn{}, errors.Join(err, userThrottle.release(ctx, d.records, name, now))
	}
	authn := Authn{ACR: policy.ACRPassword, AMR: []string{"pwd"}, Time: now.UTC().Truncate(time.Second)}
	if u.HasTOTP() {
		if a.OTP == "" {
			if err := userThrottle.release(ctx, d.records, name, now); err != nil {
				return nil, Authn{}, err
			}
			return nil, Authn{}, ErrOTPRequired
		}
		if err := d.checkTOTP(ctx, u, a.OTP); err != nil {
			if errors.Is(err, ErrInvalidCredentials) {
				return nil, Authn{}, d.failed(ctx, name, addr, now)
			}
			return nil, Authn{}, errors.Join(err, userThrottle.release(ctx, d.records, name, now))
		}
		authn.ACR = policy.ACRMultiFactor
		authn.AMR = []string{"pwd", "otp", "mfa"}
	}
	if err := userThrottle.reset(ctx, d.records, name); err != nil {
		return nil, Authn{}, err
	}
	return u, authn, nil
}

// failed records a credential failure against the username (when there is
// one; its attempt was reserved) and the address, and returns
// ErrInvalidCredentials, or the storage error that kept it from counting.
func (d *Directory) failed(ctx context.Context, name, addr string, now time.Time) error {
	var errs []error
	if name != "" {
		errs = append(errs, userThrottle.fail(ctx, d.records, name, now, true))
	}
	errs = append(errs, addrThrottle.fail(ctx, d.records, addr, now, false))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ErrInvalidCredentials
}

// checkPassword returns the enabled user name whose password is password,
// rehashing it if its parameters are stale, or ErrInvalidCredentials after
// the same Argon2id work whatever was wrong.
func (d *Directory) checkPassword(ctx context.Context, name, password string) (*User, error) {
	u, old, err := d.byUsername(ctx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if u == nil || len(password) > MaxPasswordBytes {
		// No password longer than the policy allows was ever set.
		d.verifyDummy(password[:min(len(password), MaxPasswordBytes)])
		return nil, ErrInvalidCredentials
	}
	ok, stale, err := d.verifyPassword(u.PasswordHash, password)
	if err != nil {
		// A corrupt hash: no password can match it.
		return nil, ErrInvalidCredentials
	}
	if !ok || u.Disabled {
		return nil, ErrInvalidCredentials
	}
	if stale {
		d.rehash(ctx, u, old, password)
	}
	return u, nil
}

// verifyDummy spends the work of one password check against a hash no
// password matches, so that a sign-in as an unknown user takes as long as
// one as a known user.
func (d *Directory) verifyDummy(password string) {
	d.dummyOnce.Do(func() {
		// Random salt and tag: a well-formed hash with the Directory's
		// parameters that no password derives (but 2^-256).
		h := phcHash{params: d.params, salt: make([]byte, saltLen), key: make([]byte, keyLen)}
		rand.Read(h.salt)
		rand.Read(h.key)
		d.dummy = h.String()
	})
	_, _, _ = d.verifyPassword(d.dummy, password)
}

// rehash replaces a hash made with other parameters by one made with the
// Directory's (OWASP Password Storage Cheat Sheet, "Upgrading the work
// factor"). It is best effort: if another writer changed the user first
// or the store fails, the old hash stays and the next sign-in tries again.
func (d *Directory) rehash(ctx context.Context, u *User, old []byte, password string) {
	next := *u
	next.PasswordHash = d.hashPassword(password)
	v, err := json.Marshal(&next)
	if err != nil {
		return
	}
	if d.records.SwapRecord(ctx, store.Record{Kind: kindUser, Key: u.ID, Value: v}, old) == nil {
		*u = next
	}
}
