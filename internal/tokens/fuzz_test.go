package tokens

import (
	"context"
	"errors"
	"testing"
)

// FuzzVerify feeds Verify arbitrary strings, starting from valid tokens of
// a live service and the seeds in testdata/fuzz/FuzzVerify (alg none,
// HS256, JWE, JSON serialization, …). Properties: Verify never panics;
// it accepts nothing but the exact tokens the service minted (any
// mutation of one is refused); every refusal is ErrInvalidToken with no
// Principal.
func FuzzVerify(f *testing.F) {
	e := newEnv(f)
	ctx := context.Background()
	minted := map[string]bool{}
	for _, c := range []AccessClaims{
		{},
		{GrantID: "g1", Patient: "p1", Encounter: "e1", FHIRUser: "Patient/p1", CertThumbprint: "t", JKT: "j",
			FHIRContext: []map[string]any{{"reference": "Encounter/e1"}}},
		{Scope: "system/*.rs", Subject: "backend", ClientID: "backend"},
	} {
		tok, _ := e.mint(f, e.svc, c)
		minted[tok] = true
		f.Add(tok)
	}
	id, err := e.svc.MintID(ctx, IDClaims{Subject: "user-1", ClientID: "app-1", Nonce: "n"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(id)
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := e.svc.Verify(ctx, raw)
		if err == nil {
			if !minted[raw] {
				t.Fatalf("accepted a token the service did not mint: %q", raw)
			}
			if p == nil || p.TokenID == "" {
				t.Fatalf("accepted without a Principal: %+v", p)
			}
			return
		}
		if p != nil || !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("refusal = %v, %v; want nil, ErrInvalidToken", p, err)
		}
		if minted[raw] {
			t.Fatalf("refused a minted token: %v", err)
		}
	})
}
