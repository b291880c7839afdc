// Package adminapi is Warden's administration API: registering and
// disabling OAuth clients and minting EHR launch contexts over HTTP, for
// the tools that provision SMART apps. It is served on the admin listener
// only (loopback by default), and every request must carry the admin
// token (DATA_DIR/keys/admin.token) as a Bearer token. It never prints a
// client's secret except once, in the answer to the registration.
package adminapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wardenfhir/warden/internal/audit"
	"github.com/wardenfhir/warden/internal/authserver"
	"github.com/wardenfhir/warden/internal/store"
)

// Clients is the client registry (authserver.Registry).
type Clients interface {
	Add(ctx context.Context, n authserver.NewClient) (authserver.Client, string, error)
	Get(ctx context.Context, id string) (authserver.Client, error)
	List(ctx context.Context) ([]authserver.Client, error)
	Disable(ctx context.Context, id string) error
	Enable(ctx context.Context, id string) error
}

// Launcher mints EHR launch contexts (authserver.Server).
type Launcher interface {
	MintLaunch(ctx context.Context, l authserver.LaunchContext) (string, error)
}

// Grants lists the patients' grants of a client (grants.Ledger).
type Grants interface {
	ForClient(ctx context.Context, clientID string) ([]authserver.Grant, error)
}

// API is the administration API.
type API struct {
	clients   Clients
	launcher  Launcher
	grants    Grants   // nil: no grant ledger
	keys      KeyAdmin // nil: no field-level encryption
	detection Releaser // nil: no abuse detection
	token     []byte
	log       *slog.Logger
	mux       *http.ServeMux
}

// New returns the API; token is the admin token callers must present
// (at least 32 bytes).
func New(clients Clients, launcher Launcher, token []byte, log *slog.Logger) (*API, error) {
	if len(token) < 32 {
		return nil, errors.New("adminapi: the admin token must be at least 32 bytes")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{clients: clients, launcher: launcher, token: token, log: log, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /admin/clients", a.listClients)
	a.mux.HandleFunc("POST /admin/clients", a.addClient)
	a.mux.HandleFunc("GET /admin/clients/{id}", a.showClient)
	a.mux.HandleFunc("POST /admin/clients/{id}/disable", a.setDisabled(true))
	a.mux.HandleFunc("POST /admin/clients/{id}/enable", a.setDisabled(false))
	a.mux.HandleFunc("POST /admin/launch", a.launch)
	a.mux.HandleFunc("GET /admin/clients/{id}/grants", a.clientGrants)
	a.mux.HandleFunc("POST /admin/detection/release", a.release)
	a.mux.HandleFunc("GET /admin/keys", a.keyStatus)
	a.mux.HandleFunc("POST /admin/keys/{category}/rotate", a.rotateKeys)
	a.mux.HandleFunc("POST /admin/keys/{category}/shred", a.shred)
	a.mux.HandleFunc("POST /admin/keys/{category}/patients/{patient}/shred", a.shred)
	return a, nil
}

// ServeHTTP authenticates the caller, then routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(tok), a.token) != 1 {
		audit.AnnotationsFrom(r.Context()).Denied("admin-token")
		w.Header().Set("WWW-Authenticate", `Bearer realm="warden-admin"`)
		writeError(w, http.StatusUnauthorized, "the admin token is required")
		return
	}
	audit.AnnotationsFrom(r.Context()).User(AdminSubject, "")
	a.mux.ServeHTTP(w, r)
}

// AdminSubject is how audit events name the holder of the admin token.
const AdminSubject = "warden-admin"

