package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"

	"github.com/wardenfhir/warden/internal/config"
	"github.com/wardenfhir/warden/internal/dpop"
	"github.com/wardenfhir/warden/internal/store/postgres"
	"github.com/wardenfhir/warden/internal/tokens"
)

// TestRevocationAcrossReplicas: two replicas over one PostgreSQL database;
// a client disabled on one is refused by the other on its next request
// the moment DisableClient returns (package coherence: the call waits for
// every replica to apply it).
func TestRevocationAcrossReplicas(t *testing.T) {
	url := os.Getenv("WARDEN_TEST_POSTGRES")
	if url == "" {
		t.Skip("WARDEN_TEST_POSTGRES not set (./scripts/test sets it)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A schema of its own: the replicas share it and nothing else.
	schema := fmt.Sprintf("replicas_%d", time.Now().UnixNano())
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	url += sep + "search_path=" + schema
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Store.URL = url
	const issuer = "https://replicas.invalid/fhir"
	open := func() *authCore {
		db, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		core, err := openAuthCore(ctx, cfg, db, issuer)
		if err != nil {
			t.Fatal(err)
		}
		m, err := core.joinCoherence(ctx, db, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		go m.Run(ctx)
		return core
	}
	a, b := open(), open()
	client := "replica-client-" + time.Now().Format("150405.000000")
	tok, _, _, err := a.tokens.MintAccess(ctx, tokens.AccessClaims{Subject: client, ClientID: client, Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.tokens.Verify(ctx, tok); err != nil {
		t.Fatalf("replica b refuses a good token: %v", err)
	}
	start := time.Now()
	if err := a.tokens.DisableClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	// No waiting: DisableClient returns once every replica applied it.
	if _, err := b.tokens.Verify(ctx, tok); !errors.Is(err, tokens.ErrClientDisabled) {
		t.Errorf("replica b still accepts the disabled client's token after DisableClient returned: %v", err)
	}
	t.Logf("revocation took effect in both replicas in %v", time.Since(start))
	if err := a.tokens.EnableClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	if _, err := b.tokens.Verify(ctx, tok); err != nil {
		t.Errorf("replica b refuses the re-enabled client's token: %v", err)
	}

	// DPoP: one replica's nonce is the other's, and a proof used at one
	// is a replay at the other.
	now := time.Now()
	if na, nb := a.dpop.Nonce(now), b.dpop.Nonce(now); na == "" || na != nb {
		t.Fatalf("replicas issue different DPoP nonces: %q, %q", na, nb)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	claims, _ := json.Marshal(map[string]any{"jti": "replica-jti", "htm": "POST", "htu": "https://replicas.invalid/auth/token",
		"iat": now.Unix(), "nonce": a.dpop.Nonce(now)})
	jws, _ := signer.Sign(claims)
	proof, _ := jws.CompactSerialize()
	if _, err := a.dpop.VerifyContext(ctx, proof, "POST", "https://replicas.invalid/auth/token", "", now); err != nil {
		t.Fatalf("replica a refuses a fresh proof: %v", err)
	}
	if _, err := b.dpop.VerifyContext(ctx, proof, "POST", "https://replicas.invalid/auth/token", "", now); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("replica b takes a proof replica a used: %v", err)
	}
	cancel()
}
