package authserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestDiscoveryDocuments(t *testing.T) {
	e := newEnv(t)
	docs := map[string]string{
		"smart":   e.issuer + "/.well-known/smart-configuration",
		"openid":  e.issuer + "/.well-known/openid-configuration",
		"rfc8414": e.ts.URL + "/.well-known/oauth-authorization-server/fhir",
	}
	for name, u := range docs {
		for _, accept := range []string{"", "text/html", "application/fhir+json", "*/*"} {
			resp, body := e.get(t, u, http.Header{"Accept": {accept}, "Origin": {"https://anywhere.example"}})
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("%s (Accept %q): %d %s", name, accept, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("%s: CORS %q", name, resp.Header.Get("Access-Control-Allow-Origin"))
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			// SMART 2.2 §Conformance REQUIRED fields, and what the brief
			// and the strict clients demand.
			for _, k := range []string{"issuer", "jwks_uri", "authorization_endpoint", "token_endpoint", "grant_types_supported",
				"token_endpoint_auth_methods_supported", "scopes_supported", "response_types_supported",
				"code_challenge_methods_supported", "introspection_endpoint", "revocation_endpoint",
				"token_endpoint_auth_signing_alg_values_supported", "authorization_response_iss_parameter_supported"} {
				if _, ok := m[k]; !ok {
					t.Errorf("%s lacks %s", name, k)
				}
			}
			if m["issuer"] != e.issuer || m["authorization_endpoint"] != e.ts.URL+"/auth/authorize" || m["token_endpoint"] != e.ts.URL+"/auth/token" {
				t.Fatalf("%s: %v", name, m)
			}
			if ccm := toStrings(m["code_challenge_methods_supported"]); !slices.Equal(ccm, []string{"S256"}) {
				t.Fatalf("code_challenge_methods_supported %v", ccm)
			}
			if algs := toStrings(m["token_endpoint_auth_signing_alg_values_supported"]); !slices.Equal(algs, []string{"RS384", "ES384"}) {
				t.Fatalf("algs %v", algs)
			}
			if m["authorization_response_iss_parameter_supported"] != true {
				t.Fatal("iss parameter not advertised")
			}
			if name == "smart" {
				caps := toStrings(m["capabilities"])
				for _, c := range []string{"launch-standalone", "launch-ehr", "client-public", "client-confidential-symmetric",
					"client-confidential-asymmetric", "sso-openid-connect", "context-standalone-patient", "permission-v2", "permission-offline"} {
					if !slices.Contains(caps, c) {
						t.Errorf("capabilities lack %s", c)
					}
				}
				// Honest: nothing advertised that does not work.
				for _, c := range []string{"context-style", "context-standalone-encounter", "authorize-pkce-plain"} {
					if slices.Contains(caps, c) {
						t.Errorf("capabilities claim %s", c)
					}
				}
			}
			if name == "openid" && !slices.Contains(toStrings(m["id_token_signing_alg_values_supported"]), "RS256") {
				t.Fatal("openid-configuration lacks RS256")
			}
		}
	}
	// JWKS: public keys only, CORS open.
	resp, body := e.get(t, e.ts.URL+"/auth/jwks", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("jwks %d", resp.StatusCode)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) < 2 {
		t.Fatalf("jwks %s", body)
	}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			t.Fatal("private key material in the JWKS")
		}
	}
	// A preflight is answered; other methods are refused.
	req, _ := http.NewRequest(http.MethodOptions, docs["smart"], nil)
	req.Header.Set("Origin", "https://anywhere.example")
	if resp, err := e.http.Do(req); err != nil || resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %v %v", resp, err)
	}
	req, _ = http.NewRequest(http.MethodPost, docs["smart"], nil)
	if resp, err := e.http.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST discovery: %v %v", resp, err)
	}
}

func TestTokenEndpointCORS(t *testing.T) {
	e := newEnv(t)
	c, _ := e.appClient(t, ClientPublic, appScopes)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, e.ts.URL+"/auth/token", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if got := preflight("https://app.example").Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Fatalf("registered origin: %q", got)
	}
	if got := preflight("https://evil.example").Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("unregistered origin allowed: %q", got)
	}
	post := func(origin string) string {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/auth/token", strings.NewReader("grant_type=authorization_code&code=x&client_id="+c.ID))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Access-Control-Allow-Origin")
	}
	if got := post("https://app.example"); got != "https://app.example" {
		t.Fatalf("registered origin on POST: %q", got)
	}
	if got := post("https://evil.example"); got != "" {
		t.Fatalf("unregistered origin on POST: %q", got)
	}
	if resp, _ := e.get(t, e.ts.URL+"/auth/token", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET token: %d", resp.StatusCode)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