// AuditAction names the audit action (audit.Record.Action) of a request
// to the admin API: the command it carries out.
func AuditAction(r *http.Request) string {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == "/admin/clients" && r.Method == http.MethodGet:
		return "client-list"
	case p == "/admin/clients" && r.Method == http.MethodPost:
		return "client-add"
	case strings.HasPrefix(p, "/admin/clients/") && strings.HasSuffix(p, "/disable"):
		return "client-disable"
	case strings.HasPrefix(p, "/admin/clients/") && strings.HasSuffix(p, "/enable"):
		return "client-enable"
	case strings.HasPrefix(p, "/admin/clients/") && r.Method == http.MethodGet:
		return "client-show"
	case p == "/admin/launch":
		return "launch-create"
	case p == "/admin/detection/release":
		return "detection-release"
	case p == "/admin/keys":
		return "keys-status"
	case strings.HasPrefix(p, "/admin/keys/") && strings.HasSuffix(p, "/rotate"):
		return "keys-rotate"
	case strings.HasPrefix(p, "/admin/keys/") && strings.HasSuffix(p, "/shred"):
		return "keys-shred"
	}
	return "unknown-request"
}

// ClientView is a client as the API shows it: never the secret's hash.
type ClientView struct {
	ID            string               `json:"client_id"`
	Name          string               `json:"name"`
	Type          string               `json:"type"`
	RedirectURIs  []string             `json:"redirect_uris,omitempty"`
	Scopes        string               `json:"scopes"`
	GrantTypes    []string             `json:"grant_types"`
	TokenLifetime string               `json:"token_lifetime,omitempty"`
	Owner         string               `json:"owner,omitempty"`
	Contact       string               `json:"contact,omitempty"`
	Origins       []string             `json:"origins,omitempty"`
	JWKSURL       string               `json:"jwks_url,omitempty"`
	HasJWKS       bool                 `json:"has_jwks,omitempty"`
	Disabled      bool                 `json:"disabled"`
	Created       time.Time            `json:"created"`
	Secret        string               `json:"client_secret,omitempty"`
	TLS           authserver.ClientTLS `json:"tls,omitzero"`
}

// View turns a client into its public view; secret is set only when the
// client was just registered.
func View(c authserver.Client, secret string) ClientView {
	v := ClientView{ID: c.ID, Name: c.Name, Type: c.Type, RedirectURIs: c.RedirectURIs, Scopes: c.Scopes, GrantTypes: c.GrantTypes,
		Owner: c.Owner, Contact: c.Contact, Origins: c.Origins, JWKSURL: c.JWKSURL, HasJWKS: c.JWKS != "", Disabled: c.Disabled,
		Created: c.Created, Secret: secret, TLS: c.TLS}
	if c.TokenLifetime > 0 {
		v.TokenLifetime = c.TokenLifetime.String()
	}
	return v
}

// clientRequest is the body of POST /admin/clients.
type clientRequest struct {
	Name          string          `json:"name"`
	Type          string          `json:"type"`
	RedirectURIs  []string        `json:"redirect_uris"`
	Scopes        string          `json:"scopes"`
	GrantTypes    []string        `json:"grant_types"`
	TokenLifetime string          `json:"token_lifetime"`
	Owner         string          `json:"owner"`
	Contact       string          `json:"contact"`
	Origins       []string        `json:"origins"`
	JWKS          json.RawMessage `json:"jwks"`
	JWKSURL       string          `json:"jwks_url"`
	JWKSHosts     []string        `json:"jwks_hosts"`
	// RFC 8705 client metadata.
	TLSAuthMethod  string `json:"token_endpoint_auth_method"`
	TLSSubjectDN   string `json:"tls_client_auth_subject_dn"`
	TLSSANDNS      string `json:"tls_client_auth_san_dns"`
	TLSSANURI      string `json:"tls_client_auth_san_uri"`
	TLSBoundTokens bool   `json:"tls_client_certificate_bound_access_tokens"`
	DPoPBound      bool   `json:"dpop_bound_access_tokens"`
}

