package cli

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-jose/go-jose/v4"

	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/fhirapi"
	"github.com/wardenfhir/warden/internal/identity"
	"github.com/wardenfhir/warden/internal/pki"
)

// demoClient is one registered client as DIR/demo.json describes it.
type demoClient struct {
	ClientID       string   `json:"client_id"`
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	RedirectURIs   []string `json:"redirect_uris,omitempty"`
	Scopes         string   `json:"scopes"`
	ClientSecret   string   `json:"client_secret,omitempty"`
	PrivateKeyFile string   `json:"private_key_file,omitempty"`
	KeyID          string   `json:"key_id,omitempty"`
	// A mutual-TLS client (RFC 8705 tls_client_auth): its certificate,
	// issued by the demo's CA, is its credential, and its tokens are
	// bound to it.
	CertFile   string `json:"cert_file,omitempty"`
	CertKey    string `json:"cert_key_file,omitempty"`
	SPIFFEID   string `json:"spiffe_id,omitempty"`
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
}

// demoUser is one login as DIR/demo.json describes it.
type demoUser struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	TOTPSecret string `json:"totp_secret"`
	FHIRUser   string `json:"fhir_user"`
}

// demoAuth is what the demo registers: it is kept in DIR/demo-auth.json
// (0600) so that a restarted demo reuses it.
type demoAuth struct {
	Clients []demoClient `json:"clients"`
	Users   []demoUser   `json:"users"`
}

// demoRedirect is where the demo's SMART apps are registered to return:
// a loopback address, as for native apps (RFC 8252 §7.3).
const demoRedirect = "http://127.0.0.1:8765/callback"

const demoAppScopes = "launch launch/patient launch/encounter openid fhirUser profile offline_access online_access patient/*.cruds user/*.cruds sensitive/*"

// seedAuth registers the demo's clients and users the first time and
// returns them.
func seedAuth(ctx context.Context, in *instance, dir string, patients []string) (*demoAuth, error) {
	path := filepath.Join(dir, "demo-auth.json")
	if b, err := os.ReadFile(path); err == nil {
		var da demoAuth
		if err := json.Unmarshal(b, &da); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		return &da, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	da := &demoAuth{}
	reg := in.core.clients
	for _, c := range []authserver.NewClient{
		{Name: "Warden demo app (public)", Type: "public", RedirectURIs: []string{demoRedirect}, Scopes: demoAppScopes, Owner: "Warden demo"},
		{Name: "Warden demo app (confidential)", Type: "confidential", RedirectURIs: []string{demoRedirect}, Scopes: demoAppScopes, Owner: "Warden demo"},
	} {
		got, secret, err := reg.Add(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("registering %s: %w", c.Name, err)
		}
		da.Clients = append(da.Clients, demoClient{ClientID: got.ID, Name: got.Name, Type: got.Type, RedirectURIs: got.RedirectURIs, Scopes: got.Scopes, ClientSecret: secret})
	}
	backend, err := demoBackendKey(filepath.Join(dir, "clients"))
	if err != nil {
		return nil, err
	}
	got, _, err := reg.Add(ctx, authserver.NewClient{Name: "Warden demo backend service", Type: "backend", Scopes: "system/*.cruds", JWKS: backend.jwks, Owner: "Warden demo"})
	if err != nil {
		return nil, fmt.Errorf("registering the backend client: %w", err)
	}
	da.Clients = append(da.Clients, demoClient{ClientID: got.ID, Name: got.Name, Type: got.Type, Scopes: got.Scopes, PrivateKeyFile: backend.file, KeyID: backend.kid})
	partner, err := demoPartner(ctx, reg, dir)
	if err != nil {
		return nil, err
	}
	da.Clients = append(da.Clients, partner)

	cared := patients[:min(3, len(patients))]
	practitioner, err := demoPractitioner(ctx, in.api, cared)
	if err != nil {
		return nil, err
	}
	logins := []identity.NewUser{{Username: "practitioner", Name: "Dr. Demo Practitioner", FHIRUser: "Practitioner/" + practitioner, TOTP: true}}
	// One patient login for each of the first four patients: the
	// end-to-end clients sign in as different users (each one-time code
	// is accepted once), and patient4 is the patient pages' browser test.
	for i, id := range patients[:min(4, len(patients))] {
		logins = append(logins, identity.NewUser{Username: fmt.Sprintf("patient%d", i+1), FHIRUser: "Patient/" + id, Patients: []string{id}, TOTP: true})
	}
	for _, nu := range logins {
		nu.Password = demoPassword()
		u, secret, err := in.core.users.Create(ctx, nu)
		if err != nil {
			return nil, fmt.Errorf("creating demo user %s: %w", nu.Username, err)
		}
		da.Users = append(da.Users, demoUser{Username: u.Username, Password: nu.Password, TOTPSecret: secret, FHIRUser: u.FHIRUser})
	}
	b, _ := json.MarshalIndent(da, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return da, nil
}

// demoPassword is a random 26-character password.
func demoPassword() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

type backendKey struct{ file, kid, jwks string }

// demoBackendKey creates the backend client's ES384 key pair: the private
// key as PEM in dir, the public key as a JWK Set to register.
func demoBackendKey(dir string) (backendKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return backendKey{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return backendKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return backendKey{}, err
	}
	file, _ := filepath.Abs(filepath.Join(dir, "backend-key.pem"))
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return backendKey{}, err
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES384), Use: "sig"}
	thumb, err := jwk.Thumbprint(cryptoSHA256)
	if err != nil {
		return backendKey{}, err
	}
	jwk.KeyID = base64URL(thumb)
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		return backendKey{}, err
	}
	return backendKey{file: file, kid: jwk.KeyID, jwks: string(set)}, nil
}

