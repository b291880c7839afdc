// Package identity owns Warden's local user accounts: who may sign in to the
// authorization server, with which password and second factor, as which
// FHIR user (Patient, Practitioner or RelatedPerson), and which patients
// that user may pick at launch. It stores accounts, password hashes
// (Argon2id), sealed TOTP secrets, used TOTP steps and brute-force
// counters as store.Records, so every replica over one database shares
// them and they survive restarts.
//
// It also signs users in through an upstream OpenID Connect provider
// ([Upstream]), mapping the provider's subject to a linked local account.
//
// It never serves HTTP (it is an HTTP client of the upstream provider
// only), never logs, never returns or stores a password or TOTP secret in
// clear (the one exception: [Directory.Create] returns a new TOTP secret
// once, for enrolment), and never tells a caller which part of a failed
// sign-in was wrong: every credential failure is [ErrInvalidCredentials].
//
// # Usernames
//
// Usernames are compared after the PRECIS UsernameCaseMapped profile
// (RFC 8265 §3.3): full-width letters become their ordinary forms,
// upper case becomes lower case, and the result is in Unicode NFC. "Alice",
// "ALICE" and "ＡＬＩＣＥ" are the same account; a name with spaces or
// control characters is refused. The mapped form is what User.Username
// holds.
//
// # Brute force
//
// [Directory.Authenticate] counts failures in the store. Five failures for
// one username within 15 minutes lock it for 15 minutes, and each further
// lock doubles, up to a day (the level is forgotten a day after the last
// lock); unknown usernames are counted alike, so a lock says nothing about
// whether an account exists. Fifty failures from one address (an IPv6
// /64) within 15 minutes block that address for 15 minutes. A locked
// attempt is refused with ErrLocked before any password check, even when
// the password is right. Each attempt is counted before its password is
// checked, so concurrent guesses cannot outrun the lock; a success clears
// the username's count.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/wardenfhir/warden/internal/store"
)

// User is one local account.
type User struct {
	ID       string // stable random id; the OAuth sub
	Username string // mapped by RFC 8265 UsernameCaseMapped
	Name     string // display name
	// FHIRUser is the FHIR resource the user is: "Patient/123",
	// "Practitioner/9", "RelatedPerson/4" (SMART fhirUser claim).
	FHIRUser string
	// Patients lists the patient ids the user may choose in the patient
	// picker: a patient's own id, a parent's children. Empty for a
	// practitioner, whose picker searches instead.
	Patients []string
	// PasswordHash is an Argon2id PHC string:
	// $argon2id$v=19$m=…,t=…,p=…$salt$hash.
	PasswordHash string
	// TOTPSealed is the TOTP secret sealed with the Directory's Sealer,
	// bound to the user's ID; nil when the user has no second factor.
	TOTPSealed []byte
	Disabled   bool
	Created    time.Time
	// UpstreamIssuer and UpstreamSubject link the account to a user of an
	// upstream OpenID Connect provider (iss and sub of its id_tokens);
	// empty when not linked. See Directory.LinkUpstream.
	UpstreamIssuer  string `json:",omitempty"`
	UpstreamSubject string `json:",omitempty"`
}

// HasTOTP reports whether the user has a second factor.
func (u *User) HasTOTP() bool { return len(u.TOTPSealed) > 0 }

// Sealer encrypts small secrets with authenticated encryption; package
// keyring implements it. Unseal MUST fail unless the ciphertext was sealed
// with the same associated data.
type Sealer interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Unseal(ciphertext, associatedData []byte) ([]byte, error)
}

// Options configure a Directory. The zero value is the secure default.
type Options struct {
	// Issuer names the service in authenticator apps ("Warden" if empty).
	Issuer string
	// Argon2 are the cost parameters of new password hashes. Zero fields
	// take MinArgon2Params; values below it are raised to it. Hashes made
	// with other parameters are replaced at the user's next sign-in.
	Argon2 Argon2Params
	// Now is the clock (time.Now if nil). Lockouts and TOTP steps follow
	// it; record expiry in the store follows the store's own clock and is
	// only garbage collection.
	Now func() time.Time
}