func (a *API) addClient(w http.ResponseWriter, r *http.Request) {
	var req clientRequest
	if !decode(w, r, &req) {
		return
	}
	nc := authserver.NewClient{Name: req.Name, Type: req.Type, RedirectURIs: req.RedirectURIs, Scopes: req.Scopes, GrantTypes: req.GrantTypes,
		Owner: req.Owner, Contact: req.Contact, Origins: req.Origins, JWKSURL: req.JWKSURL, JWKSHosts: req.JWKSHosts,
		TLS:       authserver.ClientTLS{AuthMethod: req.TLSAuthMethod, SubjectDN: req.TLSSubjectDN, SANDNS: req.TLSSANDNS, SANURI: req.TLSSANURI, BoundTokens: req.TLSBoundTokens},
		DPoPBound: req.DPoPBound}
	switch req.TLSAuthMethod {
	case "", "client_secret_basic", "client_secret_post", "private_key_jwt", "none":
		nc.TLS.AuthMethod = "" // the other methods follow from the client type
	}
	if len(req.JWKS) > 0 {
		nc.JWKS = string(req.JWKS)
	}
	if req.TokenLifetime != "" {
		d, err := time.ParseDuration(req.TokenLifetime)
		if err != nil {
			writeError(w, http.StatusBadRequest, "token_lifetime is not a duration (e.g. 5m)")
			return
		}
		nc.TokenLifetime = d
	}
	c, secret, err := a.clients.Add(r.Context(), nc)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("client registered", "client_id", c.ID, "type", c.Type)
	writeJSON(w, http.StatusCreated, View(c, secret))
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request) {
	list, err := a.clients.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]ClientView, len(list))
	for i, c := range list {
		out[i] = View(c, "")
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) showClient(w http.ResponseWriter, r *http.Request) {
	c, err := a.clients.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, View(c, ""))
}

// WithGrants adds GET /admin/clients/{id}/grants: every patient grant
// of the client, from the ledger.
func (a *API) WithGrants(g Grants) *API {
	a.grants = g
	return a
}

// GrantView is a grant as the admin API shows it: no user id, no last
// access (the audit trail answers who read what).
type GrantView struct {
	ID      string    `json:"id"`
	Patient string    `json:"patient"`
	Scopes  []string  `json:"scopes"`
	Granted time.Time `json:"granted"`
	Active  bool      `json:"active"`
	Blocked []string  `json:"blocked,omitempty"`
}

func (a *API) clientGrants(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := a.clients.Get(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	if a.grants == nil {
		writeError(w, http.StatusNotImplemented, "no grant ledger is configured")
		return
	}
	gs, err := a.grants.ForClient(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]GrantView, 0, len(gs))
	for _, g := range gs {
		out = append(out, GrantView{ID: g.ID, Patient: g.Patient, Scopes: g.Scopes, Granted: g.Granted, Active: g.Active, Blocked: g.Blocked})
	}
	writeJSON(w, http.StatusOK, map[string]any{"client_id": id, "grants": out})
}

func (a *API) setDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var err error
		if disabled {
			err = a.clients.Disable(r.Context(), id)
		} else {
			err = a.clients.Enable(r.Context(), id)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		a.log.Info("client status changed", "client_id", id, "disabled", disabled)
		c, err := a.clients.Get(r.Context(), id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, View(c, ""))
	}
}

// launchRequest is the body of POST /admin/launch.
type launchRequest struct {
	Patient   string `json:"patient"`
	Encounter string `json:"encounter"`
	FHIRUser  string `json:"fhir_user"`
	TTL       string `json:"ttl"`
}

func (a *API) launch(w http.ResponseWriter, r *http.Request) {
	var req launchRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Patient == "" {
		writeError(w, http.StatusBadRequest, "patient is required")
		return
	}
	ttl := 5 * time.Minute
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > time.Hour {
			writeError(w, http.StatusBadRequest, "ttl must be a duration up to 1h")
			return
		}
		ttl = d
	}
	exp := time.Now().Add(ttl)
	id, err := a.launcher.MintLaunch(r.Context(), authserver.LaunchContext{Patient: req.Patient, Encounter: req.Encounter, FHIRUser: req.FHIRUser, Expires: exp})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"launch": id, "expires": exp.UTC().Format(time.RFC3339)})
}

// fail maps an error to a status: unknown ids 404, refused input 400,
// anything else 500 without detail.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, authserver.ErrUnknownClient), errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such client")
	case errors.Is(err, authserver.ErrInvalidClient):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, "the database is unavailable; retry later")
	default:
		a.log.Error("admin request failed", "path", r.URL.Path, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be a JSON object with known fields only")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
