// Command backendtoken gets access tokens for Warden's benchmarks the way
// a SMART Backend Services client does.
//
//	backendtoken -gen DIR
//	    writes DIR/key.pem (ES384 private key) and DIR/jwks.json (its public
//	    JWK Set, for 'warden clients add --type backend --jwks-file').
//	backendtoken -issuer URL -ca CA.pem -client ID -key DIR/key.pem -scope S
//	    discovery, then client_credentials with a private_key_jwt
//	    assertion; prints the access token.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func main() {
	gen := flag.String("gen", "", "write a key pair to `DIR` and exit")
	issuer := flag.String("issuer", "", "FHIR base URL (the issuer)")
	caFile := flag.String("ca", "", "CA certificate to trust (PEM)")
	client := flag.String("client", "", "client_id")
	keyFile := flag.String("key", "", "private key (PEM) written by -gen")
	scope := flag.String("scope", "system/*.rs", "scope to ask for")
	flag.Parse()
	if *gen != "" {
		if err := generate(*gen); err != nil {
			log.Fatal(err)
		}
		return
	}
	tok, err := token(*issuer, *caFile, *client, *keyFile, *scope)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok)
}

func kid(pub *ecdsa.PublicKey) (string, error) {
	t, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(t), err
}

func generate(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	id, err := kid(&key.PublicKey)
	if err != nil {
		return err
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: id, Algorithm: string(jose.ES384), Use: "sig"}}})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "jwks.json"), set, 0o644)
}

func token(issuer, caFile, clientID, keyFile, scope string) (string, error) {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(issuer + "/.well-known/smart-configuration")
	if err != nil {
		return "", err
	}
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	err = json.NewDecoder(resp.Body).Decode(&conf)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return "", fmt.Errorf("no PEM block in %s", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("%s is not an EC key", keyFile)
	}
	id, err := kid(&key.PublicKey)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", id))
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	claims, _ := json.Marshal(map[string]any{"iss": clientID, "sub": clientID, "aud": conf.TokenEndpoint, "exp": time.Now().Add(time.Minute).Unix(), "jti": hex.EncodeToString(jti)})
	jws, err := signer.Sign(claims)
	if err != nil {
		return "", err
	}
	assertion, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	resp, err = hc.PostForm(conf.TokenEndpoint, url.Values{
		"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %d: %s", resp.StatusCode, b)
	}
	return tok.AccessToken, nil
}
