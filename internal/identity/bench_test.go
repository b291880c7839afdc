package identity_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/store/sqlite"
)

// BenchmarkAuthenticate measures sign-ins with the production Argon2id
// parameters on SQLite: a known user with the right password, an unknown
// user (which must cost the same), and password plus TOTP. Run it with a
// small -benchtime (each op is tens of milliseconds): go test -run '^$'
// -bench Authenticate -benchtime 20x ./internal/identity/
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &clock{t: time.Now()}
	d := identity.NewDirectory(s, newSealer(b), identity.Options{Now: c.Now})
	if _, _, err := d.Create(ctx, identity.NewUser{Username: "alice", Password: alicePassword}); err != nil {
		b.Fatal(err)
	}
	_, secret, err := d.Create(ctx, identity.NewUser{Username: "bob", Password: bobPassword, TOTP: true})
	if err != nil {
		b.Fatal(err)
	}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	b.Run("password", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, _, err := d.Authenticate(ctx, identity.Attempt{Username: "alice", Password: alicePassword, Remote: addr(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unknown-user", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_, _, err := d.Authenticate(ctx, identity.Attempt{Username: fmt.Sprintf("nobody%d", i), Password: alicePassword, Remote: addr(i)})
			if !errors.Is(err, identity.ErrInvalidCredentials) {
				b.Fatal(err)
			}
		}
	})
	b.Run("password+totp", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			c.Advance(30 * time.Second) // a fresh time step for each sign-in
			code, _ := totp.GenerateCode(secret, c.Now())
			if _, _, err := d.Authenticate(ctx, identity.Attempt{Username: "bob", Password: bobPassword, OTP: code, Remote: addr(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
