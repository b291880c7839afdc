package identity

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/wardenfhir/warden/internal/store"
)

// TOTP parameters: what every authenticator app supports (RFC 6238 §4 with
// the RFC 4226 defaults), and one step of clock skew either way
// (RFC 6238 §5.2).
const (
	totpPeriod = 30 * time.Second
	totpSkew   = 1
	totpDigits = otp.DigitsSix
	totpSecret = 20 // bytes: 160 bits, the HMAC-SHA1 block-size recommendation of RFC 4226 §4
)

// errTOTPSecret reports a sealed TOTP secret that would not open; it names
// neither the secret nor the reason.
var errTOTPSecret = errors.New("identity: cannot open the second factor")

// totpAD is the associated data binding a sealed TOTP secret to its user,
// so a sealed secret copied onto another account does not open.
func totpAD(userID string) []byte { return []byte("warden/identity/totp\x00" + userID) }

// newTOTP makes a random TOTP secret for user id and returns it in base32
// and sealed.
func (d *Directory) newTOTP(id string) (secret string, sealed []byte, err error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      d.issuer,
		AccountName: id,
		Period:      uint(totpPeriod / time.Second),
		SecretSize:  totpSecret,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", nil, fmt.Errorf("identity: make TOTP secret: %w", err)
	}
	secret = key.Secret()
	sealed, err = d.sealer.Seal([]byte(secret), totpAD(id))
	if err != nil {
		return "", nil, fmt.Errorf("identity: seal TOTP secret: %w", err)
	}
	return secret, sealed, nil
}

// OTPAuthURL returns the otpauth:// key URI for an authenticator app (the
// Google Authenticator "Key Uri Format", usually shown as a QR code) for
// the given account name and base32 secret.
func (d *Directory) OTPAuthURL(username, secret string) (string, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil || len(raw) == 0 {
		return "", fmt.Errorf("identity: TOTP secret is not base32")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      d.issuer,
		AccountName: username,
		Period:      uint(totpPeriod / time.Second),
		Secret:      raw,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", fmt.Errorf("identity: TOTP key URI: %w", err)
	}
	return key.URL(), nil
}

// totpStep is the RFC 6238 §4.2 time step T of t.
func totpStep(t time.Time) int64 { return t.Unix() / int64(totpPeriod/time.Second) }

// checkTOTP verifies code against the user's secret at the Directory's
// time, allowing one step of skew (RFC 6238 §5.2), and consumes the step it
// matched: a step at or before the last one accepted for this user is
// refused, so no code is accepted twice (RFC 6238 §5.2: "the verifier MUST
// NOT accept the second attempt of the OTP after the successful validation
// has been issued for the first OTP"). A wrong, stale or replayed code is
// ErrInvalidCredentials.
func (d *Directory) checkTOTP(ctx context.Context, u *User, code string) error {
	secret, err := d.sealer.Unseal(u.TOTPSealed, totpAD(u.ID))
	if err != nil {
		return errTOTPSecret
	}
	now := totpStep(d.now())
	matched := int64(-1)
	for step := now - totpSkew; step <= now+totpSkew; step++ {
		if step < 0 {
			continue
		}
		ok, err := hotp.ValidateCustom(code, uint64(step), string(secret), hotp.ValidateOpts{
			Digits: totpDigits, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil && !errors.Is(err, otp.ErrValidateInputInvalidLength) {
			return errTOTPSecret
		}
		if ok {
			matched = step
		}
	}
	if matched < 0 {
		return ErrInvalidCredentials
	}
	return d.consumeStep(ctx, u.ID, matched)
}

// consumeStep records step as the last one used by user id if it is later
// than the one recorded, with compare-and-swap so that of two concurrent
// sign-ins with one code, one fails.
func (d *Directory) consumeStep(ctx context.Context, id string, step int64) error {
	rec := store.Record{Kind: kindTOTPStep, Key: id, Value: []byte(strconv.FormatInt(step, 10))}
	cur, err := d.records.GetRecord(ctx, kindTOTPStep, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = d.records.InsertRecord(ctx, rec)
	case err != nil:
		return fmt.Errorf("identity: read TOTP step: %w", err)
	default:
		last, perr := strconv.ParseInt(string(cur.Value), 10, 64)
		if perr != nil {
			return fmt.Errorf("identity: corrupt TOTP step record")
		}
		if step <= last {
			return ErrInvalidCredentials // replay, or an older code after a newer one
		}
		err = d.records.SwapRecord(ctx, rec, cur.Value)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return ErrInvalidCredentials // a concurrent sign-in used a code first
	}
	if err != nil {
		return fmt.Errorf("identity: store TOTP step: %w", err)
	}
	return nil
}

// SetTOTP enrols the account in a new TOTP second factor (enable) and
// returns its base32 secret, once; or removes the second factor (returns
// ""). Enrolling again replaces the old secret, so codes of a lost device
// stop working.
func (d *Directory) SetTOTP(ctx context.Context, username string, enable bool) (string, error) {
	u, err := d.ByUsername(ctx, username)
	if err != nil {
		return "", err
	}
	var secret string
	var sealed []byte
	if enable {
		if secret, sealed, err = d.newTOTP(u.ID); err != nil {
			return "", err
		}
	}
	err = d.update(ctx, username, func(u *User) error {
		u.TOTPSealed = sealed
		return nil
	})
	if err != nil {
		return "", err
	}
	// Steps used with the old secret say nothing about the new one.
	if _, err := d.records.DeleteRecord(ctx, kindTOTPStep, u.ID); err != nil {
		return "", fmt.Errorf("identity: reset TOTP step: %w", err)
	}
	return secret, nil
}