// demoPractitioner makes sure the demo's practitioner exists, with a
// CareTeam for each of the patients it cares for (so that the default site
// policy lets it reach their records, and no one else's), and returns its
// id.
func demoPractitioner(ctx context.Context, api *fhirapi.API, patients []string) (string, error) {
	const id = "demo-practitioner"
	entries := []any{map[string]any{
		"resource": map[string]any{"resourceType": "Practitioner", "id": id, "active": true,
			"name": []any{map[string]any{"family": "Practitioner", "given": []any{"Demo"}, "prefix": []any{"Dr."}}}},
		"request": map[string]any{"method": "PUT", "url": "Practitioner/" + id},
	}}
	for _, p := range patients {
		team := "demo-careteam-" + p
		entries = append(entries, map[string]any{
			"resource": map[string]any{"resourceType": "CareTeam", "id": team, "status": "active",
				"subject":     map[string]any{"reference": "Patient/" + p},
				"participant": []any{map[string]any{"member": map[string]any{"reference": "Practitioner/" + id}}}},
			"request": map[string]any{"method": "PUT", "url": "CareTeam/" + team},
		})
	}
	bundle, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	if err != nil {
		return "", err
	}
	if _, err := api.ProcessBundle(fhirapi.Trusted(ctx), bundle, fhirapi.BundleOptions{}); err != nil {
		return "", fmt.Errorf("creating the demo practitioner: %w", err)
	}
	return id, nil
}

var cryptoSHA256 = crypto.SHA256

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// demoPartnerSPIFFE is the demo partner's identity in its certificate.
const demoPartnerSPIFFE = "spiffe://partner.warden.demo/lab-gateway"

// demoCA opens the demo's client CA in DIR/pki-ca (made on first start),
// its passphrase kept in DIR/keys/pki-ca.passphrase for the operator's
// warden pki commands (--passphrase-file).
func demoCA(dir string) (*pki.CA, error) {
	raw, err := secretFile(dir, "pki-ca.key", 32)
	if err != nil {
		return nil, err
	}
	pass := []byte(hex.EncodeToString(raw[:32]))
	passFile := filepath.Join(dir, "keys", "pki-ca.passphrase")
	if _, err := os.Stat(passFile); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(passFile, append(pass, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	caDir := filepath.Join(dir, "pki-ca")
	ca, err := pki.Open(caDir, pass, pki.OpenOptions{})
	if errors.Is(err, pki.ErrNoCA) {
		// The passphrase is 256 random bits: scrypt's cheapest setting suffices.
		return pki.Init(caDir, pass, pki.Options{Name: "Warden demo client CA", WorkFactor: 15})
	}
	return ca, err
}

// demoPartner issues a client certificate from the demo's CA and
// registers a backend client that authenticates with it (RFC 8705
// tls_client_auth by SPIFFE ID): a partner organisation's system.
func demoPartner(ctx context.Context, reg *authserver.Registry, dir string) (demoClient, error) {
	ca, err := demoCA(dir)
	if err != nil {
		return demoClient{}, fmt.Errorf("the demo CA: %w", err)
	}
	issued, err := ca.Issue(pki.Client, "partner-lab", pki.IssueOptions{URIs: []string{demoPartnerSPIFFE}})
	if err != nil {
		return demoClient{}, err
	}
	certFile, keyFile, err := issued.WriteFiles(filepath.Join(dir, "clients"), true)
	if err != nil {
		return demoClient{}, err
	}
	got, _, err := reg.Add(ctx, authserver.NewClient{Name: "Warden demo partner lab (mutual TLS)", Type: "backend", Scopes: "system/*.rs",
		Owner: "Warden demo", TLS: authserver.ClientTLS{AuthMethod: authserver.TLSClientAuth, SANURI: demoPartnerSPIFFE}})
	if err != nil {
		return demoClient{}, fmt.Errorf("registering the partner client: %w", err)
	}
	certFile, _ = filepath.Abs(certFile)
	keyFile, _ = filepath.Abs(keyFile)
	return demoClient{ClientID: got.ID, Name: got.Name, Type: got.Type, Scopes: got.Scopes, CertFile: certFile, CertKey: keyFile,
		SPIFFEID: demoPartnerSPIFFE, AuthMethod: authserver.TLSClientAuth}, nil
}
