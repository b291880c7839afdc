package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/wardenfhir/warden/internal/keyring"
	"github.com/wardenfhir/warden/internal/store/sqlite"
	"github.com/wardenfhir/warden/internal/tokens"
)

// The authorization server mints; the FHIR API verifies on every request;
// revocation takes effect on the next one.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "warden-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "w.db"), sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ring, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		log.Fatal(err)
	}
	svc, err := tokens.New(ctx, tokens.Options{
		Issuer:   "https://127.0.0.1:8443/fhir",
		Audience: "https://127.0.0.1:8443/fhir",
		Records:  st,
		Sealer:   ring,
	})
	if err != nil {
		log.Fatal(err)
	}

	token, jti, exp, err := svc.MintAccess(ctx, tokens.AccessClaims{
		Subject: "user-1", ClientID: "growth-chart", GrantID: "grant-1",
		Scope: "launch/patient patient/Observation.rs", Patient: "p1",
	})
	if err != nil {
		log.Fatal(err)
	}
	p, err := svc.Verify(ctx, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.ClientID, p.Patient, p.Scopes.Resources[0].Type)

	if err := svc.RevokeToken(ctx, jti, exp); err != nil {
		log.Fatal(err)
	}
	_, err = svc.Verify(ctx, token)
	fmt.Println(errors.Is(err, tokens.ErrInvalidToken), errors.Is(err, tokens.ErrRevoked))
	// Output:
	// growth-chart p1 Observation
	// true true
}