// Errors. Each is tested with errors.Is; none carries a secret.
var (
	// ErrInvalidCredentials is every failed sign-in: unknown user, wrong
	// password, wrong or replayed one-time code, disabled account.
	ErrInvalidCredentials = errors.New("identity: invalid credentials")
	// ErrOTPRequired means the password was right and the account needs a
	// one-time code, which the attempt lacked.
	ErrOTPRequired = errors.New("identity: one-time code required")
	// ErrLocked means too many recent failures for this username or from
	// this address; errors.As on a *LockedError gives the wait.
	ErrLocked = errors.New("identity: too many failed sign-ins")
	// ErrExists means the username is taken.
	ErrExists = errors.New("identity: username already exists")
	// ErrWeakPassword means the password breaks the policy: at least
	// MinPasswordLength characters, at most MaxPasswordBytes bytes.
	ErrWeakPassword = errors.New("identity: password too weak")
	// ErrInvalidUsername means the name is empty, too long, or not
	// allowed by RFC 8265 UsernameCaseMapped.
	ErrInvalidUsername = errors.New("identity: invalid username")
	// ErrNotFound means no account has that username or id.
	ErrNotFound = errors.New("identity: no such user")
)

// LockedError is the ErrLocked a throttled attempt returns.
type LockedError struct {
	RetryAfter time.Duration // how long until an attempt may succeed
}

func (e *LockedError) Error() string { return ErrLocked.Error() }

// Unwrap makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Password policy (NIST SP 800-63B §3.1.1.2: length, not composition).
const (
	MinPasswordLength = 12   // characters (Unicode code points)
	MaxPasswordBytes  = 1024 // bytes; longer input is refused, not truncated
	maxUsernameBytes  = 128
)

// Record kinds this package owns.
const (
	kindUser      = "identity.user"      // key: user id; value: JSON User
	kindUsername  = "identity.username"  // key: mapped username; value: user id
	kindTOTPStep  = "identity.totp_step" // key: user id; value: last accepted time step
	kindUserFails = "identity.fail.user" // key: mapped username; value: JSON throttleState
	kindAddrFails = "identity.fail.addr" // key: address prefix; value: JSON throttleState
)

// Directory is the set of local accounts over a store.Records. It is safe
// for concurrent use, also by several processes over one database.
type Directory struct {
	records store.Records
	sealer  Sealer
	issuer  string
	params  Argon2Params
	now     func() time.Time

	dummyOnce sync.Once
	dummy     string // a hash of a random password: unknown users are checked against it

	onHash func() // test hook: called on every Argon2id derivation
}

// NewDirectory returns a Directory storing accounts in r and sealing TOTP
// secrets with s.
func NewDirectory(r store.Records, s Sealer, opts Options) *Directory {
	d := &Directory{
		records: r,
		sealer:  s,
		issuer:  opts.Issuer,
		params:  opts.Argon2.atLeast(MinArgon2Params),
		now:     opts.Now,
	}
	if d.issuer == "" {
		d.issuer = "Warden"
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// CanonicalUsername maps name with the PRECIS UsernameCaseMapped profile
// (RFC 8265 §3.3.2) and checks its length: the form accounts are stored
// and looked up under.
func CanonicalUsername(name string) (string, error) {
	if name == "" || len(name) > 4*maxUsernameBytes {
		return "", ErrInvalidUsername
	}
	s, err := precis.UsernameCaseMapped.String(name)
	if err != nil || s == "" || len(s) > maxUsernameBytes {
		return "", ErrInvalidUsername
	}
	return s, nil
}

// NewUser is what Create needs to make an account.
type NewUser struct {
	Username, Password, Name, FHIRUser string
	Patients                           []string
	TOTP                               bool // enrol a TOTP second factor
}

// checkPassword applies the password policy.
func checkPassword(p string) error {
	if len(p) > MaxPasswordBytes {
		return fmt.Errorf("%w: longer than %d bytes", ErrWeakPassword, MaxPasswordBytes)
	}
	if !utf8.ValidString(p) || utf8.RuneCountInString(p) < MinPasswordLength {
		return fmt.Errorf("%w: fewer than %d characters", ErrWeakPassword, MinPasswordLength)
	}
	return nil
}

// Create makes an account. With nu.TOTP it also enrols a TOTP second factor
// and returns its base32 secret, once: it is stored only sealed. Errors:
// ErrInvalidUsername, ErrWeakPassword, ErrExists.
func (d *Directory) Create(ctx context.Context, nu NewUser) (User, string, error) {
	name, err := CanonicalUsername(nu.Username)
	if err != nil {
		return User{}, "", err
	}
	if err := checkPassword(nu.Password); err != nil {
		return User{}, "", err
	}
	u := User{
		ID:           newID(),
		Username:     name,
		Name:         nu.Name,
		FHIRUser:     nu.FHIRUser,
		Patients:     append([]string(nil), nu.Patients...),
		PasswordHash: d.hashPassword(nu.Password),
		Created:      d.now().UTC().Truncate(time.Second),
	}
	var secret string
	if nu.TOTP {
		if secret, u.TOTPSealed, err = d.newTOTP(u.ID); err != nil {
			return User{}, "", err
		}
	}
	// Claim the name first: of two concurrent creates, one wins.
	err = d.records.InsertRecord(ctx, store.Record{Kind: kindUsername, Key: name, Value: []byte(u.ID)})
	if errors.Is(err, store.ErrConflict) {
		return User{}, "", ErrExists
	}
	if err != nil {
		return User{}, "", fmt.Errorf("identity: create: %w", err)
	}
	if err := d.putUser(ctx, &u); err != nil {
		_, _ = d.records.DeleteRecord(ctx, kindUsername, name)
		return User{}, "", err
	}
	return u, secret, nil
}

// newID returns a random 128-bit id in hex.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *Directory) putUser(ctx context.Context, u *User) error {
	v, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("identity: encode user: %w", err)
	}
	if err := d.records.PutRecord(ctx, store.Record{Kind: kindUser, Key: u.ID, Value: v}); err != nil {
		return fmt.Errorf("identity: store user: %w", err)
	}
	return nil
}

