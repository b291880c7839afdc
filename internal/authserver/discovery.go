package authserver

import (
	"encoding/json"
	"net/http"
)

// capabilities lists what works, and only that (SMART 2.2 §Conformance
// "capabilities").
var capabilities = []string{
	"launch-ehr",
	"launch-standalone",
	"authorize-post",
	"client-public",
	"client-confidential-symmetric",
	"client-confidential-asymmetric",
	"sso-openid-connect",
	"context-banner",
	"context-ehr-patient",
	"context-ehr-encounter",
	"context-standalone-patient",
	"permission-offline",
	"permission-online",
	"permission-patient",
	"permission-user",
	"permission-v1",
	"permission-v2",
}

// scopesSupported are the scopes a client may request beyond resource
// scopes, plus the resource-scope shapes Warden understands.
var scopesSupported = []string{
	"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access", "sensitive/*",
	"patient/*.cruds", "user/*.cruds", "system/*.cruds",
	"patient/*.read", "user/*.read", "system/*.read",
	"patient/*.write", "user/*.write", "system/*.write",
}

// metadata is the common core of the three discovery documents.
func (s *Server) metadata() map[string]any {
	return map[string]any{
		"issuer":                                           s.o.Issuer,
		"jwks_uri":                                         s.urls.jwks,
		"authorization_endpoint":                           s.urls.authorize,
		"token_endpoint":                                   s.urls.token,
		"introspection_endpoint":                           s.urls.introspect,
		"revocation_endpoint":                              s.urls.revoke,
		"grant_types_supported":                            []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials},
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query"},
		"scopes_supported":                                 scopesSupported,
		"code_challenge_methods_supported":                 []string{"S256"},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt", TLSClientAuth, SelfSignedTLSClientAuth},
		"tls_client_certificate_bound_access_tokens":       true,
		"dpop_signing_alg_values_supported":                s.dpopAlgorithms(),
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"introspection_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"revocation_endpoint_auth_methods_supported":       []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"authorization_response_iss_parameter_supported":   true,
		"acr_values_supported":                             []string{"urn:warden:acr:pwd", "urn:warden:acr:mfa"},
		"claims_parameter_supported":                       false,
		"request_parameter_supported":                      false,
	}
}

// handleSMARTConfiguration serves {base}/.well-known/smart-configuration
// (SMART App Launch 2.2 §Conformance, "Metadata"): JSON whatever the
// Accept header, open to every origin.
func (s *Server) handleSMARTConfiguration(w http.ResponseWriter, r *http.Request) {
	m := s.metadata()
	m["capabilities"] = capabilities
	writeDiscovery(w, r, m)
}

// handleOpenIDConfiguration serves {base}/.well-known/openid-configuration
// (OpenID Connect Discovery 1.0 §4).
func (s *Server) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	m := s.metadata()
	m["subject_types_supported"] = []string{"public"}
	m["id_token_signing_alg_values_supported"] = []string{"RS256"}
	m["claims_supported"] = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "fhirUser", "name"}
	writeDiscovery(w, r, m)
}

// handleOAuthMetadata serves /.well-known/oauth-authorization-server{path}
// (RFC 8414 §3: the well-known segment goes between host and path).
func (s *Server) handleOAuthMetadata(w http.ResponseWriter, r *http.Request) {
	writeDiscovery(w, r, s.metadata())
}

// handleJWKS publishes the token-signing public keys (RFC 7517 §5),
// retired keys included until their tokens have expired.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if !openCORS(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.o.Tokens.JWKS())
}

func writeDiscovery(w http.ResponseWriter, r *http.Request, m map[string]any) {
	if !openCORS(w, r) {
		return
	}
	b, err := json.Marshal(m)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

// openCORS allows every origin to GET (SMART 2.2 CORS: discovery and JWKS
// are public). It answers preflights and other methods itself and reports
// whether the caller should go on.
func openCORS(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
	return false
}

// dpopAlgorithms are the DPoP proof algorithms the token endpoint takes
// (RFC 9449 §5.1); none without a verifier.
func (s *Server) dpopAlgorithms() []string {
	if s.o.DPoP == nil {
		return []string{}
	}
	return s.o.DPoP.Algorithms()
}
