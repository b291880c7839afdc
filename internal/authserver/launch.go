package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/wardenfhir/warden/internal/store"
)

// DefaultLaunchLifetime is how long a minted EHR launch can be redeemed
// when LaunchContext.Expires is zero.
const DefaultLaunchLifetime = 5 * time.Minute

// ErrLaunchInvalid is returned for a launch id that is unknown, expired or
// already redeemed.
var ErrLaunchInvalid = errors.New("authserver: launch unknown, expired or already used")

// LaunchContext is what the EHR side knows when it launches an app (SMART
// App Launch 2.2 "EHR launch"): the patient and encounter in context and
// the user launching. The app receives it through the opaque `launch`
// authorization parameter.
type LaunchContext struct {
	Patient     string           `json:"patient,omitempty"`
	Encounter   string           `json:"encounter,omitempty"`
	FHIRUser    string           `json:"fhir_user,omitempty"`
	FHIRContext []map[string]any `json:"fhir_context,omitempty"`
	// NeedPatientBanner tells the app whether to show its own patient
	// banner (false when the EHR already shows one).
	NeedPatientBanner bool      `json:"need_patient_banner,omitempty"`
	Expires           time.Time `json:"expires"`
}

// MintLaunch records l and returns the opaque launch id the EHR passes to
// the app. The id is redeemable once, until l.Expires (default 5 minutes);
// only its SHA-256 is stored.
func (s *Server) MintLaunch(ctx context.Context, l LaunchContext) (string, error) {
	if l.Expires.IsZero() {
		l.Expires = s.o.Now().Add(DefaultLaunchLifetime)
	}
	if !l.Expires.After(s.o.Now()) {
		return "", errors.New("authserver: launch already expired")
	}
	id, err := randomToken(24)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	err = s.o.Records.InsertRecord(ctx, store.Record{Kind: recordKindLaunch, Key: launchKey(id), Value: b, Expires: l.Expires})
	if err != nil {
		return "", err
	}
	return id, nil
}

// redeemLaunch consumes a launch id: of two redemptions only one succeeds.
func (s *Server) redeemLaunch(ctx context.Context, id string) (LaunchContext, error) {
	var l LaunchContext
	if id == "" || len(id) > 128 {
		return l, ErrLaunchInvalid
	}
	key := launchKey(id)
	rec, err := s.o.Records.GetRecord(ctx, recordKindLaunch, key)
	if errors.Is(err, store.ErrNotFound) {
		return l, ErrLaunchInvalid
	}
	if err != nil {
		return l, err
	}
	ok, err := s.o.Records.DeleteRecord(ctx, recordKindLaunch, key)
	if err != nil {
		return l, err
	}
	if !ok {
		return l, ErrLaunchInvalid
	}
	if err := json.Unmarshal(rec.Value, &l); err != nil {
		return l, ErrLaunchInvalid
	}
	if !s.o.Now().Before(l.Expires) {
		return l, ErrLaunchInvalid
	}
	return l, nil
}

func launchKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}