// getUser returns the user with the given id and its stored encoding (for
// compare-and-swap).
func (d *Directory) getUser(ctx context.Context, id string) (*User, []byte, error) {
	r, err := d.records.GetRecord(ctx, kindUser, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("identity: read user: %w", err)
	}
	var u User
	if err := json.Unmarshal(r.Value, &u); err != nil {
		return nil, nil, fmt.Errorf("identity: decode user: %w", err)
	}
	return &u, r.Value, nil
}

// Get returns the user with the given id, or ErrNotFound.
func (d *Directory) Get(ctx context.Context, id string) (*User, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	u, _, err := d.getUser(ctx, id)
	return u, err
}

// ByUsername returns the user with the given name (mapped as
// CanonicalUsername does), or ErrNotFound.
func (d *Directory) ByUsername(ctx context.Context, username string) (*User, error) {
	u, _, err := d.byUsername(ctx, username)
	return u, err
}

func (d *Directory) byUsername(ctx context.Context, username string) (*User, []byte, error) {
	name, err := CanonicalUsername(username)
	if err != nil {
		return nil, nil, ErrNotFound
	}
	r, err := d.records.GetRecord(ctx, kindUsername, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("identity: read username: %w", err)
	}
	return d.getUser(ctx, string(r.Value))
}

// List returns every user, ordered by username.
func (d *Directory) List(ctx context.Context) ([]User, error) {
	rs, err := d.records.ListRecords(ctx, kindUser)
	if err != nil {
		return nil, fmt.Errorf("identity: list users: %w", err)
	}
	out := make([]User, 0, len(rs))
	for _, r := range rs {
		var u User
		if err := json.Unmarshal(r.Value, &u); err != nil {
			return nil, fmt.Errorf("identity: decode user: %w", err)
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

// update applies change to the named user with compare-and-swap, retrying
// when another writer got there first.
func (d *Directory) update(ctx context.Context, username string, change func(*User) error) error {
	for attempt := range casAttempts {
		u, old, err := d.byUsername(ctx, username)
		if err != nil {
			return err
		}
		if err := change(u); err != nil {
			return err
		}
		v, err := json.Marshal(u)
		if err != nil {
			return fmt.Errorf("identity: encode user: %w", err)
		}
		err = d.records.SwapRecord(ctx, store.Record{Kind: kindUser, Key: u.ID, Value: v}, old)
		if errors.Is(err, store.ErrConflict) {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("identity: store user: %w", err)
		}
		return nil
	}
	return fmt.Errorf("identity: user changed concurrently %d times: %w", casAttempts, store.ErrConflict)
}

// casAttempts bounds the compare-and-swap retries of one change.
const casAttempts = 32

// SetDisabled disables or re-enables an account. A disabled account cannot
// sign in; its sign-ins fail exactly as a wrong password does.
func (d *Directory) SetDisabled(ctx context.Context, username string, disabled bool) error {
	return d.update(ctx, username, func(u *User) error {
		u.Disabled = disabled
		return nil
	})
}

// SetPassword replaces the account's password (policy as in Create) and
// clears its failed-sign-in counter.
func (d *Directory) SetPassword(ctx context.Context, username, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash := d.hashPassword(password)
	err := d.update(ctx, username, func(u *User) error {
		u.PasswordHash = hash
		return nil
	})
	if err != nil {
		return err
	}
	name, _ := CanonicalUsername(username)
	if _, err := d.records.DeleteRecord(ctx, kindUserFails, name); err != nil {
		return fmt.Errorf("identity: reset failures: %w", err)
	}
	return nil
}
