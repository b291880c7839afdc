package authserver

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestRegistryValidation(t *testing.T) {
	e := newEnv(t)
	jwks := newBackendKeys(t).jwks(t)
	private := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cLv9jJHE_v-7dGD3cuu6WE"}]}`
	ok := NewClient{Name: "app", Type: ClientPublic, Scopes: "patient/*.rs", RedirectURIs: []string{"https://app.example/cb"}}
	cases := []struct {
		name string
		mod  func(*NewClient)
	}{
		{"no name", func(n *NewClient) { n.Name = " " }},
		{"unknown type", func(n *NewClient) { n.Type = "trusted" }},
		{"empty ceiling", func(n *NewClient) { n.Scopes = "" }},
		{"invalid ceiling scope", func(n *NewClient) { n.Scopes = "patient/Observation.xyz" }},
		{"relative redirect", func(n *NewClient) { n.RedirectURIs = []string{"/cb"} }},
		{"http redirect off loopback", func(n *NewClient) { n.RedirectURIs = []string{"http://app.example/cb"} }},
		{"redirect with fragment", func(n *NewClient) { n.RedirectURIs = []string{"https://app.example/cb#frag"} }},
		{"redirect with user info", func(n *NewClient) { n.RedirectURIs = []string{"https://user@app.example/cb"} }},
		{"javascript redirect", func(n *NewClient) { n.RedirectURIs = []string{"javascript:alert(1)"} }},
		{"no redirect URI", func(n *NewClient) { n.RedirectURIs = nil }},
		{"public with client_credentials", func(n *NewClient) { n.GrantTypes = []string{GrantClientCredentials} }},
		{"unknown grant", func(n *NewClient) { n.GrantTypes = []string{"password"} }},
		{"lifetime over an hour", func(n *NewClient) { n.TokenLifetime = 2 * time.Hour }},
		{"origin with a path", func(n *NewClient) { n.Origins = []string{"https://app.example/x"} }},
		{"backend with redirect URIs", func(n *NewClient) { n.Type = ClientBackend; n.JWKS = jwks }},
		{"backend without keys", func(n *NewClient) { n.Type = ClientBackend; n.RedirectURIs = nil }},
		{"backend with an authorization_code grant", func(n *NewClient) {
			n.Type, n.RedirectURIs, n.JWKS, n.GrantTypes = ClientBackend, nil, jwks, []string{GrantAuthorizationCode}
		}},
		{"private key in the JWKS", func(n *NewClient) { n.Type, n.RedirectURIs, n.JWKS = ClientBackend, nil, private }},
		{"JWKS that is not a set", func(n *NewClient) { n.Type, n.RedirectURIs, n.JWKS = ClientBackend, nil, `{"kty":"EC"}` }},
		{"http jwks_url", func(n *NewClient) { n.Type, n.RedirectURIs, n.JWKSURL = ClientBackend, nil, "http://keys.example/jwks" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := ok
			tc.mod(&n)
			if _, _, err := e.srv.Clients().Add(e.ctx, n); !errors.Is(err, ErrInvalidClient) {
				t.Fatalf("got %v", err)
			}
		})
	}
	// Native apps may use loopback http.
	for _, ru := range []string{"http://127.0.0.1:8765/cb", "http://[::1]/cb", "http://localhost:3000/cb"} {
		n := ok
		n.RedirectURIs = []string{ru}
		if _, _, err := e.srv.Clients().Add(e.ctx, n); err != nil {
			t.Fatalf("%s: %v", ru, err)
		}
	}
	list, err := e.srv.Clients().List(e.ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list: %d %v", len(list), err)
	}
}

func TestRegistrySecrets(t *testing.T) {
	e := newEnv(t)
	conf, secret, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "c", Type: ClientConfidential, Scopes: "patient/*.rs", RedirectURIs: []string{"https://app.example/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 43 {
		t.Fatalf("secret too short: %d", len(secret))
	}
	// Only the hash is stored.
	rec, err := e.records.GetRecord(e.ctx, recordKindClient, conf.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec.Value, []byte(secret)) {
		t.Fatal("the secret is stored in clear")
	}
	got, err := e.srv.Clients().Get(e.ctx, conf.ID)
	if err != nil || !secretMatches(got.SecretHash, secret) || secretMatches(got.SecretHash, secret+"x") {
		t.Fatalf("get: %v", err)
	}
	pub, pubSecret, err := e.srv.Clients().Add(e.ctx, NewClient{Name: "p", Type: ClientPublic, Scopes: "patient/*.rs", RedirectURIs: []string{"https://app.example/cb"}})
	if err != nil || pubSecret != "" || len(pub.SecretHash) != 0 {
		t.Fatalf("public client got a secret: %q %v", pubSecret, err)
	}
	if _, err := e.srv.Clients().Get(e.ctx, "nope"); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("unknown: %v", err)
	}
	if err := e.srv.Clients().Disable(e.ctx, "nope"); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("disable unknown: %v", err)
	}
}
